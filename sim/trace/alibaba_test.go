package trace

import (
	"bytes"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/attribution"
)

func TestAlibabaFixture(t *testing.T) {
	const from, dur = 1000, 1000
	cases := []struct {
		pod        string
		in         bool
		resource   string
		devices    int
		milli      int64
		start, end int64
		notebook   bool
	}{
		{pod: "pod-whole", in: true, resource: accounting.ResourceGPU, devices: 1, start: 100, end: 5000, notebook: true},
		{pod: "pod-never"},  // scheduled_time empty
		{pod: "pod-cpu"},    // num_gpu 0
		{pod: "pod-zero"},   // deleted the second it was scheduled
		{pod: "pod-milli0"}, // num_gpu 1, gpu_milli 0
		{pod: "pod-before"}, // ends at the window's start
		{pod: "pod-after"},  // starts at the window's end
		{pod: "pod-frac-a", in: true, resource: accounting.ResourceGPUShared, devices: 1, milli: 460, start: 900, end: 1800, notebook: true},
		{pod: "pod-frac-b", in: true, resource: accounting.ResourceGPUShared, devices: 1, milli: 320, start: 1200, end: 1300},
		{pod: "pod-frac-c", in: true, resource: accounting.ResourceGPUShared, devices: 1, milli: 230, start: 1250, end: 1900},
		{pod: "pod-frac-d", in: true, resource: accounting.ResourceGPUShared, devices: 1, milli: 810, start: 1310, end: 1700, notebook: true},
		{pod: "pod-multi", in: true, resource: accounting.ResourceGPU, devices: 4, start: 1500, end: 2500},
		{pod: "pod-eight", in: true, resource: accounting.ResourceGPU, devices: 8, start: 1600, end: 1700},
		{pod: "pod-last", in: true, resource: accounting.ResourceGPU, devices: 2, start: 1999, end: 2001, notebook: true},
		{pod: "pod-tiny", in: true, resource: accounting.ResourceGPUShared, devices: 1, milli: 110, start: 1000, end: 1100, notebook: true},
	}
	for _, seed := range []uint64{1, 2, 42} {
		s, _ := importAlibabaFixture(t, fixtureOptions(from, dur, seed))
		if want := testEpoch.Add(from * time.Second); !s.Start.Equal(want) || !s.End.Equal(want.Add(dur*time.Second)) {
			t.Errorf("seed %d: window %s–%s, want %s + %ds", seed, s.Start, s.End, want, dur)
		}
		pods := podByName(s)
		included := 0
		for _, c := range cases {
			p, ok := pods[c.pod]
			if ok != c.in {
				t.Errorf("seed %d: %s imported = %v, want %v", seed, c.pod, ok, c.in)
				continue
			}
			if !ok {
				continue
			}
			included++
			if len(p.Devices) != c.devices {
				t.Errorf("seed %d: %s holds %d devices, want %d", seed, c.pod, len(p.Devices), c.devices)
			}
			ids := map[string]bool{}
			for _, d := range p.Devices {
				if d.Resource != c.resource || d.Milli != c.milli {
					t.Errorf("seed %d: %s holds %+v, want %s milli %d", seed, c.pod, d, c.resource, c.milli)
				}
				ids[d.ID] = true
			}
			if len(ids) != len(p.Devices) {
				t.Errorf("seed %d: %s holds a GPU twice: %+v", seed, c.pod, p.Devices)
			}
			if want := testEpoch.Add(time.Duration(c.start) * time.Second); !p.Start.Equal(want) {
				t.Errorf("seed %d: %s starts %s, want %s", seed, c.pod, p.Start, want)
			}
			if want := testEpoch.Add(time.Duration(c.end) * time.Second); p.End == nil || !p.End.Equal(want) {
				t.Errorf("seed %d: %s ends %v, want %s", seed, c.pod, p.End, want)
			}
			_, hub := p.Annotations[attribution.AnnotationJupyterHubUser]
			_, queued := p.Labels[attribution.LabelKueueQueue]
			if hub != c.notebook || queued == c.notebook {
				t.Errorf("seed %d: %s notebook annotation %v, queue label %v; want notebook %v", seed, c.pod, hub, queued, c.notebook)
			}
		}
		if included != len(s.Pods) {
			t.Errorf("seed %d: %d pods imported, want %d", seed, len(s.Pods), included)
		}

		// Fractions share a GPU while they fit: b joins a (780 milli); c
		// would make 1010 and goes elsewhere.
		base := func(name string) string {
			b, _, _ := accounting.SplitReplica(pods[name].Devices[0].ID)
			return b
		}
		if base("pod-frac-a") != base("pod-frac-b") {
			t.Errorf("seed %d: pod-frac-b is not on pod-frac-a's GPU", seed)
		}
		if pods["pod-frac-a"].Devices[0].ID == pods["pod-frac-b"].Devices[0].ID {
			t.Errorf("seed %d: concurrent sharers hold the same replica %s", seed, pods["pod-frac-a"].Devices[0].ID)
		}
		if base("pod-frac-c") == base("pod-frac-a") {
			t.Errorf("seed %d: pod-frac-c over-commits pod-frac-a's GPU", seed)
		}
	}
}

func TestAlibabaNodes(t *testing.T) {
	s, _ := importAlibabaFixture(t, fixtureOptions(1000, 1000, 7))
	if len(s.Nodes) != 10 {
		t.Fatalf("%d nodes, want the fixture's 10", len(s.Nodes))
	}
	gpuRE := regexp.MustCompile(`^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	want := map[string]string{"node-t4-0": "Tesla T4", "node-v100-0": "Tesla V100-SXM2-16GB",
		"node-g2-0": "Alibaba-G2-undisclosed", "node-p100-0": "Tesla P100-PCIE-16GB"}
	timeSliced := 0
	for _, n := range s.Nodes {
		if m, ok := want[n.Name]; ok && n.GPUs[0].Model != m {
			t.Errorf("%s: model %q, want %q", n.Name, n.GPUs[0].Model, m)
		}
		if n.Labels[labelTraceModel] == "" || n.Labels[labelGPUProduct] == "" {
			t.Errorf("%s: labels %v lack the trace model or product", n.Name, n.Labels)
		}
		for _, g := range n.GPUs {
			if !gpuRE.MatchString(g.UUID) {
				t.Errorf("%s: GPU UUID %q is not in NVIDIA's form", n.Name, g.UUID)
			}
			if len(g.MIG) > 0 {
				t.Errorf("%s: MIG devices without --mig-share", n.Name)
			}
		}
		if n.GPUs[0].Replicas > 0 {
			timeSliced++
			if n.Labels[labelSharingStrategy] != "time-slicing" {
				t.Errorf("%s: time-sliced GPUs without the sharing label: %v", n.Name, n.Labels)
			}
		}
	}
	if timeSliced == 0 {
		t.Error("no node is time-sliced although the window holds fractions")
	}
}

func TestAlibabaPlacementFailure(t *testing.T) {
	_, err := Alibaba(
		mustLoad(t, LoadAlibabaPods, fixture("alibaba_crowded_pods.csv")),
		mustLoad(t, LoadAlibabaNodes, fixture("alibaba_tiny_nodes.csv")),
		mustLoad(t, LoadOrgs, fixture("orgs.csv")), fixtureOptions(0, 1000, 1))
	var pe *PlacementError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *PlacementError", err)
	}
	// pod-d needs 4 GPUs of a 2-GPU node; pod-c and pod-e come while pod-a
	// and pod-b hold both GPUs; pod-f starts as they end.
	if got, want := pe.Names(), []string{"pod-d", "pod-c", "pod-e"}; !slices.Equal(got, want) {
		t.Errorf("unplaced %v, want %v", got, want)
	}
	if !containsAll(err.Error(), "3 pod(s) could not be placed", "pod-c", "pod-d (needs 4 GPU(s) on one node", "pod-e") {
		t.Errorf("message %q does not list every pod", err)
	}
}

func TestAlibabaDeterminism(t *testing.T) {
	opt := fixtureOptions(1000, 1000, 11)
	s1, t1 := importAlibabaFixture(t, opt)
	s2, _ := importAlibabaFixture(t, opt)
	b1, b2 := encode(t, s1), encode(t, s2)
	if !bytes.Equal(b1, b2) {
		t.Fatal("same seed, different scenarios")
	}
	opt.Seed = 12
	s3, t3 := importAlibabaFixture(t, opt)
	if bytes.Equal(b1, encode(t, s3)) {
		t.Fatal("different seeds, identical scenarios")
	}
	sameTenants := true
	for pod, tn := range t1 {
		if t3[pod] != tn {
			sameTenants = false
		}
	}
	if sameTenants {
		t.Errorf("seeds 11 and 12 give the same tenants: %v", t1)
	}
	if s1.Pods[0].UID == s3.Pods[0].UID || s1.Nodes[0].GPUs[0].UUID == s3.Nodes[0].GPUs[0].UUID {
		t.Error("pod UIDs or GPU UUIDs do not depend on the seed")
	}
}

// TestAlibabaAttribution checks that the default attribution rules resolve
// the tenant each pod was given.
func TestAlibabaAttribution(t *testing.T) {
	for _, orgs := range [][]Org{mustLoad(t, LoadOrgs, fixture("orgs.csv")), UniformOrgs()} {
		s, tenants, err := buildAlibaba(
			mustLoad(t, LoadAlibabaPods, fixture("alibaba_pods.csv")),
			mustLoad(t, LoadAlibabaNodes, fixture("alibaba_nodes.csv")), orgs, fixtureOptions(1000, 1000, 5))
		if err != nil {
			t.Fatal(err)
		}
		allocs, err := s.Allocations(attribution.Default())
		if err != nil {
			t.Fatal(err)
		}
		if len(allocs) == 0 {
			t.Fatal("no allocations")
		}
		for _, a := range allocs {
			want, ok := tenants[a.Pod.Name]
			if !ok {
				t.Fatalf("%s: no tenant", a.Pod.Name)
			}
			wantQueue := want.project
			if want.notebook {
				wantQueue = ""
			}
			if a.User != want.user || a.Project != want.project || a.Queue != wantQueue {
				t.Errorf("%s resolves to user %q project %q queue %q; want %q %q %q",
					a.Pod.Name, a.User, a.Project, a.Queue, want.user, want.project, wantQueue)
			}
			if !strings.HasPrefix(want.project, "org-") && !strings.HasPrefix(want.project, "project-") {
				t.Errorf("%s: project %q is not from the organisations", a.Pod.Name, want.project)
			}
			if !strings.HasPrefix(want.user, want.project+"-u") {
				t.Errorf("%s: user %q is not of project %q", a.Pod.Name, want.user, want.project)
			}
		}
	}
}

func TestAlibabaMIG(t *testing.T) {
	opt := fixtureOptions(1000, 1000, 3)
	opt.MIGShare = 0.34 // round(0.34 × 6 G2 nodes) = 2
	s, _ := importAlibabaFixture(t, opt)
	migNodes := map[string]bool{}
	for _, n := range s.Nodes {
		if n.Labels[labelMIGConfig] == "" {
			continue
		}
		migNodes[n.Name] = true
		if n.Labels[labelTraceModel] != "G2" || len(n.GPUs) != 8 {
			t.Errorf("%s retyped, but it is not an 8-GPU node: %v", n.Name, n.Labels)
		}
		for _, g := range n.GPUs {
			if g.Model != MIGModel || len(g.MIG) != len(migLayout) {
				t.Errorf("%s GPU %d: model %q with %d MIG devices", n.Name, g.Index, g.Model, len(g.MIG))
			}
		}
	}
	if len(migNodes) != 2 {
		t.Fatalf("%d MIG nodes, want 2", len(migNodes))
	}
	// The lightest slice of the all-balanced layout that weighs at least
	// the fraction: 1g.10gb = 143, 2g.20gb = 286, 3g.40gb = 500 milli.
	want := map[string]string{
		"pod-tiny":   "nvidia.com/mig-1g.10gb", // 110
		"pod-frac-c": "nvidia.com/mig-2g.20gb", // 230
		"pod-frac-b": "nvidia.com/mig-3g.40gb", // 320
		"pod-frac-a": "nvidia.com/mig-3g.40gb", // 460
		"pod-frac-d": accounting.ResourceGPUShared,
		"pod-whole":  accounting.ResourceGPU,
		"pod-eight":  accounting.ResourceGPU,
	}
	pods := podByName(s)
	for name, res := range want {
		p := pods[name]
		if p.Devices[0].Resource != res {
			t.Errorf("%s holds %s, want %s", name, p.Devices[0].Resource, res)
		}
		if onMIG := migNodes[p.Node]; onMIG != strings.HasPrefix(res, accounting.ResourceMIGPrefix) {
			t.Errorf("%s on node %s (MIG %v) holds %s", name, p.Node, onMIG, res)
		}
	}
}

func TestAlibabaEmptyWindow(t *testing.T) {
	s, _ := importAlibabaFixture(t, fixtureOptions(100000, 60, 1))
	if len(s.Pods) != 0 || len(s.Nodes) != 10 {
		t.Errorf("empty window: %d pods, %d nodes; want 0 and the 10 nodes", len(s.Pods), len(s.Nodes))
	}
}
