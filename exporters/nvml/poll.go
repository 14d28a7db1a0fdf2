package nvml

import (
	"fmt"
	"strconv"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/exporters/metrics"
	"github.com/gpuledger/gpuledger/exporters/node"
)

// Unit conversions from NVML's units to base units. Fractions divide by
// an exact integer (70/100 is the float 0.7, 70*0.01 is not).
const (
	perMilli   = 1e3 // mW → W, mJ → J: divide
	perPercent = 1e2 // percent → ratio: divide
	hzPerMHz   = 1e6 // MHz → Hz: multiply
)

// poll reads every GPU once, stores the snapshot and publishes the devices
// and their activity. Only the polling goroutine calls it.
func (c *Collector) poll() {
	now := c.opts.Now()
	count, ret := c.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		c.errs.note(gpuRef{}, "nvmlDeviceGetCount", ret)
		c.setSnapshot(&snapshot{at: now, err: fmt.Errorf("nvmlDeviceGetCount: %s", ret.Error())})
		return
	}
	var (
		out      []prometheus.Metric
		devs     []node.Device
		activity = map[string]float64{}
	)
	for i := range count {
		p := c.pollGPU(i)
		out = append(out, p.out...)
		for id, a := range p.activity {
			activity[id] = a
		}
		if p.identified {
			c.prevDevices[i] = p.devices
		}
		// A GPU whose identity or MIG layout could not be read this time
		// keeps the devices of its last good poll: a failed read is no
		// evidence that its allocations moved.
		devs = append(devs, c.prevDevices[i]...)
	}
	for i := range c.prevDevices {
		if i >= count {
			delete(c.prevDevices, i)
		}
	}
	c.gpm.sweep()
	if inv := c.opts.Inventory; inv != nil {
		inv.SetDevices(Source, devs)
		inv.SetActivity(Source, now, activity)
	}
	s := &snapshot{at: now, metrics: out}
	if count == 0 {
		s.err = fmt.Errorf("NVML reports no GPU: %w", collector.ErrNoData)
	}
	c.setSnapshot(s)
}

// gpuPoll is the reading of one GPU in one poll.
type gpuPoll struct {
	c      *Collector
	ref    gpuRef
	labels []string // node, gpu, uuid
	out    []prometheus.Metric
	// identified is set when the GPU's identity and device layout (MIG
	// mode and instances) were read in full.
	identified bool
	devices    []node.Device
	activity   map[string]float64 // by device ID
	// util is the GPU utilization, when read (never on MIG GPUs).
	util     float64
	haveUtil bool
}

// ok reports whether an NVML call succeeded. ERROR_NOT_SUPPORTED only
// omits the series; any other failure is counted and logged once.
func (p *gpuPoll) ok(call string, ret nvml.Return) bool {
	switch ret {
	case nvml.SUCCESS:
		return true
	case nvml.ERROR_NOT_SUPPORTED:
		return false
	}
	p.c.errs.note(p.ref, call, ret)
	return false
}

// add appends a series.
func (p *gpuPoll) add(desc *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(desc, t, v, labels...)
	if err != nil {
		p.c.logger.Error("bad NVML series", "desc", desc.String(), "err", err)
		return
	}
	p.out = append(p.out, m)
}

// gauge appends a series of the GPU with the GPU's labels.
func (p *gpuPoll) gauge(desc *prometheus.Desc, v float64) {
	p.add(desc, prometheus.GaugeValue, v, p.labels...)
}

func (c *Collector) pollGPU(i int) *gpuPoll {
	p := &gpuPoll{c: c, ref: gpuRef{index: strconv.Itoa(i)}, activity: map[string]float64{}}
	dev, ret := c.lib.DeviceGetHandleByIndex(i)
	if !p.ok("nvmlDeviceGetHandleByIndex", ret) {
		return p
	}
	uuid, ret := dev.GetUUID()
	if !p.ok("nvmlDeviceGetUUID", ret) {
		return p
	}
	p.ref.uuid = uuid
	p.labels = []string{c.opts.Node, p.ref.index, uuid}
	model, ret := dev.GetName()
	if !p.ok("nvmlDeviceGetName", ret) {
		model = ""
	}
	migEnabled, migKnown := p.migMode(dev)
	if migKnown {
		mode := "disabled"
		if migEnabled {
			mode = "enabled"
		}
		p.add(metrics.GPUInfo, prometheus.GaugeValue, 1, c.opts.Node, p.ref.index, uuid, model, mode)
	}
	memTotal := p.readTelemetry(dev, migEnabled)
	gpmOK := c.gpm.supported(p, dev)
	var gpm gpmValue
	if gpmOK {
		gpm.v, gpm.ok = c.gpm.activity(p, gpmKey{uuid: uuid, gi: -1}, dev.GpmSampleGet)
		if gpm.ok {
			p.gauge(metrics.GPUActivity, gpm.v)
		}
	}
	switch {
	case !migKnown:
	case migEnabled:
		p.identified = p.pollMIG(dev, model, memTotal, gpmOK)
	default:
		p.identified = true
		p.addWholeGPU(model, gpm)
	}
	return p
}

// addWholeGPU publishes a MIG-disabled GPU as one device, with its GPM
// activity, which covers the whole interval, or else NVML's utilization.
func (p *gpuPoll) addWholeGPU(model string, gpm gpmValue) {
	uuid := p.ref.uuid
	p.devices = []node.Device{{
		ID: uuid, Class: accounting.ClassGPU, GPUUUID: uuid, GPU: p.ref.index, Model: model,
		GPUInstanceID: -1, ComputeInstanceID: -1, WeightMilli: accounting.MilliPerGPU,
	}}
	switch {
	case gpm.ok:
		p.activity[uuid] = gpm.v
	case p.haveUtil:
		p.activity[uuid] = p.util
	}
}

// migMode returns whether MIG is enabled (its current mode). A GPU without
// MIG support reports it disabled; known is false when the mode could not
// be read.
func (p *gpuPoll) migMode(dev nvml.Device) (enabled, known bool) {
	current, _, ret := dev.GetMigMode()
	switch ret {
	case nvml.SUCCESS:
		return current == nvml.DEVICE_MIG_ENABLE, true
	case nvml.ERROR_NOT_SUPPORTED:
		return false, true
	}
	p.c.errs.note(p.ref, "nvmlDeviceGetMigMode", ret)
	return false, false
}

// readTelemetry appends the GPU's memory, power, energy, temperature,
// clock and ECC series; it returns the memory size (0 when unknown).
func (p *gpuPoll) readTelemetry(dev nvml.Device, migEnabled bool) (memTotal uint64) {
	if mem, ret := dev.GetMemoryInfo(); p.ok("nvmlDeviceGetMemoryInfo", ret) {
		memTotal = mem.Total
		p.gauge(metrics.GPUMemoryTotal, float64(mem.Total))
		p.gauge(metrics.GPUMemoryUsed, float64(mem.Used))
	}
	if mw, ret := dev.GetPowerUsage(); p.ok("nvmlDeviceGetPowerUsage", ret) {
		p.gauge(metrics.GPUPower, float64(mw)/perMilli)
	}
	if mj, ret := dev.GetTotalEnergyConsumption(); p.ok("nvmlDeviceGetTotalEnergyConsumption", ret) {
		p.add(metrics.GPUEnergy, prometheus.CounterValue, float64(mj)/perMilli, p.labels...)
	}
	if t, ret := dev.GetTemperature(nvml.TEMPERATURE_GPU); p.ok("nvmlDeviceGetTemperature", ret) {
		p.gauge(metrics.GPUTemperature, float64(t))
	}
	if mhz, ret := dev.GetClockInfo(nvml.CLOCK_SM); p.ok("nvmlDeviceGetClockInfo", ret) {
		p.gauge(metrics.GPUClock, float64(mhz)*hzPerMHz)
	}
	if mhz, ret := dev.GetClockInfo(nvml.CLOCK_MEM); p.ok("nvmlDeviceGetClockInfo", ret) {
		p.gauge(metrics.GPUMemoryClock, float64(mhz)*hzPerMHz)
	}
	for _, e := range []struct {
		typ  nvml.MemoryErrorType
		name string
	}{{nvml.MEMORY_ERROR_TYPE_CORRECTED, "corrected"}, {nvml.MEMORY_ERROR_TYPE_UNCORRECTED, "uncorrected"}} {
		if n, ret := dev.GetTotalEccErrors(e.typ, nvml.VOLATILE_ECC); p.ok("nvmlDeviceGetTotalEccErrors", ret) {
			p.add(metrics.GPUECC, prometheus.CounterValue, float64(n), append(p.labels, e.name)...)
		}
	}
	if !migEnabled { // NVML has no device utilization on a MIG-enabled GPU
		if u, ret := dev.GetUtilizationRates(); p.ok("nvmlDeviceGetUtilizationRates", ret) {
			p.util, p.haveUtil = clamp01(float64(u.Gpu)/perPercent), true
			p.gauge(metrics.GPUUtil, p.util)
		}
	}
	return memTotal
}

func clamp01(v float64) float64 {
	switch {
	case v < 0:
		return 0
	case v > 1:
		return 1
	}
	return v
}
