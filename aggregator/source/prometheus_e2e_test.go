package source_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/aggregator/source"
	"github.com/gpuledger/gpuledger/aggregator/source/backfill"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters"
	"github.com/gpuledger/gpuledger/exporters/sim"
	"github.com/gpuledger/gpuledger/internal/promtest"
	"github.com/gpuledger/gpuledger/sim/clock"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// TestPrometheusEndToEnd backfills small.yaml into a real Prometheus and
// reads it back through the Prometheus source: every allocation must come
// back with its exact start, end, weight and device count, every scrape at
// its instant, and the scenario's faults as failed scrapes.
func TestPrometheusEndToEnd(t *testing.T) {
	s, err := scenario.Load("../../testdata/scenarios/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	base := promtest.Start(t, s)
	p, err := source.NewPrometheus(source.PrometheusOptions{URL: base, Cluster: s.Cluster, Job: backfill.DefaultJob,
		Backoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	scrapes, err := p.Fetch(context.Background(), s.Start, s.End.Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fetched %d scrapes in %s", len(scrapes), time.Since(begin))

	// Every node at every instant of the grid, in time order.
	interval := s.ScrapeInterval.D()
	instants := int(s.End.Sub(s.Start)/interval) + 1
	if len(scrapes) != instants*len(s.Nodes) {
		t.Errorf("%d scrapes, want %d instants × %d nodes", len(scrapes), instants, len(s.Nodes))
	}
	failed := map[string]int{}
	for i, sc := range scrapes {
		if (sc.Time-s.Start.UnixMilli())%interval.Milliseconds() != 0 || (i > 0 && sc.Time < scrapes[i-1].Time) {
			t.Fatalf("scrape %d of %s at %d: off the grid or out of order", i, sc.Target, sc.Time)
		}
		if !sc.OK {
			failed[sc.Target]++
		}
	}
	// The faults of small.yaml: a 30 s exporter restart of a100-mig-01
	// (two instants) and a 5 min scrape gap of t4-01 (twenty).
	if want := map[string]int{"a100-mig-01": 2, "t4-01": 20}; fmt.Sprint(failed) != fmt.Sprint(want) {
		t.Errorf("failed scrapes %v, want %v", failed, want)
	}

	// Every allocation with its exact figures.
	type seen struct {
		start, weight, devices map[int64]bool
		end                    int64
	}
	got := map[observe.AllocKey]*seen{}
	for _, sc := range scrapes {
		for _, a := range sc.Allocs {
			g := got[a.AllocKey]
			if g == nil {
				g = &seen{start: map[int64]bool{}, weight: map[int64]bool{}, devices: map[int64]bool{}}
				got[a.AllocKey] = g
			}
			g.start[a.Start], g.weight[a.WeightMilli], g.devices[a.Devices] = true, true, true
			if a.End != 0 {
				g.end = a.End
			}
		}
	}
	if len(got) != len(allocs) {
		t.Errorf("%d allocations seen, want %d", len(got), len(allocs))
	}
	for i := range allocs {
		a := &allocs[i]
		k := observe.AllocKey{Node: a.Node, Device: a.DeviceID, PodUID: a.Pod.UID, Resource: a.Resource}
		g := got[k]
		if g == nil {
			t.Errorf("allocation %s/%s on %s (%s) never seen", a.Pod.Namespace, a.Pod.Name, a.Node, a.Resource)
			continue
		}
		var end int64 // seen only when it falls within the scenario
		if !a.Open() && !a.End.After(s.End) {
			end = a.End.Unix()
		}
		if len(g.start) != 1 || !g.start[a.Start.Unix()] || len(g.weight) != 1 || !g.weight[a.WeightMilli] ||
			len(g.devices) != 1 || !g.devices[a.Devices] || g.end != end {
			t.Errorf("allocation %s/%s on %s: starts %v weights %v devices %v end %d; want %d, %d, %d, %d",
				a.Pod.Namespace, a.Pod.Name, a.Node, g.start, g.weight, g.devices, g.end,
				a.Start.Unix(), a.WeightMilli, a.Devices, end)
		}
	}

	// Prometheus gives the very scrapes the exporters serve directly.
	byKey := map[string]observe.Scrape{}
	for _, sc := range scrapes {
		byKey[fmt.Sprint(sc.Target, sc.Time)] = sc
	}
	for _, n := range s.Nodes {
		src, err := sim.New(s, allocs, n.Name, clock.Fixed(s.Start), sim.Options{})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := exporters.NewSimNode(src, exporters.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for at := s.Start; !at.After(s.End); at = at.Add(5 * time.Minute) {
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/metrics?at=%d", at.Unix()), nil))
			want := observe.Scrape{Target: n.Name, Time: at.UnixMilli()}
			if rec.Code == http.StatusOK {
				if want, err = source.ParseText(n.Name, rec.Body, at); err != nil {
					t.Fatal(err)
				}
			}
			if got := byKey[fmt.Sprint(n.Name, at.UnixMilli())]; !reflect.DeepEqual(got, want) {
				t.Errorf("%s at %s:\nthrough Prometheus %+v\n            direct %+v", n.Name, at.UTC().Format(time.RFC3339), got, want)
			}
		}
	}
}
