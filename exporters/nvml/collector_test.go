package nvml

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/exporters/node"
	"github.com/gpuledger/gpuledger/exporters/nvml/nvmltest"
)

var update = flag.Bool("update", false, "rewrite the golden exposition files under testdata/")

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newCollector(t *testing.T, f *nvmltest.Lib, inv *node.Inventory) (*Collector, *clock) {
	t.Helper()
	clk := &clock{now: t0}
	c, err := New(f, Options{Node: "gpu-node-1", Inventory: inv, Now: clk.Now, EventWait: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	return c, clk
}

// gather runs the collector under the exporter wrapper, as the exporter
// does, leaving out the (timing) duration series.
func gather(t *testing.T, c collector.Collector) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collector.NewExporter(map[string]collector.Collector{"nvml": c}, 0, nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(mfs, func(mf *dto.MetricFamily) bool {
		return mf.GetName() == "gpuledger_exporter_collector_duration_seconds"
	})
}

// series returns the value of the series of family name whose labels
// include want.
func series(mfs []*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			got := map[string]string{}
			for _, lp := range m.Label {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
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

func count(mfs []*dto.MetricFamily, name string) int {
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.Metric)
		}
	}
	return 0
}

func gpuLabels(f *nvmltest.Lib, i int) map[string]string {
	return map[string]string{"node": "gpu-node-1", "gpu": strconv.Itoa(i), "uuid": f.GPUs[i].UUID}
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestA100Series(t *testing.T) {
	f := newA100(t)
	c, _ := newCollector(t, f, nil)
	c.poll()
	mfs := gather(t, c)
	g3 := gpuLabels(f, 3)
	cases := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gpuledger_exporter_collector_success", map[string]string{"collector": "nvml"}, 1},
		{"gpuledger_gpu_info", with(g3, "model", "NVIDIA A100-SXM4-80GB", "mig_mode", "disabled"), 1},
		{"gpuledger_gpu_info", with(gpuLabels(f, 6), "mig_mode", "enabled"), 1},
		{"gpuledger_gpu_memory_total_bytes", g3, 81920 * mib},
		{"gpuledger_gpu_memory_used_bytes", g3, 3 * 8192 * mib},
		{"gpuledger_gpu_power_watts", g3, 195.75},                // 195750 mW
		{"gpuledger_gpu_energy_joules_total", g3, 123459.789},    // 123459789 mJ
		{"gpuledger_gpu_temperature_celsius", g3, 49},            // °C
		{"gpuledger_gpu_sm_clock_hertz", g3, 1410e6},             // 1410 MHz
		{"gpuledger_gpu_sm_clock_hertz", gpuLabels(f, 0), 210e6}, // idle
		{"gpuledger_gpu_memory_clock_hertz", g3, 1593e6},         // 1593 MHz
		{"gpuledger_gpu_utilization_ratio", g3, 0.42},            // 42 %
		{"gpuledger_gpu_ecc_errors_total", with(g3, "type", "corrected"), 0},
		{"gpuledger_gpu_ecc_errors_total", with(gpuLabels(f, 2), "type", "corrected"), 2},
		{"gpuledger_gpu_ecc_errors_total", with(g3, "type", "uncorrected"), 0},
		{"gpuledger_gpu_power_watts", gpuLabels(f, 6), 331.5}, // a MIG GPU still has board telemetry
	}
	for _, tc := range cases {
		got, ok := series(mfs, tc.name, tc.labels)
		if !ok {
			t.Errorf("%s%v missing", tc.name, tc.labels)
			continue
		}
		if !near(got, tc.want) {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// Utilization: the six whole GPUs only.
	if n := count(mfs, "gpuledger_gpu_utilization_ratio"); n != 6 {
		t.Errorf("%d utilization series, want 6 (none on the MIG GPUs)", n)
	}
	for _, i := range []int{6, 7} {
		if _, ok := series(mfs, "gpuledger_gpu_utilization_ratio", gpuLabels(f, i)); ok {
			t.Errorf("GPU %d is in MIG mode but has a utilization series", i)
		}
	}
	// No GPM on Ampere: no activity series.
	for _, name := range []string{"gpuledger_gpu_activity_ratio", "gpuledger_mig_instance_activity_ratio", "gpuledger_gpu_nvml_errors_total"} {
		if n := count(mfs, name); n != 0 {
			t.Errorf("%d %s series on the A100 fake, want none", n, name)
		}
	}
}

func TestA100MIG(t *testing.T) {
	f := newA100(t)
	c, _ := newCollector(t, f, nil)
	c.poll()
	mfs := gather(t, c)
	type inst struct {
		gpu, n, gi   int
		profile      string
		weight       float64
		memTotal     float64
		memUsedBytes float64
	}
	want := []inst{
		{6, 0, 2, "3g.40gb", 0.5, 40192 * mib, 20480 * mib},
		{6, 1, 9, "1g.10gb", 0.143, 9728 * mib, 1024 * mib},
		{6, 2, 10, "1g.10gb", 0.143, 9728 * mib, 0},
		{6, 3, 11, "1g.10gb", 0.143, 9728 * mib, 9000 * mib},
		{7, 0, 1, "3g.40gb", 0.5, 40192 * mib, 30000 * mib},
		{7, 1, 2, "3g.40gb", 0.5, 40192 * mib, 0},
	}
	for _, w := range want {
		m := f.GPUs[w.gpu].MIGs[w.n]
		labels := with(gpuLabels(f, w.gpu), "mig_uuid", m.UUID, "gpu_instance_id", itoa(w.gi),
			"compute_instance_id", "0", "profile", w.profile)
		for name, v := range map[string]float64{
			"gpuledger_mig_instance_info":               1,
			"gpuledger_mig_instance_weight_ratio":       w.weight,
			"gpuledger_mig_instance_memory_total_bytes": w.memTotal,
			"gpuledger_mig_instance_memory_used_bytes":  w.memUsedBytes,
		} {
			got, ok := series(mfs, name, labels)
			if !ok || !near(got, v) {
				t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, v)
			}
		}
	}
	if n := count(mfs, "gpuledger_mig_instance_info"); n != len(want) {
		t.Errorf("%d MIG instances, want %d", n, len(want))
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestA100Inventory(t *testing.T) {
	f := newA100(t)
	inv := node.NewInventory()
	c, _ := newCollector(t, f, inv)
	c.poll()
	devs := inv.Devices()
	byID := map[string]node.Device{}
	for _, d := range devs {
		byID[d.ID] = d
	}
	if len(devs) != 6+4+2 {
		t.Fatalf("%d devices, want 6 GPUs and 6 MIG instances: %+v", len(devs), devs)
	}
	for i := range 6 {
		g := f.GPUs[i]
		d, ok := byID[g.UUID]
		want := node.Device{ID: g.UUID, Class: accounting.ClassGPU, GPUUUID: g.UUID, GPU: itoa(i),
			Model: "NVIDIA A100-SXM4-80GB", GPUInstanceID: -1, ComputeInstanceID: -1, WeightMilli: 1000}
		if !ok || d != want {
			t.Errorf("GPU %d: %+v, want %+v", i, d, want)
		}
		a, ok := inv.Activity(g.UUID, t0, time.Minute)
		if !ok || !near(a.Ratio, float64(i)*0.14) || a.Source != Source {
			t.Errorf("GPU %d activity %+v (%v), want %v from nvml", i, a, ok, float64(i)*0.14)
		}
	}
	for _, i := range []int{6, 7} {
		if _, ok := byID[f.GPUs[i].UUID]; ok {
			t.Errorf("MIG-enabled GPU %d published as a whole GPU", i)
		}
	}
	m := f.GPUs[6].MIGs[1]
	want := node.Device{ID: m.UUID, Class: accounting.ClassMIG, GPUUUID: f.GPUs[6].UUID, GPU: "6",
		Model: "NVIDIA A100-SXM4-80GB", Profile: "1g.10gb", GPUInstanceID: 9, ComputeInstanceID: 0, WeightMilli: 143}
	if d := byID[m.UUID]; d != want {
		t.Errorf("MIG device %+v, want %+v", d, want)
	}
	if d := byID[f.GPUs[7].MIGs[0].UUID]; d.Profile != "3g.40gb" || d.WeightMilli != 500 {
		t.Errorf("3g.40gb device %+v, want weight 500", d)
	}
	// The weights NVML's profile info gives are the static table's.
	for _, d := range devs {
		if d.Class != accounting.ClassMIG {
			continue
		}
		if w, err := accounting.MIGWeight(d.Model, d.Profile); err != nil || w != d.WeightMilli {
			t.Errorf("%s %s weighs %d, the static table %d (%v)", d.ID, d.Profile, d.WeightMilli, w, err)
		}
	}
	// The old kubelet ID form resolves to the instance.
	if d, _, ok := inv.Lookup("MIG-" + f.GPUs[6].UUID + "/9/0"); !ok || d.ID != m.UUID {
		t.Errorf("legacy lookup = %+v, %v", d, ok)
	}
	// No GPM on the A100: the MIG instances have no activity.
	if _, ok := inv.Activity(m.UUID, t0, time.Minute); ok {
		t.Error("MIG instance activity published without GPM")
	}
}

func TestH200GPM(t *testing.T) {
	f := newH200(t)
	inv := node.NewInventory()
	c, clk := newCollector(t, f, inv)
	c.poll()
	mfs := gather(t, c)
	// One sample is no interval: no GPM series yet.
	if n := count(mfs, "gpuledger_gpu_activity_ratio") + count(mfs, "gpuledger_mig_instance_activity_ratio"); n != 0 {
		t.Errorf("%d GPM series after the first poll, want 0", n)
	}
	// The whole GPU falls back to its utilization meanwhile.
	if a, ok := inv.Activity(f.GPUs[0].UUID, t0, time.Minute); !ok || !near(a.Ratio, 0.97) {
		t.Errorf("activity before GPM = %+v, %v; want the utilization 0.97", a, ok)
	}

	// The workload changes; the next poll measures the interval between.
	f.GPUs[0].Spec.GPMPct = 25
	f.GPUs[1].MIGs[0].Spec.GPMPct = 90
	f.GPUs[1].MIGs[1].Spec.GPMPct = 90
	clk.now = t0.Add(10 * time.Second)
	c.poll()
	mfs = gather(t, c)
	g0, g1 := gpuLabels(f, 0), gpuLabels(f, 1)
	migLabels := func(n int, gi, ci, profile string) map[string]string {
		return with(g1, "mig_uuid", f.GPUs[1].MIGs[n].UUID, "gpu_instance_id", gi, "compute_instance_id", ci, "profile", profile)
	}
	cases := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gpuledger_gpu_activity_ratio", g0, 0.25},
		{"gpuledger_gpu_activity_ratio", g1, 0.40}, // the whole MIG GPU
		{"gpuledger_gpu_utilization_ratio", g0, 0.97},
		{"gpuledger_gpu_memory_total_bytes", g0, 143771 * mib},
		{"gpuledger_gpu_power_watts", g0, 512.345},
		{"gpuledger_gpu_energy_joules_total", g0, 9876543.21},
		{"gpuledger_gpu_memory_clock_hertz", g0, 3201e6},
		{"gpuledger_mig_instance_activity_ratio", migLabels(0, "1", "0", "1c.3g.71gb"), 0.90},
		{"gpuledger_mig_instance_activity_ratio", migLabels(1, "1", "1", "2c.3g.71gb"), 0.90},
		{"gpuledger_mig_instance_activity_ratio", migLabels(2, "13", "0", "1g.18gb+me"), 0.05},
		{"gpuledger_mig_instance_weight_ratio", migLabels(0, "1", "0", "1c.3g.71gb"), 0.167},
		{"gpuledger_mig_instance_weight_ratio", migLabels(1, "1", "1", "2c.3g.71gb"), 0.333},
		{"gpuledger_mig_instance_weight_ratio", migLabels(2, "13", "0", "1g.18gb+me"), 0.143},
		{"gpuledger_mig_instance_memory_total_bytes", migLabels(0, "1", "0", "1c.3g.71gb"), 72704 * mib},
	}
	for _, tc := range cases {
		got, ok := series(mfs, tc.name, tc.labels)
		if !ok || !near(got, tc.want) {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if _, ok := series(mfs, "gpuledger_gpu_utilization_ratio", g1); ok {
		t.Error("utilization series on the MIG-enabled H200")
	}
	// Inventory activity: GPM wins over the utilization on whole GPUs.
	for id, want := range map[string]float64{
		f.GPUs[0].UUID:         0.25,
		f.GPUs[1].MIGs[0].UUID: 0.90,
		f.GPUs[1].MIGs[2].UUID: 0.05,
	} {
		a, ok := inv.Activity(id, clk.now, time.Minute)
		if !ok || !near(a.Ratio, want) || !a.At.Equal(clk.now) {
			t.Errorf("activity of %s = %+v, %v; want %v at %v", id, a, ok, want, clk.now)
		}
	}
	d, _, ok := inv.Lookup(f.GPUs[1].MIGs[1].UUID)
	if !ok || d.Profile != "2c.3g.71gb" || d.WeightMilli != 333 || d.GPUInstanceID != 1 || d.ComputeInstanceID != 1 {
		t.Errorf("compute-instance device %+v, %v", d, ok)
	}
	// GPM samples: two per unit (2 GPUs, 2 GPU instances), freed on Close.
	allocs := f.Stats().SampleAllocs
	if allocs != 8 {
		t.Errorf("%d GPM samples allocated, want 8", allocs)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	st := f.Stats()
	if st.SampleFrees != st.SampleAllocs {
		t.Errorf("%d of %d GPM samples freed", st.SampleFrees, st.SampleAllocs)
	}
	if st.Shutdowns != 1 {
		t.Errorf("Shutdown called %d times, want 1", st.Shutdowns)
	}
}

// TestH100MIG reads an H100 node: its identity, the MIG split of GPU 1
// (4g.40gb, 2g.20gb, 1g.10gb) with each instance's profile, weight and
// memory, and GPM activity per GPU and per instance.
func TestH100MIG(t *testing.T) {
	f := nvmltest.NewH100(t)
	inv := node.NewInventory()
	c, clk := newCollector(t, f, inv)
	c.poll()
	f.GPUs[0].Spec.GPMPct = 64
	clk.now = t0.Add(10 * time.Second)
	c.poll()
	mfs := gather(t, c)
	g0, g1 := gpuLabels(f, 0), gpuLabels(f, 1)
	mig := func(n int, gi, profile string) map[string]string {
		return with(g1, "mig_uuid", f.GPUs[1].MIGs[n].UUID, "gpu_instance_id", gi, "compute_instance_id", "0", "profile", profile)
	}
	cases := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gpuledger_gpu_info", with(g0, "model", nvmltest.H100Name, "mig_mode", "disabled"), 1},
		{"gpuledger_gpu_info", with(g1, "model", nvmltest.H100Name, "mig_mode", "enabled"), 1},
		{"gpuledger_gpu_memory_total_bytes", g0, 81559 * mib},
		{"gpuledger_gpu_power_watts", g0, 650},
		{"gpuledger_gpu_activity_ratio", g0, 0.64},
		{"gpuledger_gpu_activity_ratio", g1, 0.30},
		{"gpuledger_mig_instance_weight_ratio", mig(0, "1", "4g.40gb"), 0.571},
		{"gpuledger_mig_instance_weight_ratio", mig(1, "5", "2g.20gb"), 0.286},
		{"gpuledger_mig_instance_weight_ratio", mig(2, "13", "1g.10gb"), 0.143},
		{"gpuledger_mig_instance_memory_total_bytes", mig(0, "1", "4g.40gb"), 40960 * mib},
		{"gpuledger_mig_instance_memory_total_bytes", mig(2, "13", "1g.10gb"), 10240 * mib},
		{"gpuledger_mig_instance_activity_ratio", mig(0, "1", "4g.40gb"), 0.50},
		{"gpuledger_mig_instance_activity_ratio", mig(1, "5", "2g.20gb"), 0.20},
		{"gpuledger_mig_instance_activity_ratio", mig(2, "13", "1g.10gb"), 0.10},
	}
	for _, tc := range cases {
		got, ok := series(mfs, tc.name, tc.labels)
		if !ok || !near(got, tc.want) {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if n := count(mfs, "gpuledger_mig_instance_weight_ratio"); n != 3 {
		t.Errorf("%d MIG instances, want 3", n)
	}
	// The kubelet's IDs resolve to the instances, with their weight.
	for n, want := range []int64{571, 286, 143} {
		d, _, ok := inv.Lookup(f.GPUs[1].MIGs[n].UUID)
		if !ok || d.WeightMilli != want || d.Model != nvmltest.H100Name {
			t.Errorf("MIG %d: %+v, %v; want weight %d", n, d, ok, want)
		}
	}
}

// An old driver without the GPM functions: they are never called.
func TestGPMSymbolsMissing(t *testing.T) {
	f := newH200(t)
	f.HideSymbol("nvmlGpmMigSampleGet")
	c, clk := newCollector(t, f, nil)
	c.poll()
	clk.now = clk.now.Add(10 * time.Second)
	c.poll()
	mfs := gather(t, c)
	if n := count(mfs, "gpuledger_gpu_activity_ratio") + count(mfs, "gpuledger_mig_instance_activity_ratio"); n != 0 {
		t.Errorf("%d GPM series without the GPM symbols", n)
	}
	for _, g := range f.GPUs {
		if n := len(g.GpmQueryDeviceSupportCalls()) + len(g.GpmSampleGetCalls()); n != 0 {
			t.Errorf("GPU %s: %d GPM calls on a driver without GPM", g.UUID, n)
		}
	}
	if _, ok := series(mfs, "gpuledger_gpu_utilization_ratio", gpuLabels(f, 0)); !ok {
		t.Error("utilization missing")
	}
}

func TestNotSupportedOmitsSeries(t *testing.T) {
	f := newA100(t)
	for _, call := range []string{"GetPowerUsage", "GetTotalEnergyConsumption", "GetTotalEccErrors", "GetClockInfo"} {
		f.GPUs[1].Fail[call] = nvml.ERROR_NOT_SUPPORTED
	}
	f.GPUs[6].Fail["GetMemoryInfo(MIG)"] = nvml.ERROR_NOT_SUPPORTED
	c, _ := newCollector(t, f, nil)
	c.poll()
	mfs := gather(t, c)
	g1 := gpuLabels(f, 1)
	for _, name := range []string{"gpuledger_gpu_power_watts", "gpuledger_gpu_energy_joules_total",
		"gpuledger_gpu_ecc_errors_total", "gpuledger_gpu_sm_clock_hertz", "gpuledger_gpu_memory_clock_hertz"} {
		if _, ok := series(mfs, name, g1); ok {
			t.Errorf("%s present on GPU 1, where NVML does not support it", name)
		}
		if _, ok := series(mfs, name, gpuLabels(f, 2)); !ok {
			t.Errorf("%s missing on GPU 2", name)
		}
	}
	for _, name := range []string{"gpuledger_gpu_info", "gpuledger_gpu_temperature_celsius", "gpuledger_gpu_utilization_ratio"} {
		if _, ok := series(mfs, name, g1); !ok {
			t.Errorf("%s missing on GPU 1", name)
		}
	}
	if n := count(mfs, "gpuledger_mig_instance_memory_total_bytes"); n != 2 {
		t.Errorf("%d MIG memory series, want GPU 7's 2 only", n)
	}
	if n := count(mfs, "gpuledger_mig_instance_info"); n != 6 {
		t.Errorf("%d MIG instances, want 6", n)
	}
	if n := count(mfs, "gpuledger_gpu_nvml_errors_total"); n != 0 {
		t.Errorf("NOT_SUPPORTED counted as an error (%d series)", n)
	}
	if v, _ := series(mfs, "gpuledger_exporter_collector_success", nil); v != 1 {
		t.Errorf("collector success %v, want 1", v)
	}
}

func TestErrorOnOneGPU(t *testing.T) {
	f := newA100(t)
	inv := node.NewInventory()
	c, clk := newCollector(t, f, inv)
	c.poll() // a good poll first
	before := len(inv.Devices())

	f.GPUs[2].Fail["GetPowerUsage"] = nvml.ERROR_UNKNOWN
	f.GPUs[3].Fail["GetUUID"] = nvml.ERROR_GPU_IS_LOST
	f.GPUs[7].Fail["GetMigMode"] = nvml.ERROR_UNKNOWN
	for range 2 {
		clk.now = clk.now.Add(10 * time.Second)
		c.poll()
	}
	mfs := gather(t, c)
	if v, _ := series(mfs, "gpuledger_exporter_collector_success", nil); v != 1 {
		t.Errorf("collector success %v: one GPU's errors fail the whole source", v)
	}
	if _, ok := series(mfs, "gpuledger_gpu_power_watts", gpuLabels(f, 2)); ok {
		t.Error("power of GPU 2 present though NVML failed")
	}
	if _, ok := series(mfs, "gpuledger_gpu_temperature_celsius", gpuLabels(f, 2)); !ok {
		t.Error("GPU 2's other series hidden by its power error")
	}
	if _, ok := series(mfs, "gpuledger_gpu_info", map[string]string{"gpu": "3"}); ok {
		t.Error("GPU 3 has an info series though its UUID could not be read")
	}
	for _, i := range []int{0, 1, 4, 5, 6} {
		if _, ok := series(mfs, "gpuledger_gpu_power_watts", gpuLabels(f, i)); !ok {
			t.Errorf("GPU %d's power hidden by another GPU's error", i)
		}
	}
	errs := []struct {
		labels map[string]string
		want   float64
	}{
		{with(gpuLabels(f, 2), "call", "nvmlDeviceGetPowerUsage"), 2},
		{map[string]string{"node": "gpu-node-1", "gpu": "3", "uuid": "", "call": "nvmlDeviceGetUUID"}, 2},
		{with(gpuLabels(f, 7), "call", "nvmlDeviceGetMigMode"), 2},
	}
	for _, e := range errs {
		if v, ok := series(mfs, "gpuledger_gpu_nvml_errors_total", e.labels); !ok || v != e.want {
			t.Errorf("errors%v = %v (present %v), want %v", e.labels, v, ok, e.want)
		}
	}
	if n := count(mfs, "gpuledger_gpu_nvml_errors_total"); n != len(errs) {
		t.Errorf("%d error series, want %d", n, len(errs))
	}
	// The GPUs that could not be identified keep their devices.
	if n := len(inv.Devices()); n != before {
		t.Errorf("%d devices after the failures, want the %d of the last good poll", n, before)
	}
	if _, _, ok := inv.Lookup(f.GPUs[7].MIGs[0].UUID); !ok {
		t.Error("GPU 7's MIG instance dropped from the inventory on a failed MIG mode read")
	}
}

func TestWholePollFailure(t *testing.T) {
	f := newA100(t)
	c, clk := newCollector(t, f, nil)
	c.poll()
	f.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	clk.now = clk.now.Add(10 * time.Second)
	c.poll()
	mfs := gather(t, c)
	if v, ok := series(mfs, "gpuledger_exporter_collector_success", nil); !ok || v != 0 {
		t.Errorf("collector success %v, want 0 after nvmlDeviceGetCount failed", v)
	}
	if n := count(mfs, "gpuledger_gpu_power_watts"); n != 0 {
		t.Errorf("%d power series served from a failed poll", n)
	}
	if v, _ := series(mfs, "gpuledger_gpu_nvml_errors_total", map[string]string{"call": "nvmlDeviceGetCount"}); v != 1 {
		t.Errorf("nvmlDeviceGetCount errors = %v, want 1", v)
	}
}

func TestNoGPU(t *testing.T) {
	f := nvmltest.NewA100(t, "00000000", nil)
	c, _ := newCollector(t, f, nil)
	c.poll()
	var got []prometheus.Metric
	ch := make(chan prometheus.Metric, 16)
	err := c.Update(ch)
	close(ch)
	for m := range ch {
		got = append(got, m)
	}
	if !errors.Is(err, collector.ErrNoData) || len(got) != 0 {
		t.Errorf("Update = %v with %d series, want ErrNoData and none", err, len(got))
	}
}

func TestStaleSnapshot(t *testing.T) {
	f := newA100(t)
	c, clk := newCollector(t, f, nil)
	c.poll()
	clk.now = t0.Add(31 * time.Second) // three 10 s intervals and more
	ch := make(chan prometheus.Metric, 1024)
	err := c.Update(ch)
	close(ch)
	if err == nil || !strings.Contains(err.Error(), "hung") {
		t.Errorf("Update on a 31 s old poll = %v, want a stale error", err)
	}
	for m := range ch {
		if strings.Contains(m.Desc().String(), "gpu_power_watts") {
			t.Error("stale readings served")
		}
	}
}

// MIG profile info unavailable (an unprivileged process cannot open GPU
// instances, attributes unsupported): the profile comes from the device
// name and the weight from the static table.
func TestWeightFallback(t *testing.T) {
	f := newA100(t)
	f.GPUs[6].Fail["GetGpuInstanceById"] = nvml.ERROR_NO_PERMISSION
	f.GPUs[6].Fail["GetAttributes(MIG)"] = nvml.ERROR_NOT_SUPPORTED
	f.GPUs[7].Fail["GetGpuInstanceById"] = nvml.ERROR_NO_PERMISSION // attributes still work
	inv := node.NewInventory()
	c, _ := newCollector(t, f, inv)
	c.poll()
	for _, tc := range []struct {
		gpu, n  int
		profile string
		weight  int64
	}{{6, 0, "3g.40gb", 500}, {6, 1, "1g.10gb", 143}, {7, 1, "3g.40gb", 500}} {
		d, _, ok := inv.Lookup(f.GPUs[tc.gpu].MIGs[tc.n].UUID)
		if !ok || d.Profile != tc.profile || d.WeightMilli != tc.weight {
			t.Errorf("GPU %d MIG %d = %+v (%v), want %s weighing %d", tc.gpu, tc.n, d, ok, tc.profile, tc.weight)
		}
	}
	mfs := gather(t, c)
	if n := count(mfs, "gpuledger_gpu_nvml_errors_total"); n != 0 {
		t.Errorf("missing permission counted as an error (%d series)", n)
	}
	// Neither profile info nor a usable name: no weight, not published.
	f.GPUs[7].Fail["GetAttributes(MIG)"] = nvml.ERROR_NOT_SUPPORTED
	f.GPUs[7].MIGs[0].Name = "NVIDIA A100-SXM4-80GB"
	c.poll()
	if _, _, ok := inv.Lookup(f.GPUs[7].MIGs[0].UUID); ok {
		t.Error("a MIG instance of unknown weight was published")
	}
	mfs = gather(t, c)
	if _, ok := series(mfs, "gpuledger_mig_instance_info", map[string]string{"mig_uuid": f.GPUs[7].MIGs[0].UUID, "profile": ""}); !ok {
		t.Error("the instance of unknown profile lost its info series")
	}
}

func TestXIDEvents(t *testing.T) {
	f := newA100(t)
	f.GPUs[5].Fail["RegisterEvents"] = nvml.ERROR_NOT_SUPPORTED
	c, _ := newCollector(t, f, nil)
	f.Events.Push(f.XID(0, 79), f.XID(0, 79), f.XID(0, 48), f.XID(4, 13),
		nvml.EventData{Device: f.GPUs[1].Device, EventType: nvml.EventTypeClock}) // not an XID
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-f.Events.Idle() // every queued event handled
	mfs := gather(t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		gpu  int
		xid  string
		want float64
	}{{0, "79", 2}, {0, "48", 1}, {4, "13", 1}} {
		labels := with(gpuLabels(f, tc.gpu), "xid", tc.xid)
		if v, ok := series(mfs, "gpuledger_gpu_xid_errors_total", labels); !ok || v != tc.want {
			t.Errorf("xid%v = %v (present %v), want %v", labels, v, ok, tc.want)
		}
	}
	if n := count(mfs, "gpuledger_gpu_xid_errors_total"); n != 3 {
		t.Errorf("%d XID series, want 3", n)
	}
	reg := f.Events.Registered()
	if len(reg) != 7 || reg[f.GPUs[5].UUID] {
		t.Errorf("registered %v, want every GPU but 5", reg)
	}
	freed := f.Events.Freed()
	if !freed {
		t.Error("event set not freed on Close")
	}
}

func TestRecordEventUnknownDevice(t *testing.T) {
	f := newA100(t)
	c, _ := newCollector(t, f, nil)
	c.recordEvent(nvml.EventData{EventType: nvml.EventTypeXidCriticalError, EventData: 31}, nil)
	if got := c.xids.get(gpuRef{}, 31); got != 1 {
		t.Errorf("XID of an unknown device counted %d times, want 1", got)
	}
}

func TestStartClose(t *testing.T) {
	f := newA100(t)
	inv := node.NewInventory()
	c, err := New(f, Options{Node: "n", Inventory: inv, Interval: time.Hour, EventWait: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err == nil {
		t.Error("second Start succeeded")
	}
	// Start waits for the first poll.
	if n := len(inv.Devices()); n != 12 {
		t.Errorf("%d devices after Start, want 12", n)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := len(inv.Devices()); n != 0 {
		t.Errorf("%d devices left in the inventory after Close", n)
	}
	if st := f.Stats(); st.Inits != 1 || st.Shutdowns != 1 {
		t.Errorf("Init %d, Shutdown %d times; want once each", st.Inits, st.Shutdowns)
	}
}

func TestNewOptions(t *testing.T) {
	if _, err := New(nil, Options{Node: "n"}); err == nil {
		t.Error("nil library accepted")
	}
	if _, err := New(newA100(t), Options{}); err == nil {
		t.Error("empty node name accepted")
	}
}

// An NVML that fails to initialise gives a degraded collector that
// recovers when NVML loads.
func TestInitFailureDegrades(t *testing.T) {
	f := newA100(t)
	ret := nvml.ERROR_DRIVER_NOT_LOADED
	f.InitFunc = func() nvml.Return { return ret }
	c, err := New(f, Options{Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(c.Err(), ErrUnavailable) {
		t.Fatalf("Err() = %v, want ErrUnavailable", c.Err())
	}
	mfs := gather(t, c)
	if v, ok := series(mfs, "gpuledger_exporter_collector_success", nil); !ok || v != 0 {
		t.Errorf("collector success %v, want 0", v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if c.step(ctx) {
		t.Error("step reported NVML initialised")
	}
	ret = nvml.SUCCESS
	if !c.step(ctx) || c.Err() != nil {
		t.Fatalf("NVML loaded but the collector stays degraded: %v", c.Err())
	}
	mfs = gather(t, c)
	if v, _ := series(mfs, "gpuledger_exporter_collector_success", nil); v != 1 {
		t.Errorf("collector success %v after recovery, want 1", v)
	}
	if len(f.Events.Registered()) != 8 {
		t.Error("XID events not watched after NVML loaded")
	}
	cancel()
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}

// The real library is absent on machines without an NVIDIA driver: Open
// degrades, says why, and the exporter reports the collector failed.
func TestOpenWithoutLibrary(t *testing.T) {
	c, err := Open(Options{Node: "n", Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if c.Err() == nil {
		c.Close()
		t.Skip("libnvidia-ml.so.1 is present here; this test is for machines without it")
	}
	if !errors.Is(c.Err(), ErrUnavailable) || !strings.Contains(c.Err().Error(), "libnvidia-ml.so.1") {
		t.Errorf("Err() = %v, want ErrUnavailable naming the library", c.Err())
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	err = c.Update(make(chan prometheus.Metric, 1))
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Update = %v, want ErrUnavailable", err)
	}
	mfs := gather(t, c)
	if v, ok := series(mfs, "gpuledger_exporter_collector_success", map[string]string{"collector": "nvml"}); !ok || v != 0 {
		t.Errorf("collector success %v (%v), want 0", v, ok)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestLint(t *testing.T) {
	f := newH200(t)
	c, clk := newCollector(t, f, nil)
	c.poll()
	clk.now = clk.now.Add(10 * time.Second)
	c.poll()
	c.recordEvent(f.XID(1, 94), map[string]gpuRef{f.GPUs[1].UUID: {index: "1", uuid: f.GPUs[1].UUID}})
	f.GPUs[0].Fail["GetTemperature"] = nvml.ERROR_UNKNOWN
	c.poll()
	problems, err := testutil.CollectAndLint(collector.NewExporter(map[string]collector.Collector{"nvml": c}, 0, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// The golden exposition of the A100 node, after two polls and a few XIDs.
func TestA100Golden(t *testing.T) {
	f := newA100(t)
	c, clk := newCollector(t, f, nil)
	c.poll()
	clk.now = clk.now.Add(10 * time.Second)
	c.poll()
	gpus := map[string]gpuRef{}
	for i, g := range f.GPUs {
		gpus[g.UUID] = gpuRef{index: itoa(i), uuid: g.UUID}
	}
	for _, ev := range []nvml.EventData{f.XID(2, 79), f.XID(2, 79), f.XID(6, 94)} {
		c.recordEvent(ev, gpus)
	}
	var buf bytes.Buffer
	for _, mf := range gather(t, c) {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	golden := filepath.Join("testdata", "a100.prom")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("exposition differs from %s (run go test -update after checking):\n%s", golden, lineDiff(string(want), buf.String()))
	}
	promtoolCheck(t, golden)
}

func promtoolCheck(t *testing.T, path string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if _, err := os.Stat("/usr/bin/promtool"); err != nil {
			t.Log("promtool not found (Debian package prometheus): exposition not checked with promtool check metrics")
			return
		}
		promtool = "/usr/bin/promtool"
	}
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics %s: %v\n%s", path, err, out)
	}
}

// lineDiff lists the lines only one side has.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for _, l := range w {
		if !slices.Contains(g, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// A failed GPM sample breaks the interval: no value until two good
// samples in a row. A destroyed GPU instance's samples are freed.
func TestGPMInterruptions(t *testing.T) {
	f := newH200(t)
	c, clk := newCollector(t, f, nil)
	poll := func() []*dto.MetricFamily {
		clk.now = clk.now.Add(10 * time.Second)
		c.poll()
		return gather(t, c)
	}
	poll()
	f.GPUs[0].Fail["GpmSampleGet"] = nvml.ERROR_UNKNOWN
	mfs := poll()
	if _, ok := series(mfs, "gpuledger_gpu_activity_ratio", gpuLabels(f, 0)); ok {
		t.Error("GPM activity served from a failed sample")
	}
	if v, _ := series(mfs, "gpuledger_gpu_nvml_errors_total", with(gpuLabels(f, 0), "call", "nvmlGpmSampleGet")); v == 0 {
		t.Error("failed GPM sample not counted")
	}
	delete(f.GPUs[0].Fail, "GpmSampleGet")
	if _, ok := series(poll(), "gpuledger_gpu_activity_ratio", gpuLabels(f, 0)); ok {
		t.Error("GPM activity across a failed sample")
	}
	if v, ok := series(poll(), "gpuledger_gpu_activity_ratio", gpuLabels(f, 0)); !ok || !near(v, 0.83) {
		t.Errorf("GPM activity after two good samples = %v, %v; want 0.83", v, ok)
	}

	freed := f.Stats().SampleFrees
	f.GPUs[1].MIGs = f.GPUs[1].MIGs[:2] // GPU instance 13 destroyed
	mfs = poll()
	if n := count(mfs, "gpuledger_mig_instance_info"); n != 2 {
		t.Errorf("%d MIG instances after one was destroyed, want 2", n)
	}
	if n := f.Stats().SampleFrees - freed; n != 2 {
		t.Errorf("%d GPM samples freed for the destroyed GPU instance, want its 2", n)
	}
}

func TestXIDUnavailable(t *testing.T) {
	t.Run("no GPU registers", func(t *testing.T) {
		f := newA100(t)
		for _, g := range f.GPUs {
			g.Fail["RegisterEvents"] = nvml.ERROR_NOT_SUPPORTED
		}
		c, _ := newCollector(t, f, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c.step(ctx)
		freed := f.Events.Freed()
		if !freed {
			t.Error("an event set with no GPU was kept")
		}
		if n := len(f.Events.WaitCalls()); n != 0 {
			t.Errorf("waited %d times on an empty event set", n)
		}
	})
	t.Run("no event set", func(t *testing.T) {
		f := newA100(t)
		f.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return nil, nvml.ERROR_UNKNOWN }
		c, _ := newCollector(t, f, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c.step(ctx)
		mfs := gather(t, c)
		if v, _ := series(mfs, "gpuledger_gpu_nvml_errors_total", map[string]string{"call": "nvmlEventSetCreate", "gpu": ""}); v != 1 {
			t.Errorf("event set failure counted %v times, want 1", v)
		}
		if v, _ := series(mfs, "gpuledger_exporter_collector_success", nil); v != 1 {
			t.Error("no XID events fails the collector")
		}
	})
}
