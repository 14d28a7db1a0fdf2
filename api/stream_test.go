package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/internal/pgtest"
)

// watchingWriter is a ResponseWriter that records how much of the answer
// it had received when the database query returned its last row.
type watchingWriter struct {
	header     http.Header
	code       int
	body       bytes.Buffer
	writes     int
	queryDone  atomic.Bool
	beforeDone int // bytes received before the query ended
}

func (w *watchingWriter) Header() http.Header { return w.header }
func (w *watchingWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *watchingWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.writes++
	if !w.queryDone.Load() {
		w.beforeDone += len(b)
	}
	return w.body.Write(b)
}

// TestCSVStreams checks that a large table reaches the client while the
// database is still returning rows: most of the answer is written before
// the query has ended, in many writes, never held whole in memory.
func TestCSVStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a ledger of 24 000 hourly rows")
	}
	ctx := context.Background()
	s, err := ledger.Open(ctx, pgtest.New(t), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	const users, hours = 400, 60
	var ivs []observe.Interval
	for i := range users {
		ivs = append(ivs, alloc(fmt.Sprintf("p%03d", i), "cms", fmt.Sprintf("user-%03d", i), "gpu", 1000, at(0, 0), at(hours, 0)))
	}
	if err := s.ApplyWindow(ctx, observe.Window{Cluster: cluster, From: at(0, 0), To: at(hours, 0), Intervals: ivs}); err != nil {
		t.Fatal(err)
	}

	w := &watchingWriter{header: http.Header{}}
	var srv *Server
	srv, err = New(Options{Ledger: s, NoAuth: true, afterQuery: func() { w.queryDone.Store(true) }})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/api/v1/usage?from=%s&to=%s&group_by=user&granularity=hour&format=csv",
		time.Unix(at(0, 0), 0).UTC().Format(time.RFC3339), time.Unix(at(hours, 0), 0).UTC().Format(time.RFC3339)), nil)
	srv.Handler().ServeHTTP(w, req)

	if w.code != http.StatusOK {
		t.Fatalf("status %d: %.300s", w.code, w.body.String())
	}
	lines := strings.Count(w.body.String(), "\r\n")
	if lines != users*hours+1 {
		t.Fatalf("%d lines, want %d", lines, users*hours+1)
	}
	total := w.body.Len()
	if w.beforeDone < total*9/10 || w.writes < 100 {
		t.Errorf("%d of %d bytes in %d writes before the query ended: the table is not streamed", w.beforeDone, total, w.writes)
	}
	if !strings.HasPrefix(w.body.String(), "hour,user,allocated_gpu_hours,") ||
		!strings.Contains(w.body.String(), "\r\n2026-11-04T19:00:00Z,user-399,1.000000,") {
		t.Errorf("unexpected table: %.200s … %.200s", w.body.String(), w.body.String()[total-200:])
	}
}

// TestTruncatedTableIsAborted: a query that fails after rows were sent
// must not end like a complete table; the client sees the answer cut.
func TestTruncatedTableIsAborted(t *testing.T) {
	l := &fakeLedger{usage: func(_ context.Context, q ledger.UsageQuery, fn func(ledger.UsageRow) error) error {
		for i := range 5000 {
			r := ledger.UsageRow{ReportRow: ledger.ReportRow{Keys: []string{fmt.Sprint("project-", i)}, AllocatedMilliGPUSeconds: 1000}}
			if err := fn(r); err != nil {
				return err
			}
		}
		return errors.New("connection reset by the database")
	}}
	e := newEnv(t, l, func(o *Options) { o.NoAuth = true; o.Authenticator = nil })
	for _, format := range []string{"csv", "json"} {
		resp, err := http.Get(e.url + "/api/v1/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&format=" + format)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err == nil {
			t.Errorf("%s: status %d, read %d bytes, error %v: want 200 and a cut answer", format, resp.StatusCode, len(b), err)
		}
		if format == "json" && bytes.HasSuffix(b, []byte("]}\n")) {
			t.Errorf("json: the cut answer ends like a whole one")
		}
	}
	_, b := e.get(t, "", "/metrics")
	if !strings.Contains(string(b), `gpuledger_api_requests_total{code="aborted",method="GET",route="/api/v1/usage"} 2`) {
		t.Errorf("aborted answers not counted:\n%s", grep(string(b), "gpuledger_api_requests_total"))
	}
	// Before any row, the same failure is a problem document.
	l.usage = func(context.Context, ledger.UsageQuery, func(ledger.UsageRow) error) error { return errors.New("boom") }
	resp, b := e.get(t, "", "/api/v1/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&format=csv")
	if p := problemOf(t, resp, b); resp.StatusCode != 500 || p.Title != probInternal.title || resp.Header.Get("Content-Disposition") != "" {
		t.Errorf("%d %+v", resp.StatusCode, p)
	}
}

func grep(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestMetricsByRoutePattern(t *testing.T) {
	e := newEnv(t, newLedger(t), nil)
	admin := e.roles().admin
	e.get(t, admin, "/api/v1/reports/monthly/2026-10")
	e.get(t, admin, "/api/v1/reports/monthly/2026-11")
	e.get(t, admin, "/api/v1/reports/monthly/2026-99")
	e.get(t, "", "/api/v1/usage")
	e.get(t, "", "/no/such/page")
	_, b := e.get(t, "", "/metrics")
	for _, want := range []string{
		`gpuledger_api_requests_total{code="200",method="GET",route="/api/v1/reports/monthly/{month}"} 2`,
		`gpuledger_api_requests_total{code="400",method="GET",route="/api/v1/reports/monthly/{month}"} 1`,
		`gpuledger_api_requests_total{code="401",method="GET",route="/api/v1/usage"} 1`,
		`gpuledger_api_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`gpuledger_api_request_duration_seconds_count{method="GET",route="/api/v1/reports/monthly/{month}"} 3`,
		`gpuledger_api_auth_failures_total{reason="no_token"} 1`,
		`gpuledger_api_auth_disabled 0`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(b), "2026-10") {
		t.Error("a path, not its pattern, is a label")
	}
}

// TestGracefulShutdown: when the context ends, the server stops taking
// connections and lets the request in flight finish.
func TestGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	l := &fakeLedger{usage: func(ctx context.Context, _ ledger.UsageQuery, fn func(ledger.UsageRow) error) error {
		close(started)
		<-release
		return fn(ledger.UsageRow{ReportRow: ledger.ReportRow{Keys: []string{"cms"}, AllocatedMilliGPUSeconds: 3_600_000}})
	}}
	s, err := New(Options{Ledger: l, NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln, 30*time.Second) }()

	type answer struct {
		status int
		body   string
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/api/v1/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&format=csv")
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- answer{resp.StatusCode, string(b), err}
	}()
	<-started
	cancel() // SIGTERM
	// New connections are refused once shutdown has begun.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the server still accepts connections after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	a := <-got
	if a.err != nil || a.status != 200 || !strings.Contains(a.body, "cms,1.000000") {
		t.Errorf("the request in flight: %d %q %v", a.status, a.body, a.err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
