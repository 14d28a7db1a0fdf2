package intervals

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// A synthetic exporter, independent of exporters/sim, for random worlds:
// allocations at whole seconds, scrapes at jittered millisecond times,
// outages during which scrapes fail, restarts after which the exporter has
// forgotten what ended before it came back, and an ended-allocation
// retention.
type synthNode struct {
	name     string
	allocs   []truthAlloc
	downs    [][2]int64 // ms, [from, to): scrapes fail
	restarts []int64    // ms: ends of the restarts (each also a down)
}

func (n *synthNode) scrape(rng *rand.Rand, ms, retention int64) observe.Scrape {
	for _, d := range n.downs {
		if ms >= d[0] && ms < d[1] {
			return observe.Scrape{Target: n.name, Time: ms}
		}
	}
	forget := int64(-1 << 62)
	for _, r := range n.restarts {
		if r <= ms {
			forget = max(forget, r)
		}
	}
	s := observe.Scrape{Target: n.name, Time: ms, OK: true}
	for _, a := range n.allocs {
		if a.start*1000 > ms {
			continue
		}
		x := observe.Alloc{AllocKey: a.key, Attrs: observe.Attrs{Class: "gpu", Project: a.name}, Start: a.start,
			WeightMilli: a.weight, Devices: 1, ActivityMilli: -1}
		switch {
		case a.end == 0 || ms < a.end*1000:
			x.ActivityMilli = rng.Int64N(1001)
		case ms-a.end*1000 < retention && a.end*1000 > forget:
			x.End = a.end
		default:
			continue
		}
		s.Allocs = append(s.Allocs, x)
	}
	// Exporters list their series in no particular order.
	rng.Shuffle(len(s.Allocs), func(i, j int) { s.Allocs[i], s.Allocs[j] = s.Allocs[j], s.Allocs[i] })
	return s
}

// randomWorld builds a random world over six hours and its scrapes.
func randomWorld(seed uint64) (*world, []observe.Scrape, time.Duration) {
	rng := rand.New(rand.NewPCG(seed, 99))
	const hours = 6
	from := base
	to := from + hours*3600
	interval := []int64{5, 15, 30, 60}[rng.IntN(4)] * 1000
	retention := []int64{120, 600, 3600}[rng.IntN(3)] * 1000
	w := &world{okTimes: map[string][]int64{}, restarts: map[string][]int64{}, retention: retention, from: from, to: to}
	var nodes []*synthNode
	for i := range 1 + rng.IntN(3) {
		n := &synthNode{name: fmt.Sprintf("node-%d", i)}
		for j := range 10 + rng.IntN(30) {
			start := from - 600 + rng.Int64N(hours*3600)
			var life int64
			switch rng.IntN(3) {
			case 0:
				life = rng.Int64N(2 * interval / 1000) // shorter than two scrapes
			case 1:
				life = rng.Int64N(1800)
			default:
				life = rng.Int64N(4 * 3600)
			}
			end := start + life
			if end > to {
				end = 0
			}
			a := truthAlloc{key: observe.AllocKey{Node: n.name, Device: fmt.Sprintf("GPU-%d", rng.IntN(4)),
				PodUID: fmt.Sprintf("pod-%d-%d", i, j), Resource: "nvidia.com/gpu"},
				start: start, end: end, weight: []int64{1000, 143, 250, 500}[rng.IntN(4)], name: fmt.Sprintf("p%d", j%3)}
			n.allocs = append(n.allocs, a)
			w.allocs = append(w.allocs, a)
		}
		for range rng.IntN(4) {
			at := (from + 600 + rng.Int64N(hours*3600-7200)) * 1000
			if rng.IntN(2) == 0 {
				d := (5 + rng.Int64N(180)) * 1000
				n.downs = append(n.downs, [2]int64{at, at + d})
				n.restarts = append(n.restarts, at+d)
				w.restarts[n.name] = append(w.restarts[n.name], at+d)
			} else {
				d := min((30+rng.Int64N(7200))*1000, (to-600)*1000-at)
				n.downs = append(n.downs, [2]int64{at, at + d})
			}
		}
		nodes = append(nodes, n)
	}
	var scrapes []observe.Scrape
	for t := from * 1000; t <= to*1000; t += interval {
		for _, n := range nodes {
			s := n.scrape(rng, t+rng.Int64N(1000), retention)
			if s.OK {
				w.okTimes[n.name] = append(w.okTimes[n.name], s.Time)
			}
			scrapes = append(scrapes, s)
		}
	}
	return w, scrapes, time.Duration(interval) * time.Millisecond
}

// TestRandomWorlds: in random worlds, the ledger follows the guarantees
// allocation by allocation, and the windows do not depend on the order in
// which scrapes arrive within the lag.
func TestRandomWorlds(t *testing.T) {
	var affected int
	var worst int64
	for seed := uint64(1); seed <= 40; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			w, scrapes, interval := randomWorld(seed)
			lag := interval + 2*time.Second
			cfg := Config{StaleAfter: -1}
			if seed%2 == 0 {
				cfg.StaleAfter = 0 // the default, an hour: shorter than some outages
			}
			ordered := func() []observe.Window {
				r := mustNew(t, cfg)
				var ws []observe.Window
				for _, s := range scrapes {
					r.Observe(s)
					ws = append(ws, r.Close((s.Time-lag.Milliseconds())/1000)...)
				}
				return append(ws, r.Close(w.to+300)...)
			}()
			a, wst := w.check(t, ordered)
			affected, worst = affected+a, max(worst, wst)

			// The same scrapes delivered in shuffled batches of one lag.
			rng := rand.New(rand.NewPCG(seed, 1))
			r := mustNew(t, cfg)
			var ws []observe.Window
			for i := 0; i < len(scrapes); {
				j := i
				for j < len(scrapes) && scrapes[j].Time-scrapes[i].Time < (lag-interval).Milliseconds() {
					j++
				}
				batch := append([]observe.Scrape(nil), scrapes[i:j]...)
				rng.Shuffle(len(batch), func(a, b int) { batch[a], batch[b] = batch[b], batch[a] })
				for _, s := range batch {
					r.Observe(s)
				}
				ws = append(ws, r.Close((scrapes[j-1].Time-lag.Milliseconds())/1000)...)
				i = j
			}
			ws = append(ws, r.Close(w.to+300)...)
			diffWindows(t, ws, ordered)
		})
	}
	if affected == 0 {
		t.Error("no allocation lost time in any world: the faults test nothing")
	}
	t.Logf("%d allocations lost time, at most %d s, all within their bounds", affected, worst)
}
