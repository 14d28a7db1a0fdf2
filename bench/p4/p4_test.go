package p4

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/internal/pgtest"
)

var (
	flagHours = flag.Int("p4.hours", 10000,
		"hours of generated ledger from 2025-01-01T00:00Z, 1 000 hourly rows each (10 000: 10 million rows, to 2026-02-21)")
	flagRate       = flag.Int("p4.rate", 500, "requests per second of the fixed-rate runs")
	flagDuration   = flag.Duration("p4.duration", 30*time.Second, "length of each fixed-rate run and of the paced wrk run")
	flagExportDays = flag.Int("p4.export-days", 200, "days of the CSV export, from the ledger's first day (5 000 rows a day)")
	flagWrkConns   = flag.Int("p4.wrk-conns", 10, "connections of the paced wrk run (each waits between its requests so that all together send about -p4.rate)")
	flagDatabase   = flag.String("p4.database", "",
		"keep the generated ledger in this database of the test server (created and filled when it lacks the ledger of -p4.hours) "+
			"and use it again in later runs; default: a fresh database, dropped at the end")
	flagDBParams = flag.String("p4.db-params", "",
		"parameters added to the database URL of the API and the store, such as plan_cache_mode=force_custom_plan "+
			"(a PostgreSQL setting) or default_query_exec_mode=cache_describe (pgx's); default none")
)

// p4Start is the first hour of the generated ledger.
var p4Start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// wholeMonths are the UTC months entirely inside [start, start+hours).
func wholeMonths(start time.Time, hours int) []time.Time {
	end := start.Add(time.Duration(hours) * time.Hour)
	m := time.Date(start.Year(), start.Month(), 1, 0, 0, 0, 0, time.UTC)
	if m.Before(start) {
		m = m.AddDate(0, 1, 0)
	}
	var out []time.Time
	for ; !m.AddDate(0, 1, 0).After(end); m = m.AddDate(0, 1, 0) {
		out = append(out, m)
	}
	return out
}

// projectMonth is one request of the latency runs: a project's usage over
// a month, by user and resource class, as its manager's overview asks.
type projectMonth struct {
	project string
	month   time.Time
}

func (pm projectMonth) path() string {
	return fmt.Sprintf("/api/v1/usage?from=%s&to=%s&project=%s&group_by=user,resource",
		pm.month.Format(time.RFC3339), pm.month.AddDate(0, 1, 0).Format(time.RFC3339), pm.project)
}

func (pm projectMonth) query() ledger.UsageQuery {
	return ledger.UsageQuery{ReportQuery: ledger.ReportQuery{From: pm.month, To: pm.month.AddDate(0, 1, 0),
		GroupBy: []string{ledger.KeyUser, ledger.KeyResource}}, Projects: []string{pm.project},
		Visible: ledger.Visibility{All: true}}
}

// requests are every project's every whole month, in a fixed shuffled
// order, so that consecutive requests read different rows.
func requests(months []time.Time) []projectMonth {
	var out []projectMonth
	for _, m := range months {
		for p := range projects {
			out = append(out, projectMonth{projectName(p), m})
		}
	}
	rand.New(rand.NewPCG(4, 4)).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// exportPath is the CSV export: every ledger key per day over days days
// from the ledger's start, daySlotKeys rows a day.
func exportPath(days int) string {
	return fmt.Sprintf("/api/v1/usage?from=%s&to=%s&granularity=day&group_by=project,user,namespace,resource,model,profile,site&format=csv",
		p4Start.Format(time.RFC3339), p4Start.AddDate(0, 0, days).Format(time.RFC3339))
}

// usageRows runs q on the store and returns its rows.
func usageRows(ctx context.Context, store *ledger.Store, q ledger.UsageQuery) ([]ledger.UsageRow, error) {
	var out []ledger.UsageRow
	err := store.Usage(ctx, q, func(r ledger.UsageRow) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// sameAsHourly checks that q, answered as the API answers it (from the
// rollups), equals the same query summed from the hourly rows.
func sameAsHourly(ctx context.Context, store *ledger.Store, q ledger.UsageQuery) (int, error) {
	got, err := usageRows(ctx, store, q)
	if err != nil {
		return 0, err
	}
	q.HourlyOnly = true
	want, err := usageRows(ctx, store, q)
	if err != nil {
		return 0, err
	}
	if len(got) != len(want) {
		return 0, fmt.Errorf("%d rows from the rollups, %d from the hourly rows", len(got), len(want))
	}
	for i := range got {
		if !got[i].Start.Equal(want[i].Start) || !slices.Equal(got[i].Keys, want[i].Keys) ||
			got[i].AllocatedMilliGPUSeconds != want[i].AllocatedMilliGPUSeconds || got[i].DeviceSeconds != want[i].DeviceSeconds ||
			got[i].UsedMilliGPUSeconds != want[i].UsedMilliGPUSeconds || got[i].IdleMilliGPUSeconds != want[i].IdleMilliGPUSeconds ||
			got[i].EnergyMillijoules != want[i].EnergyMillijoules || got[i].FPGASeconds != want[i].FPGASeconds {
			return 0, fmt.Errorf("row %d: %+v from the rollups, %+v from the hourly rows", i, got[i], want[i])
		}
	}
	return len(got), nil
}

// sameReportAsHourly checks Store.Report by project over a month (the
// months' rows by project, where the schema has them) against the hourly
// rows.
func sameReportAsHourly(ctx context.Context, store *ledger.Store, month time.Time) error {
	q := ledger.ReportQuery{From: month, To: month.AddDate(0, 1, 0), GroupBy: []string{ledger.KeyProject}}
	var got, want []ledger.ReportRow
	if err := store.Report(ctx, q, func(r ledger.ReportRow) error { got = append(got, r); return nil }); err != nil {
		return err
	}
	q.HourlyOnly = true
	if err := store.Report(ctx, q, func(r ledger.ReportRow) error { want = append(want, r); return nil }); err != nil {
		return err
	}
	if len(got) != projects || len(got) != len(want) {
		return fmt.Errorf("report by project: %d rows, %d from the hourly rows; want %d", len(got), len(want), projects)
	}
	for i := range got {
		if !slices.Equal(got[i].Keys, want[i].Keys) || got[i].AllocatedMilliGPUSeconds != want[i].AllocatedMilliGPUSeconds ||
			got[i].EnergyMillijoules != want[i].EnergyMillijoules || got[i].FPGASeconds != want[i].FPGASeconds {
			return fmt.Errorf("report by project, row %d: %+v, from the hourly rows %+v", i, got[i], want[i])
		}
	}
	return nil
}

// checkHTTP checks the API's JSON answer for pm against the store.
func checkHTTP(ctx context.Context, c *http.Client, base, token string, store *ledger.Store, pm projectMonth) error {
	want, err := usageRows(ctx, store, pm.query())
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+pm.path(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s\n%s", pm.path(), resp.Status, b)
	}
	var ans struct {
		Rows []struct {
			User      string `json:"user"`
			Resource  string `json:"resource"`
			Allocated int64  `json:"allocated_milli_gpu_seconds"`
			Energy    int64  `json:"energy_millijoules"`
		} `json:"rows"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return err
	}
	if len(ans.Rows) != len(want) || len(want) == 0 {
		return fmt.Errorf("GET %s: %d rows, the store %d", pm.path(), len(ans.Rows), len(want))
	}
	for i, r := range ans.Rows {
		w := want[i]
		if r.User != w.Keys[0] || r.Resource != w.Keys[1] || r.Allocated != w.AllocatedMilliGPUSeconds || r.Energy != w.EnergyMillijoules {
			return fmt.Errorf("GET %s, row %d: %+v, the store %+v", pm.path(), i, r, w)
		}
	}
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// exportResult is what the client of the CSV export read.
type exportResult struct {
	rows      int   // records after the header
	bytes     int64 // body bytes
	allocated int64 // Σ allocated_milli_gpu_seconds
	took      time.Duration
}

// export fetches the CSV export and reads it whole, record by record.
func export(ctx context.Context, c *http.Client, url, token string) (exportResult, error) {
	var res exportResult
	began := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return res, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return res, fmt.Errorf("export: %s\n%s", resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		return res, fmt.Errorf("export: Content-Type %q", ct)
	}
	body := &countingReader{r: resp.Body}
	r := csv.NewReader(bufio.NewReaderSize(body, 1<<16))
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return res, fmt.Errorf("export header: %w", err)
	}
	col := slices.Index(header, ledger.ColAllocatedMilliGPUSeconds)
	if header[0] != ledger.GranularityDay || col < 0 {
		return res, fmt.Errorf("export header %q", header)
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("export, record %d: %w", res.rows+1, err)
		}
		n, err := strconv.ParseInt(rec[col], 10, 64)
		if err != nil {
			return res, fmt.Errorf("export, record %d: %w", res.rows+1, err)
		}
		res.rows++
		res.allocated += n
	}
	res.bytes, res.took = body.n, time.Since(began)
	return res, nil
}

// sampleRSS samples p's resident memory every 50 ms until stop is
// closed, and returns the largest sample.
func sampleRSS(p *apiProcess, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := p.memory(); err == nil {
				peak = max(peak, m.rss)
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// BenchmarkP4API is P4 of docs/performance.md: the accounting API over a
// ledger of 10 million hourly rows.
//
// Setup (untimed): a fresh database migrated by ledger.Open and filled by
// fill — -p4.hours hours (10 000: 2025-01-01 to 2026-02-21) of 1 000
// hourly rows each, the daily, monthly and monthly-by-project rollups and
// the watermarks of 3 clusters, vacuumed and analyzed — checked for
// consistency (the rollups against the hourly rows); the gpuledger binary
// built and `gpuledger api` run as its own process on loopback, with
// tokens checked through the discovery document of a development identity
// provider (internal/devidp) that mints an administrator's token; its
// answer checked against the store's.
//
// Measured, in this order, each run -p4.duration at -p4.rate requests per
// second from an open-loop generator (latency from each request's
// scheduled time to the end of its answer):
//
//   - store: the same queries through Store.Usage in this process, no HTTP;
//   - healthz: GET /healthz, no token, no database;
//   - usage (the timed loop): GET /api/v1/usage for a project-month by
//     user and resource, cycling over every project and whole month;
//   - wrk, paced: the same requests from wrk (closed loop: -p4.wrk-conns
//     connections, each waiting after an answer so that together they send
//     about -p4.rate), wrk's own latencies;
//   - wrk, unpaced: 8 connections for 10 s, the most the server answers;
//   - the server's peak RSS over the runs; then a fresh server process and
//     the CSV export of every key per day over -p4.export-days days
//     (200: 1 000 000 rows), read whole and counted by the client, with the
//     new process's peak RSS (VmHWM) after it.
//
// Around each fixed-rate run it reads the CPU time used by the server
// process, by the database's server processes serving the benchmark's
// database (when the database runs on this machine) and by this process
// (generator and client), reported per request. -p4.db-params adds
// parameters to the database URL of the API and the store: PostgreSQL
// settings (plan_cache_mode=force_custom_plan) or pgx's
// (default_query_exec_mode=cache_describe).
func BenchmarkP4API(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("wrk not found (Debian: apt-get install wrk): P4 drives the API with it as well as with its own generator")
	}
	hours, rate, dur, days := *flagHours, *flagRate, *flagDuration, *flagExportDays
	months := wholeMonths(p4Start, hours)
	switch {
	case len(months) < 2:
		b.Fatalf("-p4.hours %d: want at least two whole months (1 440 hours)", hours)
	case days < 1 || days*24 > hours:
		b.Fatalf("-p4.export-days %d: want 1 to %d (the days of -p4.hours)", days, hours/24)
	case rate < 1 || dur < time.Second:
		b.Fatalf("-p4.rate %d, -p4.duration %s: want at least 1/s and 1s", rate, dur)
	}
	load0 := load1()
	ctx := context.Background()
	setupBegan := time.Now()

	var dbURL string
	if *flagDatabase != "" {
		u, err := keptDatabase(ctx, *flagDatabase)
		if err != nil {
			b.Fatal(err)
		}
		dbURL = u
	} else {
		dbURL = pgtest.New(b)
	}
	if *flagDBParams != "" {
		u, err := url.Parse(dbURL)
		if err != nil {
			b.Fatal(err)
		}
		extra, err := url.ParseQuery(*flagDBParams)
		if err != nil {
			b.Fatalf("-p4.db-params: %v", err)
		}
		q := u.Query()
		for k, vs := range extra {
			q[k] = vs
		}
		u.RawQuery = q.Encode()
		dbURL = u.String()
	}
	store, err := ledger.Open(ctx, dbURL, ledger.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	st, err := filled(ctx, store.Pool(), hours)
	if err != nil {
		b.Fatal(err)
	}
	if st.hourly == 0 {
		if st, err = fill(ctx, store.Pool(), p4Start, hours); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("ledger: %d hourly, %d daily, %d monthly rows in %.0fs (%s)", st.hourly, st.daily, st.monthly,
		st.took.Seconds(), strings.Join(st.steps, ", "))
	if st.hourly != int64(hours*slots) {
		b.Fatalf("%d hourly rows, want %d", st.hourly, hours*slots)
	}
	reqs := requests(months)
	mid := months[len(months)/2]
	if err := sameReportAsHourly(ctx, store, mid); err != nil {
		b.Fatal(err)
	}
	largest := projectMonth{projectName(0), mid}
	if n, err := sameAsHourly(ctx, store, largest.query()); err != nil || n == 0 {
		b.Fatalf("%s %s: %d rows, %v", largest.project, mid.Format("2006-01"), n, err)
	}
	var wantExport int64
	if err := store.Pool().QueryRow(ctx, "SELECT sum(allocated_milli_gpu_seconds) FROM ledger_hourly WHERE hour < $1",
		p4Start.AddDate(0, 0, days)).Scan(&wantExport); err != nil {
		b.Fatal(err)
	}

	bin := buildBinary(b)
	idp, token := startIdP(b)
	srv := startAPI(b, bin, dbURL, idp.Issuer())
	client := newClient()
	if err := checkHTTP(ctx, client, srv.url, token, store, largest); err != nil {
		b.Fatal(err)
	}
	for _, pm := range reqs { // warm every path
		if err := get(ctx, client, srv.url+pm.path(), token); err != nil {
			b.Fatal(err)
		}
	}
	setup := time.Since(setupBegan)

	measure := func(srv *apiProcess, run func() loadResult) (loadResult, cpuUse) {
		m, err := startCPU(ctx, dbURL, srv)
		if err != nil {
			b.Fatal(err)
		}
		r := run()
		u, err := m.end(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return r, u
	}
	storeRun, storeCPU := measure(nil, func() loadResult {
		return openLoop(ctx, rate, dur, func(ctx context.Context, i int) error {
			return store.Usage(ctx, reqs[i%len(reqs)].query(), func(ledger.UsageRow) error { return nil })
		})
	})
	healthRun, healthCPU := measure(srv, func() loadResult {
		return openLoop(ctx, rate, dur, func(ctx context.Context, _ int) error {
			return get(ctx, client, srv.url+"/healthz", "")
		})
	})
	var run loadResult
	var runCPU cpuUse
	for b.Loop() {
		run, runCPU = measure(srv, func() loadResult {
			return openLoop(ctx, rate, dur, func(ctx context.Context, i int) error {
				return get(ctx, client, srv.url+reqs[i%len(reqs)].path(), token)
			})
		})
	}
	b.StopTimer()
	// A request refused (not 200) is a fault; one that timed out is the
	// measure of an overloaded server, reported as errors.
	for name, r := range map[string]loadResult{"store": storeRun, "healthz": healthRun, "usage": run} {
		if r.shed > 0 {
			b.Logf("%s: %d of %d requests shed (503: --max-requests-in-flight requests in flight); latencies are the answered requests'",
				name, r.shed, r.sent)
		}
		switch {
		case r.refused > 0:
			b.Errorf("%s: %d of %d requests refused, the first error: %v", name, r.refused, r.sent, r.first)
		case r.errors > 0:
			b.Logf("%s: %d of %d requests failed (their latency counts until they failed), the first: %v",
				name, r.errors, r.sent, r.first)
		}
	}

	var mean time.Duration
	for _, d := range run.lat {
		mean += d
	}
	mean /= time.Duration(max(len(run.lat), 1))
	pace := max(time.Duration(*flagWrkConns)*time.Second/time.Duration(rate)-mean, 0).Round(time.Millisecond)
	paths := make([]string, len(reqs))
	for i, pm := range reqs {
		paths[i] = pm.path()
	}
	dir := b.TempDir()
	paced, err := runWrk(ctx, dir, srv.url, paths, token, 2, *flagWrkConns, pace, dur)
	if err != nil {
		b.Fatal(err)
	}
	unpaced, err := runWrk(ctx, dir, srv.url, paths, token, 2, 8, 0, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	for name, w := range map[string]wrkResult{"paced": paced, "unpaced": unpaced} {
		if w.errors > 0 {
			b.Logf("wrk %s: %d errors of %d requests", name, w.errors, w.requests)
		}
	}
	loadMem, err := srv.memory()
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.stop(); err != nil {
		b.Fatalf("gpuledger api: %v\n%s", err, srv.log)
	}

	// The export, from a fresh server process.
	exp := startAPI(b, bin, dbURL, idp.Issuer())
	before, err := exp.memory()
	if err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	sampled := sampleRSS(exp, stop)
	got, err := export(ctx, client, exp.url+exportPath(days), token)
	close(stop)
	if err != nil {
		b.Fatal(err)
	}
	after, err := exp.memory()
	if err != nil {
		b.Fatal(err)
	}
	peakSampled := <-sampled
	if got.rows != days*daySlotKeys || got.allocated != wantExport {
		b.Fatalf("export: %d rows, Σ allocated %d; want %d rows, %d", got.rows, got.allocated, days*daySlotKeys, wantExport)
	}

	b.ReportMetric(ms(run.quantile(0.50)), "p50-ms")
	b.ReportMetric(ms(run.quantile(0.99)), "p99-ms")
	b.ReportMetric(ms(run.quantile(1)), "max-ms")
	b.ReportMetric(run.rate(), "req/s")
	b.ReportMetric(float64(run.errors), "errors")
	b.ReportMetric(100*float64(run.shed)/float64(max(run.sent, 1)), "shed-%")
	b.ReportMetric(ms(run.maxLag), "gen-lag-max-ms")
	perReq := func(d time.Duration, r loadResult) float64 { return ms(d) / float64(max(r.sent, 1)) }
	b.ReportMetric(perReq(runCPU.server, run), "cpu-server-ms/req")
	b.ReportMetric(perReq(runCPU.self, run), "cpu-client-ms/req")
	b.ReportMetric(perReq(healthCPU.server, healthRun), "healthz-cpu-server-ms/req")
	b.ReportMetric(perReq(storeCPU.self, storeRun), "store-cpu-client-ms/req")
	if runCPU.local && storeCPU.local {
		b.ReportMetric(perReq(runCPU.backends, run), "cpu-pg-ms/req")
		b.ReportMetric(perReq(storeCPU.backends, storeRun), "store-cpu-pg-ms/req")
	}
	b.ReportMetric(ms(healthRun.quantile(0.50)), "healthz-p50-ms")
	b.ReportMetric(ms(healthRun.quantile(0.99)), "healthz-p99-ms")
	b.ReportMetric(ms(storeRun.quantile(0.50)), "store-p50-ms")
	b.ReportMetric(ms(storeRun.quantile(0.99)), "store-p99-ms")
	b.ReportMetric(ms(storeRun.quantile(1)), "store-max-ms")
	b.ReportMetric(float64(run.quantile(0.99))/float64(healthRun.quantile(0.99)), "p99/healthz")
	b.ReportMetric(float64(run.quantile(0.99))/float64(storeRun.quantile(0.99)), "p99/store")
	b.ReportMetric(ms(paced.p50), "wrk-p50-ms")
	b.ReportMetric(ms(paced.p99), "wrk-p99-ms")
	b.ReportMetric(ms(paced.max), "wrk-max-ms")
	b.ReportMetric(paced.rate(), "wrk-req/s")
	b.ReportMetric(float64(paced.errors+unpaced.errors), "wrk-errors")
	b.ReportMetric(ms(pace), "wrk-pace-ms")
	b.ReportMetric(unpaced.rate(), "wrk-max-req/s")
	b.ReportMetric(ms(unpaced.p99), "wrk-max-p99-ms")
	b.ReportMetric(mib(loadMem.hwm), "rss-load-peak-MiB")
	b.ReportMetric(float64(got.rows), "export-rows")
	b.ReportMetric(got.took.Seconds(), "export-s")
	b.ReportMetric(float64(got.bytes)/1e6, "export-MB")
	b.ReportMetric(mib(before.hwm), "rss-export-start-MiB")
	b.ReportMetric(mib(after.hwm), "rss-export-peak-MiB")
	b.ReportMetric(mib(peakSampled), "rss-export-sampled-MiB")
	b.ReportMetric(mib(after.anon), "rss-export-anon-MiB")
	b.ReportMetric(mib(after.file), "rss-export-file-MiB")
	b.ReportMetric(float64(st.hourly), "rows")
	b.ReportMetric(st.took.Seconds(), "fill-s")
	b.ReportMetric(setup.Seconds(), "setup-s")
	b.ReportMetric(load0, "load1-start")
	b.ReportMetric(load1(), "load1-end")
}

// TestP4Fixture checks the generator on ten days across a month's end:
// the rows it promises per hour and day, every rollup equal to the sums
// of the hourly rows, the keys distinct per day without their cluster
// (the CSV export's rows), and the projects' sizes.
func TestP4Fixture(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.New(t)
	store, err := ledger.Open(ctx, dbURL, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	start := time.Date(2025, 1, 27, 0, 0, 0, 0, time.UTC)
	const days = 10
	m, err := startCPU(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := fill(ctx, store.Pool(), start, days*24)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("filled in %.1fs: %s", st.took.Seconds(), strings.Join(st.steps, ", "))
	// The fill's connection is the pool's: the meter counts its CPU.
	if u, err := m.end(ctx); err != nil || (u.local && u.backends < time.Second) {
		t.Errorf("database server CPU during the fill: %s (measured: %v), %v", u.backends, u.local, err)
	}
	// Both months hold 21 jobs of each slot: 21 000 positions, every key.
	if st.hourly != days*24*slots || st.daily != days*daySlotKeys || st.monthly != int64(2*nKeys) {
		t.Fatalf("%d hourly, %d daily, %d monthly rows; want %d, %d, %d", st.hourly, st.daily, st.monthly,
			days*24*slots, days*daySlotKeys, 2*nKeys)
	}
	for _, r := range []struct{ table, period, keys string }{
		{"ledger_daily", "day", keyColsSQL},
		{"ledger_monthly", "month", keyColsSQL},
		{"ledger_monthly_project", "month", "cluster, project"},
	} {
		var exists bool
		if err := store.Pool().QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", r.table).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if !exists {
			continue
		}
		sums := fmt.Sprintf("SELECT %[1]s, date_trunc('%[2]s', hour, 'UTC'), %[3]s FROM ledger_hourly GROUP BY %[1]s, date_trunc('%[2]s', hour, 'UTC')",
			r.keys, r.period, sumColsSQL)
		rows := fmt.Sprintf("SELECT %s, %s, %s FROM %s", r.keys, r.period, valueColsSQL, r.table)
		var diff int
		err := store.Pool().QueryRow(ctx, "SELECT count(*) FROM (("+sums+" EXCEPT ALL "+rows+") UNION ALL ("+rows+" EXCEPT ALL "+sums+")) AS d").Scan(&diff)
		if err != nil || diff != 0 {
			t.Errorf("%s: %d rows differ from the sums of the hourly rows (%v)", r.table, diff, err)
		}
	}
	daily := ledger.UsageQuery{ReportQuery: ledger.ReportQuery{From: start, To: start.AddDate(0, 0, days), GroupBy: ledger.Keys()},
		Granularity: ledger.GranularityDay, Visible: ledger.Visibility{All: true}}
	if n, err := sameAsHourly(ctx, store, daily); err != nil || n != days*daySlotKeys {
		t.Fatalf("every key per day: %d rows (want %d), %v", n, days*daySlotKeys, err)
	}
	for p, want := range map[int]int{0: 71, 1: 29, projects - 1: 5} {
		if got := len(usersOf(p)); got != want {
			t.Errorf("%s has %d users, want %d", projectName(p), got, want)
		}
	}
	total := 0
	for p := range projects {
		total += len(usersOf(p))
	}
	if total != users {
		t.Errorf("%d users in the projects, want %d", total, users)
	}
}

func TestWholeMonths(t *testing.T) {
	m := wholeMonths(p4Start, 10000) // to 2026-02-21T16:00Z
	if len(m) != 13 || !m[0].Equal(p4Start) || !m[12].Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("whole months of 10 000 hours: %v", m)
	}
	if m := wholeMonths(p4Start.Add(time.Hour), 24*60); len(m) != 1 || m[0].Month() != time.February {
		t.Fatalf("whole months from 1 January 01:00 for 60 days: %v", m)
	}
}

// TestOpenLoop checks the generator's schedule and counts with requests
// of which every other one fails, half of those refused.
func TestOpenLoop(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]bool{}
	res := openLoop(context.Background(), 200, 500*time.Millisecond, func(_ context.Context, i int) error {
		mu.Lock()
		seen[i] = true
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		switch {
		case i%4 == 3:
			return fmt.Errorf("request %d: %w", i, errStatus)
		case i%2 == 1:
			return errors.New("odd")
		}
		return nil
	})
	if res.sent != 100 || len(seen) != 100 || res.errors != 50 || res.refused != 25 || len(res.lat) != 100 || res.first == nil {
		t.Fatalf("sent %d, ran %d, %d errors (%d refused), %d latencies", res.sent, len(seen), res.errors, res.refused, len(res.lat))
	}
	if r := res.rate(); r < 50 || r > 100 {
		t.Errorf("rate %.1f/s: 50 answers in about half a second", r)
	}
	if q := res.quantile(0.5); q < 5*time.Millisecond {
		t.Errorf("median latency %s, below the 5 ms each request takes", q)
	}
	// 100 requests 5 ms apart: the last at 495 ms, answered 5 ms later.
	if res.window < 500*time.Millisecond || res.window > 2*time.Second {
		t.Errorf("window %s", res.window)
	}
}

func TestParseWrk(t *testing.T) {
	out := "Running 10s test @ http://127.0.0.1:1\n  2 threads and 8 connections\n" +
		"P4WRK requests=5000 duration_us=10000000 p50_us=1500 p99_us=9000 max_us=20000 errors=2\n"
	got, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{requests: 5000, errors: 2, duration: 10 * time.Second, p50: 1500 * time.Microsecond,
		p99: 9 * time.Millisecond, max: 20 * time.Millisecond}
	if got != want || got.rate() != 500 {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"no line", "P4WRK requests=1 duration_us=x", "P4WRK requests=1"} {
		if _, err := parseWrk(bad); err == nil {
			t.Errorf("parseWrk(%q): no error", bad)
		}
	}
}

func TestParseStat(t *testing.T) {
	stat := "4242 (post gres) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 1 0 100 1000000 500 18446744073709551615"
	got, err := parseStat(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3250 * time.Millisecond; got != want { // 250 + 75 ticks
		t.Fatalf("got %s, want %s", got, want)
	}
	if _, err := parseStat("4242 (x) S 1 2"); err == nil {
		t.Error("a short stat: no error")
	}
	if now, err := cpuTime(os.Getpid()); err != nil || now < 0 {
		t.Errorf("this process's CPU time: %s, %v", now, err)
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tgpuledger\nVmHWM:\t   40000 kB\nVmRSS:\t   30000 kB\nRssAnon:\t   10000 kB\nRssFile:\t   20000 kB\nRssShmem:\t0 kB\n"
	got, err := parseStatus(status)
	if err != nil {
		t.Fatal(err)
	}
	if want := (procMemory{rss: 30000 << 10, hwm: 40000 << 10, anon: 10000 << 10, file: 20000 << 10}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, err := parseStatus("VmRSS:\t1 kB\n"); err == nil {
		t.Error("a status without VmHWM: no error")
	}
}
