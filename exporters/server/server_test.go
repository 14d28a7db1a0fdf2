package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestParseInstant(t *testing.T) {
	cases := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"2026-11-02T11:07:00Z", time.Date(2026, 11, 2, 11, 7, 0, 0, time.UTC), false},
		{"2026-11-02T12:07:00+01:00", time.Date(2026, 11, 2, 11, 7, 0, 0, time.UTC), false},
		{"2026-11-02T11:07:00.123456Z", time.Date(2026, 11, 2, 11, 7, 0, 123e6, time.UTC), false},
		{"1793617620", time.Date(2026, 11, 2, 11, 7, 0, 0, time.UTC), false},
		{"1793617620.25", time.Date(2026, 11, 2, 11, 7, 0, 250e6, time.UTC), false},
		{" 1793617620 ", time.Date(2026, 11, 2, 11, 7, 0, 0, time.UTC), false},
		{"", time.Time{}, true},
		{"2026-11-02", time.Time{}, true},
		{"NaN", time.Time{}, true},
		{"Inf", time.Time{}, true},
		{"1e300", time.Time{}, true},
		{"now", time.Time{}, true},
	}
	for _, c := range cases {
		got, err := ParseInstant(c.in)
		if (err != nil) != c.err || !got.Equal(c.want) {
			t.Errorf("ParseInstant(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}

func staticGatherer() prometheus.Gatherer {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_value_ratio", Help: "A test value."})
	g.Set(0.5)
	reg.MustRegister(g)
	return reg
}

func do(t *testing.T, h http.Handler, url string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	return rec.Code, rec.Body.String()
}

func TestStaticMode(t *testing.T) {
	notReady := errors.New("informers not synced")
	var ready error = notReady
	s, err := New(Options{Gatherer: staticGatherer(), Ready: func() error { return ready }})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	cases := []struct {
		url      string
		code     int
		contains string
	}{
		{"/metrics", 200, "test_value_ratio 0.5"},
		{"/metrics?at=2026-11-02T11:07:00Z", 400, "only accepted by simulated exporters"},
		{"/healthz", 200, "ok"},
		{"/readyz", 503, "informers not synced"},
		{"/", 200, "gpuledger exporter"},
	}
	for _, c := range cases {
		if code, body := do(t, h, c.url); code != c.code || !strings.Contains(body, c.contains) {
			t.Errorf("GET %s = %d %q; want %d containing %q", c.url, code, body, c.code, c.contains)
		}
	}
	ready = nil
	if code, _ := do(t, h, "/readyz"); code != 200 {
		t.Errorf("readyz once ready: %d", code)
	}
}

// machine is a TimeMachine over a fixed range with one outage.
type machine struct {
	now   time.Time
	block chan struct{} // when set, At waits on it
	asked chan time.Time
}

var (
	rangeStart = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	rangeEnd   = time.Date(2026, 11, 2, 14, 0, 0, 0, time.UTC)
	outage     = time.Date(2026, 11, 2, 11, 0, 0, 0, time.UTC)
)

func (m *machine) Now() time.Time { return m.now }

func (m *machine) At(t time.Time) (prometheus.Gatherer, error) {
	if m.asked != nil {
		m.asked <- t
	}
	if m.block != nil {
		<-m.block
	}
	switch {
	case t.Before(rangeStart) || t.After(rangeEnd):
		return nil, fmt.Errorf("%w: %s", ErrOutOfRange, t)
	case t.Equal(outage):
		return nil, fmt.Errorf("%w: simulated restart", ErrUnavailable)
	case t.Equal(rangeEnd):
		return nil, errors.New("disk on fire")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "test_time_seconds", Help: "The instant."},
		func() float64 { return float64(t.Unix()) }))
	return reg, nil
}

func TestSimMode(t *testing.T) {
	m := &machine{now: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
	s, err := New(Options{TimeMachine: m})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	cases := []struct {
		now      time.Time
		url      string
		code     int
		contains string
	}{
		{m.now, "/metrics", 200, "test_time_seconds 1.79361e+09"},
		{m.now, "/metrics?at=1793617620", 200, "test_time_seconds 1.79361762e+09"},
		{m.now, "/metrics?at=2026-11-02T11:00:00Z", 503, "simulated restart"},
		{m.now, "/metrics?at=2026-11-02T07:00:00Z", 400, "out of range"},
		{m.now, "/metrics?at=2026-11-02T14:00:00Z", 500, "disk on fire"},
		{m.now, "/metrics?at=x", 400, "bad at parameter"},
		{outage, "/metrics", 503, "simulated restart"},
		{rangeEnd.Add(time.Second), "/metrics", 503, "out of range"},
	}
	for _, c := range cases {
		m.now = c.now
		if code, body := do(t, h, c.url); code != c.code || !strings.Contains(body, c.contains) {
			t.Errorf("GET %s at %s = %d %q; want %d containing %q", c.url, c.now, code, body, c.code, c.contains)
		}
	}
}

func TestSimModeInFlightLimit(t *testing.T) {
	m := &machine{now: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC), block: make(chan struct{}), asked: make(chan time.Time, 4)}
	s, err := New(Options{TimeMachine: m, MaxRequestsInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	var wg sync.WaitGroup
	var first int
	wg.Go(func() { first, _ = do(t, h, "/metrics") })
	<-m.asked // the first request holds the only slot
	if code, body := do(t, h, "/metrics"); code != 503 || !strings.Contains(body, "Limit of concurrent requests") {
		t.Errorf("second concurrent request: %d %q", code, body)
	}
	close(m.block)
	wg.Wait()
	if first != 200 {
		t.Errorf("first request: %d", first)
	}
	if code, _ := do(t, h, "/metrics"); code != 200 {
		t.Errorf("request after the slot freed: %d", code)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New with nothing to serve succeeded")
	}
	bad := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(bad, []byte("tls_server_config: {cert_file: /nonexistent}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Gatherer: staticGatherer(), WebConfigFile: bad}); err == nil {
		t.Error("invalid web configuration accepted")
	}
	if _, err := New(Options{Gatherer: staticGatherer(), WebConfigFile: "/nonexistent/web.yml"}); err == nil {
		t.Error("missing web configuration accepted")
	}
}

func serve(t *testing.T, opts Options) (addr string, stop func() error) {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	return l.Addr().String(), func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("Serve did not return after cancel")
		}
	}
}

func TestServeAndShutdown(t *testing.T) {
	addr, stop := serve(t, Options{Gatherer: staticGatherer()})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "test_value_ratio") {
		t.Errorf("GET /metrics = %d %q", resp.StatusCode, body)
	}
	if err := stop(); err != nil {
		t.Errorf("graceful shutdown: %v", err)
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
	if _, err := Listen("256.0.0.1:1"); err == nil {
		t.Error("Listen on a bad address succeeded")
	}
}

// A password hash of "s3cret" (bcrypt, cost 4).
const s3cretHash = "$2a$04$KYRQb7axxNcPkUX.x.ik1OCN3jRk9Uzql8qjL0MdX2Dq8ac1pV9Hq"

func TestBasicAuth(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(cfg, []byte("basic_auth_users:\n  prometheus: "+s3cretHash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, stop := serve(t, Options{Gatherer: staticGatherer(), WebConfigFile: cfg})
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	for _, c := range []struct {
		user, pass string
		code       int
	}{
		{"", "", 401},
		{"prometheus", "wrong", 401},
		{"prometheus", "s3cret", 200},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("user %q password %q: %d, want %d", c.user, c.pass, resp.StatusCode, c.code)
		}
	}
}
