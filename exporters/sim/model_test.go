package sim

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/sim/scenario"
)

var t0 = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)

func pod(uid string, kind string, mean float64, start time.Time, end *time.Time) *scenario.Pod {
	return &scenario.Pod{Name: uid, Namespace: "ns", UID: uid, Start: start, End: end,
		Profile: scenario.Profile{Kind: kind, Mean: mean}}
}

func ptr(t time.Time) *time.Time { return &t }

func TestActivityDeterministic(t *testing.T) {
	p := pod("uid-a", scenario.ProfileConstant, 0.6, t0, nil)
	q := pod("uid-b", scenario.ProfileConstant, 0.6, t0, nil)
	for m := range 30 {
		at := t0.Add(time.Duration(m) * time.Minute)
		a := Activity(p, at)
		// The same pod and minute give the same value, whatever the second.
		for _, off := range []time.Duration{0, 17 * time.Second, 59*time.Second + 999*time.Millisecond} {
			if b := Activity(p, at.Add(off)); b != a {
				t.Fatalf("minute %d: Activity at +%s = %v, at +0 = %v", m, off, b, a)
			}
		}
		// A copy of the pod (same UID, profile) agrees: no hidden state.
		cp := *p
		if b := Activity(&cp, at); b != a {
			t.Fatalf("copy of pod disagrees at minute %d: %v vs %v", m, b, a)
		}
	}
	same := 0
	for m := range 100 {
		at := t0.Add(time.Duration(m) * time.Minute)
		if Activity(p, at) == Activity(q, at) {
			same++
		}
	}
	if same > 5 {
		t.Errorf("two pods with different UIDs agree on %d of 100 minutes", same)
	}
}

func TestActivityLife(t *testing.T) {
	end := t0.Add(time.Hour)
	p := pod("uid-life", scenario.ProfileConstant, 0.9, t0, ptr(end))
	cases := []struct {
		at   time.Time
		zero bool
	}{
		{t0.Add(-time.Millisecond), true},
		{t0, false},
		{end.Add(-time.Millisecond), false},
		{end, true},
		{end.Add(time.Hour), true},
	}
	for _, c := range cases {
		if got := Activity(p, c.at); (got == 0) != c.zero {
			t.Errorf("Activity at %s = %v, want zero=%v", c.at.Format(time.RFC3339Nano), got, c.zero)
		}
	}
	if got := Activity(nil, t0); got != 0 {
		t.Errorf("Activity(nil) = %v", got)
	}
}

func TestActivityProfiles(t *testing.T) {
	const minutes = 7 * 24 * 60 // a week: whole days for the diurnal curve
	cases := []struct {
		kind          string
		mean          float64
		wantMean, tol float64
		lo, hi        float64 // every value in [lo, hi]
	}{
		{scenario.ProfileConstant, 0.7, 0.7, 0.01, 0.65, 0.75},
		{"", 0.3, 0.3, 0.01, 0.25, 0.35},
		{scenario.ProfileIdle, 0, 0.005, 0.002, 0, 0.01},
		{scenario.ProfileBursty, 0.25, 0.25*0.925 + 0.75*0.01, 0.02, 0, 1},
		{scenario.ProfileDiurnal, 0.4, 0.4, 0.01, 0, 0.8},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s-%.2f", c.kind, c.mean), func(t *testing.T) {
			p := pod("uid-"+c.kind, c.kind, c.mean, t0, nil)
			sum := 0.0
			for m := range minutes {
				a := Activity(p, t0.Add(time.Duration(m)*time.Minute))
				if a < c.lo || a > c.hi {
					t.Fatalf("minute %d: activity %v outside [%v, %v]", m, a, c.lo, c.hi)
				}
				sum += a
			}
			if got := sum / minutes; math.Abs(got-c.wantMean) > c.tol {
				t.Errorf("mean activity %.4f, want %.4f ± %.3f", got, c.wantMean, c.tol)
			}
		})
	}
}

func TestBurstyBusyFraction(t *testing.T) {
	p := pod("uid-bursty", scenario.ProfileBursty, 0.3, t0, nil)
	busy := 0
	const n = 20000
	for m := range n {
		if Activity(p, t0.Add(time.Duration(m)*time.Minute)) >= 0.85 {
			busy++
		}
	}
	if f := float64(busy) / n; math.Abs(f-0.3) > 0.02 {
		t.Errorf("busy fraction %.3f, want 0.30 ± 0.02", f)
	}
}

func TestDiurnalPeak(t *testing.T) {
	p := pod("uid-diurnal", scenario.ProfileDiurnal, 0.5, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), nil)
	hourMean := func(h int) float64 {
		s := 0.0
		for d := range 20 {
			for m := range 60 {
				at := time.Date(2026, 10, 10+d, h, m, 0, 0, time.UTC)
				s += Activity(p, at)
			}
		}
		return s / (20 * 60)
	}
	if peak, trough := hourMean(14), hourMean(2); peak < 0.8 || trough > 0.15 {
		t.Errorf("diurnal 14:00 mean %.3f (want ≥ 0.8), 02:00 mean %.3f (want ≤ 0.15)", peak, trough)
	}
}

func TestSpecOf(t *testing.T) {
	cases := []struct {
		model     string
		idle, max float64
		mem       int64
	}{
		{"NVIDIA A100-SXM4-80GB", 60, 400, 80 * GiB},
		{"A100-80GB", 60, 400, 80 * GiB},
		{"NVIDIA A100-PCIE-40GB", 60, 400, 40 * GiB},
		{"NVIDIA A30", 30, 165, 24 * GiB},
		{"Tesla T4", 10, 70, 16 * GiB},
		{"Quadro RTX 5000", 15, 230, 16 * GiB},
		{"NVIDIA H100 80GB HBM3", 70, 700, 80 * GiB},
		{"NVIDIA H200", 70, 700, 141 * GiB},
		{"Mystery GPU", DefaultGPUSpec.IdleWatts, DefaultGPUSpec.MaxWatts, DefaultGPUSpec.MemoryBytes},
	}
	for _, c := range cases {
		s := SpecOf(c.model)
		if s.IdleWatts != c.idle || s.MaxWatts != c.max || s.MemoryBytes != c.mem {
			t.Errorf("SpecOf(%q) = %+v", c.model, s)
		}
		if got := s.PowerMilliwatts(0); got != int64(c.idle*1000) {
			t.Errorf("%s idle power %d mW", c.model, got)
		}
		if got := s.PowerMilliwatts(1_000_000); got != int64(c.max*1000) {
			t.Errorf("%s full power %d mW", c.model, got)
		}
		if got := s.PowerMilliwatts(7_000_000); got != int64(c.max*1000) {
			t.Errorf("%s power above full utilisation %d mW, want capped", c.model, got)
		}
	}
}

func TestLinear(t *testing.T) {
	cases := []struct{ lo, hi, u, want int64 }{
		{60_000, 400_000, 0, 60_000},
		{60_000, 400_000, 1_000_000, 400_000},
		{60_000, 400_000, 500_000, 230_000},
		{30, 82, 499_999, 56},
		{30, 82, 500_000, 56},
		{30, 82, 9_999, 31},
		{30, 82, -5, 30},
		{30, 82, 2_000_000, 82},
	}
	for _, c := range cases {
		if got := linear(c.lo, c.hi, c.u); got != c.want {
			t.Errorf("linear(%d, %d, %d) = %d, want %d", c.lo, c.hi, c.u, got, c.want)
		}
	}
	if got := SpecOf("Tesla T4").TemperatureCelsius(1_000_000); got != 82 {
		t.Errorf("T4 temperature at full load %d", got)
	}
	if got := SpecOf("Tesla T4").SMClockHz(0); got != 300e6 {
		t.Errorf("T4 idle clock %v", got)
	}
}

func TestActivityQuantised(t *testing.T) {
	p := pod("uid-q", scenario.ProfileDiurnal, 0.37, t0, nil)
	for m := range 600 {
		at := t0.Add(time.Duration(m) * time.Minute)
		milli := ActivityMilli(p, at)
		if milli < 0 || milli > 1000 || Activity(p, at) != float64(milli)/1000 {
			t.Fatalf("minute %d: ActivityMilli %d, Activity %v", m, milli, Activity(p, at))
		}
	}
}

func TestMemoryUsed(t *testing.T) {
	cases := []struct {
		total int64
		held  bool
		a     int64
		want  int64
	}{
		{10 * GiB, false, 900, 0},
		{10 * GiB, true, 0, 1024 * MiB},
		{10 * GiB, true, 1000, 9216 * MiB},
		{10 * GiB, true, 5000, 9216 * MiB},
		{10 * GiB, true, 500, 5120 * MiB},
		{0, true, 1000, 0},
	}
	for _, c := range cases {
		if got := MemoryUsed(c.total, c.held, c.a); got != c.want {
			t.Errorf("MemoryUsed(%d, %v, %v) = %d, want %d", c.total, c.held, c.a, got, c.want)
		}
	}
}

func TestUtilization(t *testing.T) {
	a := pod("uid-u1", scenario.ProfileConstant, 0.9, t0, nil)
	b := pod("uid-u2", scenario.ProfileConstant, 0.9, t0, nil)
	at := t0.Add(5 * time.Minute)
	shared := []Hold{{Pod: a, WeightMilli: 500, Start: t0}, {Pod: b, WeightMilli: 500, Start: t0}}
	want := ActivityMilli(a, at)*500 + ActivityMilli(b, at)*500
	if got := UtilizationMicro(shared, at); got != want {
		t.Errorf("shared utilisation %v, want %v", got, want)
	}
	if got := Utilization(shared, at); got != float64(want)/1e6 {
		t.Errorf("shared utilisation ratio %v, want %v", got, float64(want)/1e6)
	}
	over := []Hold{{Pod: a, WeightMilli: 1000, Start: t0}, {Pod: b, WeightMilli: 1000, Start: t0}}
	if got := Utilization(over, at); got != 1 {
		t.Errorf("over-committed utilisation %v, want capped at 1", got)
	}
	if got := Utilization(shared, t0.Add(-time.Second)); got != 0 {
		t.Errorf("utilisation before any hold %v", got)
	}
}

func TestEnergyAdditive(t *testing.T) {
	spec := SpecOf("NVIDIA A100-SXM4-80GB")
	holds := []Hold{
		{Pod: pod("uid-e1", scenario.ProfileBursty, 0.4, t0, nil), WeightMilli: 143, Start: t0.Add(90 * time.Second), End: t0.Add(2*time.Hour + 17*time.Second)},
		{Pod: pod("uid-e2", scenario.ProfileDiurnal, 0.6, t0, nil), WeightMilli: 500, Start: t0.Add(-time.Hour)},
		{Pod: pod("uid-e3", scenario.ProfileConstant, 0.8, t0, nil), WeightMilli: 286, Start: t0.Add(3*time.Hour + 1500*time.Millisecond), End: t0.Add(5 * time.Hour)},
	}
	end := t0.Add(6 * time.Hour)
	whole := EnergyMicrojoules(spec, holds, t0, end)
	steps := []time.Duration{time.Second, 15 * time.Second, 7 * time.Minute, 333 * time.Millisecond}
	for _, step := range steps {
		var sum int64
		for at := t0; at.Before(end); {
			next := at.Add(step)
			if next.After(end) {
				next = end
			}
			e := EnergyMicrojoules(spec, holds, at, next)
			if e < 0 {
				t.Fatalf("negative energy %d over [%s, %s)", e, at, next)
			}
			sum += e
			at = next
		}
		if sum != whole {
			t.Errorf("energy in %s steps %d µJ, in one jump %d µJ", step, sum, whole)
		}
	}
	// Bounds: between all-idle and all-busy power.
	secs := end.Sub(t0).Milliseconds()
	if lo, hi := int64(spec.IdleWatts*1000)*secs, int64(spec.MaxWatts*1000)*secs; whole <= lo || whole >= hi {
		t.Errorf("energy %d µJ outside (%d, %d)", whole, lo, hi)
	}
	if got := EnergyMicrojoules(spec, holds, end, t0); got != 0 {
		t.Errorf("energy over a backwards range %d", got)
	}
	// Idle GPU: exactly idle power × time.
	if got, want := EnergyMicrojoules(spec, nil, t0, end), int64(60_000)*secs; got != want {
		t.Errorf("idle energy %d, want %d", got, want)
	}
}

func TestCounterCache(t *testing.T) {
	spec := SpecOf("Tesla T4")
	holds := []Hold{{Pod: pod("uid-c", scenario.ProfileBursty, 0.5, t0, nil), WeightMilli: 1000, Start: t0.Add(10 * time.Minute)}}
	f := func(from, to int64) int64 {
		return EnergyMicrojoules(spec, holds, time.UnixMilli(from), time.UnixMilli(to))
	}
	truth := func(t int64) int64 { return f(t0.UnixMilli(), t) }
	var c counterCache
	c.init(t0.UnixMilli())
	// Forward in irregular steps, then backwards, then forward again.
	offsets := []time.Duration{0, 15 * time.Second, 61 * time.Minute, 3*time.Hour + 7*time.Second, 2 * time.Hour,
		30 * time.Minute, 5 * time.Hour, 5 * time.Hour, 4*time.Hour + 59*time.Minute}
	var last int64
	for i, off := range offsets {
		at := t0.Add(off).UnixMilli()
		got := c.at(at, f)
		if want := truth(at); got != want {
			t.Fatalf("step %d (+%s): cached %d, recomputed %d", i, off, got, want)
		}
		if i > 0 && offsets[i] >= offsets[i-1] && got < last {
			t.Fatalf("counter went down moving forward: %d < %d", got, last)
		}
		last = got
	}
	if got := c.at(t0.Add(-time.Hour).UnixMilli(), f); got != 0 {
		t.Errorf("counter before the origin %d", got)
	}
}

func TestFPGAExecutions(t *testing.T) {
	spec := FPGASpecOf("Alveo U55C")
	h := []Hold{{Pod: pod("uid-f", scenario.ProfileConstant, 1, t0, nil), WeightMilli: 1000, Start: t0}}
	got := spec.ExecutionsMicro(h, t0, t0.Add(time.Minute))
	// Constant 1 with noise ±0.05, capped at 1: between 0.95 and 1 × 100/s × 60 s.
	if lo, hi := int64(0.95*100*60*1e6), int64(100*60*1e6); got < lo || got > hi {
		t.Errorf("executions in a busy minute %d µexec, want in [%d, %d]", got, lo, hi)
	}
	if got := spec.PowerMilliwatts(0); got != 20_000 {
		t.Errorf("U55C idle power %d mW", got)
	}
	if got := spec.PowerMilliwatts(500); got != 85_000 {
		t.Errorf("U55C power at half activity %d mW", got)
	}
	if got := spec.Temperatures(1000); got != [3]int64{75, 63, 40} {
		t.Errorf("U55C temperatures at full activity %v", got)
	}
}
