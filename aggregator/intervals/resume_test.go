package intervals

import (
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// sameIntervals compares two ledgers' intervals on what they say of time:
// start, end and whether the end is exact.
func sameIntervals(t *testing.T, got, want *ledger) {
	t.Helper()
	if len(got.iv) != len(want.iv) {
		t.Errorf("%d intervals, want %d", len(got.iv), len(want.iv))
	}
	bad := 0
	for k, w := range want.iv {
		g, ok := got.iv[k]
		if !ok || g.Start != w.Start || g.End != w.End || g.EndExact != w.EndExact || g.WeightMilli != w.WeightMilli || g.Attrs != w.Attrs {
			if bad++; bad <= 5 {
				t.Errorf("%s: %+v, want %+v", keyText(k), g, w)
			}
		}
	}
}

// fromRound is the index of the first round at or after ms.
func fromRound(rounds []round, ms int64) int {
	return sort.Search(len(rounds), func(i int) bool { return rounds[i].at >= ms })
}

// TestResumeAfterCrash: an aggregator that crashes at a random point, after
// the ledger applied windows up to some watermark, and restarts from the
// ledger (Seed with its open intervals) ends with the ledger of one that
// never crashed:
//   - when the source re-delivers the scrapes from shortly before the
//     watermark (Prometheus, the replay), windows, usage, energy and
//     capacity included;
//   - when it only sees the exporters again after a downtime shorter than
//     their ended-allocation retention (direct scrape), the intervals.
func TestResumeAfterCrash(t *testing.T) {
	// Scrapes 7 s off the window grid, so that a step straddles every
	// window boundary.
	f := fixtureOffset(t, "gen-1-offset", 7*time.Second, func() *scenario.Scenario {
		return generated(t, 1, 4, 12*time.Hour)
	})
	const lag = 30 * time.Second
	rng := rand.New(rand.NewPCG(5, 6))
	for _, cfg := range []Config{{Cluster: f.c.s.Cluster}, {Cluster: f.c.s.Cluster, StaleAfter: 10 * time.Minute}} {
		_, full := replay(t, cfg, f.rounds, lag)
		want := ledgerOf(full)
		for trial := range 12 {
			k := 1 + rng.IntN(len(full)-20)
			wm := full[k].From
			crashed := ledgerOf(full[:k])

			t.Run("re-delivered", func(t *testing.T) {
				l := ledgerOf(full[:k])
				r := mustNew(t, cfg)
				if err := r.Seed(wm, crashed.open()); err != nil {
					t.Fatal(err)
				}
				ws := feed(r, f.rounds[fromRound(f.rounds, wm*1000-2*time.Minute.Milliseconds()):], lag, true)
				l.apply(ws...)
				sameIntervals(t, l, want)
				if len(ws) != len(full)-k || ws[0].From != wm {
					t.Fatalf("trial %d: %d windows from %d, want %d from %d", trial, len(ws), ws[0].From, len(full)-k, wm)
				}
				for i, w := range ws {
					x := full[k+i]
					if !reflect.DeepEqual(w.Usage, x.Usage) || !reflect.DeepEqual(w.Energy, x.Energy) || !reflect.DeepEqual(w.Capacity, x.Capacity) {
						t.Errorf("trial %d (watermark %d): window %d: usage, energy or capacity differ from the run without a crash", trial, wm, w.From)
						break
					}
				}
			})

			t.Run("after a downtime", func(t *testing.T) {
				l := ledgerOf(full[:k])
				r := mustNew(t, cfg)
				if err := r.Seed(wm, crashed.open()); err != nil {
					t.Fatal(err)
				}
				down := time.Duration(rng.IntN(45*60)) * time.Second
				ws := feed(r, f.rounds[fromRound(f.rounds, wm*1000+down.Milliseconds()):], lag, true)
				l.apply(ws...)
				sameIntervals(t, l, want)
			})
		}
	}
}

// TestSeedKeepsOpenIntervals: a seeded interval is carried in every window
// and ends at its last sighting when its exporter answers without it.
func TestSeedKeepsOpenIntervals(t *testing.T) {
	r := mustNew(t, Config{})
	seeded := observe.Interval{AllocKey: key("a"), Attrs: observe.Attrs{Class: "gpu", Project: "p-a"},
		Start: base - 600, LastSeen: (base - 20) * 1000, WeightMilli: 1000, Devices: 1}
	if err := r.Seed(base, []observe.Interval{seeded}); err != nil {
		t.Fatal(err)
	}
	ws := r.Close(base + 600)
	if len(ws) != 2 || len(ws[0].Intervals) != 1 || ws[0].Intervals[0] != seeded || len(ws[1].Intervals) != 1 {
		t.Fatalf("windows %+v: the seeded interval should be carried open", ws)
	}
	r.Observe(at(610))
	ws = r.Close(base + 900)
	if got := ws[0].Intervals; len(got) != 1 || got[0].End != base-20 || got[0].EndExact {
		t.Fatalf("intervals %+v, want the seeded one ended at its last sighting", got)
	}
	if r.Stats().Open != 0 {
		t.Errorf("%d intervals held after the final emission", r.Stats().Open)
	}
}
