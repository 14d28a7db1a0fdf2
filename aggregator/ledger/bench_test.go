package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// BenchmarkApplyWindow applies consecutive five-minute windows of a
// cluster with 500 running allocations, each with usage, as an aggregator
// does in steady state.
func BenchmarkApplyWindow(b *testing.B) {
	s, _ := newStore(b, Options{})
	const allocs = 500
	ivs := make([]observe.Interval, allocs)
	for i := range ivs {
		ivs[i] = iv(fmt.Sprint("p", i), t0-3600, 0, project(fmt.Sprint("proj", i%20), fmt.Sprint("user", i%50)))
	}
	ctx := context.Background()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		from := t0 + int64(n)*300
		w := win(from, from+300)
		for _, x := range ivs {
			x.LastSeen = (from + 300) * 1000
			w.Intervals = append(w.Intervals, x)
			w.Usage = append(w.Usage, observe.Usage{AllocKey: x.AllocKey, UsedMilliGPUSeconds: 100, IdleMilliGPUSeconds: 10, EnergyMillijoules: 1000})
		}
		if err := s.ApplyWindow(ctx, w); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(allocs), "allocations/window")
}

// BenchmarkApplyBulk writes 8000 closed intervals spread over 149 days in
// one window of intervals only (a backfill), recomputing every hour.
func BenchmarkApplyBulk(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const days = 149
	ivs := make([]observe.Interval, 8000)
	for i := range ivs {
		start := t0 + r.Int64N(days*86400-7200)
		end := min(start+60+r.Int64N(3*86400), t0+days*86400)
		ivs[i] = iv(fmt.Sprint("p", i), start, end, project(fmt.Sprint("proj", i%40), fmt.Sprint("user", i%300)))
	}
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		s, _ := newStore(b, Options{})
		b.StartTimer()
		if err := s.ApplyWindow(context.Background(), win(t0, t0+days*86400, ivs...)); err != nil {
			b.Fatal(err)
		}
	}
}
