package alloc_test

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/aggregator/source"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/alloc"
	"github.com/gpuledger/gpuledger/exporters/kube"
	"github.com/gpuledger/gpuledger/exporters/kubelet/kubelettest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.prom")

const (
	goldenFile = "testdata/golden.prom"
	promtool   = "/usr/bin/promtool"
	legacy3g   = "MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/2/0"
	ghost      = "GPU-ffffffff-0000-1111-2222-333333333333"
)

// promCollector serves a Collector to a Prometheus registry.
type promCollector struct{ c *alloc.Collector }

func (promCollector) Describe(chan<- *prometheus.Desc) {}

func (p promCollector) Collect(ch chan<- prometheus.Metric) { _ = p.c.Update(ch) }

// goldenNode is a node with one allocation of every kind, one ended.
func goldenNode(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, alloc.Options{})
	trainer := attribution.Result{User: "trainer", Project: "ml-infn-gpu", Queue: "ml-infn-gpu"}
	h.pods.set(running("0b6c3f4e-0000-0000-0000-000000000001", "hub", "jupyter-alice", t0.Add(-2*time.Hour), alice))
	h.pods.set(running("0b6c3f4e-0000-0000-0000-000000000002", "cms-ml", "cms-train-7f9c", t0.Add(-10*time.Minute), bob))
	h.pods.set(running("0b6c3f4e-0000-0000-0000-000000000004", "ml-infn", "ml-infn-ft-0", t0.Add(-time.Hour), trainer))
	h.pods.set(running("0b6c3f4e-0000-0000-0000-000000000006", "lab", "share-a", t0.Add(-30*time.Minute), alice))
	h.pods.set(running("0b6c3f4e-0000-0000-0000-000000000007", "lab", "share-b", t0.Add(-20*time.Minute), bob))
	h.pods.set(running("0b6c3f4e-0000-0000-0000-000000000008", "fpga-lab", "hls-synth", t0.Add(-45*time.Minute), attribution.Result{User: "", Project: "fpga"}))
	h.pods.set(running("0b6c3f4e-0000-0000-0000-000000000009", "cms-ml", "stray", t0.Add(-5*time.Minute), bob))
	done := running("0b6c3f4e-0000-0000-0000-000000000003", "cms-ml", "cms-eval", t0.Add(-40*time.Minute), bob)
	done.Containers = map[string]kube.ContainerTimes{"main": {Started: t0.Add(-40 * time.Minute), Finished: t0.Add(-10 * time.Minute)}}
	done.Phase = "Succeeded"
	h.pods.set(done)
	h.srv.Set(
		kubelettest.Assignment{Namespace: "hub", Pod: "jupyter-alice", Container: "notebook", Resource: "nvidia.com/mig-1g.10gb", IDs: []string{mig1g}},
		kubelettest.Assignment{Namespace: "cms-ml", Pod: "cms-train-7f9c", Container: "main", Resource: "nvidia.com/gpu", IDs: []string{gpu1}},
		kubelettest.Assignment{Namespace: "cms-ml", Pod: "cms-eval", Container: "main", Resource: "nvidia.com/gpu.shared", IDs: []string{gpu2 + "::1"}},
		kubelettest.Assignment{Namespace: "ml-infn", Pod: "ml-infn-ft-0", Container: "main", Resource: "nvidia.com/mig-3g.40gb", IDs: []string{legacy3g}},
		kubelettest.Assignment{Namespace: "lab", Pod: "share-a", Container: "c", Resource: "nvidia.com/gpu.shared", IDs: []string{gpu2 + "::0"}},
		kubelettest.Assignment{Namespace: "lab", Pod: "share-b", Container: "c", Resource: "nvidia.com/gpu.shared", IDs: []string{gpu2 + "::3"}},
		kubelettest.Assignment{Namespace: "fpga-lab", Pod: "hls-synth", Container: "main", Resource: resFPG, IDs: []string{fpga0}},
		kubelettest.Assignment{Namespace: "cms-ml", Pod: "stray", Container: "main", Resource: "nvidia.com/gpu", IDs: []string{ghost}},
	)
	h.inv.SetActivity("dcgm", t0, map[string]float64{gpu1: 0.42, mig1g: 0.009, mig3g: 0.911, gpu2: 0.6})
	h.mustStep(time.Second)
	return h
}

func exposition(t *testing.T, c *alloc.Collector) []byte {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(promCollector{c})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestGolden(t *testing.T) {
	h := goldenNode(t)
	got := exposition(t, h.c)
	if *update {
		if err := os.WriteFile(goldenFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("exposition differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", goldenFile, got, want)
	}
	problems, err := testutil.CollectAndLint(promCollector{h.c})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestGoldenPromtool(t *testing.T) {
	if _, err := os.Stat(promtool); err != nil {
		t.Skipf("%s absent (Debian package prometheus): %v", promtool, err)
	}
	f, err := os.Open(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics %s: %v\n%s", goldenFile, err, out)
	}
}

// The aggregator reads the golden exposition as the simulator's.
func TestGoldenParsedByAggregator(t *testing.T) {
	body, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := source.ParseText(nodeName, bytes.NewReader(body), t0)
	if err != nil {
		t.Fatalf("the aggregator's parser rejects the exposition: %v", err)
	}
	if len(sc.Unknown) != 0 {
		t.Errorf("unreadable allocations: %v", sc.Unknown)
	}
	byDevice := map[string]observe.Alloc{}
	for _, a := range sc.Allocs {
		byDevice[a.Device] = a
	}
	sec := func(t time.Time) int64 { return t.Unix() }
	want := []observe.Alloc{
		{AllocKey: observe.AllocKey{Node: nodeName, Device: gpu1, PodUID: "0b6c3f4e-0000-0000-0000-000000000002", Resource: "nvidia.com/gpu"},
			Attrs: observe.Attrs{Class: "gpu", GPUUUID: gpu1, Model: a100, Namespace: "cms-ml", Pod: "cms-train-7f9c",
				User: "bob", Project: "cms-gpu", Queue: "cms-gpu"},
			Start: sec(t0.Add(-10 * time.Minute)), WeightMilli: 1000, Devices: 1, ActivityMilli: 420},
		{AllocKey: observe.AllocKey{Node: nodeName, Device: mig1g, PodUID: "0b6c3f4e-0000-0000-0000-000000000001", Resource: "nvidia.com/mig-1g.10gb"},
			Attrs: observe.Attrs{Class: "mig", GPUUUID: gpu0, Model: a100, Profile: "1g.10gb", Namespace: "hub", Pod: "jupyter-alice",
				User: "alice", Project: "jupyterhub"},
			Start: sec(t0.Add(-2 * time.Hour)), WeightMilli: 143, Devices: 1, ActivityMilli: 9},
		{AllocKey: observe.AllocKey{Node: nodeName, Device: legacy3g, PodUID: "0b6c3f4e-0000-0000-0000-000000000004", Resource: "nvidia.com/mig-3g.40gb"},
			Attrs: observe.Attrs{Class: "mig", GPUUUID: gpu0, Model: a100, Profile: "3g.40gb", Namespace: "ml-infn", Pod: "ml-infn-ft-0",
				User: "trainer", Project: "ml-infn-gpu", Queue: "ml-infn-gpu"},
			Start: sec(t0.Add(-time.Hour)), WeightMilli: 500, Devices: 1, ActivityMilli: 911},
		{AllocKey: observe.AllocKey{Node: nodeName, Device: gpu2 + "::1", PodUID: "0b6c3f4e-0000-0000-0000-000000000003", Resource: "nvidia.com/gpu.shared"},
			Attrs: observe.Attrs{Class: "shared", GPUUUID: gpu2, Model: t4, Namespace: "cms-ml", Pod: "cms-eval",
				User: "bob", Project: "cms-gpu", Queue: "cms-gpu"},
			Start: sec(t0.Add(-40 * time.Minute)), End: sec(t0.Add(-10 * time.Minute)), WeightMilli: 250, Devices: 1, ActivityMilli: -1},
		{AllocKey: observe.AllocKey{Node: nodeName, Device: gpu2 + "::0", PodUID: "0b6c3f4e-0000-0000-0000-000000000006", Resource: "nvidia.com/gpu.shared"},
			Attrs: observe.Attrs{Class: "shared", GPUUUID: gpu2, Model: t4, Namespace: "lab", Pod: "share-a", User: "alice", Project: "jupyterhub"},
			Start: sec(t0.Add(-30 * time.Minute)), WeightMilli: 250, Devices: 1, ActivityMilli: 600},
		{AllocKey: observe.AllocKey{Node: nodeName, Device: gpu2 + "::3", PodUID: "0b6c3f4e-0000-0000-0000-000000000007", Resource: "nvidia.com/gpu.shared"},
			Attrs: observe.Attrs{Class: "shared", GPUUUID: gpu2, Model: t4, Namespace: "lab", Pod: "share-b", User: "bob", Project: "cms-gpu", Queue: "cms-gpu"},
			Start: sec(t0.Add(-20 * time.Minute)), WeightMilli: 250, Devices: 1, ActivityMilli: 600},
		{AllocKey: observe.AllocKey{Node: nodeName, Device: fpga0, PodUID: "0b6c3f4e-0000-0000-0000-000000000008", Resource: resFPG},
			Attrs: observe.Attrs{Class: "fpga", Model: u55c, Namespace: "fpga-lab", Pod: "hls-synth", User: "unknown", Project: "fpga"},
			Start: sec(t0.Add(-45 * time.Minute)), WeightMilli: 1000, Devices: 1, ActivityMilli: -1},
		{AllocKey: observe.AllocKey{Node: nodeName, Device: ghost, PodUID: "0b6c3f4e-0000-0000-0000-000000000009", Resource: "nvidia.com/gpu"},
			Attrs: observe.Attrs{Class: "gpu", GPUUUID: ghost, Model: "unknown", Namespace: "cms-ml", Pod: "stray",
				User: "bob", Project: "cms-gpu", Queue: "cms-gpu"},
			Start: sec(t0.Add(-5 * time.Minute)), WeightMilli: 1000, Devices: 1, ActivityMilli: -1},
	}
	if len(sc.Allocs) != len(want) {
		t.Errorf("the aggregator found %d allocations, want %d: %+v", len(sc.Allocs), len(want), sc.Allocs)
	}
	for _, w := range want {
		got, ok := byDevice[w.Device]
		if !ok {
			t.Errorf("allocation of %s not found", w.Device)
			continue
		}
		if got != w {
			t.Errorf("allocation of %s:\n got  %+v\n want %+v", w.Device, got, w)
		}
	}
}
