package source

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// allocLabels are the labels of one allocation of the tests, with overrides.
func allocLabels(over ...string) string {
	kv := map[string]string{
		"node": "a100-mig-01", "resource": "nvidia.com/mig-1g.10gb", "class": "mig",
		"device": "MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d03", "gpu_uuid": "GPU-5c89852c", "gpu": "0",
		"model": "NVIDIA A100-SXM4-80GB", "profile": "1g.10gb", "namespace": "hub", "pod": "jupyter-alice",
		"pod_uid": "uid-1", "user": "alice", "project": "jupyterhub", "queue": "", "site": "",
	}
	for i := 0; i+1 < len(over); i += 2 {
		if over[i+1] == "<absent>" {
			delete(kv, over[i])
			continue
		}
		kv[over[i]] = over[i+1]
	}
	var parts []string
	for _, k := range []string{"class", "device", "exported_node", "gpu", "gpu_uuid", "model", "namespace", "node", "pod",
		"pod_uid", "profile", "project", "queue", "resource", "site", "user"} {
		if v, ok := kv[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%q", k, v))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// alloc writes the series of one allocation: start, weight, devices, and
// end and activity when not empty.
func alloc(labels, start, weight, devices, end, activity string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "gpuledger_allocation_start_time_seconds%s %s\n", labels, start)
	fmt.Fprintf(&b, "gpuledger_allocation_weight_ratio%s %s\n", labels, weight)
	fmt.Fprintf(&b, "gpuledger_allocation_devices%s %s\n", labels, devices)
	if end != "" {
		fmt.Fprintf(&b, "gpuledger_allocation_end_time_seconds%s %s\n", labels, end)
	}
	if activity != "" {
		fmt.Fprintf(&b, "gpuledger_allocation_activity_ratio%s %s\n", labels, activity)
	}
	return b.String()
}

// quota writes one series of the Kueue quota family; an empty queue
// leaves the cluster_queue label out.
func quota(queue, flavor, resource, value string) string {
	var l []string
	if queue != "" {
		l = append(l, fmt.Sprintf("cluster_queue=%q", queue))
	}
	l = append(l, fmt.Sprintf("flavor=%q", flavor), fmt.Sprintf("resource=%q", resource))
	return "gpuledger_kueue_clusterqueue_nominal_quota{" + strings.Join(l, ",") + "} " + value + "\n"
}

var testKey = observe.AllocKey{Node: "a100-mig-01", Device: "MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d03", PodUID: "uid-1",
	Resource: "nvidia.com/mig-1g.10gb"}

var testAttrs = observe.Attrs{Class: "mig", GPUUUID: "GPU-5c89852c", Model: "NVIDIA A100-SXM4-80GB", Profile: "1g.10gb",
	Namespace: "hub", Pod: "jupyter-alice", User: "alice", Project: "jupyterhub"}

func TestParseText(t *testing.T) {
	fallback := time.UnixMilli(1_793_600_000_123)
	const clock = "gpuledger_exporter_time_seconds 1.79361762e+09\n"
	const clockMs = 1_793_617_620_000
	active := observe.Alloc{AllocKey: testKey, Attrs: testAttrs, Start: 1_793_608_200, WeightMilli: 143, Devices: 1, ActivityMilli: 500}
	ended := active
	ended.End, ended.ActivityMilli = 1_793_611_800, -1
	cases := []struct {
		name    string
		body    string
		time    int64
		allocs  []observe.Alloc
		gpus    []observe.GPU
		quotas  []observe.Quota
		dropped int      // series dropped; 0: no error
		unknown int      // allocations whose state is unknown
		errIs   error    // the dropped series' error, when dropped > 0
		errText []string // fragments of the error text
	}{
		{name: "active allocation", body: clock + alloc(allocLabels(), "1.7936082e+09", "0.143", "1", "", "0.5"),
			time: clockMs, allocs: []observe.Alloc{active}},
		{name: "ended allocation", body: clock + alloc(allocLabels(), "1.7936082e+09", "0.143", "1", "1.7936118e+09", ""),
			time: clockMs, allocs: []observe.Alloc{ended}},
		{name: "no exporter clock: fallback time", body: alloc(allocLabels(), "1793608200", "0.143", "1", "", "0.5"),
			time: fallback.UnixMilli(), allocs: []observe.Alloc{active}},
		{name: "weight rounds to milli", body: clock + alloc(allocLabels(), "1793608200", "0.14285714285714285", "1", "", "0.5"),
			time: clockMs, allocs: []observe.Alloc{active}},
		{name: "start rounds to the second", body: clock + alloc(allocLabels(), "1793608199.6", "0.143", "1", "", "0.5"),
			time: clockMs, allocs: []observe.Alloc{active}},
		{name: "exported_node wins over the target's node label",
			body: clock + alloc(allocLabels("node", "10.0.0.7:9835", "exported_node", "a100-mig-01"), "1793608200", "0.143", "1", "", "0.5"),
			time: clockMs, allocs: []observe.Alloc{active}},
		{name: "unknown family ignored", body: clock + "some_other_metric{node=\"x\"} NaN\n" +
			alloc(allocLabels(), "1793608200", "0.143", "1", "", "0.5"), time: clockMs, allocs: []observe.Alloc{active}},
		{name: "GPU identity and energy",
			body: clock + `gpuledger_gpu_info{gpu="0",mig_mode="enabled",model="NVIDIA A100-SXM4-80GB",node="a100-mig-01",uuid="GPU-1"} 1
gpuledger_gpu_energy_joules_total{gpu="0",node="a100-mig-01",uuid="GPU-1"} 123456.789
gpuledger_gpu_info{gpu="1",mig_mode="disabled",model="NVIDIA A100-SXM4-80GB",node="a100-mig-01",uuid="GPU-2"} 1
`, time: clockMs, gpus: []observe.GPU{
				{Node: "a100-mig-01", UUID: "GPU-1", Model: "NVIDIA A100-SXM4-80GB", EnergyMillijoules: 123_456_789},
				{Node: "a100-mig-01", UUID: "GPU-2", Model: "NVIDIA A100-SXM4-80GB", EnergyMillijoules: -1}}},

		{name: "NaN weight drops the allocation", body: clock + alloc(allocLabels(), "1793608200", "NaN", "1", "", "0.5"),
			time: clockMs, dropped: 4, unknown: 1, errIs: ErrBadValue, errText: []string{"is NaN", "gpuledger_allocation_weight_ratio", "no valid gpuledger_allocation_weight_ratio"}},
		{name: "negative start drops the allocation", body: clock + alloc(allocLabels(), "-5", "0.143", "1", "", "0.5"),
			time: clockMs, dropped: 4, unknown: 1, errIs: ErrBadValue, errText: []string{"is -5, below 1"}},
		{name: "infinite devices drop the allocation", body: clock + alloc(allocLabels(), "1793608200", "0.143", "+Inf", "", ""),
			time: clockMs, dropped: 3, unknown: 1, errIs: ErrBadValue, errText: []string{"is +Inf"}},
		{name: "bad activity drops only the activity", body: clock + alloc(allocLabels(), "1793608200", "0.143", "1", "", "1.5"),
			time: clockMs, allocs: []observe.Alloc{func() observe.Alloc { a := active; a.ActivityMilli = -1; return a }()},
			dropped: 1, errIs: ErrBadValue, errText: []string{"above 1"}},
		{name: "missing weight series", body: clock + "gpuledger_allocation_start_time_seconds" + allocLabels() + " 1793608200\n" +
			"gpuledger_allocation_devices" + allocLabels() + " 1\n",
			time: clockMs, dropped: 2, unknown: 1, errIs: ErrIncomplete, errText: []string{"no valid gpuledger_allocation_weight_ratio", "jupyter-alice"}},
		{name: "end before start", body: clock + alloc(allocLabels(), "1793608200", "0.143", "1", "1793608100", ""),
			time: clockMs, dropped: 4, unknown: 1, errIs: ErrBadValue, errText: []string{"ends (1793608100) before it starts (1793608200)"}},
		{name: "no pod_uid label", body: clock + alloc(allocLabels("pod_uid", "<absent>"), "1793608200", "0.143", "1", "", ""),
			time: clockMs, dropped: 3, errIs: ErrBadLabels, errText: []string{"no pod_uid"}},
		{name: "one key, two label sets", body: clock + alloc(allocLabels(), "1793608200", "0.143", "1", "", "0.5") +
			alloc(allocLabels("user", "mallory"), "1793608200", "0.143", "1", "", "0.5"),
			time: clockMs, allocs: []observe.Alloc{active}, dropped: 4, unknown: 1, errIs: ErrDuplicate, errText: []string{"exported twice"}},
		{name: "negative energy", body: clock + `gpuledger_gpu_energy_joules_total{gpu="0",node="n",uuid="GPU-1"} -3` + "\n",
			time: clockMs, gpus: []observe.GPU{{Node: "n", UUID: "GPU-1", EnergyMillijoules: -1}}, dropped: 1, errIs: ErrBadValue, errText: []string{"is negative"}},
		{name: "NaN exporter clock falls back", body: "gpuledger_exporter_time_seconds NaN\n",
			time: fallback.UnixMilli(), dropped: 1, errIs: ErrBadValue, errText: []string{"gpuledger_exporter_time_seconds{} is NaN"}},
		{name: "GPU without uuid", body: clock + `gpuledger_gpu_info{gpu="0",node="n",model="T4",mig_mode="disabled"} 1` + "\n",
			time: clockMs, dropped: 1, errIs: ErrBadLabels, errText: []string{"no node or uuid"}},

		{name: "Kueue quotas, sorted, in thousandths", body: clock + quota("cms-gpu", "t4", "nvidia.com/gpu", "4") +
			quota("cms-gpu", "a100", "nvidia.com/gpu", "8") + quota("atlas", "a100", "nvidia.com/mig-1g.10gb", "2.5"),
			time: clockMs, quotas: []observe.Quota{
				{ClusterQueue: "atlas", Flavor: "a100", Resource: "nvidia.com/mig-1g.10gb", NominalMilli: 2500},
				{ClusterQueue: "cms-gpu", Flavor: "a100", Resource: "nvidia.com/gpu", NominalMilli: 8000},
				{ClusterQueue: "cms-gpu", Flavor: "t4", Resource: "nvidia.com/gpu", NominalMilli: 4000}}},
		{name: "zero quota kept", body: clock + quota("cms-gpu", "a100", "nvidia.com/gpu", "0"),
			time: clockMs, quotas: []observe.Quota{{ClusterQueue: "cms-gpu", Flavor: "a100", Resource: "nvidia.com/gpu"}}},
		{name: "NaN quota dropped", body: clock + quota("cms-gpu", "a100", "nvidia.com/gpu", "NaN") +
			quota("hub", "t4", "nvidia.com/gpu.shared", "16"),
			time: clockMs, quotas: []observe.Quota{{ClusterQueue: "hub", Flavor: "t4", Resource: "nvidia.com/gpu.shared", NominalMilli: 16000}},
			dropped: 1, errIs: ErrBadValue, errText: []string{"gpuledger_kueue_clusterqueue_nominal_quota{", "is NaN"}},
		{name: "negative quota dropped", body: clock + quota("cms-gpu", "a100", "nvidia.com/gpu", "-2"),
			time: clockMs, dropped: 1, errIs: ErrBadValue, errText: []string{"is negative"}},
		{name: "infinite quota dropped", body: clock + quota("cms-gpu", "a100", "nvidia.com/gpu", "+Inf"),
			time: clockMs, dropped: 1, errIs: ErrBadValue, errText: []string{"is +Inf"}},
		{name: "quota without cluster_queue", body: clock + quota("", "a100", "nvidia.com/gpu", "8"),
			time: clockMs, dropped: 1, errIs: ErrBadLabels, errText: []string{"no cluster_queue or resource"}},
		{name: "quota served twice", body: clock + quota("cms-gpu", "a100", "nvidia.com/gpu", "8") +
			"gpuledger_kueue_clusterqueue_nominal_quota{cluster_queue=\"cms-gpu\",flavor=\"a100\",resource=\"nvidia.com/gpu\",extra=\"x\"} 9\n",
			time: clockMs, quotas: []observe.Quota{{ClusterQueue: "cms-gpu", Flavor: "a100", Resource: "nvidia.com/gpu", NominalMilli: 8000}},
			dropped: 1, errIs: ErrDuplicate},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc, err := ParseText("a100-mig-01", strings.NewReader(c.body), fallback)
			if !sc.OK || sc.Target != "a100-mig-01" || sc.Time != c.time {
				t.Errorf("scrape OK=%v target=%q time=%d; want OK, a100-mig-01, %d", sc.OK, sc.Target, sc.Time, c.time)
			}
			if !reflect.DeepEqual(sc.Allocs, c.allocs) {
				t.Errorf("allocs:\n got %+v\nwant %+v", sc.Allocs, c.allocs)
			}
			if !reflect.DeepEqual(sc.GPUs, c.gpus) {
				t.Errorf("gpus:\n got %+v\nwant %+v", sc.GPUs, c.gpus)
			}
			if !reflect.DeepEqual(sc.Quotas, c.quotas) {
				t.Errorf("quotas:\n got %+v\nwant %+v", sc.Quotas, c.quotas)
			}
			if c.dropped == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var se *SeriesError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T), want a *SeriesError", err, err)
			}
			if se.Dropped != c.dropped || len(se.Allocs) != c.unknown {
				t.Errorf("dropped %d series and %d allocations, want %d and %d: %v", se.Dropped, len(se.Allocs), c.dropped, c.unknown, err)
			}
			if c.unknown > 0 && se.Allocs[0] != testKey {
				t.Errorf("unknown allocation %+v, want %+v", se.Allocs[0], testKey)
			}
			if !errors.Is(err, c.errIs) {
				t.Errorf("error %v is not %v", err, c.errIs)
			}
			for _, frag := range c.errText {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error %q lacks %q", err, frag)
				}
			}
		})
	}
}

func TestParseTextUnreadable(t *testing.T) {
	fallback := time.UnixMilli(1_793_600_000_000)
	big := strings.Repeat("# a comment line that fills the body\n", 100)
	cases := []struct {
		name  string
		body  string
		limit int64
		errIs error
	}{
		{"garbage", "<html><body>502 Bad Gateway</body></html>", DefaultMaxBodyBytes, ErrBadBody},
		{"truncated line", "gpuledger_allocation_start_time_seconds{node=\"a\"", DefaultMaxBodyBytes, ErrBadBody},
		{"bad value", "gpuledger_exporter_time_seconds twelve\n", DefaultMaxBodyBytes, ErrBadBody},
		{"too large", big, 1000, ErrBodyTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc, err := parseFormat("n1", strings.NewReader(c.body), expfmt.NewFormat(expfmt.TypeTextPlain), c.limit, fallback)
			if !errors.Is(err, c.errIs) {
				t.Fatalf("error %v, want %v", err, c.errIs)
			}
			if sc.OK || sc.Target != "n1" || sc.Time != fallback.UnixMilli() || sc.Allocs != nil {
				t.Errorf("failed scrape %+v: want OK false at the fallback time, no allocations", sc)
			}
		})
	}
	// Exactly at the limit is fine.
	body := "gpuledger_exporter_time_seconds 1.79361762e+09\n"
	if _, err := parseFormat("n1", strings.NewReader(body), expfmt.NewFormat(expfmt.TypeTextPlain), int64(len(body)), fallback); err != nil {
		t.Errorf("body of exactly the limit: %v", err)
	}
}

func TestSeriesErrorText(t *testing.T) {
	e := &SeriesError{}
	for i := range 13 {
		e.add(fmt.Errorf("%w: series %d", ErrBadValue, i))
	}
	msg := e.Error()
	if !strings.HasPrefix(msg, "13 series dropped: bad value: series 0; ") || !strings.HasSuffix(msg, "… and 3 more") {
		t.Errorf("message %q", msg)
	}
	if e.orNil() == nil || (&SeriesError{}).orNil() != nil {
		t.Error("orNil")
	}
}

// TestParseClusterMode reads the cluster-mode exporter's golden exposition
// (exporters/kube, read in place): the offload allocations and the Kueue
// quotas; the pending requests are not the aggregator's.
func TestParseClusterMode(t *testing.T) {
	f, err := os.Open("../../exporters/kube/testdata/cluster.prom")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fallback := time.UnixMilli(1_793_617_200_000)
	sc, err := ParseText("cluster", f, fallback)
	if err != nil {
		t.Fatal(err)
	}
	want := []observe.Quota{
		{ClusterQueue: "cms-gpu", Flavor: "a100", Resource: "nvidia.com/gpu", NominalMilli: 8000},
		{ClusterQueue: "cms-gpu", Flavor: "a100", Resource: "nvidia.com/mig-1g.10gb", NominalMilli: 14000},
		{ClusterQueue: "hub", Flavor: "t4", Resource: "nvidia.com/gpu.shared", NominalMilli: 16000},
	}
	if !sc.OK || sc.Time != fallback.UnixMilli() || !reflect.DeepEqual(sc.Quotas, want) {
		t.Errorf("scrape OK %v at %d, quotas\n got %+v\nwant %+v", sc.OK, sc.Time, sc.Quotas, want)
	}
	if len(sc.Allocs) != 3 {
		t.Errorf("%d offload allocations, want 3: %+v", len(sc.Allocs), sc.Allocs)
	}
	for _, a := range sc.Allocs {
		if a.Class != "offload" || a.Node != "vk-cnaf" {
			t.Errorf("allocation %+v: want class offload on vk-cnaf", a)
		}
	}
}
