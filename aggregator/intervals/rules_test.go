package intervals

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// The unit tests build scrapes by hand around base, 2026-11-02T10:00:00Z, a
// window boundary.
const base = int64(1793613600)

func key(pod string) observe.AllocKey {
	return observe.AllocKey{Node: "n1", Device: "GPU-" + pod, PodUID: "uid-" + pod, Resource: "nvidia.com/gpu"}
}

// running is pod's whole-GPU allocation, started at base+start, seen
// running with activity act (thousandths).
func running(pod string, start, act int64) observe.Alloc {
	return observe.Alloc{AllocKey: key(pod), Attrs: observe.Attrs{Class: "gpu", GPUUUID: "GPU-" + pod, Project: "p-" + pod},
		Start: base + start, WeightMilli: 1000, Devices: 1, ActivityMilli: act}
}

// ended is the same allocation ended at base+end.
func ended(pod string, start, end int64) observe.Alloc {
	a := running(pod, start, -1)
	a.End = base + end
	return a
}

func weighted(a observe.Alloc, w int64, gpu string) observe.Alloc {
	a.WeightMilli, a.GPUUUID = w, gpu
	return a
}

// at is a successful scrape of n1 at base+sec seconds.
func at(sec float64, allocs ...observe.Alloc) observe.Scrape {
	return observe.Scrape{Target: "n1", Time: base*1000 + int64(sec*1000), OK: true, Allocs: allocs}
}

func failed(sec float64) observe.Scrape {
	return observe.Scrape{Target: "n1", Time: base*1000 + int64(sec*1000)}
}

func withGPUs(s observe.Scrape, gpus ...observe.GPU) observe.Scrape {
	s.GPUs = gpus
	return s
}

func gpu(uuid string, mj int64) observe.GPU {
	return observe.GPU{Node: "n1", UUID: uuid, Model: "NVIDIA A100-SXM4-80GB", EnergyMillijoules: mj}
}

func mustNew(t *testing.T, cfg Config) *Reconstructor {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// closeAll observes every scrape, then closes up to base+upTo.
func closeAll(t *testing.T, cfg Config, upTo int64, scrapes ...observe.Scrape) []observe.Window {
	t.Helper()
	r := mustNew(t, cfg)
	for _, s := range scrapes {
		r.Observe(s)
	}
	return r.Close(base + upTo)
}

// iv is an expected interval, relative to base; end is open while open.
type iv struct {
	start, end int64
	exact      bool
}

// open is the end of an open interval in iv.
const open = int64(-1 << 40)

func finalIntervals(ws []observe.Window) map[string]iv {
	out := map[string]iv{}
	for k, in := range ledgerOf(ws).iv {
		e := open
		if in.End != 0 {
			e = in.End - base
		}
		out[strings.TrimPrefix(k.PodUID, "uid-")] = iv{in.Start - base, e, in.EndExact}
	}
	return out
}

func TestIntervalRules(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		upTo    int64
		scrapes []observe.Scrape
		want    map[string]iv
	}{
		{
			name: "running, then its end series: the exact end",
			upTo: 300,
			scrapes: []observe.Scrape{at(0, running("a", -100, 500)), at(15, running("a", -100, 500)),
				at(30, running("a", -100, 500)), at(45, ended("a", -100, 40)), at(60, ended("a", -100, 40))},
			want: map[string]iv{"a": {-100, 40, true}},
		},
		{
			name:    "a pod that lived between two scrapes is counted from its end series",
			upTo:    300,
			scrapes: []observe.Scrape{at(0), at(15, ended("a", 3, 9)), at(30, ended("a", 3, 9))},
			want:    map[string]iv{"a": {3, 9, true}},
		},
		{
			name:    "a zero-length allocation",
			upTo:    300,
			scrapes: []observe.Scrape{at(0), at(15, ended("a", 7, 7))},
			want:    map[string]iv{"a": {7, 7, true}},
		},
		{
			name:    "vanishing without an end series ends at the last sighting",
			upTo:    300,
			scrapes: []observe.Scrape{at(0, running("a", -5, 0)), at(15, running("a", -5, 0)), at(30)},
			want:    map[string]iv{"a": {-5, 15, false}},
		},
		{
			name:    "the last sighting is floored to the second",
			upTo:    300,
			scrapes: []observe.Scrape{at(0.25, running("a", -5, 0)), at(15.75, running("a", -5, 0)), at(30.5)},
			want:    map[string]iv{"a": {-5, 15, false}},
		},
		{
			name:    "failed scrapes say nothing",
			upTo:    300,
			scrapes: []observe.Scrape{at(0, running("a", -5, 0)), failed(15), failed(30), at(45, running("a", -5, 0))},
			want:    map[string]iv{"a": {-5, open, false}},
		},
		{
			name:    "vanishing after failed scrapes ends at the last sighting",
			upTo:    300,
			scrapes: []observe.Scrape{at(0, running("a", -5, 0)), failed(15), failed(30), at(45)},
			want:    map[string]iv{"a": {-5, 0, false}},
		},
		{
			name:    "a failed and a successful scrape at one time: the successful one counts",
			upTo:    300,
			scrapes: []observe.Scrape{at(0, running("a", -5, 0)), failed(15), at(15)},
			want:    map[string]iv{"a": {-5, 0, false}},
		},
		{
			name:    "reappearing reopens",
			upTo:    600,
			scrapes: []observe.Scrape{at(0, running("a", -5, 0)), at(15), at(290, running("a", -5, 0)), at(320, running("a", -5, 0))},
			want:    map[string]iv{"a": {-5, open, false}},
		},
		{
			name:    "reappearing in a later window recreates it",
			upTo:    900,
			scrapes: []observe.Scrape{at(0, running("a", -5, 0)), at(15), at(320, running("a", -5, 0))},
			want:    map[string]iv{"a": {-5, open, false}},
		},
		{
			name: "an exact end after an inferred one wins",
			upTo: 600,
			scrapes: []observe.Scrape{at(0, running("a", -5, 0)), at(15, running("a", -5, 0)), at(30),
				at(310, ended("a", -5, 20))},
			want: map[string]iv{"a": {-5, 20, true}},
		},
		{
			name:    "the smallest start wins",
			upTo:    300,
			scrapes: []observe.Scrape{at(0, running("a", -50, 0)), at(15, running("a", -60, 0)), at(30, running("a", -55, 0))},
			want:    map[string]iv{"a": {-60, open, false}},
		},
		{
			name:    "the smallest exact end wins",
			upTo:    300,
			scrapes: []observe.Scrape{at(0, ended("a", -50, -10)), at(15, ended("a", -50, -20)), at(30, ended("a", -50, -15))},
			want:    map[string]iv{"a": {-50, -20, true}},
		},
		{
			name: "a pod restarted with a new UID is a new allocation",
			upTo: 300,
			scrapes: []observe.Scrape{at(0, running("a", -50, 0)), at(15, ended("a", -50, 10), running("b", 12, 0)),
				at(30, ended("a", -50, 10), running("b", 12, 0))},
			want: map[string]iv{"a": {-50, 10, true}, "b": {12, open, false}},
		},
		{
			name: "silence beyond StaleAfter closes at the last sighting",
			cfg:  Config{StaleAfter: 10 * time.Minute},
			upTo: 1800,
			scrapes: []observe.Scrape{at(0, running("a", -5, 0)), at(15, running("a", -5, 0)), failed(30), failed(900),
				failed(1500)},
			want: map[string]iv{"a": {-5, 15, false}},
		},
		{
			name:    "silence within StaleAfter keeps it open",
			cfg:     Config{StaleAfter: 10 * time.Minute},
			upTo:    600,
			scrapes: []observe.Scrape{at(0, running("a", -5, 0)), at(15, running("a", -5, 0))},
			want:    map[string]iv{"a": {-5, open, false}},
		},
		{
			name:    "never stale",
			cfg:     Config{StaleAfter: -1},
			upTo:    36000,
			scrapes: []observe.Scrape{at(0, running("a", -5, 0))},
			want:    map[string]iv{"a": {-5, open, false}},
		},
		{
			name: "a stale allocation seen running again is reopened",
			cfg:  Config{StaleAfter: 10 * time.Minute},
			upTo: 2400,
			scrapes: []observe.Scrape{at(0, running("a", -5, 0)), failed(30), failed(1500),
				at(1800, running("a", -5, 0))},
			want: map[string]iv{"a": {-5, open, false}},
		},
		{
			name: "a stale allocation whose end series comes back is exact",
			cfg:  Config{StaleAfter: 10 * time.Minute},
			upTo: 2400,
			scrapes: []observe.Scrape{at(0, running("a", -5, 0)), failed(30), failed(1500),
				at(1800, ended("a", -5, 1000))},
			want: map[string]iv{"a": {-5, 1000, true}},
		},
		{
			name: "another target's scrapes do not end an allocation",
			upTo: 300,
			scrapes: []observe.Scrape{at(0, running("a", -5, 0)), {Target: "n2", Time: (base + 30) * 1000, OK: true},
				at(45, running("a", -5, 0))},
			want: map[string]iv{"a": {-5, open, false}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws := closeAll(t, tc.cfg, tc.upTo, tc.scrapes...)
			if got := finalIntervals(ws); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("intervals %v, want %v", got, tc.want)
			}
			// Shuffled and repeated, the scrapes give the same windows.
			rev := make([]observe.Scrape, 0, 2*len(tc.scrapes))
			for i := len(tc.scrapes) - 1; i >= 0; i-- {
				rev = append(rev, tc.scrapes[i], tc.scrapes[i])
			}
			diffWindows(t, closeAll(t, tc.cfg, tc.upTo, rev...), ws)
		})
	}
}

// appearances lists, for each window (by its start relative to base), the
// intervals it carries as "pod:start-end[!]" (! for an exact end).
func appearances(ws []observe.Window) map[int64][]string {
	out := map[int64][]string{}
	for _, w := range ws {
		var l []string
		for _, in := range w.Intervals {
			s := strings.TrimPrefix(in.PodUID, "uid-") + ":" + itoa(in.Start-base) + "-"
			if in.End != 0 {
				s += itoa(in.End - base)
				if in.EndExact {
					s += "!"
				}
			}
			l = append(l, s)
		}
		out[w.From-base] = l
	}
	return out
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestEmission: an interval is in every window it overlaps and in the
// window where it changes; closed and unchanged, it is not repeated.
func TestEmission(t *testing.T) {
	cases := []struct {
		name    string
		upTo    int64
		scrapes []observe.Scrape
		want    map[int64][]string
	}{
		{
			name: "open across windows, then ended exactly in the third",
			upTo: 1200,
			scrapes: []observe.Scrape{at(0, running("a", -100, 0)), at(299, running("a", -100, 0)), at(599, running("a", -100, 0)),
				at(610, ended("a", -100, 605)), at(899, ended("a", -100, 605))},
			want: map[int64][]string{0: {"a:-100-"}, 300: {"a:-100-"}, 600: {"a:-100-605!"}, 900: nil},
		},
		{
			name: "the end learnt in the window after it: the interval is open in its own window, then corrected",
			upTo: 900,
			scrapes: []observe.Scrape{at(0, running("a", -100, 0)), at(295, running("a", -100, 0)),
				at(305, ended("a", -100, 298))},
			want: map[int64][]string{0: {"a:-100-"}, 300: {"a:-100-298!"}, 600: nil},
		},
		{
			name: "late data: an end long past is emitted where it is learnt",
			upTo: 1200,
			scrapes: []observe.Scrape{at(0, running("a", -100, 0)), at(100), // vanished: inferred end 0
				at(950, ended("a", -100, 50))},
			want: map[int64][]string{0: {"a:-100-0"}, 300: nil, 600: nil, 900: {"a:-100-50!"}},
		},
		{
			name:    "a short pod learnt in a later window",
			upTo:    900,
			scrapes: []observe.Scrape{at(0), failed(295), at(320, ended("a", 100, 200))},
			want:    map[int64][]string{0: nil, 300: {"a:100-200!"}, 600: nil},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := appearances(closeAll(t, Config{}, tc.upTo, tc.scrapes...))
			for k, v := range tc.want {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("window +%ds: %v, want %v", k, got[k], v)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("windows %v, want %v", got, tc.want)
			}
		})
	}
}

func usageOf(ws []observe.Window, pod string) []observe.Usage {
	var out []observe.Usage
	for _, w := range ws {
		u := observe.Usage{AllocKey: key(pod)}
		for _, x := range w.Usage {
			if x.AllocKey == key(pod) {
				u = x
			}
		}
		out = append(out, u)
	}
	return out
}

type use struct{ used, idle, energy int64 }

func uses(us []observe.Usage) []use {
	out := make([]use, len(us))
	for i, u := range us {
		out[i] = use{u.UsedMilliGPUSeconds, u.IdleMilliGPUSeconds, u.EnergyMillijoules}
	}
	return out
}

// TestUsage: activity is a step function of the samples, clipped to the
// allocation and to the window, capped at twice the scrape interval, in
// milli-GPU-seconds rounded half up per window.
func TestUsage(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		upTo    int64
		scrapes []observe.Scrape
		pod     string
		want    []use
	}{
		{
			name:    "steady half activity over a whole window",
			upTo:    300,
			scrapes: scrapeEvery(0, 300, 15, func(int64) []observe.Alloc { return []observe.Alloc{running("a", -10, 500)} }),
			pod:     "a", want: []use{{150_000, 0, 0}},
		},
		{
			name:    "idle below the threshold (default 50 thousandths)",
			upTo:    300,
			scrapes: scrapeEvery(0, 300, 15, func(int64) []observe.Alloc { return []observe.Alloc{running("a", -10, 49)} }),
			pod:     "a", want: []use{{14_700, 300_000, 0}},
		},
		{
			name:    "at the threshold is not idle",
			upTo:    300,
			scrapes: scrapeEvery(0, 300, 15, func(int64) []observe.Alloc { return []observe.Alloc{running("a", -10, 50)} }),
			pod:     "a", want: []use{{15_000, 0, 0}},
		},
		{
			name:    "a custom threshold",
			cfg:     Config{IdleThresholdMilli: 100},
			upTo:    300,
			scrapes: scrapeEvery(0, 300, 15, func(int64) []observe.Alloc { return []observe.Alloc{running("a", -10, 50)} }),
			pod:     "a", want: []use{{15_000, 300_000, 0}},
		},
		{
			name: "a MIG slice's weight scales used and idle",
			upTo: 300,
			scrapes: scrapeEvery(0, 300, 15, func(int64) []observe.Alloc {
				return []observe.Alloc{weighted(running("a", -10, 0), 143, "GPU-x")}
			}),
			pod: "a", want: []use{{0, 42_900, 0}},
		},
		{
			name: "steps change with the samples and stop at the exact end",
			upTo: 300,
			scrapes: []observe.Scrape{at(0, running("a", -10, 1000)), at(15, running("a", -10, 200)),
				at(30, running("a", -10, 200)), at(45, ended("a", -10, 40)), at(60, ended("a", -10, 40))},
			// 15 s × 1000 + 15 s × 200 + 10 s × 200 (the sample at 30 s holds until the end at 40 s)
			pod: "a", want: []use{{15_000 + 3_000 + 2_000, 0, 0}},
		},
		{
			name: "the first sample starts the step, not the allocation's start",
			upTo: 300,
			scrapes: []observe.Scrape{at(0), at(15, running("a", 5, 1000)), at(30, running("a", 5, 1000)),
				at(45, ended("a", 5, 37))},
			pod: "a", want: []use{{22_000, 0, 0}},
		},
		{
			name: "a gap caps the step at twice the scrape interval",
			upTo: 300,
			scrapes: []observe.Scrape{at(0, running("a", -10, 1000)), at(15, running("a", -10, 1000)),
				failed(30), failed(45), failed(60), at(120, running("a", -10, 1000)), at(135, running("a", -10, 1000))},
			// [0, 15) + [15, 45) capped + [120, 135) + [135, 165) capped at the close (nothing after)
			pod: "a", want: []use{{15_000 + 30_000 + 15_000 + 30_000, 0, 0}},
		},
		{
			name: "a configured scrape interval sets the cap",
			cfg:  Config{ScrapeInterval: 5 * time.Second},
			upTo: 300,
			scrapes: []observe.Scrape{at(0, running("a", -10, 1000)), at(15, running("a", -10, 1000)),
				at(30, running("a", -10, 1000))},
			pod: "a", want: []use{{30_000, 0, 0}},
		},
		{
			name: "a step across a window boundary is split",
			upTo: 600,
			scrapes: []observe.Scrape{at(290, running("a", -10, 1000)), at(305, running("a", -10, 1000)),
				at(320, ended("a", -10, 310))},
			// [290, 300) in the first window; [300, 305) and [305, 310) (the end) in the second
			pod: "a", want: []use{{10_000, 0, 0}, {10_000, 0, 0}},
		},
		{
			name: "a step ending where the allocation vanishes counts nothing after the sighting",
			upTo: 300,
			scrapes: []observe.Scrape{at(0, running("a", -10, 1000)), at(15, running("a", -10, 1000)),
				at(30)},
			pod: "a", want: []use{{15_000, 0, 0}},
		},
		{
			name: "rounding is half up per window",
			upTo: 300,
			scrapes: []observe.Scrape{at(0, weighted(running("a", -10, 1000), 1, "")),
				at(1.5, weighted(running("a", -10, 0), 1, "")), at(3, weighted(ended("a", -10, 2), 1, ""))},
			// used: 1000 × 1 × 1500 ms = 1.5 milli-GPU-s → 2; idle: 1 × 500 ms = 0.5 → 1
			pod: "a", want: []use{{2, 1, 0}},
		},
		{
			name: "no activity reported: no usage",
			upTo: 300,
			scrapes: scrapeEvery(0, 300, 15, func(int64) []observe.Alloc {
				return []observe.Alloc{running("a", -10, -1)}
			}),
			pod: "a", want: []use{{0, 0, 0}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws := closeAll(t, tc.cfg, tc.upTo, tc.scrapes...)
			if got := uses(usageOf(ws, tc.pod)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("usage %v, want %v", got, tc.want)
			}
		})
	}
}

// scrapeEvery builds successful scrapes at from, from+step, … before to.
func scrapeEvery(from, to, step int64, allocs func(sec int64) []observe.Alloc) []observe.Scrape {
	var out []observe.Scrape
	for s := from; s < to; s += step {
		out = append(out, at(float64(s), allocs(s)...))
	}
	return out
}

// TestEnergy: counter increases between readings, resets, the split across
// windows, and the shares of the allocations holding the GPU.
func TestEnergy(t *testing.T) {
	type gpuWin struct{ energy, capacity int64 }
	cases := []struct {
		name     string
		upTo     int64
		scrapes  []observe.Scrape
		wantGPU  []gpuWin // GPU "G" per window
		wantUses map[string][]int64
		resets   int64
	}{
		{
			name: "increases add up",
			upTo: 300,
			scrapes: []observe.Scrape{withGPUs(at(0), gpu("G", 1000)), withGPUs(at(100), gpu("G", 2000)),
				withGPUs(at(200), gpu("G", 4000)), withGPUs(at(300), gpu("G", 4500))},
			wantGPU: []gpuWin{{3500, 300}},
		},
		{
			name: "a decrease is a reset: the increase is the new value",
			upTo: 300,
			scrapes: []observe.Scrape{withGPUs(at(0), gpu("G", 5000)), withGPUs(at(100), gpu("G", 7000)),
				withGPUs(at(200), gpu("G", 300)), withGPUs(at(300), gpu("G", 800))},
			wantGPU: []gpuWin{{2000 + 300 + 500, 300}},
			resets:  1,
		},
		{
			name: "an increase across a window boundary is split by time",
			upTo: 600,
			scrapes: []observe.Scrape{withGPUs(at(200), gpu("G", 0)), withGPUs(at(400), gpu("G", 1000)),
				withGPUs(at(600), gpu("G", 1000))},
			wantGPU: []gpuWin{{500, 100}, {500, 300}},
		},
		{
			name: "an unreported counter adds nothing",
			upTo: 300,
			scrapes: []observe.Scrape{withGPUs(at(0), gpu("G", 1000)), withGPUs(at(100), gpu("G", -1)),
				withGPUs(at(200), gpu("G", 3000)), withGPUs(at(300), gpu("G", 3000))},
			wantGPU: []gpuWin{{2000, 300}},
		},
		{
			name: "shares by weight × overlap over the whole GPU; the rest is unallocated",
			upTo: 300,
			scrapes: []observe.Scrape{
				withGPUs(at(0, weighted(running("a", -10, 0), 143, "G")), gpu("G", 0)),
				withGPUs(at(150, weighted(running("a", -10, 0), 143, "G"), weighted(running("b", 150, 0), 500, "G")), gpu("G", 150_000)),
				withGPUs(at(300, weighted(running("a", -10, 0), 143, "G"), weighted(running("b", 150, 0), 500, "G")), gpu("G", 300_000)),
			},
			wantGPU: []gpuWin{{300_000, 300}},
			// a: 300000 × 143 × 300 / 300000 = 42900; b: 300000 × 500 × 150 / 300000 = 75000
			wantUses: map[string][]int64{"a": {42_900}, "b": {75_000}},
		},
		{
			name: "over-committed holders share in proportion",
			upTo: 300,
			scrapes: []observe.Scrape{
				withGPUs(at(0, weighted(running("a", -10, 0), 1000, "G"), weighted(running("b", -10, 0), 1000, "G")), gpu("G", 0)),
				withGPUs(at(300, weighted(running("a", -10, 0), 1000, "G"), weighted(running("b", -10, 0), 1000, "G")), gpu("G", 1001)),
			},
			wantGPU:  []gpuWin{{1001, 300}},
			wantUses: map[string][]int64{"a": {500}, "b": {500}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNew(t, Config{})
			for _, s := range tc.scrapes {
				r.Observe(s)
			}
			ws := r.Close(base + tc.upTo)
			var got []gpuWin
			for _, w := range ws {
				var g gpuWin
				for _, e := range w.Energy {
					if e.GPUUUID == "G" {
						g.energy = e.EnergyMillijoules
					}
				}
				for _, c := range w.Capacity {
					if c.Device == "G" {
						g.capacity = c.Seconds
					}
				}
				got = append(got, g)
			}
			if !reflect.DeepEqual(got, tc.wantGPU) {
				t.Errorf("GPU energy, capacity by window %v, want %v", got, tc.wantGPU)
			}
			for pod, want := range tc.wantUses {
				var e []int64
				for _, u := range usageOf(ws, pod) {
					e = append(e, u.EnergyMillijoules)
				}
				if !reflect.DeepEqual(e, want) {
					t.Errorf("%s: energy shares %v, want %v", pod, e, want)
				}
			}
			if r.Stats().Resets != tc.resets {
				t.Errorf("resets %d, want %d", r.Stats().Resets, tc.resets)
			}
		})
	}
}

// TestEnergyAcrossAGap: the energy of a stretch whose closing reading comes
// after its windows closed goes to the window that gets the reading; no
// millijoule is lost or counted twice.
func TestEnergyAcrossAGap(t *testing.T) {
	r := mustNew(t, Config{})
	var ws []observe.Window
	r.Observe(withGPUs(at(0), gpu("G", 0)))
	r.Observe(withGPUs(at(100), gpu("G", 100)))
	ws = append(ws, r.Close(base+600)...) // the GPU's exporter is silent after 100 s
	r.Observe(failed(650))
	r.Observe(withGPUs(at(700), gpu("G", 700)))
	r.Observe(withGPUs(at(1000), gpu("G", 1000)))
	ws = append(ws, r.Close(base+1200)...)
	var got []int64
	for _, w := range ws {
		var e int64
		for _, x := range w.Energy {
			e += x.EnergyMillijoules
		}
		got = append(got, e)
	}
	// Windows: [0,300) 100; [300,600) nothing known; [600,900) the 600 mJ of
	// 100→700 plus 200 of 700→1000 up to 900; [900,1200) the last 100.
	if want := []int64{100, 0, 800, 100}; !reflect.DeepEqual(got, want) {
		t.Errorf("energy by window %v, want %v", got, want)
	}
}

// TestCapacity: a GPU is present from each successful scrape listing it to
// the next scrape, through failed scrapes up to StaleAfter.
func TestCapacity(t *testing.T) {
	r := mustNew(t, Config{StaleAfter: 10 * time.Minute})
	for _, s := range []observe.Scrape{
		withGPUs(at(0), gpu("G", -1), gpu("H", -1)),
		withGPUs(at(100), gpu("G", -1)), // H removed
		failed(200), failed(1000),
		withGPUs(at(1100), gpu("G", -1)),
	} {
		r.Observe(s)
	}
	got := map[string][]int64{}
	for _, w := range r.Close(base + 1200) {
		m := map[string]int64{}
		for _, c := range w.Capacity {
			m[c.Device] = c.Seconds
			if c.Class != "gpu" || c.Model == "" || c.Node != "n1" {
				t.Errorf("capacity row %+v", c)
			}
		}
		got["G"] = append(got["G"], m["G"])
		got["H"] = append(got["H"], m["H"])
	}
	// G: [0, 700) (100 + 600 of stale cover), then [1100, 1200).
	want := map[string][]int64{"G": {300, 300, 100, 100}, "H": {100, 0, 0, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("capacity %v, want %v", got, want)
	}
}

func TestConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"1-minute windows", Config{Window: time.Minute}, true},
		{"1-hour windows", Config{Window: time.Hour}, true},
		{"7-minute windows do not divide an hour", Config{Window: 7 * time.Minute}, false},
		{"2-hour windows", Config{Window: 2 * time.Hour}, false},
		{"fractional seconds", Config{Window: 1500 * time.Millisecond}, false},
		{"negative window", Config{Window: -time.Minute}, false},
		{"idle threshold 1000", Config{IdleThresholdMilli: 1000}, true},
		{"idle threshold above 1000", Config{IdleThresholdMilli: 1001}, false},
		{"negative idle threshold", Config{IdleThresholdMilli: -5}, false},
		{"negative scrape interval", Config{ScrapeInterval: -time.Second}, false},
		{"microsecond scrape interval", Config{ScrapeInterval: time.Microsecond}, false},
		{"stale-after never", Config{StaleAfter: -1}, true},
		{"stale-after below a second", Config{StaleAfter: time.Millisecond}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Errorf("New: %v, want ok %v", err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "invalid interval reconstruction configuration") {
				t.Errorf("error %q does not say what is wrong", err)
			}
		})
	}
}

// TestBadInput: malformed scrapes and entries are refused without a panic,
// counted, and do not end anything.
func TestBadInput(t *testing.T) {
	bad := func(mut func(*observe.Alloc)) observe.Alloc {
		a := running("a", -5, 100)
		mut(&a)
		return a
	}
	cases := []struct {
		name     string
		scrape   observe.Scrape
		rejected int64
		badAlloc int64
	}{
		{"no target", observe.Scrape{Time: (base + 30) * 1000, OK: true}, 1, 0},
		{"no time", observe.Scrape{Target: "n1", OK: true}, 1, 0},
		{"negative time", observe.Scrape{Target: "n1", Time: -5, OK: true}, 1, 0},
		{"no pod UID", at(30, running("a", -5, 100), bad(func(a *observe.Alloc) { a.PodUID = "" })), 0, 1},
		{"no start", at(30, bad(func(a *observe.Alloc) { a.Start = 0 })), 0, 1},
		{"end before start", at(30, bad(func(a *observe.Alloc) { a.End = a.Start - 1 })), 0, 1},
		{"negative weight", at(30, bad(func(a *observe.Alloc) { a.WeightMilli = -1 })), 0, 1},
		{"huge weight", at(30, bad(func(a *observe.Alloc) { a.WeightMilli = 1 << 50 })), 0, 1},
		{"negative devices", at(30, bad(func(a *observe.Alloc) { a.Devices = -1 })), 0, 1},
		{"activity above 1", at(30, bad(func(a *observe.Alloc) { a.ActivityMilli = 1001 })), 0, 1},
		{"listed twice", at(30, running("a", -5, 100), running("a", -5, 100)), 0, 1},
		{"GPU without UUID", withGPUs(at(30, running("a", -5, 100)), gpu("", 5)), 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNew(t, Config{})
			r.Observe(at(0, running("a", -5, 100)))
			r.Observe(tc.scrape)
			ws := r.Close(base + 300)
			st := r.Stats()
			if st.Rejected != tc.rejected || st.BadAllocs != tc.badAlloc {
				t.Errorf("stats %+v, want %d rejected, %d bad entries", st, tc.rejected, tc.badAlloc)
			}
			if st.LastRejection == "" {
				t.Error("no description of the rejection")
			}
			if got := finalIntervals(ws); !reflect.DeepEqual(got, map[string]iv{"a": {-5, open, false}}) {
				t.Errorf("intervals %v: a malformed entry must not end the allocation", got)
			}
		})
	}
}

func TestSeedErrors(t *testing.T) {
	open := func(mut func(*observe.Interval)) []observe.Interval {
		in := observe.Interval{AllocKey: key("a"), Start: base - 100, LastSeen: (base - 10) * 1000, WeightMilli: 1000, Devices: 1}
		mut(&in)
		return []observe.Interval{in}
	}
	cases := []struct {
		name      string
		watermark int64
		open      []observe.Interval
		before    func(*Reconstructor)
	}{
		{"unaligned watermark", base + 7, nil, nil},
		{"zero watermark", 0, nil, nil},
		{"after observing", base, nil, func(r *Reconstructor) { r.Observe(at(0)) }},
		{"closed interval", base, open(func(in *observe.Interval) { in.End = base - 5 }), nil},
		{"start after the watermark", base, open(func(in *observe.Interval) { in.Start = base + 10 }), nil},
		{"last seen before start", base, open(func(in *observe.Interval) { in.LastSeen = 0 }), nil},
		{"last seen after the watermark", base, open(func(in *observe.Interval) { in.LastSeen = (base + 1) * 1000 }), nil},
		{"no pod UID", base, open(func(in *observe.Interval) { in.PodUID = "" }), nil},
		{"negative weight", base, open(func(in *observe.Interval) { in.WeightMilli = -1 }), nil},
		{"twice", base, append(open(func(*observe.Interval) {}), open(func(*observe.Interval) {})...), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNew(t, Config{})
			if tc.before != nil {
				tc.before(r)
			}
			if err := r.Seed(tc.watermark, tc.open); !errors.Is(err, ErrSeed) {
				t.Errorf("Seed: %v, want an ErrSeed", err)
			}
		})
	}
}

// TestClose: windows start at the earliest scrape's window, come once, in
// order, and an unaligned upTo is floored.
func TestClose(t *testing.T) {
	r := mustNew(t, Config{Cluster: "c"})
	if ws := r.Close(base + 900); ws != nil {
		t.Fatalf("windows before any scrape: %v", ws)
	}
	r.Observe(at(400))
	if ws := r.Close(base + 300); ws != nil {
		t.Fatalf("windows before the first scrape's: %v", ws)
	}
	ws := r.Close(base + 1199)
	if len(ws) != 2 || ws[0].From != base+300 || ws[1].To != base+900 || ws[0].Cluster != "c" {
		t.Fatalf("windows %+v", ws)
	}
	if ws := r.Close(base + 900); ws != nil {
		t.Fatalf("windows repeated: %v", ws)
	}
	if r.Watermark() != base+900 {
		t.Errorf("watermark %d", r.Watermark())
	}
	if ws := r.Close(-1); ws != nil {
		t.Fatalf("negative upTo: %v", ws)
	}
}
