package intervals

import (
	"testing"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// TestUnknownIsNotAbsent: an allocation whose series could not be read in
// one scrape (listed in Scrape.Unknown) counts as seen in it; absent from
// the same scrape it would have ended, inferred, at its previous sighting.
func TestUnknownIsNotAbsent(t *testing.T) {
	key := observe.AllocKey{Node: "n1", Device: "GPU-1", PodUID: "u1", Resource: "nvidia.com/gpu"}
	alloc := observe.Alloc{AllocKey: key, Attrs: observe.Attrs{Class: "gpu", Project: "p"}, Start: 3600,
		WeightMilli: 1000, Devices: 1, ActivityMilli: 500}
	run := func(unknown bool) observe.Interval {
		r, err := New(Config{Cluster: "c", ScrapeInterval: 15e9})
		if err != nil {
			t.Fatal(err)
		}
		r.Observe(observe.Scrape{Target: "n1", Time: 3600_000, OK: true, Allocs: []observe.Alloc{alloc}})
		mid := observe.Scrape{Target: "n1", Time: 3615_000, OK: true}
		if unknown {
			mid.Unknown = []observe.AllocKey{key}
		}
		r.Observe(mid)
		r.Observe(observe.Scrape{Target: "n1", Time: 3630_000, OK: true}) // gone for good
		ws := r.Close(3900)
		if len(ws) != 1 || len(ws[0].Intervals) != 1 {
			t.Fatalf("windows %+v", ws)
		}
		return ws[0].Intervals[0]
	}
	if iv := run(true); iv.End != 3615 || iv.EndExact {
		t.Errorf("unknown at 3615 s, gone at 3630 s: end %d (exact %v), want 3615 inferred", iv.End, iv.EndExact)
	}
	if iv := run(false); iv.End != 3600 || iv.EndExact {
		t.Errorf("absent at 3615 s: end %d (exact %v), want 3600 inferred", iv.End, iv.EndExact)
	}
}
