package intervals

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/exporters/sim"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

func smallNoFaults(tb testing.TB) *fixture {
	return fixtureOf(tb, "small-nofaults", func() *scenario.Scenario { return withFaults(loadSmall(tb), 0) })
}

func smallWithFaults(tb testing.TB) *fixture {
	return fixtureOf(tb, "small", func() *scenario.Scenario { return loadSmall(tb) })
}

func generatedDay(tb testing.TB, seed uint64) *fixture {
	return fixtureOf(tb, fmt.Sprintf("gen-%d", seed), func() *scenario.Scenario {
		return generated(tb, seed, 4, 24*time.Hour)
	})
}

// checkExact compares the ledger the windows build with the scenario's
// ground truth: by project to the milli-GPU-second, and allocation by
// allocation (exact start, exact end, or open past the scenario's end).
func checkExact(t *testing.T, c *cluster, ws []observe.Window) {
	t.Helper()
	l := ledgerOf(ws)
	from, to := c.s.Start.Unix(), c.s.End.Unix()
	got, want := l.byProject(from, to), truthByProject(t, c.allocs, c.s.Start, c.s.End)
	if !maps.Equal(got, want) {
		for p := range mergeKeys(got, want) {
			if got[p] != want[p] {
				t.Errorf("project %q: ledger %+v, truth %+v", p, got[p], want[p])
			}
		}
	}
	seen := map[observe.AllocKey]bool{}
	for i := range c.allocs {
		a := &c.allocs[i]
		k := keyOfAlloc(a)
		seen[k] = true
		in, ok := l.iv[k]
		if !ok {
			t.Errorf("%s (%s/%s): no interval", keyText(k), a.Pod.Namespace, a.Pod.Name)
			continue
		}
		wantEnd := int64(0)
		if !a.End.IsZero() && !a.End.After(c.s.End) {
			wantEnd = a.End.Unix()
		}
		if in.Start != a.Start.Unix() || in.End != wantEnd || (wantEnd != 0) != in.EndExact ||
			in.WeightMilli != a.WeightMilli || in.Devices != a.Devices || in.Project != a.Project || in.User != a.User {
			t.Errorf("%s: interval %+v, want start %d end %d weight %d devices %d project %s user %s",
				keyText(k), in, a.Start.Unix(), wantEnd, a.WeightMilli, a.Devices, a.Project, a.User)
		}
	}
	for k := range l.iv {
		if !seen[k] {
			t.Errorf("interval %s matches no allocation of the scenario", keyText(k))
		}
	}
}

func mergeKeys[V any](a, b map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// TestExactWithoutFaults: with every scrape answered, the intervals equal
// the ground truth exactly, whatever the lag between scrapes and closes.
func TestExactWithoutFaults(t *testing.T) {
	cases := []struct {
		name string
		fix  func(testing.TB) *fixture
		cfg  Config
		lag  time.Duration
	}{
		{"small, closing at each round", smallNoFaults, Config{}, 0},
		{"small, 30 s lag", smallNoFaults, Config{}, 30 * time.Second},
		{"small, one close at the end", smallNoFaults, Config{}, 1000 * time.Hour},
		{"small, 1-minute windows", smallNoFaults, Config{Window: time.Minute}, 15 * time.Second},
		{"small, 1-hour windows", smallNoFaults, Config{Window: time.Hour}, time.Minute},
		{"small with its own faults (no end falls in them)", smallWithFaults, Config{}, 30 * time.Second},
		{"generated seed 1", func(tb testing.TB) *fixture { return generatedDay(tb, 1) }, Config{}, 30 * time.Second},
		{"generated seed 2", func(tb testing.TB) *fixture { return generatedDay(tb, 2) }, Config{}, 0},
		{"generated seed 3", func(tb testing.TB) *fixture { return generatedDay(tb, 3) }, Config{ScrapeInterval: 15 * time.Second}, time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.fix(t)
			tc.cfg.Cluster = f.c.s.Cluster
			r, ws := replay(t, tc.cfg, f.rounds, tc.lag)
			checkExact(t, f.c, ws)
			checkWindows(t, ws, tc.cfg)
			if st := r.Stats(); st.Late != 0 || st.Rejected != 0 || st.BadAllocs != 0 {
				t.Errorf("stats %+v: nothing late, rejected or malformed expected", st)
			}
		})
	}
}

// checkWindows checks that windows are contiguous, aligned, sorted and
// free of repeats.
func checkWindows(t *testing.T, ws []observe.Window, cfg Config) {
	t.Helper()
	win := int64(DefaultWindow / time.Second)
	if cfg.Window != 0 {
		win = int64(cfg.Window / time.Second)
	}
	for i, w := range ws {
		if w.To-w.From != win || w.From%win != 0 || (i > 0 && w.From != ws[i-1].To) {
			t.Fatalf("window %d [%d, %d) after [%d, %d): not contiguous or not aligned", i, w.From, w.To, ws[max(i-1, 0)].From, ws[max(i-1, 0)].To)
		}
		if !slices.IsSortedFunc(w.Intervals, func(a, b observe.Interval) int { return keyCompare(a.AllocKey, b.AllocKey) }) {
			t.Fatalf("window %d: intervals not sorted by key", i)
		}
		for j := 1; j < len(w.Intervals); j++ {
			if w.Intervals[j].AllocKey == w.Intervals[j-1].AllocKey {
				t.Fatalf("window %d: %s twice", i, keyText(w.Intervals[j].AllocKey))
			}
		}
		for _, u := range w.Usage {
			if u.UsedMilliGPUSeconds < 0 || u.IdleMilliGPUSeconds < 0 || u.EnergyMillijoules < 0 {
				t.Fatalf("window %d: negative usage %+v", i, u)
			}
		}
	}
}

// TestSameWindowsWhateverTheCadence: the windows depend on the scrapes, not
// on when Close is called, as long as the lag covers one scrape interval
// (then the scrape after each window's end is there to finish its last
// step).
func TestSameWindowsWhateverTheCadence(t *testing.T) {
	f := smallNoFaults(t)
	cfg := Config{Cluster: f.c.s.Cluster}
	_, want := replay(t, cfg, f.rounds, 1000*time.Hour)
	for _, lag := range []time.Duration{0, 15 * time.Second, 40 * time.Second, 7 * time.Minute} {
		t.Run(lag.String(), func(t *testing.T) {
			_, got := replay(t, cfg, f.rounds, lag)
			diffWindows(t, got, want)
		})
	}
}

func diffWindows(t *testing.T, got, want []observe.Window) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d windows, want %d", len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			g, w := got[i], want[i]
			t.Errorf("window %d [%d, %d) differs", i, w.From, w.To)
			for _, part := range []struct {
				name string
				g, w any
			}{{"intervals", g.Intervals, w.Intervals}, {"usage", g.Usage, w.Usage}, {"energy", g.Energy, w.Energy}, {"capacity", g.Capacity, w.Capacity}} {
				if !reflect.DeepEqual(part.g, part.w) {
					t.Errorf("  %s:\n  got  %+v\n  want %+v", part.name, part.g, part.w)
				}
			}
			return
		}
	}
}

// TestUsageMatchesTheModel: with 15-second scrapes on the minute grid, the
// sampled step function equals the device model's per-minute activity over
// the sampled part of each allocation (from its first scrape to its end),
// window by window and after the documented rounding; energy sums to the
// counters' increase; capacity is the whole window for every GPU.
func TestUsageMatchesTheModel(t *testing.T) {
	f := smallNoFaults(t)
	c := f.c
	_, ws := replay(t, Config{Cluster: c.s.Cluster}, f.rounds, 30*time.Second)
	step := c.s.ScrapeInterval.D().Milliseconds()
	first, last := c.s.Start.UnixMilli(), c.s.End.UnixMilli()
	type acc struct{ used, idle int64 }
	want := map[int64]map[observe.AllocKey]acc{}
	for i := range c.allocs {
		a := &c.allocs[i]
		k := keyOfAlloc(a)
		startMs := a.Start.UnixMilli()
		endMs := last
		if !a.End.IsZero() {
			endMs = min(endMs, a.End.UnixMilli())
		}
		// The first scrape at or after the start.
		t0 := max(first, first+(startMs-first+step-1)/step*step)
		for t := t0; t < endMs; t += step {
			hi := min(t+step, endMs)
			act := sim.ActivityMilli(a.Pod, time.UnixMilli(t))
			for x := t; x < hi; {
				win := x / 1000 / 300 * 300
				y := min(hi, (win+300)*1000)
				m := want[win]
				if m == nil {
					m = map[observe.AllocKey]acc{}
					want[win] = m
				}
				v := m[k]
				v.used += act * a.WeightMilli * (y - x)
				if act < DefaultIdleThresholdMilli {
					v.idle += a.WeightMilli * (y - x)
				}
				m[k] = v
				x = y
			}
		}
	}
	for _, w := range ws {
		if w.From >= c.s.End.Unix() {
			continue // the last samples hold for their step past the scenario's end
		}
		got := map[observe.AllocKey]acc{}
		for _, u := range w.Usage {
			if u.UsedMilliGPUSeconds != 0 || u.IdleMilliGPUSeconds != 0 {
				got[u.AllocKey] = acc{u.UsedMilliGPUSeconds, u.IdleMilliGPUSeconds}
			}
		}
		exp := map[observe.AllocKey]acc{}
		for k, v := range want[w.From] {
			if r := (acc{roundDiv(v.used, 1_000_000), roundDiv(v.idle, 1000)}); r != (acc{}) {
				exp[k] = r
			}
		}
		if !maps.Equal(got, exp) {
			t.Errorf("window %s: usage\n got  %v\n want %v", time.Unix(w.From, 0).UTC().Format(time.TimeOnly), got, exp)
		}
	}

	// Energy: per GPU, the windows add up to the counter's increase from the
	// first scrape to the last one before the last window's end; the shares
	// never exceed the GPU's energy.
	counters := map[string][2]int64{} // uuid → first, last reading
	lastWindowEnd := ws[len(ws)-1].To * 1000
	for _, rd := range f.rounds {
		for _, s := range rd.scrapes {
			for _, g := range s.GPUs {
				if s.Time >= lastWindowEnd {
					continue
				}
				v, ok := counters[g.UUID]
				if !ok {
					v[0] = g.EnergyMillijoules
				}
				v[1] = g.EnergyMillijoules
				counters[g.UUID] = v
			}
		}
	}
	sum := map[string]int64{}
	for _, w := range ws {
		perGPU := map[string]int64{}
		for _, e := range w.Energy {
			sum[e.GPUUUID] += e.EnergyMillijoules
			perGPU[e.GPUUUID] += e.EnergyMillijoules
		}
		shares := map[string]int64{}
		for _, u := range w.Usage {
			for i := range c.allocs {
				if keyOfAlloc(&c.allocs[i]) == u.AllocKey {
					shares[c.allocs[i].GPUUUID] += u.EnergyMillijoules
					break
				}
			}
		}
		for g, s := range shares {
			if s > perGPU[g] {
				t.Errorf("window %d: shares of GPU %s %d mJ exceed its energy %d mJ", w.From, g, s, perGPU[g])
			}
		}
		for _, cp := range w.Capacity {
			if w.To*1000 <= lastWindowEnd-300_000 && cp.Seconds != 300 {
				t.Errorf("window %d: GPU %s present %d s, want 300", w.From, cp.Device, cp.Seconds)
			}
		}
	}
	if len(counters) == 0 {
		t.Fatal("no GPU counters in the scrapes")
	}
	for g, v := range counters {
		// The windows hold the energy up to the last window's end: the
		// increase up to the last reading before it, plus the share of the
		// step that straddles it.
		if got := sum[g]; got < v[1]-v[0] {
			t.Errorf("GPU %s: windows hold %d mJ, counter rose %d mJ", g, got, v[1]-v[0])
		}
	}
}

// TestEnergyAddsUp: over a run flushed past the last scrape, each GPU's
// window energy sums to the counter's increase exactly, and a GPU held by
// one allocation for a whole window gets a share of weight/1000 of it.
func TestEnergyAddsUp(t *testing.T) {
	f := generatedDay(t, 1)
	_, ws := replay(t, Config{Cluster: f.c.s.Cluster}, f.rounds, 30*time.Second)
	first, last := map[string]int64{}, map[string]int64{}
	for _, rd := range f.rounds {
		for _, s := range rd.scrapes {
			for _, g := range s.GPUs {
				if _, ok := first[g.UUID]; !ok {
					first[g.UUID] = g.EnergyMillijoules
				}
				last[g.UUID] = g.EnergyMillijoules
			}
		}
	}
	sum := map[string]int64{}
	var shares, total int64
	for _, w := range ws {
		for _, e := range w.Energy {
			sum[e.GPUUUID] += e.EnergyMillijoules
			total += e.EnergyMillijoules
		}
		for _, u := range w.Usage {
			shares += u.EnergyMillijoules
		}
	}
	for g := range first {
		if sum[g] != last[g]-first[g] {
			t.Errorf("GPU %s: windows hold %d mJ, counter rose %d mJ", g, sum[g], last[g]-first[g])
		}
	}
	if shares <= 0 || shares > total {
		t.Errorf("allocation shares %d mJ of %d mJ in all", shares, total)
	}
}

// TestTruthKeysMatch guards the helper: the truth's projects are the
// ledger's.
func TestTruthKeysMatch(t *testing.T) {
	f := smallNoFaults(t)
	want := truthByProject(t, f.c.allocs, f.c.s.Start, f.c.s.End)
	if len(want) != 5 || want["cms-gpu"].AllocatedMilliGPUSeconds != 9930000+10200000 {
		t.Fatalf("truth of small.yaml: %+v", want)
	}
}

// TestEnergyCounterReset: a driver reload restarts a GPU's energy counter
// from zero between two scrapes. The windows keep everything the counters
// can tell: the increase before the last reading ahead of the reset, and
// everything after the reset; only the energy between that reading and the
// reset instant is lost, as documented.
func TestEnergyCounterReset(t *testing.T) {
	f := smallNoFaults(t)
	const node, uuid = "a100-mig-01", "GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
	reset := time.Date(2026, 11, 2, 10, 7, 20, 0, time.UTC) // between the scrapes at 10:07:15 and 10:07:30
	ni := slices.Index(f.c.nodes, node)
	fams, err := gather(mustAt(t, f.c, ni, reset))
	if err != nil {
		t.Fatal(err)
	}
	atReset, err := toScrape(node, fams)
	if err != nil {
		t.Fatal(err)
	}
	var counterAtReset int64 = -1
	for _, g := range atReset.GPUs {
		if g.UUID == uuid {
			counterAtReset = g.EnergyMillijoules
		}
	}
	if counterAtReset <= 0 {
		t.Fatalf("no counter for %s at the reset", uuid)
	}
	// The scrapes with the counter restarted at the reset.
	rounds := make([]round, len(f.rounds))
	var first, beforeReset, last int64 = -1, 0, 0
	for i, rd := range f.rounds {
		rounds[i] = round{at: rd.at, scrapes: slices.Clone(rd.scrapes)}
		for j := range rounds[i].scrapes {
			s := &rounds[i].scrapes[j]
			if s.Target != node || !s.OK {
				continue
			}
			s.GPUs = slices.Clone(s.GPUs)
			for k := range s.GPUs {
				g := &s.GPUs[k]
				if g.UUID != uuid {
					continue
				}
				if first < 0 {
					first = g.EnergyMillijoules
				}
				if s.Time < reset.UnixMilli() {
					beforeReset = g.EnergyMillijoules
				} else {
					g.EnergyMillijoules -= counterAtReset
				}
				last = g.EnergyMillijoules
			}
		}
	}
	r, ws := replay(t, Config{Cluster: f.c.s.Cluster}, rounds, 30*time.Second)
	var sum int64
	for _, w := range ws {
		for _, e := range w.Energy {
			if e.GPUUUID == uuid {
				sum += e.EnergyMillijoules
			}
		}
	}
	if want := (beforeReset - first) + last; sum != want {
		t.Errorf("windows hold %d mJ, want %d (%d before the reset, %d after)", sum, want, beforeReset-first, last)
	}
	if r.Stats().Resets != 1 {
		t.Errorf("%d resets seen, want 1", r.Stats().Resets)
	}
}
