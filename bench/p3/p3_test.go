package p3

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/aggregator/source"
	"github.com/gpuledger/gpuledger/aggregator/source/backfill"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/internal/pgtest"
	"github.com/gpuledger/gpuledger/internal/promtest"
	"github.com/gpuledger/gpuledger/sim/scenario"
	"github.com/gpuledger/gpuledger/sim/trace"
)

var (
	flagEvery = flag.Int("p3.every", 1,
		"keep every n-th node holding allocations in the month, in name order (1: the whole cluster, 1 140 nodes)")
	flagInterval = flag.Duration("p3.interval", 5*time.Minute, "scrape interval of the backfilled history")
	flagRounds   = flag.Int("p3.rounds", 15, "timed rounds of every answer per benchmark iteration (medians are reported)")
	flagAll      = flag.Bool("p3.all-families", false,
		"write every family the aggregator reads into the history (the GPU and exporter-time families too), not only "+
			"the allocation families and up: over ten times the bytes, about three times the setup time")
)

// The month of P3: the busiest 30 days of the trace (trace days 119 to
// 149, the last whole 30 days), placed as November 2026 so that the
// window is a calendar month.
var (
	p3Month   = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	p3FromDay = 119
)

// allocFamilies are the families of the history by default: the
// allocation series, which hold everything both answers need (PromQL reads
// the weight and end series), and up. The other families the aggregator
// reads (GPU info and energy, one series per GPU, and the exporter's time)
// are most of the bytes and change neither answer nor, measured, PromQL's
// latency; -p3.all-families writes them too.
var allocFamilies = []string{source.FamilyStart, source.FamilyEnd, source.FamilyWeight, source.FamilyDevices,
	source.FamilyActivity, source.FamilyUp}

// p3TraceDir is $TRACE_DIR, else ../shared/data beside the repository.
func p3TraceDir() string {
	if d := os.Getenv("TRACE_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "shared", "data")
}

// loadMonth imports the month from the trace, then keeps every n-th node
// that holds allocations in it, with their pods.
func loadMonth(b *testing.B, every int, interval time.Duration) *scenario.Scenario {
	b.Helper()
	dir := p3TraceDir()
	paths := map[string]string{}
	for _, f := range []string{trace.AlibabaPodsFile, trace.AlibabaNodesFile, trace.OrgsFile} {
		p := filepath.Join(dir, f)
		if _, err := os.Stat(p); err != nil {
			b.Skipf("public traces not found at %s: %v (set TRACE_DIR or check out ../shared beside the repository)", dir, err)
		}
		paths[f] = p
	}
	pods, err := trace.LoadAlibabaPods(paths[trace.AlibabaPodsFile])
	if err != nil {
		b.Fatal(err)
	}
	nodes, err := trace.LoadAlibabaNodes(paths[trace.AlibabaNodesFile])
	if err != nil {
		b.Fatal(err)
	}
	orgs, err := trace.LoadOrgs(paths[trace.OrgsFile])
	if err != nil {
		b.Fatal(err)
	}
	day := 24 * time.Hour
	s, err := trace.Alibaba(pods, nodes, orgs, trace.Options{
		Epoch: p3Month.Add(-time.Duration(p3FromDay) * day), From: time.Duration(p3FromDay) * day, Duration: 30 * day,
		Seed: 1, ScrapeInterval: interval,
	})
	if err != nil {
		b.Fatal(err)
	}
	if !s.Start.Equal(p3Month) || !s.End.Equal(p3Month.AddDate(0, 1, 0)) {
		b.Fatalf("scenario [%s, %s), want November 2026", s.Start, s.End)
	}
	sub, err := everyNth(s, every)
	if err != nil {
		b.Fatal(err)
	}
	return sub
}

// everyNth returns s restricted to every n-th node (in name order) among
// the nodes that hold a pod, with their pods.
func everyNth(s *scenario.Scenario, n int) (*scenario.Scenario, error) {
	if n < 1 {
		return nil, fmt.Errorf("keep every %d-th node: want n ≥ 1", n)
	}
	busy := map[string]bool{}
	for i := range s.Pods {
		busy[s.Pods[i].Node] = true
	}
	names := make([]string, 0, len(busy))
	for name := range busy {
		names = append(names, name)
	}
	sort.Strings(names)
	keep := map[string]bool{}
	for i, name := range names {
		if i%n == 0 {
			keep[name] = true
		}
	}
	out := *s
	out.Nodes = nil
	for _, node := range s.Nodes {
		if keep[node.Name] {
			out.Nodes = append(out.Nodes, node)
		}
	}
	out.Pods = nil
	for _, p := range s.Pods {
		if keep[p.Node] {
			out.Pods = append(out.Pods, p)
		}
	}
	if err := scenario.Validate(&out); err != nil {
		return nil, fmt.Errorf("every %d-th node: %w", n, err)
	}
	return &out, nil
}

// monthIntervals are the allocations as the interval reconstruction
// delivers them at the month's end: exact starts (also before the month)
// and ends; an allocation still running at the end is open, last seen
// there.
func monthIntervals(allocs []scenario.Allocation, end time.Time) []observe.Interval {
	out := make([]observe.Interval, len(allocs))
	for i := range allocs {
		a := &allocs[i]
		x := observe.Interval{
			AllocKey: observe.AllocKey{Node: a.Node, Device: a.DeviceID, PodUID: a.Pod.UID, Resource: a.Resource},
			Attrs: observe.Attrs{Class: string(a.Class), GPUUUID: a.GPUUUID, Model: a.Model, Profile: a.Profile,
				Namespace: a.Pod.Namespace, Pod: a.Pod.Name, User: a.User, Project: a.Project, Queue: a.Queue, Site: a.Site},
			Start: a.Start.Unix(), LastSeen: end.UnixMilli(), WeightMilli: a.WeightMilli, Devices: a.Devices,
		}
		if !a.Open() && !a.End.After(end) {
			x.End, x.EndExact, x.LastSeen = a.End.Unix(), true, a.End.UnixMilli()
		}
		out[i] = x
	}
	return out
}

// ledgerByProject runs the ledger's report by project.
func ledgerByProject(ctx context.Context, store *ledger.Store, q ledger.ReportQuery) (map[string]int64, error) {
	out := map[string]int64{}
	err := store.Report(ctx, q, func(r ledger.ReportRow) error {
		out[r.Keys[0]] += r.AllocatedMilliGPUSeconds
		return nil
	})
	return out, err
}

// BenchmarkP3MonthLedgerVsPromQL is P3 of docs/performance.md: the
// allocated GPU-hours by project of one month of the Alibaba GPU v2023
// trace, answered
//
//   - by the ledger: Store.Report over the month (monthly rollup rows), its
//     hourly-rows variant (HourlyOnly), and the `gpuledger report` command
//     end to end (a process per answer);
//   - by PromQL through Prometheus's HTTP API (an instant query at the
//     month's end) over the exporters' history, backfilled with promtool:
//     the naive sum_over_time of the weight series and the fixed one that
//     leaves out ended allocations (promqlNaive, promqlFixed).
//
// Setup (untimed): the month's scenario (every node holding allocations,
// or every -p3.every-th), its ground truth (sim/truth), the exporters'
// history written by backfill.Write (allocFamilies, or with
// -p3.all-families every family the aggregator reads; at -p3.interval),
// turned by promtool into a TSDB of 31-day blocks served by a real
// Prometheus, and a fresh ledger filled from the scenario's exact
// intervals through ApplyWindow (one window spanning the month, watermark
// at its end), then vacuumed and analyzed. The ledger is checked equal to
// the ground truth, and each PromQL answer equal to the sampling model
// (sampledMilli), once; then each iteration times -p3.rounds rounds of every answer, interleaved.
// The metrics are medians over all rounds, the ratios PromQL's median
// over the ledger's, and each answer's error against the ground truth
// (total, and the worst project).
func BenchmarkP3MonthLedgerVsPromQL(b *testing.B) {
	if *flagRounds < 1 {
		b.Fatalf("-p3.rounds %d: want at least 1", *flagRounds)
	}
	interval := *flagInterval
	if interval <= 0 || interval%time.Second != 0 || time.Hour%interval != 0 {
		b.Fatalf("-p3.interval %s: want whole seconds that divide the hour", interval)
	}
	setupBegan := time.Now()
	s := loadMonth(b, *flagEvery, interval)
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		b.Fatal(err)
	}
	tr, err := truthByProject(allocs, s.Start, s.End)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	// The ledger, filled from the exact intervals and checked.
	dbURL := pgtest.New(b)
	store, err := ledger.Open(ctx, dbURL, ledger.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	fillBegan := time.Now()
	w := observe.Window{Cluster: s.Cluster, From: s.Start.Unix(), To: s.End.Unix(), Intervals: monthIntervals(allocs, s.End)}
	if err := store.ApplyWindow(ctx, w); err != nil {
		b.Fatal(err)
	}
	fill := time.Since(fillBegan)
	// A month that has ended is vacuumed and analyzed by autovacuum long
	// before anyone reports it (here it would be during the setup below);
	// doing it now makes the plans of the timed answers not depend on
	// when autovacuum ran.
	if _, err := store.Pool().Exec(ctx, "VACUUM ANALYZE"); err != nil {
		b.Fatal(err)
	}
	monthQ := ledger.ReportQuery{Cluster: s.Cluster, From: s.Start, To: s.End, GroupBy: []string{ledger.KeyProject}}
	hourlyQ := monthQ
	hourlyQ.HourlyOnly = true
	errs := map[string]answerError{}
	for _, q := range []ledger.ReportQuery{monthQ, hourlyQ} {
		got, err := ledgerByProject(ctx, store, q)
		if err != nil {
			b.Fatal(err)
		}
		if !equalMilli(got, tr) {
			b.Fatalf("ledger (hourly only %v) differs from the ground truth:\n%s", q.HourlyOnly, diffMilli(got, tr))
		}
		if !q.HourlyOnly {
			errs["ledger"] = compare(hours(got, 1), tr)
		}
	}

	// The gpuledger binary, for the report command end to end.
	bin := filepath.Join(b.TempDir(), "gpuledger")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/gpuledger/gpuledger/cmd/gpuledger").CombinedOutput(); err != nil {
		b.Fatalf("build gpuledger: %v\n%s", err, out)
	}
	cliArgs := []string{"report", "--database-url", dbURL, "--cluster", s.Cluster, "--group-by", ledger.KeyProject,
		"--from", s.Start.Format(time.RFC3339), "--to", s.End.Format(time.RFC3339)}

	// Prometheus, with the month's history.
	families := allocFamilies
	if *flagAll {
		families = nil // promtest's default: the families the aggregator reads, and up
	}
	srv := promtest.StartWith(b, s, promtest.Options{
		Backfill:         backfill.Options{Families: families},
		MaxBlockDuration: 31 * 24 * time.Hour,
		ReadyTimeout:     2 * time.Minute,
	})
	prom, err := newPromClient(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	qs := promQueries(s.Start, s.End, interval)
	model := map[string]map[string]float64{
		"naive": hours(sampledMilli(allocs, s.Start, s.End, interval, s.Retention(), true), interval.Seconds()),
		"fixed": hours(sampledMilli(allocs, s.Start, s.End.Add(-interval), interval, s.Retention(), false), interval.Seconds()),
	}
	answers := map[string]map[string]float64{}
	for _, q := range qs {
		got, err := prom.hoursByProject(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		if d := sameHours(got, model[q.name]); len(d) > 0 {
			b.Errorf("PromQL %s differs from the sampling model:\n%s", q.name, strings.Join(d, "\n"))
		}
		answers[q.name] = got
		errs[q.name] = compare(got, tr)
	}
	setup := time.Since(setupBegan)
	logAnswers(b, tr, answers)

	// The timed rounds.
	type timed struct {
		name string
		run  func() error
	}
	runs := []timed{
		{"ledger", func() error { _, err := ledgerByProject(ctx, store, monthQ); return err }},
		{"ledger-hourly", func() error { _, err := ledgerByProject(ctx, store, hourlyQ); return err }},
		{"cli", func() error {
			if out, err := exec.Command(bin, cliArgs...).CombinedOutput(); err != nil {
				return fmt.Errorf("gpuledger report: %v\n%s", err, out)
			}
			return nil
		}},
	}
	for _, q := range qs {
		runs = append(runs, timed{"promql-" + q.name, func() error { _, err := prom.hoursByProject(ctx, q); return err }})
	}
	for _, r := range runs { // warm every path once
		if err := r.run(); err != nil {
			b.Fatal(err)
		}
	}
	lat := map[string][]time.Duration{}
	for b.Loop() {
		for range *flagRounds {
			for _, r := range runs {
				began := time.Now()
				if err := r.run(); err != nil {
					b.Fatal(err)
				}
				lat[r.name] = append(lat[r.name], time.Since(began))
			}
		}
	}
	b.StopTimer()

	ms := func(name string) float64 { return float64(median(lat[name])) / 1e6 }
	for _, r := range runs {
		b.ReportMetric(ms(r.name), r.name+"-ms")
	}
	b.ReportMetric(ms("promql-naive")/ms("ledger"), "ratio-naive")
	b.ReportMetric(ms("promql-fixed")/ms("ledger"), "ratio-fixed")
	b.ReportMetric(ms("promql-naive")/ms("cli"), "ratio-naive-cli")
	for _, name := range []string{"ledger", "naive", "fixed"} {
		b.ReportMetric(100*errs[name].Total, name+"-err-%")
		b.ReportMetric(100*errs[name].Worst, name+"-worst-%")
		b.ReportMetric(errs[name].WorstHours, name+"-worst-h")
	}
	b.ReportMetric(float64(len(s.Nodes)), "nodes")
	b.ReportMetric(float64(len(allocs)), "allocations")
	b.ReportMetric(float64(len(tr)), "projects")
	b.ReportMetric(float64(srv.History.Samples), "samples")
	b.ReportMetric(setup.Seconds(), "setup-s")
	b.Logf("month [%s, %s), every %d-th node, all families %v: %d nodes, %d pods, %d allocations, %d projects, %.1f GPU-hours",
		s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339), *flagEvery, *flagAll, len(s.Nodes), len(s.Pods), len(allocs),
		len(tr), float64(sumMilli(tr))/3.6e6)
	b.Logf("setup %s: history %d samples, %.2f GB written in %s; promtool %s; TSDB %d blocks, %.0f MB; ledger fill %s",
		setup.Round(time.Second), srv.History.Samples, float64(srv.History.Bytes)/1e9, srv.Write.Round(time.Second),
		srv.Blocks.Round(time.Second), srv.TSDBBlocks, float64(srv.TSDBBytes)/1e6, fill.Round(time.Millisecond))
	for _, r := range runs {
		d := lat[r.name]
		b.Logf("%-14s median %8.2f ms, min %8.2f, max %8.2f (%d runs)", r.name, ms(r.name),
			float64(slices.Min(d))/1e6, float64(slices.Max(d))/1e6, len(d))
	}
	for _, name := range []string{"naive", "fixed"} {
		e := errs[name]
		b.Logf("PromQL %s: total error %+.3f %%, worst project %s %.2f %%, largest project difference %.1f GPU-hours",
			name, 100*signedTotal(answers[name], tr), e.WorstProject, 100*e.Worst, e.WorstHours)
	}
	for _, q := range qs {
		b.Logf("PromQL %s at %s: %s", q.name, q.at.Format(time.RFC3339Nano), q.query)
	}
}

// median of durations (the lower middle for an even count).
func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func sumMilli(m map[string]int64) int64 {
	var t int64
	for _, v := range m {
		t += v
	}
	return t
}

// signedTotal is (Σ answer − Σ truth) / Σ truth.
func signedTotal(answer map[string]float64, truth map[string]int64) float64 {
	var a float64
	for _, v := range answer {
		a += v
	}
	t := float64(sumMilli(truth)) / 3.6e6
	return (a - t) / t
}

func equalMilli(a, b map[string]int64) bool {
	for _, k := range keys(a, b) {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}

func diffMilli(got, want map[string]int64) string {
	var out []string
	for _, k := range keys(got, want) {
		if got[k] != want[k] {
			out = append(out, fmt.Sprintf("  %s: %d milli-GPU-seconds, want %d", k, got[k], want[k]))
		}
	}
	return strings.Join(out, "\n")
}

// logAnswers logs every project's GPU-hours: truth, PromQL naive and fixed.
func logAnswers(b *testing.B, truth map[string]int64, answers map[string]map[string]float64) {
	var lines []string
	for _, p := range keys(truth, answers["naive"]) {
		t := float64(truth[p]) / 3.6e6
		lines = append(lines, fmt.Sprintf("%-28s %12.3f %12.3f %+8.2f%% %12.3f %+8.2f%%", p, t,
			answers["naive"][p], pct(answers["naive"][p], t), answers["fixed"][p], pct(answers["fixed"][p], t)))
	}
	b.Logf("GPU-hours by project: truth (= ledger), PromQL naive, PromQL fixed\n%s", strings.Join(lines, "\n"))
}

func pct(a, t float64) float64 {
	if t == 0 {
		return 0
	}
	return 100 * (a - t) / t
}
