package intervals

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// randomFaults places n faults of kind on random nodes of s, each lasting
// between minD and maxD, away from the scenario's first and last hour, at
// least gap apart on one node.
func randomFaults(s *scenario.Scenario, seed uint64, kind string, n int, minD, maxD, gap time.Duration) []scenario.Fault {
	rng := rand.New(rand.NewPCG(seed, 7))
	span := s.End.Sub(s.Start) - 2*time.Hour - maxD
	var out []scenario.Fault
	busy := map[string][]scenario.Fault{}
	for tries := 0; len(out) < n && tries < 100*n; tries++ {
		node := s.Nodes[rng.IntN(len(s.Nodes))].Name
		at := s.Start.Add(time.Hour + time.Duration(rng.Int64N(int64(span/time.Second)))*time.Second)
		d := minD + time.Duration(rng.Int64N(int64((maxD-minD)/time.Second)+1))*time.Second
		f := scenario.Fault{Kind: kind, Node: node, At: at, Duration: scenario.Duration(d)}
		ok := true
		for _, o := range busy[node] {
			if at.Before(o.At.Add(o.Duration.D()+gap)) && o.At.Before(at.Add(d+gap)) {
				ok = false
			}
		}
		if ok {
			busy[node] = append(busy[node], f)
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// expectation is what the documented guarantees say of one allocation.
type expectation struct {
	exact   bool  // the interval must equal the truth
	absent  bool  // never seen running: not in the ledger
	end     int64 // the inferred end (Unix seconds) when not exact
	maxLoss int64 // seconds the guarantee allows to lose
}

// truthAlloc is one true allocation: [start, end) in Unix seconds, end 0
// when it runs past the horizon.
type truthAlloc struct {
	key        observe.AllocKey
	start, end int64
	weight     int64
	name       string // for messages
}

// world is what the expectations depend on: the true allocations, which
// scrapes succeeded, when exporter restarts finished, the retention.
type world struct {
	allocs    []truthAlloc
	okTimes   map[string][]int64 // by node, ms, sorted
	restarts  map[string][]int64 // by node: ends of restarts, ms
	retention int64              // ms
	from, to  int64              // the horizon, Unix seconds
}

func worldOf(c *cluster, rounds []round) *world {
	w := &world{okTimes: map[string][]int64{}, restarts: map[string][]int64{}, retention: c.s.Retention().Milliseconds(),
		from: c.s.Start.Unix(), to: c.s.End.Unix()}
	for _, rd := range rounds {
		for _, s := range rd.scrapes {
			if s.OK {
				w.okTimes[s.Target] = append(w.okTimes[s.Target], s.Time)
			}
		}
	}
	for _, f := range c.s.Faults {
		if f.Kind == scenario.FaultExporterRestart {
			w.restarts[f.Node] = append(w.restarts[f.Node], f.At.Add(f.Duration.D()).UnixMilli())
		}
	}
	for i := range c.allocs {
		a := &c.allocs[i]
		ta := truthAlloc{key: keyOfAlloc(a), start: a.Start.Unix(), weight: a.WeightMilli, name: a.Pod.Name}
		if !a.End.IsZero() && !a.End.After(c.s.End) {
			ta.end = a.End.Unix()
		}
		w.allocs = append(w.allocs, ta)
	}
	return w
}

// expect works out, from the scrapes' outcomes and the exporters' rules
// (retention, forgetting at restarts), what each allocation's interval
// must be: exact when a successful scrape shows its end series (within the
// retention, not forgotten by a restart), else ended at the last successful
// scrape before its end (or absent when it started after it), the loss
// bounded by the time from that scrape to the restart's end or to the
// retention's horizon.
func (w *world) expect() map[observe.AllocKey]expectation {
	out := map[observe.AllocKey]expectation{}
	for _, a := range w.allocs {
		if a.end == 0 {
			out[a.key] = expectation{exact: true}
			continue
		}
		e := a.end * 1000
		ts := w.okTimes[a.key.Node]
		j := sort.Search(len(ts), func(i int) bool { return ts[i] >= e })
		if j == len(ts) {
			out[a.key] = expectation{exact: true} // no scrape after it: a fixture error, caught by the check
			continue
		}
		f := ts[j]
		lastRestart := int64(-1 << 62)
		for _, r := range w.restarts[a.key.Node] {
			if r <= f {
				lastRestart = max(lastRestart, r)
			}
		}
		if f-e < w.retention && e > lastRestart {
			out[a.key] = expectation{exact: true}
			continue
		}
		limit := int64(-1 << 62)
		if e <= lastRestart {
			limit = lastRestart
		}
		if f-e >= w.retention {
			limit = max(limit, f-w.retention)
		}
		b := int64(-1)
		if j > 0 {
			b = ts[j-1]
		}
		if b < a.start*1000 {
			out[a.key] = expectation{absent: true, maxLoss: (limit - b + 999) / 1000}
			continue
		}
		out[a.key] = expectation{end: b / 1000, maxLoss: (limit - b + 999) / 1000}
	}
	return out
}

// check compares the ledger with the expectations: exact where the
// guarantee says exact, else the inferred end at the last sighting and a
// loss within the bound; never more time than the truth, and no interval
// the truth does not have. It returns how many allocations lost time and
// the largest loss.
func (w *world) check(t *testing.T, ws []observe.Window) (affected int, worst int64) {
	t.Helper()
	l := ledgerOf(ws)
	exp := w.expect()
	known := map[observe.AllocKey]bool{}
	errs := 0
	errorf := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 10 {
			t.Errorf(format, args...)
		}
	}
	var gotTotal, wantTotal int64
	for _, a := range w.allocs {
		known[a.key] = true
		x := exp[a.key]
		in, ok := l.iv[a.key]
		end := a.end
		if end == 0 {
			end = w.to
		}
		trueSecs := max(min(end, w.to)-max(a.start, w.from), 0)
		wantTotal += a.weight * trueSecs
		if ok {
			gotTotal += in.WeightMilli * l.seconds(in, w.from, w.to)
		}
		switch {
		case x.exact:
			if !ok || in.Start != a.start || in.End != a.end || in.EndExact != (a.end != 0) || in.WeightMilli != a.weight {
				errorf("%s (%s): %+v, want exactly [%d, %d)", keyText(a.key), a.name, in, a.start, a.end)
			}
			continue
		case x.absent:
			affected++
			worst = max(worst, trueSecs)
			if ok {
				errorf("%s: %+v, but it was never seen running and its end series was gone", keyText(a.key), in)
			}
			if trueSecs > x.maxLoss {
				errorf("%s: lost %d s, the bound is %d s", keyText(a.key), trueSecs, x.maxLoss)
			}
			continue
		}
		affected++
		if !ok || in.Start != a.start || in.End != x.end || in.EndExact {
			errorf("%s: %+v, want [%d, %d) inferred", keyText(a.key), in, a.start, x.end)
			continue
		}
		loss := trueSecs - l.seconds(in, w.from, w.to)
		worst = max(worst, loss)
		if loss < 0 || loss > x.maxLoss {
			errorf("%s: lost %d s, the bound is %d s", keyText(a.key), loss, x.maxLoss)
		}
	}
	for k := range l.iv {
		if !known[k] {
			errorf("interval %s matches no true allocation", keyText(k))
		}
	}
	if gotTotal > wantTotal {
		errorf("ledger %d milli-GPU-s is more than the truth %d", gotTotal, wantTotal)
	}
	return affected, worst
}

func TestFaultGuarantees(t *testing.T) {
	cases := []struct {
		name      string
		seed      uint64
		kind      string
		n         int
		minD      time.Duration
		maxD      time.Duration
		retention time.Duration
		spacing   time.Duration // between two faults of one node
		cfg       Config
		exact     bool // every allocation exact
	}{
		{name: "scrape gaps shorter than the retention are exact", seed: 11, kind: scenario.FaultScrapeGap, n: 12,
			minD: 5 * time.Minute, maxD: 50 * time.Minute, retention: time.Hour, exact: true},
		{name: "scrape gaps longer than the retention lose at most the gap less the retention", seed: 12, kind: scenario.FaultScrapeGap,
			n: 12, minD: 20 * time.Minute, maxD: 90 * time.Minute, retention: 10 * time.Minute},
		{name: "exporter restarts lose at most up to the restart's end", seed: 13, kind: scenario.FaultExporterRestart,
			n: 250, minD: 5 * time.Second, maxD: 2 * time.Minute, retention: time.Hour, spacing: 5 * time.Minute},
		{name: "gaps longer than StaleAfter but shorter than the retention are still exact", seed: 14, kind: scenario.FaultScrapeGap,
			n: 10, minD: 20 * time.Minute, maxD: 50 * time.Minute, retention: time.Hour, cfg: Config{StaleAfter: 10 * time.Minute}, exact: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := fixtureOf(t, fmt.Sprintf("faults-%d", tc.seed), func() *scenario.Scenario {
				s := generated(t, tc.seed, 4, 12*time.Hour)
				return withFaults(s, tc.retention, randomFaults(s, tc.seed, tc.kind, tc.n, tc.minD, tc.maxD, cmp.Or(tc.spacing, 2*time.Hour))...)
			})
			if len(f.c.s.Faults) < tc.n/2 {
				t.Fatalf("only %d faults placed", len(f.c.s.Faults))
			}
			tc.cfg.Cluster = f.c.s.Cluster
			_, ws := replay(t, tc.cfg, f.rounds, 30*time.Second)
			affected, worst := worldOf(f.c, f.rounds).check(t, ws)
			switch {
			case tc.exact && affected > 0:
				t.Errorf("%d allocations lost time; the guarantee is exact", affected)
			case tc.exact:
				checkExact(t, f.c, ws)
			case affected == 0:
				t.Errorf("no allocation ended inside a fault: the case tests nothing (faults %d)", len(f.c.s.Faults))
			default:
				t.Logf("%d of %d allocations lost time, at most %d s, all within the bound", affected, len(f.c.allocs), worst)
			}
		})
	}
}

// TestDuplicatesAndDisorder: scrapes repeated and delivered out of order
// within the lag give the same windows; repeated after their windows closed
// they change nothing in the ledger.
func TestDuplicatesAndDisorder(t *testing.T) {
	f := smallWithFaults(t)
	cfg := Config{Cluster: f.c.s.Cluster}
	const lag = 2 * time.Minute
	_, want := replay(t, cfg, f.rounds, lag)
	rng := rand.New(rand.NewPCG(3, 4))

	t.Run("shuffled and repeated within the lag", func(t *testing.T) {
		// Deliver each round with the one before, in a random order, some
		// scrapes twice.
		r := mustNew(t, cfg)
		var got []observe.Window
		for i := range f.rounds {
			if i%2 == 0 && i != len(f.rounds)-1 {
				continue // delivered with the next round
			}
			var batch []observe.Scrape
			if i%2 == 1 {
				batch = append(batch, f.rounds[i-1].scrapes...)
			}
			batch = append(batch, f.rounds[i].scrapes...)
			for _, s := range slices.Clone(batch) {
				if rng.IntN(4) == 0 {
					batch = append(batch, s)
				}
			}
			rng.Shuffle(len(batch), func(a, b int) { batch[a], batch[b] = batch[b], batch[a] })
			for _, s := range batch {
				r.Observe(s)
			}
			got = append(got, r.Close((f.rounds[i].at-lag.Milliseconds())/1000)...)
		}
		got = append(got, r.Close(f.rounds[len(f.rounds)-1].at/1000+r.cfg.win)...)
		diffWindows(t, got, want)
		if r.Stats().Duplicates == 0 {
			t.Error("no duplicate seen: the case tests nothing")
		}
	})

	t.Run("repeated after their windows closed", func(t *testing.T) {
		r := mustNew(t, cfg)
		var got []observe.Window
		for i, rd := range f.rounds {
			for _, s := range rd.scrapes {
				r.Observe(s)
			}
			// Re-deliver a random earlier round, up to three hours old.
			old := f.rounds[max(0, i-rng.IntN(720))]
			for _, s := range old.scrapes {
				r.Observe(s)
			}
			got = append(got, r.Close((rd.at-lag.Milliseconds())/1000)...)
		}
		got = append(got, r.Close(f.rounds[len(f.rounds)-1].at/1000+r.cfg.win)...)
		if r.Stats().Late == 0 {
			t.Fatal("nothing late: the case tests nothing")
		}
		lg, lw := ledgerOf(got), ledgerOf(want)
		if len(lg.iv) != len(lw.iv) {
			t.Fatalf("%d intervals, want %d", len(lg.iv), len(lw.iv))
		}
		for k, w := range lw.iv {
			g := lg.iv[k]
			if g.Start != w.Start || g.End != w.End || g.EndExact != w.EndExact {
				t.Errorf("%s: %+v, want %+v", keyText(k), g, w)
			}
		}
		// Usage, energy and capacity come only from scrapes in order.
		for i := range got {
			if !reflect.DeepEqual(got[i].Usage, want[i].Usage) || !reflect.DeepEqual(got[i].Energy, want[i].Energy) ||
				!reflect.DeepEqual(got[i].Capacity, want[i].Capacity) {
				t.Errorf("window %d: usage, energy or capacity changed by late repeats", got[i].From)
			}
		}
	})
}
