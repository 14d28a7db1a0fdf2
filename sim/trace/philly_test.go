package trace

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/attribution"
)

func TestPhillyFixture(t *testing.T) {
	jobs := mustLoad(t, LoadPhillyJobs, fixture("philly_jobs.csv"))
	s, tenants, err := buildPhilly(jobs, fixtureOptions(100, 900, 4))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		pod        string
		gpus       int
		start, end int64
	}{
		{"philly-job-0", 1, 100, 600},
		{"philly-job-2-worker-0", 8, 300, 700}, // 12 GPUs: 8 + 4
		{"philly-job-2-worker-1", 4, 300, 700},
		{"philly-job-3", 8, 350, 450},
		{"philly-job-5", 1, 999, 1000},         // last second of the window
		{"philly-job-8-worker-0", 8, 600, 700}, // 16 GPUs: 8 + 8
		{"philly-job-8-worker-1", 8, 600, 700},
		{"philly-job-9", 2, 40, 140}, // started before the window
	}
	// Not imported: job 1 (0 GPUs), 4 (ends at the window's start), 6
	// (starts at its end), 7 (zero duration).
	pods := podByName(s)
	if len(pods) != len(cases) {
		names := make([]string, 0, len(pods))
		for n := range pods {
			names = append(names, n)
		}
		slices.Sort(names)
		t.Errorf("imported %v, want %d pods", names, len(cases))
	}
	for _, c := range cases {
		p, ok := pods[c.pod]
		if !ok {
			t.Errorf("%s missing", c.pod)
			continue
		}
		if len(p.Devices) != c.gpus {
			t.Errorf("%s holds %d GPUs, want %d", c.pod, len(p.Devices), c.gpus)
		}
		if !p.Start.Equal(testEpoch.Add(time.Duration(c.start)*time.Second)) || !p.End.Equal(testEpoch.Add(time.Duration(c.end)*time.Second)) {
			t.Errorf("%s holds over [%s, %s), want trace seconds [%d, %d)", c.pod, p.Start, p.End, c.start, c.end)
		}
		if p.Labels[attribution.LabelKueueQueue] != batchQueue {
			t.Errorf("%s is not a Kueue batch pod: %v", c.pod, p.Labels)
		}
	}
	if pods["philly-job-8-worker-0"].Node == pods["philly-job-8-worker-1"].Node {
		t.Error("the workers of job 8 share a node")
	}
	// Peak 28 GPUs at [600, 700); first fit needs 4 nodes of 8.
	if len(s.Nodes) != 4 {
		t.Errorf("%d nodes, want 4", len(s.Nodes))
	}
	if t2, t3 := tenants["philly-job-2-worker-0"], tenants["philly-job-2-worker-1"]; t2 != t3 || t2.project != "vc-aaa111" {
		t.Errorf("job 2's workers have tenants %+v and %+v; want one, of project vc-aaa111", t2, t3)
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range allocs {
		want := tenants[a.Pod.Name]
		if a.User != want.user || a.Project != want.project || a.Queue != want.project {
			t.Errorf("%s resolves to %q/%q/%q, want user %q project and queue %q", a.Pod.Name, a.User, a.Project, a.Queue, want.user, want.project)
		}
	}
	// 1×500 + 12×400 + 8×100 + 1×1 + 16×100 + 2×40 GPU-seconds in the window.
	if got, want := clippedMilliSeconds(t, s), int64(1000*(500+12*400+8*100+1+16*100+2*40)); got != want {
		t.Errorf("%d milli-GPU-seconds in the window, want %d", got, want)
	}
}

func TestPhillyDeterminism(t *testing.T) {
	jobs := mustLoad(t, LoadPhillyJobs, fixture("philly_jobs.csv"))
	opt := fixtureOptions(0, 2000, 9)
	a, _, err := buildPhilly(jobs, opt)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := buildPhilly(jobs, opt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encode(t, a), encode(t, b)) {
		t.Error("same seed, different scenarios")
	}
	opt.MIGShare = 0.5
	if _, err := Philly(jobs, opt); err == nil || !strings.Contains(err.Error(), "MIG retyping applies to alibaba-v2023 only") {
		t.Errorf("MIG share on Philly: err = %v", err)
	}
}

func TestPhillyEmptyWindow(t *testing.T) {
	s, err := Philly(mustLoad(t, LoadPhillyJobs, fixture("philly_jobs.csv")), fixtureOptions(50000, 60, 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Pods) != 0 || len(s.Nodes) != 1 {
		t.Errorf("empty window: %d pods, %d nodes; want 0 pods on one idle node", len(s.Pods), len(s.Nodes))
	}
}
