package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters"
	"github.com/gpuledger/gpuledger/exporters/server"
	"github.com/gpuledger/gpuledger/exporters/sim"
	"github.com/gpuledger/gpuledger/sim/clock"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

const smallScenario = "../../testdata/scenarios/small.yaml"

func loadSmall(t testing.TB) (*scenario.Scenario, []scenario.Allocation) {
	t.Helper()
	s, err := scenario.Load(smallScenario)
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	return s, allocs
}

// serveCluster serves every node of s on loopback, all on clk, until the
// test ends. It returns the targets, named by node.
func serveCluster(t *testing.T, s *scenario.Scenario, allocs []scenario.Allocation, clk clock.Clock) []Target {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var targets []Target
	done := make(chan struct{}, len(s.Nodes))
	for _, n := range s.Nodes {
		src, err := sim.New(s, allocs, n.Name, clk, sim.Options{})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := exporters.NewSimNode(src, exporters.Options{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := server.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			if err := srv.Serve(ctx, l); err != nil {
				t.Errorf("serve %s: %v", n.Name, err)
			}
			done <- struct{}{}
		}()
		targets = append(targets, Target{Name: n.Name, URL: "http://" + l.Addr().String() + "/metrics"})
	}
	t.Cleanup(func() {
		cancel()
		for range s.Nodes {
			<-done
		}
	})
	return targets
}

// keyOf returns the key under which a scenario allocation is exported.
func keyOf(a *scenario.Allocation) observe.AllocKey {
	return observe.AllocKey{Node: a.Node, Device: a.DeviceID, PodUID: a.Pod.UID, Resource: a.Resource}
}

// checkAgainstScenario asserts that sc holds exactly the allocations of
// node the scenario has active at its time, or ended within the retention
// before it, with their exact starts, ends, weights and device counts.
func checkAgainstScenario(t *testing.T, s *scenario.Scenario, allocs []scenario.Allocation, node string, sc observe.Scrape) {
	t.Helper()
	at := time.UnixMilli(sc.Time)
	got := map[observe.AllocKey]observe.Alloc{}
	for _, a := range sc.Allocs {
		got[a.AllocKey] = a
	}
	want := 0
	for i := range allocs {
		a := &allocs[i]
		if a.Node != node || a.Start.After(at) {
			continue
		}
		ended := !a.Open() && !a.End.After(at)
		if ended && at.Sub(a.End) >= s.Retention() {
			continue
		}
		want++
		g, ok := got[keyOf(a)]
		if !ok {
			t.Errorf("%s at %s: allocation %s/%s %s missing", node, at.UTC().Format(time.RFC3339), a.Pod.Namespace, a.Pod.Name, a.DeviceID)
			continue
		}
		var end int64
		if ended {
			end = a.End.Unix()
		}
		if g.Start != a.Start.Unix() || g.End != end || g.WeightMilli != a.WeightMilli || g.Devices != a.Devices ||
			g.User != a.User || g.Project != a.Project || g.Class != string(a.Class) {
			t.Errorf("%s: allocation %s/%s: got start %d end %d weight %d devices %d user %s project %s class %s; want %d %d %d %d %s %s %s",
				node, a.Pod.Namespace, a.Pod.Name, g.Start, g.End, g.WeightMilli, g.Devices, g.User, g.Project, g.Class,
				a.Start.Unix(), end, a.WeightMilli, a.Devices, a.User, a.Project, a.Class)
		}
		if (g.ActivityMilli < 0) != ended || g.ActivityMilli > 1000 {
			t.Errorf("%s: allocation %s/%s: activity %d (ended %v)", node, a.Pod.Namespace, a.Pod.Name, g.ActivityMilli, ended)
		}
	}
	if len(sc.Allocs) != want {
		t.Errorf("%s at %s: %d allocations, want %d", node, at.UTC().Format(time.RFC3339), len(sc.Allocs), want)
	}
	n, _ := s.Node(node)
	if len(sc.GPUs) != len(n.GPUs) {
		t.Errorf("%s: %d GPUs, want %d", node, len(sc.GPUs), len(n.GPUs))
	}
	for _, g := range sc.GPUs {
		if g.Node != node || g.Model == "" || g.EnergyMillijoules < 0 {
			t.Errorf("%s: GPU %+v", node, g)
		}
	}
}

// TestParseSimulatedExporter parses what the simulated exporters of
// small.yaml serve, through HTTP, at instants that cover active, ended and
// offloaded allocations.
func TestParseSimulatedExporter(t *testing.T) {
	s, allocs := loadSmall(t)
	clk := clock.NewManual(s.Start)
	targets := serveCluster(t, s, allocs, clk)
	sc, err := NewScraper(StaticTargets(targets), ScraperOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []string{"2026-11-02T08:00:00Z", "2026-11-02T09:45:00Z", "2026-11-02T11:07:00Z", "2026-11-02T12:00:00Z", "2026-11-02T14:00:00Z"} {
		tm, _ := time.Parse(time.RFC3339, at)
		clk.Set(tm)
		results, err := sc.ScrapeAll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range results {
			if !r.OK || r.Err != nil || r.Time != tm.UnixMilli() {
				t.Errorf("%s at %s: OK %v time %d err %v", r.Target, at, r.OK, r.Time, r.Err)
				continue
			}
			checkAgainstScenario(t, s, allocs, r.Target, r.Scrape)
		}
	}
}

// TestParseGolden parses the committed golden expositions.
func TestParseGolden(t *testing.T) {
	files, err := filepath.Glob("../../testdata/golden/exporter-*.prom")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden expositions: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// The golden files mask what varies from run to run with
		// placeholders that are not valid exposition.
		var lines []string
		starts := 0
		for _, l := range strings.Split(string(raw), "\n") {
			if strings.Contains(l, "<") {
				continue
			}
			if strings.HasPrefix(l, FamilyStart+"{") {
				starts++
			}
			lines = append(lines, l)
		}
		sc, err := ParseText(filepath.Base(f), strings.NewReader(strings.Join(lines, "\n")), time.Time{})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(sc.Allocs) != starts || sc.Time <= 0 {
			t.Errorf("%s: %d allocations at %d, want %d", f, len(sc.Allocs), sc.Time, starts)
		}
	}
}
