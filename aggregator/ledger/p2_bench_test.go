package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/internal/pgtest"
	"github.com/gpuledger/gpuledger/sim/scenario"
	"github.com/gpuledger/gpuledger/sim/trace"
	"github.com/gpuledger/gpuledger/sim/truth"
)

// p2Epoch is the wall-clock time of the Alibaba trace's second 0 in P2.
var p2Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// p2Input is the whole Alibaba GPU v2023 trace as allocation intervals.
type p2Input struct {
	scenario  *scenario.Scenario
	allocs    []scenario.Allocation
	intervals []observe.Interval
	open      int           // intervals still open at the trace's end
	load      time.Duration // reading, importing and converting the trace
}

// errNoTrace is the public trace missing: the benchmark skips.
var errNoTrace = errors.New("public traces not found")

// loadP2 imports the whole trace once per process.
var loadP2 = sync.OnceValues(importP2)

// p2TraceDir is $TRACE_DIR, else ../shared/data beside the repository.
func p2TraceDir() string {
	if d := os.Getenv("TRACE_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "shared", "data")
}

// importP2 imports the whole trace — every pod, placed on the trace's
// nodes, over [0, the last deletion_time) trace seconds — and turns its
// allocations into intervals.
func importP2() (*p2Input, error) {
	start := time.Now()
	dir := p2TraceDir()
	path := func(f string) string { return filepath.Join(dir, f) }
	for _, f := range []string{trace.AlibabaPodsFile, trace.AlibabaNodesFile, trace.OrgsFile} {
		if _, err := os.Stat(path(f)); err != nil {
			return nil, fmt.Errorf("%w at %s: %v (set TRACE_DIR or check out ../shared beside the repository)", errNoTrace, dir, err)
		}
	}
	pods, err := trace.LoadAlibabaPods(path(trace.AlibabaPodsFile))
	if err != nil {
		return nil, err
	}
	nodes, err := trace.LoadAlibabaNodes(path(trace.AlibabaNodesFile))
	if err != nil {
		return nil, err
	}
	orgs, err := trace.LoadOrgs(path(trace.OrgsFile))
	if err != nil {
		return nil, err
	}
	var last int64
	for _, p := range pods {
		last = max(last, p.Deletion)
	}
	s, err := trace.Alibaba(pods, nodes, orgs, trace.Options{
		Epoch: p2Epoch, From: 0, Duration: time.Duration(last) * time.Second, Seed: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("import the whole trace: %w", err)
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		return nil, err
	}
	in := &p2Input{scenario: s, allocs: allocs, intervals: make([]observe.Interval, len(allocs))}
	for i := range allocs {
		in.intervals[i] = allocInterval(&allocs[i], s.End.Unix())
		if allocs[i].Open() {
			in.open++
		}
	}
	in.load = time.Since(start)
	return in, nil
}

// allocInterval is a ground-truth allocation as the interval
// reconstruction would deliver it with every end seen: exact start and
// end, EndExact; an allocation still running at the trace's end stays open
// and was last seen there.
func allocInterval(a *scenario.Allocation, traceEnd int64) observe.Interval {
	x := observe.Interval{
		AllocKey: observe.AllocKey{Node: a.Node, Device: a.DeviceID, PodUID: a.Pod.UID, Resource: a.Resource},
		Attrs: observe.Attrs{Class: string(a.Class), GPUUUID: a.GPUUUID, Model: a.Model, Profile: a.Profile,
			Namespace: a.Pod.Namespace, Pod: a.Pod.Name, User: a.User, Project: a.Project, Queue: a.Queue, Site: a.Site},
		Start: a.Start.Unix(), LastSeen: traceEnd * 1000, WeightMilli: a.WeightMilli, Devices: a.Devices,
	}
	if !a.Open() {
		x.End, x.EndExact, x.LastSeen = a.End.Unix(), true, a.End.Unix()*1000
	}
	return x
}

// BenchmarkP2TraceLedger is P2 of docs/performance.md: the whole Alibaba
// GPU v2023 trace (8 152 pods, 149 days), as allocation intervals, into
// the hourly ledger of a fresh database through ApplyWindow — one window
// of intervals only spanning the trace, the ledger's bulk path — timed
// from the call to its commit. The baselines, measured in the same run and
// the same database, COPY rows the ledger wrote, read back, in one
// transaction:
//
//   - copy-keyed-ratio: every row the ledger wrote (intervals, hourly,
//     daily, monthly, monthly by project, capacity, watermark) into tables
//     with the ledger's primary keys and indexes — a plain COPY of the same
//     rows into the tables that hold them, the least any writer keeping
//     them can cost (the goal's ratio, docs/performance.md);
//   - copy-ratio: the hourly rows alone into an unindexed table of the
//     same shape;
//   - copy-all-ratio: every row the ledger wrote into unindexed tables.
//
// Each ratio is COPY's time over the ledger's: 1 would be as fast as COPY.
// copy-ratio-ceiling is the copy-ratio of a ledger that would cost no more
// than the keyed COPY of its rows, nothing computed: the unindexed COPY of
// the hourly rows over the keyed COPY of every row.
//
// The store has one connection, so that, with PostgreSQL on the same host,
// the CPU time its server process spends is read from /proc: cpu-s-ledger
// (ApplyWindow), cpu-s-copy and cpu-s-copy-keyed (the COPYs of copy-ratio
// and copy-keyed-ratio), and cpu-s-ledger-client, this process's CPU time
// during ApplyWindow (the garbage collector included). On a loaded machine
// they vary far less than the times.
//
// The first iteration also checks the ledger against sim/truth; setup,
// checks and baselines are outside the timer.
func BenchmarkP2TraceLedger(b *testing.B) {
	in, err := loadP2()
	if errors.Is(err, errNoTrace) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	s := in.scenario
	w := observe.Window{Cluster: s.Cluster, From: s.Start.Unix(), To: s.End.Unix(), Intervals: in.intervals}
	ctx := context.Background()

	// Every table ApplyWindow writes rows into for a window of intervals.
	written := []string{"intervals", "ledger_hourly", "ledger_daily", "ledger_monthly", "ledger_monthly_project",
		"capacity_hourly", "watermarks"}
	var ledgerSecs, copySecs, copyAllSecs, copyKeyedSecs float64
	var cpuLedger, cpuClient, cpuCopy, cpuKeyed time.Duration
	cpuOK := true
	var hourly, rowsWritten int64
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		store, err := Open(ctx, pgtest.New(b), Options{MaxConns: 1})
		if err != nil {
			b.Fatal(err)
		}
		srv := serverOf(b, store)
		b.StartTimer()
		start, cpu0, self0 := time.Now(), srv.cpu(), selfCPU()
		if err := store.ApplyWindow(ctx, w); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		b.StopTimer()
		ledgerSecs += took.Seconds()
		cpuLedger += srv.cpu() - cpu0
		cpuClient += selfCPU() - self0

		if n == 0 {
			checkP2(b, store, in)
		}
		cpu0 = srv.cpu()
		h, c := copyBaseline(b, store, []string{"ledger_hourly"}, false)
		cpuCopy += srv.cpu() - cpu0
		hourly += h
		copySecs += c.Seconds()
		all, c := copyBaseline(b, store, written, false)
		rowsWritten += all
		copyAllSecs += c.Seconds()
		cpu0 = srv.cpu()
		_, c = copyBaseline(b, store, written, true)
		cpuKeyed += srv.cpu() - cpu0
		copyKeyedSecs += c.Seconds()
		cpuOK = cpuOK && srv.ok && serverOf(b, store).pid == srv.pid
		store.Close()
		b.StartTimer()
	}
	b.StopTimer()
	runs := float64(b.N)
	if cpuOK {
		b.ReportMetric(cpuLedger.Seconds()/runs, "cpu-s-ledger")
		b.ReportMetric(cpuClient.Seconds()/runs, "cpu-s-ledger-client")
		b.ReportMetric(cpuCopy.Seconds()/runs, "cpu-s-copy")
		b.ReportMetric(cpuKeyed.Seconds()/runs, "cpu-s-copy-keyed")
	}
	b.ReportMetric(float64(len(in.intervals)), "intervals")
	b.ReportMetric(float64(hourly)/runs, "rows")
	b.ReportMetric(float64(rowsWritten)/runs, "rows-written")
	b.ReportMetric(ledgerSecs/runs, "s/op-ledger")
	b.ReportMetric(copySecs/runs, "s/op-copy")
	b.ReportMetric(float64(hourly)/ledgerSecs, "rows/s-ledger")
	b.ReportMetric(float64(hourly)/copySecs, "rows/s-copy")
	b.ReportMetric(copySecs/ledgerSecs, "copy-ratio")
	b.ReportMetric(copyAllSecs/ledgerSecs, "copy-all-ratio")
	b.ReportMetric(copyKeyedSecs/ledgerSecs, "copy-keyed-ratio")
	b.ReportMetric(copySecs/copyKeyedSecs, "copy-ratio-ceiling")
}

// server is the PostgreSQL process serving a store's only connection.
type server struct {
	pid int
	ok  bool // its CPU time can be read: the server runs on this host
}

// serverOf returns the server process of s, which has one connection.
func serverOf(b *testing.B, s *Store) server {
	b.Helper()
	var pid int
	if err := s.pool.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		b.Fatal(err)
	}
	srv := server{pid: pid}
	_, srv.ok = srv.cpuTime()
	return srv
}

// cpu returns the user and system CPU time of the server process, 0
// where it cannot be read.
func (srv server) cpu() time.Duration {
	d, _ := srv.cpuTime()
	return d
}

// cpuTime reads /proc/PID/stat: utime and stime, in clock ticks of 10 ms
// (Linux's USER_HZ).
func (srv server) cpuTime() (time.Duration, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", srv.pid))
	if err != nil {
		return 0, false
	}
	st := string(raw)
	i := strings.LastIndexByte(st, ')')
	if i < 0 || i+2 > len(st) {
		return 0, false
	}
	f := strings.Fields(st[i+2:]) // from the state, field 3 of proc(5)
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}

// selfCPU is this process's user and system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// copyBaseline reads back every row of the given tables, creates a table
// of the same shape for each (CREATE TABLE … (LIKE …): columns, types and
// NOT NULL; with keyed, also the primary key and indexes) and times a plain
// COPY of the rows into them, one CopyFrom per table, in one transaction
// with its commit, as ApplyWindow writes in one. It returns the rows
// copied and the time taken.
func copyBaseline(b *testing.B, s *Store, tables []string, keyed bool) (int64, time.Duration) {
	b.Helper()
	ctx := context.Background()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	type load struct {
		dst  string
		cols []string
		rows [][]any
	}
	var loads []load
	like := ""
	if keyed {
		like = " INCLUDING INDEXES"
	}
	for _, t := range tables {
		rows, err := conn.Query(ctx, "SELECT * FROM "+t)
		if err != nil {
			b.Fatal(err)
		}
		var cols []string
		for _, f := range rows.FieldDescriptions() {
			cols = append(cols, f.Name)
		}
		var vals [][]any
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				b.Fatal(err)
			}
			vals = append(vals, v)
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		dst := "p2_copy_" + t
		if _, err := conn.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %s; CREATE TABLE %s (LIKE %s%s)", dst, dst, t, like)); err != nil {
			b.Fatal(err)
		}
		loads = append(loads, load{dst, cols, vals})
	}
	var n int64
	start := time.Now()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, l := range loads {
			c, err := tx.CopyFrom(ctx, pgx.Identifier{l.dst}, l.cols, pgx.CopyFromRows(l.rows))
			if err != nil {
				return fmt.Errorf("COPY into %s: %w", l.dst, err)
			}
			n += c
		}
		return nil
	})
	took := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range loads {
		var got int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+l.dst).Scan(&got); err != nil || got != int64(len(l.rows)) {
			b.Fatalf("COPY into %s: %d rows, want %d (%v)", l.dst, got, len(l.rows), err)
		}
	}
	return n, took
}

// checkP2 fails the benchmark unless the ledger equals sim/truth over the
// whole trace: the total allocated milli-GPU-seconds, device seconds and
// FPGA seconds of the hourly, daily, monthly and monthly-by-project rows,
// and every group of the finest report (all seven keys) against truth
// grouped the same way.
func checkP2(b testing.TB, s *Store, in *p2Input) {
	b.Helper()
	ctx := context.Background()
	sc := in.scenario
	total, err := truth.Compute(in.allocs, sc.Start, sc.End, nil)
	if err != nil {
		b.Fatal(err)
	}
	if len(total.Rows) != 1 || total.Rows[0].AllocatedMilliGPUSeconds == 0 {
		b.Fatalf("truth over the whole trace: %+v, want one row with allocated time", total.Rows)
	}
	want := total.Rows[0]
	for _, t := range []string{"ledger_hourly", "ledger_daily", "ledger_monthly", "ledger_monthly_project"} {
		var alloc, dev, fpga int64
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(allocated_milli_gpu_seconds), 0)::bigint,
			coalesce(sum(device_seconds), 0)::bigint, coalesce(sum(fpga_seconds), 0)::bigint
			FROM `+t+` WHERE cluster = $1`, sc.Cluster).Scan(&alloc, &dev, &fpga); err != nil {
			b.Fatal(err)
		}
		if alloc != want.AllocatedMilliGPUSeconds || dev != want.DeviceSeconds || fpga != want.FPGASeconds {
			b.Fatalf("%s: allocated %d milli-GPU-s, %d device-s, %d FPGA-s; sim truth %d, %d, %d",
				t, alloc, dev, fpga, want.AllocatedMilliGPUSeconds, want.DeviceSeconds, want.FPGASeconds)
		}
	}
	var ivs int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM intervals WHERE cluster = $1", sc.Cluster).Scan(&ivs); err != nil {
		b.Fatal(err)
	}
	if ivs != len(in.intervals) {
		b.Fatalf("intervals table: %d rows, want %d", ivs, len(in.intervals))
	}

	keys := Keys()
	tr, err := truth.Compute(in.allocs, sc.Start, sc.End, keys)
	if err != nil {
		b.Fatal(err)
	}
	wantRows := map[string][3]int64{}
	for _, r := range tr.Rows {
		wantRows[strings.Join(r.Keys, "\x00")] = [3]int64{r.AllocatedMilliGPUSeconds, r.DeviceSeconds, r.FPGASeconds}
	}
	to := sc.End.Truncate(time.Hour)
	if to.Before(sc.End) {
		to = to.Add(time.Hour)
	}
	gotRows := map[string][3]int64{}
	err = s.Report(ctx, ReportQuery{Cluster: sc.Cluster, From: sc.Start, To: to, GroupBy: keys}, func(r ReportRow) error {
		gotRows[strings.Join(r.Keys, "\x00")] = [3]int64{r.AllocatedMilliGPUSeconds, r.DeviceSeconds, r.FPGASeconds}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var diffs []string
	for k, v := range wantRows {
		if gotRows[k] != v {
			diffs = append(diffs, fmt.Sprintf("%q: ledger %v, truth %v", strings.ReplaceAll(k, "\x00", ","), gotRows[k], v))
		}
	}
	for k, v := range gotRows {
		if _, ok := wantRows[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q: ledger %v, not in truth", strings.ReplaceAll(k, "\x00", ","), v))
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		b.Fatalf("%d of %d groups differ from sim truth (allocated, device-s, FPGA-s):\n%s",
			len(diffs), len(wantRows), strings.Join(diffs[:min(len(diffs), 10)], "\n"))
	}
	b.Logf("%d pods holding devices, %d intervals (%d open), imported in %s; the ledger equals sim truth: "+
		"%d milli-GPU-s allocated over [%s, %s) in %d groups",
		len(sc.Pods), len(in.intervals), in.open, in.load.Round(time.Millisecond), want.AllocatedMilliGPUSeconds,
		sc.Start.Format(time.RFC3339), sc.End.Format(time.RFC3339), len(wantRows))
}
