package p3

import (
	"context"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/internal/promtest"
	"github.com/gpuledger/gpuledger/sim/scenario"
	"github.com/gpuledger/gpuledger/sim/truth"
)

// TestPromQLAnswers checks the benchmark's two PromQL queries on a real
// Prometheus holding the backfilled history of the small scenario (its
// faults removed, so that every scrape succeeds): each must give exactly
// the answer the sampling model (sampledMilli) predicts from the
// allocations, so that the errors P3 reports are the sampling and the
// retention, not a mistake in the queries. It also checks that both
// differ from the ground truth, the naive one by more.
func TestPromQLAnswers(t *testing.T) {
	s, err := scenario.Load("../../testdata/scenarios/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s.Faults = nil
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	srv := promtest.Start(t, s)
	c, err := newPromClient(srv)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := truthByProject(allocs, s.Start, s.End)
	if err != nil {
		t.Fatal(err)
	}
	iv := s.ScrapeInterval.D()
	qs := promQueries(s.Start, s.End, iv)
	want := map[string]map[string]float64{
		"naive": hours(sampledMilli(allocs, s.Start, s.End, iv, s.Retention(), true), iv.Seconds()),
		"fixed": hours(sampledMilli(allocs, s.Start, s.End.Add(-iv), iv, s.Retention(), false), iv.Seconds()),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := map[string]answerError{}
	for _, q := range qs {
		got, err := c.hoursByProject(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			t.Errorf("%s: empty answer", q.name)
		}
		for _, d := range sameHours(got, want[q.name]) {
			t.Errorf("%s (%s): %s", q.name, q.query, d)
		}
		errs[q.name] = compare(got, tr)
	}
	if errs["fixed"].Total == 0 || errs["naive"].Total <= errs["fixed"].Total {
		t.Errorf("errors against the truth: naive %+v, fixed %+v; want 0 < fixed < naive", errs["naive"], errs["fixed"])
	}
}

// truthByProject is the ground truth's allocated milli-GPU-seconds by
// project over [from, to).
func truthByProject(allocs []scenario.Allocation, from, to time.Time) (map[string]int64, error) {
	r, err := truth.Compute(allocs, from, to, []string{truth.KeyProject})
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(r.Rows))
	for _, row := range r.Rows {
		out[row.Keys[0]] += row.AllocatedMilliGPUSeconds
	}
	return out, nil
}

// TestSampledMilli pins the grid arithmetic of the sampling model on
// hand-counted cases.
func TestSampledMilli(t *testing.T) {
	from := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	at := func(m, s int) time.Time { return from.Add(time.Duration(m)*time.Minute + time.Duration(s)*time.Second) }
	alloc := func(start, end time.Time, w int64) scenario.Allocation {
		a := scenario.Allocation{Start: start, End: end, WeightMilli: w}
		a.Project = "p"
		return a
	}
	const iv, ret = 5 * time.Minute, time.Hour
	for _, tc := range []struct {
		name      string
		a         scenario.Allocation
		last      time.Time
		retention bool
		want      int64
	}{
		{"inside one interval: no scrape", alloc(at(1, 0), at(4, 0), 1000), at(60, 0), false, 0},
		{"on a scrape, ends before the next", alloc(at(5, 0), at(6, 0), 1000), at(60, 0), false, 1000},
		{"ends on a scrape: [start, end)", alloc(at(5, 0), at(10, 0), 1000), at(60, 0), false, 1000},
		{"retention adds its scrapes", alloc(at(5, 0), at(10, 0), 1000), at(120, 0), true, 13 * 1000},
		{"retention cut by the last scrape", alloc(at(5, 0), at(10, 0), 1000), at(30, 0), true, 6 * 1000},
		{"started before the grid", alloc(at(-20, 0), at(12, 1), 500), at(60, 0), false, 3 * 500},
		{"open, last scrape included", alloc(at(0, 1), time.Time{}, 250), at(30, 0), false, 6 * 250},
		{"after the last scrape", alloc(at(31, 0), time.Time{}, 1000), at(30, 0), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sampledMilli([]scenario.Allocation{tc.a}, from, tc.last, iv, ret, tc.retention)["p"]
			if got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// TestCompare checks the error arithmetic.
func TestCompare(t *testing.T) {
	truthM := map[string]int64{"a": 3_600_000, "b": 7_200_000} // 1 and 2 GPU-hours
	e := compare(map[string]float64{"a": 1.5, "b": 2}, truthM)
	if e.Total != 0.5/3 || e.Worst != 0.5 || e.WorstProject != "a" || e.WorstHours != 0.5 {
		t.Errorf("got %+v", e)
	}
	if e := compare(map[string]float64{"a": 1, "b": 2}, truthM); e.Total != 0 || e.Worst != 0 {
		t.Errorf("exact answer: got %+v", e)
	}
	if e := compare(map[string]float64{"a": 1, "b": 2, "c": 1}, truthM); e.WorstProject != "c" || e.Worst <= 1e300 {
		t.Errorf("a project the truth lacks: got %+v", e)
	}
}
