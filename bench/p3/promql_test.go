package p3

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/gpuledger/gpuledger/sim/scenario"
)

// The two PromQL answers to "allocated GPU-hours by project over the
// window", the way a platform without a ledger asks Prometheus for them.
//
// Naive sums every sample of the allocation weight series over the window,
// evaluated at the window's end, and multiplies by the scrape interval.
// The exporters keep an ended allocation's series for the retention, so
// each ended allocation counts its retention too; the range of an instant
// query includes both of its ends, so the sample at the window's end counts
// as well.
//
// Fixed drops the samples of ended allocations (those whose end series is
// present at the same step: `unless`, in a subquery at the scrape
// interval) and is evaluated one millisecond before the window's end, so
// that only the window's own steps count. What is left is the sampling
// error: an allocation counts one interval for every scrape that saw it
// active, whatever part of the interval it held the device.
const (
	promqlNaive = `sum by (project) (sum_over_time(gpuledger_allocation_weight_ratio[%s])) * %g / 3600`
	promqlFixed = `sum by (project) (sum_over_time((gpuledger_allocation_weight_ratio` +
		` unless gpuledger_allocation_end_time_seconds)[%s:%s])) * %g / 3600`
)

// promQuery is one PromQL answer: the query and its evaluation time.
type promQuery struct {
	name  string
	query string
	at    time.Time
}

// promQueries returns the naive and the fixed query over [from, to) for a
// scrape interval.
func promQueries(from, to time.Time, interval time.Duration) []promQuery {
	rng := model.Duration(to.Sub(from)).String()
	step := model.Duration(interval).String()
	secs := interval.Seconds()
	return []promQuery{
		{"naive", fmt.Sprintf(promqlNaive, rng, secs), to},
		{"fixed", fmt.Sprintf(promqlFixed, rng, step, secs), to.Add(-time.Millisecond)},
	}
}

// promClient asks a Prometheus through its HTTP API.
type promClient struct{ api v1.API }

func newPromClient(url string) (*promClient, error) {
	c, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		return nil, err
	}
	return &promClient{api: v1.NewAPI(c)}, nil
}

// hoursByProject runs an instant query whose result is a vector labelled
// by project and returns the values.
func (c *promClient) hoursByProject(ctx context.Context, q promQuery) (map[string]float64, error) {
	v, warns, _, err := c.api.Query(ctx, q.query, q.at)
	if err != nil {
		return nil, fmt.Errorf("PromQL %s: %w", q.name, err)
	}
	if len(warns) > 0 {
		return nil, fmt.Errorf("PromQL %s: warnings: %s", q.name, strings.Join(warns, "; "))
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("PromQL %s: a %s, want a vector", q.name, v.Type())
	}
	out := make(map[string]float64, len(vec))
	for _, s := range vec {
		p := string(s.Metric["project"])
		if _, dup := out[p]; dup {
			return nil, fmt.Errorf("PromQL %s: project %q twice", q.name, p)
		}
		out[p] = float64(s.Value)
	}
	return out, nil
}

// sampledMilli is the answer the PromQL queries must give, computed from
// the allocations: per project, Σ weight (milli-GPU) × the scrapes of the
// grid from + k × interval, k ≥ 0, up to last (included), that served the
// allocation's weight series — over [start, end + retention) for naive
// (withRetention), over [start, end) for fixed. Multiplied by the interval
// it is the answer in milli-GPU-seconds. It assumes scrapes that all
// succeed (no faults).
func sampledMilli(allocs []scenario.Allocation, from, last time.Time, interval, retention time.Duration, withRetention bool) map[string]int64 {
	out := map[string]int64{}
	f, l, iv := from.UnixMilli(), last.UnixMilli(), interval.Milliseconds()
	for i := range allocs {
		a := &allocs[i]
		lo := a.Start.UnixMilli() // visible over [lo, hi)
		hi := int64(math.MaxInt64)
		if !a.Open() {
			hi = a.End.UnixMilli()
			if withRetention {
				hi += retention.Milliseconds()
			}
		}
		// Grid indexes k with lo ≤ f + k·iv < hi and f + k·iv ≤ l.
		k0 := max(ceilDiv(lo-f, iv), 0)
		k1 := (l - f) / iv // last k on or before l
		if hi != math.MaxInt64 {
			k1 = min(k1, ceilDiv(hi-f, iv)-1)
		}
		if k1 >= k0 {
			out[a.Project] += a.WeightMilli * (k1 - k0 + 1)
		}
	}
	return out
}

// ceilDiv is ⌈a / b⌉ for b > 0.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a > 0) == (b > 0) {
		q++
	}
	return q
}

// errors of one answer against the ground truth.
type answerError struct {
	Total        float64 // |Σ answer − Σ truth| / Σ truth
	Worst        float64 // max over the truth's projects of |answer − truth| / truth
	WorstProject string
	WorstHours   float64 // the largest |answer − truth| of a project, GPU-hours
}

// compare sets an answer (GPU-hours by project) against the truth
// (milli-GPU-seconds by project). A project only one side has counts with
// the other side's value as 0; the relative error of a project absent from
// the truth is not defined and counts as +Inf.
func compare(answer map[string]float64, truth map[string]int64) answerError {
	var e answerError
	var sumA, sumT float64
	for _, p := range keys(answer, truth) {
		a, t := answer[p], float64(truth[p])/3.6e6
		sumA += a
		sumT += t
		d := math.Abs(a - t)
		rel := math.Inf(1)
		if t != 0 {
			rel = d / t
		} else if d == 0 {
			rel = 0
		}
		if rel > e.Worst || e.WorstProject == "" {
			e.Worst, e.WorstProject = rel, p
		}
		e.WorstHours = max(e.WorstHours, d)
	}
	if sumT != 0 {
		e.Total = math.Abs(sumA-sumT) / sumT
	}
	return e
}

// keys returns the keys of a and b, sorted.
func keys[A, B any](a map[string]A, b map[string]B) []string {
	ks := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

// hours converts milli-GPU-seconds by project to GPU-hours, times a factor
// (the scrape interval in seconds for sampledMilli's counts).
func hours(m map[string]int64, factor float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = float64(v) * factor / 3.6e6
	}
	return out
}

// sameHours reports the projects whose values differ by more than a
// relative 1e-9 (float sums in another order), as "project: got, want".
func sameHours(got, want map[string]float64) []string {
	var bad []string
	for _, p := range keys(got, want) {
		g, w := got[p], want[p]
		if math.Abs(g-w) > 1e-9*math.Max(math.Abs(w), 1e-3) {
			bad = append(bad, fmt.Sprintf("%s: %.6f, want %.6f", p, g, w))
		}
	}
	return bad
}
