package trace

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/sim/scenario"
)

func TestOptionsCheck(t *testing.T) {
	ok := Options{Epoch: testEpoch, From: time.Hour, Duration: 24 * time.Hour}
	cases := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"valid", func(*Options) {}, ""},
		{"no epoch", func(o *Options) { o.Epoch = time.Time{} }, "missing epoch"},
		{"fractional epoch", func(o *Options) { o.Epoch = o.Epoch.Add(time.Millisecond) }, "is not a whole second"},
		{"negative offset", func(o *Options) { o.From = -time.Second }, "negative window offset"},
		{"fractional offset", func(o *Options) { o.From = 1500 * time.Millisecond }, "window offset 1.5s is not a whole number of seconds"},
		{"no duration", func(o *Options) { o.Duration = 0 }, "window duration 0s is not positive"},
		{"fractional duration", func(o *Options) { o.Duration = time.Minute + time.Millisecond }, "is not a whole number of seconds"},
		{"bad scrape", func(o *Options) { o.ScrapeInterval = 1500 * time.Millisecond }, "scrape interval 1.5s"},
		{"MIG share", func(o *Options) { o.MIGShare = 1.5 }, "MIG share 1.5 outside [0, 1]"},
		{"MIG NaN", func(o *Options) { o.MIGShare = math.NaN() }, "MIG share NaN"},
	}
	for _, c := range cases {
		o := ok
		c.edit(&o)
		w, err := o.check()
		if c.want == "" {
			if err != nil || w != (window{3600, 3600 + 86400}) {
				t.Errorf("%s: window %+v, err %v", c.name, w, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

func TestIDs(t *testing.T) {
	uidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	devRE := regexp.MustCompile(`^(GPU|MIG)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	seen := map[string]string{}
	for _, seed := range []uint64{0, 1, 2} {
		for _, pod := range []string{"a", "b", "openb-pod-0001"} {
			u := podUID(seed, "c", pod)
			if !uidRE.MatchString(u) {
				t.Errorf("podUID = %q, not an RFC 4122 version 5 UUID", u)
			}
			key := fmt.Sprint(seed, pod)
			if other, dup := seen[u]; dup {
				t.Errorf("UID %s for %s and %s", u, key, other)
			}
			seen[u] = key
			for _, prefix := range []string{"GPU", "MIG"} {
				d := deviceUUID(prefix, seed, "c", pod, 0)
				if !devRE.MatchString(d) || !strings.HasPrefix(d, prefix+"-") {
					t.Errorf("deviceUUID = %q", d)
				}
				if other, dup := seen[d]; dup {
					t.Errorf("UUID %s for %s and %s", d, key, other)
				}
				seen[d] = key
			}
		}
	}
	first, again := podUID(1, "c", "a"), podUID(1, "c", "a")
	if first != again || first == podUID(1, "d", "a") {
		t.Error("pod UIDs are not a function of seed, cluster and name")
	}
}

func TestPickerShares(t *testing.T) {
	orgs := mustLoad(t, LoadOrgs, fixture("orgs.csv")) // 700, 200, 90.5, 9.5 of 1000
	p, err := newPicker(orgs)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	counts := map[string]int{}
	users := map[string]int{}
	for range n {
		o := p.pick(r)
		counts[o.Project]++
		if o.Project == "org-7" {
			users[pickUser(r, o.Project, usersIn(o.Jobs))]++
		}
	}
	want := map[string]float64{"org-7": 0.70, "org-3": 0.20, "org-12": 0.0905, "org-40": 0.0095}
	for proj, share := range want {
		got := float64(counts[proj]) / n
		if math.Abs(got-share) > 0.02 {
			t.Errorf("%s drawn %.3f of the time, want %.3f", proj, got, share)
		}
	}
	// org-7 has 1000 jobs: bits.Len(1000) = 10 users, Zipf-distributed.
	if len(users) != 10 {
		t.Errorf("org-7 has %d users, want 10", len(users))
	}
	for k := 2; k <= 10; k++ {
		if u := fmt.Sprintf("org-7-u%02d", k); users[u] >= users["org-7-u01"] {
			t.Errorf("user %s (%d pods) is not behind org-7-u01 (%d)", u, users[u], users["org-7-u01"])
		}
	}
}

func TestUsersIn(t *testing.T) {
	for _, c := range []struct {
		jobs int64
		want int
	}{{0, 1}, {1, 1}, {2, 2}, {1000, 10}, {181107, 18}, {-4, 1}} {
		if got := usersIn(c.jobs); got != c.want {
			t.Errorf("usersIn(%d) = %d, want %d", c.jobs, got, c.want)
		}
	}
}

func TestDNSLabel(t *testing.T) {
	for in, want := range map[string]string{"13": "13", "vc_6214e9": "vc-6214e9", "A B!": "a-b", "__": "x",
		strings.Repeat("a", 80): strings.Repeat("a", 50)} {
		if got := dnsLabel(in); got != want {
			t.Errorf("dnsLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

// testNodes makes nodes of the given GPU counts with GPU UUIDs GPU-<node>-<i>.
func testNodes(gpus ...int) []scenario.Node {
	var out []scenario.Node
	for i, n := range gpus {
		node := scenario.Node{Name: fmt.Sprintf("n%d", i)}
		for g := range n {
			node.GPUs = append(node.GPUs, scenario.GPU{Index: g, UUID: fmt.Sprintf("GPU-%d-%d", i, g), Model: "Tesla T4"})
		}
		out = append(out, node)
	}
	return out
}

func TestPlacer(t *testing.T) {
	cases := []struct {
		name   string
		nodes  []int
		reqs   []request
		want   []string // device IDs per request
		failed string   // unplaced requests, comma-separated
	}{
		{
			name:  "ends before starts at the same second",
			nodes: []int{1},
			reqs:  []request{{name: "a", start: 0, end: 10, gpus: 1}, {name: "b", start: 10, end: 20, gpus: 1}},
			want:  []string{"GPU-0-0", "GPU-0-0"},
		},
		{
			name:  "replica slots are reused once free",
			nodes: []int{1},
			reqs: []request{
				{name: "a", start: 0, end: 100, milli: 300},
				{name: "b", start: 0, end: 50, milli: 300},
				{name: "c", start: 60, end: 100, milli: 300},
				{name: "d", start: 70, end: 100, milli: 300},
			},
			want: []string{"GPU-0-0::0", "GPU-0-0::1", "GPU-0-0::1", "GPU-0-0::2"},
		},
		{
			name:  "best fit joins the fullest GPU that has room",
			nodes: []int{2},
			reqs: []request{
				{name: "a", start: 0, end: 100, milli: 600},
				{name: "b", start: 1, end: 100, milli: 500}, // does not fit with a
				{name: "c", start: 2, end: 100, milli: 400}, // fits both; a is fuller
			},
			want: []string{"GPU-0-0::0", "GPU-0-1::0", "GPU-0-0::1"},
		},
		{
			name:  "no more sharers than replicas",
			nodes: []int{2},
			reqs: func() []request {
				var rs []request
				for i := range SharedReplicas + 1 {
					rs = append(rs, request{name: fmt.Sprintf("p%02d", i), start: 0, end: 10, milli: 50})
				}
				return rs
			}(),
			want: append(func() []string {
				var ids []string
				for i := range SharedReplicas {
					ids = append(ids, fmt.Sprintf("GPU-0-0::%d", i))
				}
				return ids
			}(), "GPU-0-1::0"),
		},
		{
			name:  "a node serving whole GPUs takes no fractions",
			nodes: []int{2, 2},
			reqs:  []request{{name: "a", start: 0, end: 10, gpus: 1}, {name: "b", start: 1, end: 10, milli: 500}},
			want:  []string{"GPU-0-0", "GPU-1-0::0"},
		},
		{
			name:   "a time-sliced node takes no whole GPUs",
			nodes:  []int{2},
			reqs:   []request{{name: "a", start: 0, end: 10, milli: 500}, {name: "b", start: 1, end: 10, gpus: 1}},
			failed: "b",
		},
		{
			name:   "multi-GPU pods need one node",
			nodes:  []int{2, 2},
			reqs:   []request{{name: "a", start: 0, end: 10, gpus: 3}, {name: "b", start: 0, end: 10, gpus: 2}},
			failed: "a",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pl, err := newPlacer(testNodes(c.nodes...))
			if err != nil {
				t.Fatal(err)
			}
			out, err := pl.run(c.reqs)
			if c.failed != "" {
				var pe *PlacementError
				if !errors.As(err, &pe) || strings.Join(pe.Names(), ",") != c.failed {
					t.Fatalf("err = %v, want %s unplaced", err, c.failed)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range out {
				var ids []string
				for _, d := range a.devices {
					ids = append(ids, d.ID)
				}
				if got := strings.Join(ids, ","); got != c.want[i] {
					t.Errorf("%s holds %s, want %s", c.reqs[i].name, got, c.want[i])
				}
			}
		})
	}
}

func TestPlacerMIG(t *testing.T) {
	nodes := testNodes(0, 1) // n0 becomes the MIG node, n1 has one T4
	g := scenario.GPU{Index: 0, UUID: "GPU-mig", Model: MIGModel}
	for _, sl := range migLayout {
		g.MIG = append(g.MIG, scenario.MIGInstance{Profile: sl.profile, GI: sl.gi, UUID: fmt.Sprintf("MIG-%d", sl.gi)})
	}
	nodes[0].GPUs = []scenario.GPU{g}
	pl, err := newPlacer(nodes)
	if err != nil {
		t.Fatal(err)
	}
	reqs := []request{
		{name: "a", start: 0, end: 10, milli: 100}, // 1g.10gb (143)
		{name: "b", start: 0, end: 10, milli: 120}, // the other 1g.10gb
		{name: "c", start: 0, end: 10, milli: 130}, // 1g.10gb all taken: 2g.20gb
		{name: "d", start: 0, end: 10, milli: 400}, // 3g.40gb (500)
		{name: "e", start: 0, end: 10, milli: 450}, // no slice left that weighs 450: time-sliced T4
		{name: "f", start: 5, end: 10, gpus: 1},    // the MIG node serves no whole GPUs
	}
	_, err = pl.run(reqs)
	var pe *PlacementError
	if !errors.As(err, &pe) || strings.Join(pe.Names(), ",") != "f" {
		t.Fatalf("err = %v, want f unplaced", err)
	}
	pl, _ = newPlacer(nodes)
	out, err := pl.run(reqs[:5])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"nvidia.com/mig-1g.10gb MIG-9", "nvidia.com/mig-1g.10gb MIG-10", "nvidia.com/mig-2g.20gb MIG-3",
		"nvidia.com/mig-3g.40gb MIG-2", "nvidia.com/gpu.shared GPU-1-0::0"}
	for i, a := range out {
		if got := a.devices[0].Resource + " " + a.devices[0].ID; got != want[i] {
			t.Errorf("%s holds %s, want %s", reqs[i].name, got, want[i])
		}
	}
}
