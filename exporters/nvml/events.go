package nvml

import (
	"context"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/exporters/metrics"
)

type xidKey struct {
	gpu gpuRef
	xid uint64
}

// xidCounter counts XID events per GPU and code since the exporter
// started.
type xidCounter struct {
	mu     sync.Mutex
	counts map[xidKey]uint64
}

func newXIDCounter() *xidCounter { return &xidCounter{counts: map[xidKey]uint64{}} }

// add counts an event and returns the new count.
func (x *xidCounter) add(gpu gpuRef, xid uint64) uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.counts[xidKey{gpu, xid}]++
	return x.counts[xidKey{gpu, xid}]
}

func (x *xidCounter) get(gpu gpuRef, xid uint64) uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.counts[xidKey{gpu, xid}]
}

// send emits the counters, in a stable order.
func (x *xidCounter) send(ch chan<- prometheus.Metric, nodeName string) {
	x.mu.Lock()
	keys := make([]xidKey, 0, len(x.counts))
	for k := range x.counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.gpu != b.gpu {
			return callKey{gpu: a.gpu}.less(callKey{gpu: b.gpu})
		}
		return a.xid < b.xid
	})
	values := make([]uint64, len(keys))
	for i, k := range keys {
		values[i] = x.counts[k]
	}
	x.mu.Unlock()
	for i, k := range keys {
		sendConst(ch, metrics.GPUXIDErrors, prometheus.CounterValue, float64(values[i]),
			nodeName, k.gpu.index, k.gpu.uuid, strconv.FormatUint(k.xid, 10))
	}
}

// startEvents registers every GPU for critical XID events in one event set
// and starts the goroutine that waits on it. GPUs that cannot be
// registered are logged and left out; without any, no goroutine starts.
func (c *Collector) startEvents(ctx context.Context) {
	set, ret := c.lib.EventSetCreate()
	switch ret {
	case nvml.SUCCESS:
	case nvml.ERROR_NOT_SUPPORTED:
		c.errs.logOnce(gpuRef{}, "nvmlEventSetCreate", ret, "XID events not supported")
		return
	default:
		c.errs.note(gpuRef{}, "nvmlEventSetCreate", ret)
		return
	}
	gpus := c.registerXID(set)
	if len(gpus) == 0 {
		set.Free()
		return
	}
	c.wg.Add(1)
	go c.watchEvents(ctx, set, gpus)
}

// registerXID registers each GPU in set; it returns the registered GPUs by
// UUID.
func (c *Collector) registerXID(set nvml.EventSet) map[string]gpuRef {
	gpus := map[string]gpuRef{}
	count, ret := c.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		c.errs.note(gpuRef{}, "nvmlDeviceGetCount", ret)
		return gpus
	}
	for i := range count {
		ref := gpuRef{index: strconv.Itoa(i)}
		dev, ret := c.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			c.errs.note(ref, "nvmlDeviceGetHandleByIndex", ret)
			continue
		}
		if ref.uuid, ret = dev.GetUUID(); ret != nvml.SUCCESS {
			c.errs.note(ref, "nvmlDeviceGetUUID", ret)
			continue
		}
		switch ret := dev.RegisterEvents(nvml.EventTypeXidCriticalError, set); ret {
		case nvml.SUCCESS:
			gpus[ref.uuid] = ref
		case nvml.ERROR_NOT_SUPPORTED:
			c.errs.logOnce(ref, "nvmlDeviceRegisterEvents", ret, "XID events not supported on this GPU")
		default:
			c.errs.note(ref, "nvmlDeviceRegisterEvents", ret)
		}
	}
	return gpus
}

// watchEvents waits for events until ctx ends, each wait bounded by
// EventWait so that Close is prompt, then frees the set.
func (c *Collector) watchEvents(ctx context.Context, set nvml.EventSet, gpus map[string]gpuRef) {
	defer c.wg.Done()
	defer set.Free()
	timeout := uint32(c.opts.EventWait / time.Millisecond)
	for ctx.Err() == nil {
		ev, ret := set.Wait(timeout)
		switch ret {
		case nvml.SUCCESS:
			c.recordEvent(ev, gpus)
		case nvml.ERROR_TIMEOUT:
		default:
			c.errs.note(gpuRef{}, "nvmlEventSetWait", ret)
			select { // do not spin on a persistent failure
			case <-ctx.Done():
			case <-time.After(c.opts.EventWait):
			}
		}
	}
}

// recordEvent counts a critical XID event against its GPU.
func (c *Collector) recordEvent(ev nvml.EventData, gpus map[string]gpuRef) {
	if ev.EventType != nvml.EventTypeXidCriticalError {
		return
	}
	var ref gpuRef
	if ev.Device != nil {
		uuid, ret := ev.Device.GetUUID()
		if ret == nvml.SUCCESS {
			ref = gpus[uuid]
			ref.uuid = uuid
		}
	}
	level := slog.LevelDebug // an XID storm must not flood the log
	if c.xids.add(ref, ev.EventData) == 1 {
		level = slog.LevelWarn
	}
	c.logger.Log(context.Background(), level, "GPU XID error; further ones of this code are counted in gpuledger_gpu_xid_errors_total",
		"gpu", ref.index, "uuid", ref.uuid, "xid", ev.EventData,
		"gpu_instance", ev.GpuInstanceId, "compute_instance", ev.ComputeInstanceId)
}
