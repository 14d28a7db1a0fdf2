package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/sim/clock"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

const smallPath = "../../testdata/scenarios/small.yaml"

func loadSmall(t testing.TB) *scenario.Scenario {
	t.Helper()
	s, err := scenario.Load(smallPath)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newSource(t testing.TB, s *scenario.Scenario, node string, opts Options) *Source {
	t.Helper()
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	src, err := New(s, allocs, node, clock.Fixed(s.Start), opts)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// promCollector adapts a collector.Collector to prometheus.Collector
// (unchecked, like the exporter wrapper).
type promCollector struct{ c collector.Collector }

func (promCollector) Describe(chan<- *prometheus.Desc) {}
func (p promCollector) Collect(ch chan<- prometheus.Metric) {
	if err := p.c.Update(ch); err != nil {
		panic(err)
	}
}

func pinnedAt(t testing.TB, src *Source, when time.Time) prometheus.Collector {
	t.Helper()
	c, err := src.At(when)
	if err != nil {
		t.Fatal(err)
	}
	return promCollector{c}
}

func mustAt(t testing.TB, src *Source, when time.Time) collector.Collector {
	t.Helper()
	c, err := src.At(when)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func gather(t testing.TB, src *Source, when time.Time) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(pinnedAt(t, src, when))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// value finds the series of family name whose labels include want; ok is
// false when there is none.
func value(mfs []*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			have := map[string]string{}
			for _, lp := range m.Label {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			}
		}
	}
	return 0, false
}

func TestMIGWeights(t *testing.T) {
	s := loadSmall(t)
	src := newSource(t, s, "a100-mig-01", Options{})
	expected := `
# HELP gpuledger_allocation_weight_ratio Weight of the allocation in GPUs: 1 for a whole GPU or an FPGA card, the MIG slice or fraction weight, the requested GPU count on a virtual node.
# TYPE gpuledger_allocation_weight_ratio gauge
gpuledger_allocation_weight_ratio{class="gpu",device="GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",gpu="1",gpu_uuid="GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",model="NVIDIA A100-SXM4-80GB",namespace="cms-ml",node="a100-mig-01",pod="cms-train-7f9c",pod_uid="0b6c3f4e-1a2b-4c3d-8e9f-000000000002",profile="",project="cms-gpu",queue="cms-gpu",resource="nvidia.com/gpu",site="",user="bob"} 1
gpuledger_allocation_weight_ratio{class="mig",device="MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d03",gpu="0",gpu_uuid="GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f",model="NVIDIA A100-SXM4-80GB",namespace="hub",node="a100-mig-01",pod="jupyter-alice",pod_uid="0b6c3f4e-1a2b-4c3d-8e9f-000000000001",profile="1g.10gb",project="jupyterhub",queue="",resource="nvidia.com/mig-1g.10gb",site="",user="alice"} 0.143
# HELP gpuledger_mig_instance_weight_ratio Accounting weight of the MIG instance in GPUs: the larger of its compute and memory shares of the parent GPU.
# TYPE gpuledger_mig_instance_weight_ratio gauge
gpuledger_mig_instance_weight_ratio{compute_instance_id="0",gpu="0",gpu_instance_id="10",mig_uuid="MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d04",node="a100-mig-01",profile="1g.10gb",uuid="GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f"} 0.143
gpuledger_mig_instance_weight_ratio{compute_instance_id="0",gpu="0",gpu_instance_id="2",mig_uuid="MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d01",node="a100-mig-01",profile="3g.40gb",uuid="GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f"} 0.5
gpuledger_mig_instance_weight_ratio{compute_instance_id="0",gpu="0",gpu_instance_id="3",mig_uuid="MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d02",node="a100-mig-01",profile="2g.20gb",uuid="GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f"} 0.286
gpuledger_mig_instance_weight_ratio{compute_instance_id="0",gpu="0",gpu_instance_id="9",mig_uuid="MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d03",node="a100-mig-01",profile="1g.10gb",uuid="GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f"} 0.143
`
	err := testutil.CollectAndCompare(pinnedAt(t, src, at("2026-11-02T08:30:00Z")), strings.NewReader(expected),
		"gpuledger_allocation_weight_ratio", "gpuledger_mig_instance_weight_ratio")
	if err != nil {
		t.Error(err)
	}
}

func TestEndedAllocation(t *testing.T) {
	s := loadSmall(t)
	src := newSource(t, s, "a100-mig-01", Options{})
	bob := map[string]string{"pod": "cms-train-7f9c"}
	end := float64(at("2026-11-02T11:05:30Z").Unix())
	start := float64(at("2026-11-02T08:20:00Z").Unix())
	cases := []struct {
		when                      string
		start, end, activity, any bool
	}{
		{"2026-11-02T08:19:59Z", false, false, false, false},
		{"2026-11-02T08:20:00Z", true, false, true, true},
		{"2026-11-02T11:05:29.999Z", true, false, true, true},
		{"2026-11-02T11:05:30Z", true, true, false, true},
		{"2026-11-02T12:05:29.999Z", true, true, false, true},
		{"2026-11-02T12:05:30Z", false, false, false, false},
	}
	for _, c := range cases {
		t.Run(c.when, func(t *testing.T) {
			mfs := gather(t, src, at(c.when))
			v, ok := value(mfs, "gpuledger_allocation_start_time_seconds", bob)
			if ok != c.start || (ok && v != start) {
				t.Errorf("start series: %v %v, want present=%v value %v", v, ok, c.start, start)
			}
			v, ok = value(mfs, "gpuledger_allocation_end_time_seconds", bob)
			if ok != c.end || (ok && v != end) {
				t.Errorf("end series: %v %v, want present=%v value %v", v, ok, c.end, end)
			}
			if _, ok = value(mfs, "gpuledger_allocation_activity_ratio", bob); ok != c.activity {
				t.Errorf("activity series present=%v, want %v", ok, c.activity)
			}
			if _, ok = value(mfs, "gpuledger_allocation_weight_ratio", bob); ok != c.any {
				t.Errorf("weight series present=%v, want %v", ok, c.any)
			}
			if _, ok = value(mfs, "gpuledger_allocation_devices", bob); ok != c.any {
				t.Errorf("devices series present=%v, want %v", ok, c.any)
			}
		})
	}
	expected := `
# HELP gpuledger_allocation_end_time_seconds End of an allocation that ended within the ended-allocation retention: the exact container end, in Unix seconds.
# TYPE gpuledger_allocation_end_time_seconds gauge
gpuledger_allocation_end_time_seconds{class="gpu",device="GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",gpu="1",gpu_uuid="GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",model="NVIDIA A100-SXM4-80GB",namespace="cms-ml",node="a100-mig-01",pod="cms-train-7f9c",pod_uid="0b6c3f4e-1a2b-4c3d-8e9f-000000000002",profile="",project="cms-gpu",queue="cms-gpu",resource="nvidia.com/gpu",site="",user="bob"} 1.79361753e+09
`
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collector.NewExporter(map[string]collector.Collector{"sim": mustAt(t, src, at("2026-11-02T11:07:00Z"))}, 0, nil))
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "gpuledger_allocation_end_time_seconds"); err != nil {
		t.Error(err)
	}
}

func TestRetentionOverride(t *testing.T) {
	s := loadSmall(t)
	for _, c := range []struct {
		retention time.Duration
		when      string
		present   bool
	}{
		{0, "2026-11-02T11:20:00Z", true},
		{10 * time.Minute, "2026-11-02T11:15:29Z", true},
		{10 * time.Minute, "2026-11-02T11:15:30Z", false},
		{2 * time.Hour, "2026-11-02T13:05:29Z", true},
	} {
		src := newSource(t, s, "a100-mig-01", Options{Retention: c.retention})
		_, ok := value(gather(t, src, at(c.when)), "gpuledger_allocation_end_time_seconds", map[string]string{"pod": "cms-train-7f9c"})
		if ok != c.present {
			t.Errorf("retention %s at %s: end series present=%v, want %v", c.retention, c.when, ok, c.present)
		}
	}
	allocs, _ := s.Allocations(attribution.Default())
	if _, err := New(s, allocs, "a100-mig-01", clock.Fixed(s.Start), Options{Retention: -time.Second}); err == nil {
		t.Error("negative retention accepted")
	}
}

func TestRestartForgetsEnded(t *testing.T) {
	s := loadSmall(t)
	// lhcb-reco-1 ends at 10:00 on a30-01; its exporter restarts at 10:10
	// for 30 s, and every exporter restarts at 13:00.
	s.Faults = append(s.Faults,
		scenario.Fault{Kind: scenario.FaultExporterRestart, Node: "a30-01", At: at("2026-11-02T10:10:00Z"), Duration: scenario.Duration(30 * time.Second)},
		scenario.Fault{Kind: scenario.FaultExporterRestart, At: at("2026-11-02T13:00:00Z"), Duration: scenario.Duration(time.Minute)})
	if err := scenario.Validate(s); err != nil {
		t.Fatal(err)
	}
	src := newSource(t, s, "a30-01", Options{})
	lhcb := map[string]string{"pod": "lhcb-reco-1"}
	cases := []struct {
		when        string
		unavailable bool
		present     bool
	}{
		{"2026-11-02T10:09:59Z", false, true},
		{"2026-11-02T10:10:00Z", true, true}, // the source still knows; the endpoint is down
		{"2026-11-02T10:10:29.999Z", true, true},
		{"2026-11-02T10:10:30Z", false, false},
		{"2026-11-02T10:30:00Z", false, false},
	}
	for _, c := range cases {
		err := src.Check(at(c.when))
		if got := errors.Is(err, ErrUnavailable); got != c.unavailable {
			t.Errorf("%s: Check = %v, want unavailable=%v", c.when, err, c.unavailable)
		}
		_, ok := value(gather(t, src, at(c.when)), "gpuledger_allocation_end_time_seconds", lhcb)
		if ok != c.present {
			t.Errorf("%s: ended lhcb-reco-1 present=%v, want %v", c.when, ok, c.present)
		}
	}
	// The cluster-wide restart reaches a100-mig-01 too and forgets
	// cms-train-8a01? No: that one is still running. It forgets nothing
	// that is active.
	a100 := newSource(t, s, "a100-mig-01", Options{})
	if err := a100.Check(at("2026-11-02T13:00:30Z")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("cluster-wide restart: Check = %v", err)
	}
	mfs := gather(t, a100, at("2026-11-02T13:01:00Z"))
	if _, ok := value(mfs, "gpuledger_allocation_start_time_seconds", map[string]string{"pod": "cms-train-8a01"}); !ok {
		t.Error("active allocation lost after a restart")
	}
	if _, ok := value(mfs, "gpuledger_allocation_end_time_seconds", map[string]string{"pod": "ml-infn-ft-0"}); ok {
		t.Error("ml-infn-ft-0 (ended 12:30) still exported after the 13:00 restart")
	}
	if _, ok := value(gather(t, a100, at("2026-11-02T12:59:00Z")), "gpuledger_allocation_end_time_seconds", map[string]string{"pod": "ml-infn-ft-0"}); !ok {
		t.Error("ml-infn-ft-0 (ended 12:30) missing before the restart")
	}
}

func TestCheck(t *testing.T) {
	s := loadSmall(t)
	src := newSource(t, s, "t4-01", Options{})
	cases := []struct {
		when string
		want error
	}{
		{"2026-11-02T07:59:59.999Z", ErrOutOfRange},
		{"2026-11-02T08:00:00Z", nil},
		{"2026-11-02T10:59:59Z", nil},
		{"2026-11-02T11:00:00Z", ErrUnavailable},
		{"2026-11-02T11:04:59.999Z", ErrUnavailable},
		{"2026-11-02T11:05:00Z", nil},
		{"2026-11-02T14:00:00Z", nil},
		{"2026-11-02T14:00:00.001Z", ErrOutOfRange},
	}
	for _, c := range cases {
		err := src.Check(at(c.when))
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("Check(%s) = %v, want %v", c.when, err, c.want)
		}
	}
	// Another node's gap does not concern a100-mig-01.
	if err := newSource(t, s, "a100-mig-01", Options{}).Check(at("2026-11-02T11:02:00Z")); err != nil {
		t.Errorf("a100-mig-01 during t4-01's gap: %v", err)
	}
	if _, err := src.At(at("2026-11-02T15:00:00Z")); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("At outside the scenario: %v", err)
	}
	if err := src.Update(make(chan prometheus.Metric, 1000)); err != nil {
		t.Errorf("Update at the clock (scenario start): %v", err)
	}
}

func TestUnknownNode(t *testing.T) {
	s := loadSmall(t)
	allocs, _ := s.Allocations(attribution.Default())
	_, err := New(s, allocs, "gpu-99", clock.Fixed(s.Start), Options{})
	if !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("New(unknown node) = %v", err)
	}
	for _, want := range []string{`"gpu-99"`, "a100-mig-01", "vk-cnaf"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := New(nil, nil, "x", clock.Fixed(s.Start), Options{}); err == nil {
		t.Error("nil scenario accepted")
	}
	if _, err := New(s, allocs, "t4-01", nil, Options{}); err == nil {
		t.Error("nil clock accepted")
	}
}

func TestNodeList(t *testing.T) {
	s := &scenario.Scenario{}
	for i := range 12 {
		s.Nodes = append(s.Nodes, scenario.Node{Name: fmt.Sprintf("n%02d", i)})
	}
	if got, want := nodeList(s, 3), "n00, n01, n02, … and 9 more"; got != want {
		t.Errorf("nodeList = %q, want %q", got, want)
	}
}

func TestVirtualNode(t *testing.T) {
	s := loadSmall(t)
	src := newSource(t, s, "vk-cnaf", Options{})
	mfs := gather(t, src, at("2026-11-02T10:30:00Z"))
	heidi := map[string]string{"pod": "offload-sim-42", "class": "offload", "site": "INFN-CNAF", "device": "",
		"model": "NVIDIA A100-PCIE-40GB", "user": "heidi", "project": "ml-infn-gpu", "queue": "ml-infn-gpu"}
	for name, want := range map[string]float64{
		"gpuledger_allocation_weight_ratio":       2,
		"gpuledger_allocation_devices":            2,
		"gpuledger_allocation_start_time_seconds": float64(at("2026-11-02T10:00:00Z").Unix()),
	} {
		if v, ok := value(mfs, name, heidi); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "gpuledger_gpu_") || strings.HasPrefix(mf.GetName(), "gpuledger_fpga_") {
			t.Errorf("virtual node exports device family %s", mf.GetName())
		}
	}
}

func TestDeviceFigures(t *testing.T) {
	s := loadSmall(t)
	src := newSource(t, s, "t4-01", Options{})
	when := at("2026-11-02T10:30:00Z")
	mfs := gather(t, src, when)
	byPod := map[string]*scenario.Pod{}
	for i := range s.Pods {
		byPod[s.Pods[i].Name] = &s.Pods[i]
	}
	// Time-sliced T4: erin and frank on replicas of 250 milli each.
	u := ActivityMilli(byPod["jupyter-erin"], when)*250 + ActivityMilli(byPod["jupyter-frank"], when)*250
	gpu := map[string]string{"uuid": "GPU-2b3c4d5e-6f70-8192-a3b4-c5d6e7f80912"}
	if v, _ := value(mfs, "gpuledger_gpu_utilization_ratio", gpu); v != float64(u)/1e6 {
		t.Errorf("shared T4 utilisation %v, want %v", v, float64(u)/1e6)
	}
	if v, _ := value(mfs, "gpuledger_gpu_power_watts", gpu); v != float64(SpecOf("Tesla T4").PowerMilliwatts(u))/1000 {
		t.Errorf("T4 power %v for utilisation %v", v, u)
	}
	for _, name := range []string{"gpuledger_gpu_energy_joules_total", "gpuledger_gpu_temperature_celsius",
		"gpuledger_gpu_sm_clock_hertz", "gpuledger_gpu_memory_total_bytes", "gpuledger_gpu_memory_used_bytes"} {
		if v, ok := value(mfs, name, gpu); !ok || v <= 0 {
			t.Errorf("%s = %v (present %v)", name, v, ok)
		}
	}
	// The FPGA ran fpga-hls-3 from 08:30 to 09:30: idle now, its counter kept.
	card := map[string]string{"device": "0000:3b:00.1"}
	if v, _ := value(mfs, "gpuledger_fpga_power_watts", card); v != 20 {
		t.Errorf("idle FPGA power %v W", v)
	}
	if v, _ := value(mfs, "gpuledger_fpga_compute_unit_usage_total", card); v < 0.79*100*3600 || v > 0.81*100*3600 {
		t.Errorf("FPGA executions %v after an hour at 0.8", v)
	}
	if _, ok := value(mfs, "gpuledger_fpga_temperature_celsius", map[string]string{"sensor": "fpga0"}); !ok {
		t.Error("no fpga0 temperature")
	}
	// A MIG-enabled GPU has no utilisation series.
	a100 := gather(t, newSource(t, s, "a100-mig-01", Options{}), when)
	if _, ok := value(a100, "gpuledger_gpu_utilization_ratio", map[string]string{"gpu": "0"}); ok {
		t.Error("utilisation exported for a MIG-enabled GPU")
	}
	if _, ok := value(a100, "gpuledger_gpu_utilization_ratio", map[string]string{"gpu": "1"}); !ok {
		t.Error("no utilisation for the whole A100")
	}
	if v, _ := value(a100, "gpuledger_exporter_time_seconds", nil); v != float64(when.Unix()) {
		t.Errorf("exporter time %v, want %v", v, when.Unix())
	}
}

func TestEnergyCounterScrapes(t *testing.T) {
	s := loadSmall(t)
	gpu := map[string]string{"gpu": "0"}
	energy := func(src *Source, when time.Time) float64 {
		v, ok := value(gather(t, src, when), "gpuledger_gpu_energy_joules_total", gpu)
		if !ok {
			t.Fatal("no energy series")
		}
		return v
	}
	steady := newSource(t, s, "a100-mig-01", Options{})
	last := -1.0
	for when := s.Start; !when.After(s.End); when = when.Add(15 * time.Second) {
		v := energy(steady, when)
		if v < last {
			t.Fatalf("energy went down at %s: %v < %v", when, v, last)
		}
		last = v
	}
	fresh := newSource(t, s, "a100-mig-01", Options{})
	if v := energy(fresh, s.End); v != last {
		t.Errorf("energy at the end: %v after 15 s scrapes, %v in one jump", last, v)
	}
	mid := at("2026-11-02T10:17:43.250Z")
	if a, b := energy(steady, mid), energy(newSource(t, s, "a100-mig-01", Options{}), mid); a != b {
		t.Errorf("energy after going back: %v, fresh %v", a, b)
	}
	if v := energy(fresh, s.Start); v != 0 {
		t.Errorf("energy at the scenario start %v", v)
	}
}

func TestConcurrentScrapes(t *testing.T) {
	s := loadSmall(t)
	shared := newSource(t, s, "a100-mig-01", Options{})
	span := s.End.Sub(s.Start)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for range 20 {
				when := s.Start.Add(time.Duration(r.Int64N(int64(span)))).Truncate(time.Millisecond)
				got, _ := value(gather(t, shared, when), "gpuledger_gpu_energy_joules_total", map[string]string{"gpu": "1"})
				want := float64(EnergyMicrojoules(shared.gpus[1].spec, shared.gpus[1].holds, s.Start, when)) / 1e6
				if got != want {
					errs <- fmt.Errorf("energy at %s: %v, want %v", when, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestLint(t *testing.T) {
	s := loadSmall(t)
	for _, n := range s.Nodes {
		for _, when := range []string{"2026-11-02T09:00:00Z", "2026-11-02T11:07:00Z"} {
			problems, err := testutil.CollectAndLint(pinnedAt(t, newSource(t, s, n.Name, Options{}), at(when)))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("%s at %s: %s: %s", n.Name, when, p.Metric, p.Text)
			}
		}
	}
}
