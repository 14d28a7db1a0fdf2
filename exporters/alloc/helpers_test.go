package alloc_test

import (
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/alloc"
	"github.com/gpuledger/gpuledger/exporters/kube"
	"github.com/gpuledger/gpuledger/exporters/kubelet"
	"github.com/gpuledger/gpuledger/exporters/kubelet/kubelettest"
	"github.com/gpuledger/gpuledger/exporters/node"
)

// The node of the tests, after testdata/scenarios/small.yaml's a100-mig-01
// plus a time-sliced T4 and an FPGA card.
const (
	nodeName = "a100-mig-01"
	a100     = "NVIDIA A100-SXM4-80GB"
	t4       = "Tesla T4"
	u55c     = "xilinx_u55c_gen3x16_xdma_base_3"

	gpu0   = "GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f" // MIG-enabled
	gpu1   = "GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9" // whole
	gpu2   = "GPU-2b3c4d5e-6f70-8192-a3b4-c5d6e7f80912" // time-sliced T4, 4 replicas
	mig3g  = "MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d01" // 3g.40gb, gi 2
	mig1g  = "MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d03" // 1g.10gb, gi 9
	fpga0  = "0000:3b:00.1"
	resFPG = "amd.com/xilinx_u55c_gen3x16_xdma_base_3-0"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

func inventory(t testing.TB) *node.Inventory {
	t.Helper()
	inv := node.NewInventory()
	w := func(profile string) int64 {
		v, err := accounting.MIGWeight(a100, profile)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	inv.SetDevices("nvml", []node.Device{
		{ID: mig3g, Class: accounting.ClassMIG, GPUUUID: gpu0, GPU: "0", Model: a100, Profile: "3g.40gb",
			GPUInstanceID: 2, ComputeInstanceID: 0, WeightMilli: w("3g.40gb")},
		{ID: mig1g, Class: accounting.ClassMIG, GPUUUID: gpu0, GPU: "0", Model: a100, Profile: "1g.10gb",
			GPUInstanceID: 9, ComputeInstanceID: 0, WeightMilli: w("1g.10gb")},
		{ID: gpu1, Class: accounting.ClassGPU, GPUUUID: gpu1, GPU: "1", Model: a100,
			GPUInstanceID: -1, ComputeInstanceID: -1, WeightMilli: 1000},
		{ID: gpu2, Class: accounting.ClassGPU, GPUUUID: gpu2, GPU: "2", Model: t4,
			GPUInstanceID: -1, ComputeInstanceID: -1, WeightMilli: 1000},
	})
	inv.SetDevices("fpga", []node.Device{
		{ID: fpga0, Class: accounting.ClassFPGA, GPU: fpga0, Model: u55c, GPUInstanceID: -1, ComputeInstanceID: -1, WeightMilli: 1000},
	})
	return inv
}

// fakePods is a kube.Pods the test sets.
type fakePods struct {
	mu     sync.Mutex
	pods   map[string]kube.Pod
	synced bool
	listed chan struct{} // receives a value on each List, when not nil
}

func newFakePods() *fakePods { return &fakePods{pods: map[string]kube.Pod{}, synced: true} }

func (f *fakePods) Pod(uid string) (kube.Pod, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pods[uid]
	return p, ok
}

func (f *fakePods) List() []kube.Pod {
	f.mu.Lock()
	out := slices.Collect(maps.Values(f.pods))
	ch := f.listed
	f.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return out
}

func (f *fakePods) Synced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.synced
}

func (f *fakePods) set(p kube.Pod) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods[p.UID] = p
}

func (f *fakePods) remove(uid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pods, uid)
}

func (f *fakePods) setSynced(s bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced = s
}

// running is a pod of the node whose container started at start.
func running(uid, ns, name string, start time.Time, attr attribution.Result) kube.Pod {
	return kube.Pod{UID: uid, Name: name, Namespace: ns, Node: nodeName, Phase: "Running", Attribution: attr,
		Containers: map[string]kube.ContainerTimes{"main": {Started: start}}}
}

// harness is a node: a real pod-resources server, the kubelet client,
// fake pods, an inventory and the collector, on a clock the test moves.
type harness struct {
	t    *testing.T
	srv  *kubelettest.Server
	kl   *kubelet.Client
	pods *fakePods
	inv  *node.Inventory
	c    *alloc.Collector

	mu  sync.Mutex
	now time.Time
}

func newHarness(t *testing.T, opts alloc.Options) *harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubelet.sock")
	if len(path) > 100 {
		t.Skipf("temporary directory too deep for a unix socket: %s", path)
	}
	h := &harness{t: t, pods: newFakePods(), inv: inventory(t), now: t0}
	var err error
	if h.srv, err = kubelettest.Start(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.srv.Stop)
	h.srv.SetAllocatable(map[string][]string{
		"nvidia.com/gpu":        {gpu1},
		"nvidia.com/gpu.shared": {gpu2 + "::0", gpu2 + "::1", gpu2 + "::2", gpu2 + "::3"},
	})
	if h.kl, err = kubelet.New(kubelet.Options{Socket: path, Now: h.clock, Timeout: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.kl.Close() })
	opts.Node = nodeName
	opts.Now = h.clock
	if h.c, err = alloc.New(h.kl, h.pods, h.inv, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.c.Close() })
	return h
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = h.now.Add(d)
}

// step advances the clock, polls the kubelet and reconciles. It returns
// the poll's error.
func (h *harness) step(d time.Duration) error {
	h.advance(d)
	err := h.kl.Poll(h.t.Context())
	h.c.Reconcile()
	return err
}

func (h *harness) mustStep(d time.Duration) {
	h.t.Helper()
	if err := h.step(d); err != nil {
		h.t.Fatal(err)
	}
}

// sample is one series the collector sent.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func (s sample) String() string {
	keys := slices.Sorted(maps.Keys(s.labels))
	var b strings.Builder
	b.WriteString(s.name + "{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(k + "=" + s.labels[k])
	}
	b.WriteString("}")
	return b.String()
}

// collect runs Update and decodes what it sent.
func collect(t *testing.T, c *alloc.Collector) []sample {
	t.Helper()
	ch := make(chan prometheus.Metric, 1024)
	if err := c.Update(ch); err != nil {
		t.Fatalf("Update: %v", err)
	}
	close(ch)
	var out []sample
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		s := sample{name: fqName(m.Desc()), labels: map[string]string{}, value: pb.GetGauge().GetValue()}
		for _, lp := range pb.GetLabel() {
			s.labels[lp.GetName()] = lp.GetValue()
		}
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// fqName reads a Desc's name from its String form.
func fqName(d *prometheus.Desc) string {
	s := d.String()
	_, rest, _ := strings.Cut(s, `fqName: "`)
	name, _, _ := strings.Cut(rest, `"`)
	return name
}

// find returns the samples of family name whose labels include match.
func find(ss []sample, name string, match map[string]string) []sample {
	var out []sample
	for _, s := range ss {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range match {
			if s.labels[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// value returns the one value of family name for the device, failing
// when there is not exactly one.
func value(t *testing.T, ss []sample, name string, match map[string]string) float64 {
	t.Helper()
	got := find(ss, name, match)
	if len(got) != 1 {
		t.Fatalf("%d %s series matching %v, want 1; have:\n%v", len(got), name, match, ss)
	}
	return got[0].value
}

// absent fails when family name has a series matching.
func absent(t *testing.T, ss []sample, name string, match map[string]string) {
	t.Helper()
	if got := find(ss, name, match); len(got) != 0 {
		t.Errorf("%s %v present: %v", name, match, got)
	}
}

const (
	famStart    = "gpuledger_allocation_start_time_seconds"
	famEnd      = "gpuledger_allocation_end_time_seconds"
	famWeight   = "gpuledger_allocation_weight_ratio"
	famDevices  = "gpuledger_allocation_devices"
	famActivity = "gpuledger_allocation_activity_ratio"
	famAvail    = "gpuledger_attribution_available"
	famUnres    = "gpuledger_attribution_unresolved_devices"
)

func unix(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }
