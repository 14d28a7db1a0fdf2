package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// reportMonth is the month of BenchmarkReportMonth: November 2026.
var reportMonth = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// monthOfIntervals generates a month shaped like P3's (docs/performance.md):
// 6 000 allocations of 300 users in 51 projects, mostly short, some running
// for days, some started before the month or still running at its end, on
// four GPU models (three per user) with time-sliced T4s — about 900
// ledger keys in the month.
func monthOfIntervals() []observe.Interval {
	r := rand.New(rand.NewPCG(3, 17))
	from := reportMonth.Unix()
	to := reportMonth.AddDate(0, 1, 0).Unix()
	models := []string{"A100", "A30", "H100", "T4"}
	out := make([]observe.Interval, 6000)
	for i := range out {
		u := r.IntN(300)
		p := u % 51
		model := models[(u*7+r.IntN(3))%len(models)]
		start := from - 2*86400 + r.Int64N(to-from+2*86400-60)
		var dur int64
		switch k := r.IntN(10); {
		case k < 6:
			dur = 60 + r.Int64N(1800) // minutes
		case k < 9:
			dur = 3600 + r.Int64N(12*3600) // hours
		default:
			dur = 86400 + r.Int64N(6*86400) // days
		}
		end := start + dur
		opts := []ivOpt{project(fmt.Sprintf("org-%02d", p), fmt.Sprintf("org-%02d-u%02d", p, u/51)),
			func(x *observe.Interval) {
				x.Model, x.Namespace, x.Node = model, fmt.Sprintf("org-%02d", p), fmt.Sprintf("node-%03d", r.IntN(1140))
				x.WeightMilli = 1000 * (1 + r.Int64N(4))
				x.Devices = x.WeightMilli / 1000
			}}
		if model == "T4" {
			opts = append(opts, shared(250))
		}
		if end > to {
			end = 0
			opts = append(opts, seen(to))
		}
		out[i] = iv(fmt.Sprint("p", i), start, end, opts...)
		if end != 0 && start < from && end <= from {
			out[i].End = from + 1 + r.Int64N(3600) // every allocation touches the month
		}
	}
	return out
}

// BenchmarkReportMonth is the ledger side of P3 without Prometheus:
// Store.Report by project over one month (the monthly rollup rows, what
// `gpuledger report` reads for a calendar month) of a ledger filled from
// a generated month (monthOfIntervals) through ApplyWindow, one window
// spanning the month, then vacuumed and analyzed as autovacuum leaves a
// month that has ended. ns/op is one answer, from the call to the last
// row, answers following each other; pause-ms is the median of 11 answers
// each given after half a second of idleness, as a report server between
// requests (or P3, between its answers) gives them, and pause-select1-ms
// the same for `SELECT 1`: what any statement costs after such a pause.
func BenchmarkReportMonth(b *testing.B) {
	s, _ := newStore(b, Options{})
	ctx := context.Background()
	from, to := reportMonth, reportMonth.AddDate(0, 1, 0)
	if err := s.ApplyWindow(ctx, win(from.Unix(), to.Unix(), monthOfIntervals()...)); err != nil {
		b.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		b.Fatal(err)
	}
	var keys int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM ledger_monthly WHERE cluster = $1 AND month = $2",
		testCluster, from).Scan(&keys); err != nil {
		b.Fatal(err)
	}
	q := ReportQuery{Cluster: testCluster, From: from, To: to, GroupBy: []string{KeyProject}}
	var groups int
	for b.Loop() {
		groups = 0
		if err := s.Report(ctx, q, func(ReportRow) error { groups++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	if groups != 51 {
		b.Fatalf("%d projects, want 51", groups)
	}
	b.ReportMetric(float64(keys), "monthly-rows")
	b.ReportMetric(afterPause(b, func() error {
		return s.Report(ctx, q, func(ReportRow) error { return nil })
	}), "pause-ms")
	b.ReportMetric(afterPause(b, func() error {
		var one int
		return s.pool.QueryRow(ctx, "SELECT 1").Scan(&one)
	}), "pause-select1-ms")
}

// afterPause returns the median time of 11 calls of fn, in milliseconds,
// each after half a second of idleness.
func afterPause(b *testing.B, fn func() error) float64 {
	b.Helper()
	d := make([]time.Duration, 11)
	for i := range d {
		time.Sleep(500 * time.Millisecond)
		start := time.Now()
		if err := fn(); err != nil {
			b.Fatal(err)
		}
		d[i] = time.Since(start)
	}
	slices.Sort(d)
	return float64(d[len(d)/2]) / 1e6
}
