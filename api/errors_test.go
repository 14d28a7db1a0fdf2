package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/api/auth"
)

// fakeLedger answers with the functions set, and nothing otherwise.
type fakeLedger struct {
	usage func(ctx context.Context, q ledger.UsageQuery, fn func(ledger.UsageRow) error) error
	ping  error
}

func (f *fakeLedger) Usage(ctx context.Context, q ledger.UsageQuery, fn func(ledger.UsageRow) error) error {
	if f.usage != nil {
		return f.usage(ctx, q, fn)
	}
	return nil
}

func (f *fakeLedger) Idle(context.Context, ledger.UsageQuery, int, func(ledger.ReportRow) error) error {
	return nil
}

func (f *fakeLedger) Projects(context.Context, string, ledger.Visibility) ([]ledger.ProjectSummary, error) {
	return nil, nil
}

func (f *fakeLedger) MonthClosed(context.Context, string, time.Time) (bool, error) { return false, nil }

func (f *fakeLedger) LatestHour(context.Context, string) (time.Time, bool, error) {
	return time.Time{}, false, nil
}

func (f *fakeLedger) QuotaUsage(context.Context, ledger.QuotaQuery) ([]ledger.QuotaRow, error) {
	return nil, nil
}

func (f *fakeLedger) Ping(context.Context) error { return f.ping }

func TestBadParameters(t *testing.T) {
	e := newEnv(t, newLedger(t), nil)
	admin := e.roles().admin
	const u = "/api/v1/usage?"
	const ok = "from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z"
	cases := []struct {
		path        string
		status      int
		kind        problemKind
		param, says string
	}{
		{u + "to=2026-11-02T00:00:00Z", 400, probBadTime, "from", "from is required"},
		{u + "from=2026-11-02T00:00:00Z", 400, probBadTime, "to", "to is required"},
		{u + "from=yesterday&to=2026-11-02T00:00:00Z", 400, probBadTime, "from", "not an RFC 3339 time"},
		{u + "from=2026-11-01T00:30:00Z&to=2026-11-02T00:00:00Z", 400, probBadTime, "from", "not a whole UTC hour"},
		{u + "from=2026-11-01T00:00:00.5Z&to=2026-11-02T00:00:00Z", 400, probBadTime, "from", "not a whole UTC hour"},
		{u + "from=2026-11-01T00:00:00Z&to=2026-11-01T00:00:00Z", 400, probEmptyRange, "to", "not after"},
		{u + "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", 400, probEmptyRange, "to", "not after"},
		{u + "from=2025-01-01T00:00:00Z&to=2026-11-01T00:00:00Z", 400, probLongRange, "to", "longest allowed here is 366 days"},
		{u + "from=2026-09-01T00:00:00Z&to=2026-11-01T00:00:00Z&granularity=hour", 400, probLongRange, "to", "31 days"},
		{u + ok + "&group_by=project,color", 400, probGroupKey, "group_by", `unknown group-by key "color"`},
		{u + ok + "&group_by=pod", 400, probGroupKey, "group_by", "finer than the ledger"},
		{u + ok + "&granularity=week", 400, probBadParameter, "granularity", "want hour, day, month"},
		{u + ok + "&resource=tpu", 400, probBadParameter, "resource", "not a resource class"},
		{u + ok + "&project=", 400, probBadParameter, "project", "empty value"},
		{u + ok + "&format=xlsx", 400, probBadParameter, "format", "want csv or json"},
		{u + ok + "&projects=cms", 400, probBadParameter, "projects", `unknown parameter "projects"`},
		{u + ok + "&from=2026-11-01T01:00:00Z", 400, probBadParameter, "from", "given 2 times"},
		{u + ok + "&cluster=nope", 400, probBadParameter, "", `cluster "nope" has no data`},
		{u + ok + "&user=a%00b", 400, probBadParameter, "", "not UTF-8"},
		{"/api/v1/reports/monthly/2026-13", 400, probBadTime, "month", "want YYYY-MM"},
		{"/api/v1/reports/monthly/2026-1", 400, probBadTime, "month", "want YYYY-MM"},
		{"/api/v1/idle?limit=0", 400, probBadParameter, "limit", "from 1 to 10000"},
		{"/api/v1/idle?from=2026-11-01T00:00:00Z", 400, probBadTime, "to", "to is required"},
		{"/api/v1/quota", 400, probBadTime, "from", "from is required"},
		{"/api/v1/nothing", 404, probNotFound, "", "No route"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			resp, b := e.get(t, admin, c.path)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			p := problemOf(t, resp, b)
			if p.Type != problemBase+c.kind.slug || p.Title != c.kind.title || !strings.Contains(p.Detail, c.says) {
				t.Errorf("problem %+v, want %s %q saying %q", p, c.kind.slug, c.kind.title, c.says)
			}
			if c.param != "" && (len(p.InvalidParams) != 1 || p.InvalidParams[0].Name != c.param) {
				t.Errorf("invalid_params %+v, want %s", p.InvalidParams, c.param)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodPost, e.url+"/api/v1/usage", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Content-Type") != ProblemContentType {
		t.Errorf("POST: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestAuthenticationAnswers(t *testing.T) {
	e := newEnv(t, &fakeLedger{}, nil)
	const path = "/api/v1/projects"
	resp, b := e.get(t, "", path)
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="gpuledger"` {
		t.Errorf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if p := problemOf(t, resp, b); p.Title != probNoToken.title {
		t.Errorf("no token: %+v", p)
	}
	resp, _ = e.get(t, "", path, "Authorization", "Basic Ym9iOnNlY3JldA==")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="gpuledger"` {
		t.Errorf("basic: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	c := e.is.Claims("bob")
	c["exp"] = time.Now().Add(-time.Hour).Unix()
	expired := e.is.Sign(map[string]any{"alg": "RS256", "kid": "rsa-1"}, c, e.is.RSA)
	resp, b = e.get(t, expired, path)
	want := `Bearer realm="gpuledger", error="invalid_token", error_description="the token has expired"`
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != want {
		t.Errorf("expired: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if p := problemOf(t, resp, b); p.Title != probBadToken.title || p.Detail != "the token has expired" {
		t.Errorf("expired: %+v", p)
	}
	// An unknown kid: its quotes are not allowed in the challenge.
	resp, _ = e.get(t, e.is.Sign(map[string]any{"alg": "RS256", "kid": `x"y`}, e.is.Claims("bob"), e.is.RSA), path)
	if h := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || strings.Count(h, `"`) != 6 {
		t.Errorf("unknown kid: %d %q", resp.StatusCode, h)
	}
	// An oversized token is refused before it is parsed.
	resp, _ = e.get(t, strings.Repeat("a", auth.DefaultMaxTokenBytes+1), path)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "exceeds the limit") {
		t.Errorf("oversized: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// The public routes need no token.
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"} {
		if resp, b := e.get(t, "", p); resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", p, resp.StatusCode, b)
		}
	}
}

// unavailableKeys is an authenticator whose keys never loaded.
type unavailableKeys struct{}

func (unavailableKeys) Verify(context.Context, string) (auth.Identity, error) {
	return auth.Identity{}, fmt.Errorf("%w: issuer down", auth.ErrKeysUnavailable)
}

func (unavailableKeys) Ready() error { return auth.ErrKeysUnavailable }

func TestUnavailable(t *testing.T) {
	e := newEnv(t, &fakeLedger{ping: errors.New("connection refused")}, func(o *Options) { o.Authenticator = unavailableKeys{} })
	resp, b := e.get(t, "some-token", "/api/v1/projects")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("keys unavailable: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	problemOf(t, resp, b)
	resp, b = e.get(t, "", "/readyz")
	p := problemOf(t, resp, b)
	if resp.StatusCode != 503 || !strings.Contains(p.Detail, "ledger: connection refused") || !strings.Contains(p.Detail, "authentication:") {
		t.Errorf("readyz: %d %+v", resp.StatusCode, p)
	}
	if resp, _ := e.get(t, "", "/healthz"); resp.StatusCode != 200 {
		t.Errorf("healthz: %d", resp.StatusCode)
	}
}

func TestTimeout(t *testing.T) {
	l := &fakeLedger{usage: func(ctx context.Context, _ ledger.UsageQuery, _ func(ledger.UsageRow) error) error {
		<-ctx.Done() // a query that runs until the request's deadline
		return fmt.Errorf("usage: %w", ctx.Err())
	}}
	e := newEnv(t, l, func(o *Options) { o.RequestTimeout = 50 * time.Millisecond })
	resp, b := e.get(t, e.roles().admin, "/api/v1/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z")
	if p := problemOf(t, resp, b); resp.StatusCode != 504 || p.Title != probTimeout.title {
		t.Errorf("%d %+v", resp.StatusCode, p)
	}
}

// TestOverload checks that requests beyond MaxInFlight are refused at
// once with 503 and Retry-After, that the public routes still answer, and
// that a freed slot serves the next request.
func TestOverload(t *testing.T) {
	entered, release := make(chan struct{}, 2), make(chan struct{})
	l := &fakeLedger{usage: func(ctx context.Context, _ ledger.UsageQuery, _ func(ledger.UsageRow) error) error {
		entered <- struct{}{}
		<-release
		return nil
	}}
	e := newEnv(t, l, func(o *Options) { o.MaxInFlight = 2 })
	path := "/api/v1/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z"
	done := make(chan int, 2)
	for range 2 {
		req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.roles().admin)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	<-entered
	<-entered
	resp, b := e.get(t, e.roles().admin, path)
	if p := problemOf(t, resp, b); resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || p.Title != probUnavailable.title {
		t.Errorf("third request: %d %q %+v", resp.StatusCode, resp.Header.Get("Retry-After"), p)
	}
	if resp, _ := e.get(t, "", "/healthz"); resp.StatusCode != 200 {
		t.Errorf("healthz while full: %d", resp.StatusCode)
	}
	_, b = e.get(t, "", "/metrics")
	for _, want := range []string{"gpuledger_api_requests_in_flight 2", "gpuledger_api_requests_refused_overload_total 1"} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("metrics: no %q", want)
		}
	}
	close(release)
	for range 2 {
		if code := <-done; code != 200 {
			t.Errorf("held request: %d", code)
		}
	}
	if resp, b := e.get(t, e.roles().admin, path); resp.StatusCode != 200 {
		t.Errorf("after release: %d %s", resp.StatusCode, b)
	}
}

func TestLimits(t *testing.T) {
	e := newEnv(t, &fakeLedger{}, nil)
	resp, b := e.get(t, "", "/api/v1/usage?project="+strings.Repeat("x", maxQueryBytes))
	if resp.StatusCode != http.StatusRequestURITooLong {
		t.Errorf("long query: %d", resp.StatusCode)
	}
	problemOf(t, resp, b)
	req, _ := http.NewRequest(http.MethodGet, e.url+"/healthz", strings.NewReader(strings.Repeat("x", 2*maxBodyBytes)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("large body: %d", resp.StatusCode)
	}
	hs := e.srv.HTTPServer()
	if hs.ReadHeaderTimeout <= 0 || hs.ReadTimeout <= 0 || hs.WriteTimeout <= 0 || hs.IdleTimeout <= 0 || hs.MaxHeaderBytes != maxHeaderBytes {
		t.Errorf("http.Server without limits: %+v", hs)
	}
}

func TestNoAuth(t *testing.T) {
	if _, err := New(Options{Ledger: &fakeLedger{}}); err == nil {
		t.Error("a server without authenticator and without NoAuth")
	}
	e := newEnv(t, newLedger(t), func(o *Options) { o.NoAuth = true; o.Authenticator = nil })
	resp, b := e.get(t, "", "/api/v1/usage?from=2026-11-02T08:00:00Z&to=2026-11-02T09:00:00Z")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if _, rows := jsonRows(t, b); len(rows) != 3 {
		t.Errorf("no-auth sees %d projects, want all 3", len(rows))
	}
	_, b = e.get(t, "", "/metrics")
	if !strings.Contains(string(b), "gpuledger_api_auth_disabled 1") {
		t.Error("no-auth is not in the metrics")
	}
}

// TestProblemHelpers pins the mapping of errors to problems.
func TestProblemHelpers(t *testing.T) {
	s, err := New(Options{Ledger: &fakeLedger{}, NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		err    error
		status int
	}{
		{fmt.Errorf("x: %w", ledger.ErrBadQuery), 400},
		{fmt.Errorf("x: %w", auth.ErrForbidden), 403},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), 504},
		{errors.New("boom"), 500},
		{badParam(probBadTime, "from", "bad"), 400},
	} {
		if p := s.errorProblem(ctx, c.err); p.Status != c.status {
			t.Errorf("%v: %d, want %d", c.err, p.Status, c.status)
		}
	}
	rec := httptest.NewRecorder()
	writeProblem(rec, httptest.NewRequest(http.MethodGet, "/x", nil), problemf(418, probInternal, "teapot"))
	if rec.Code != 418 || !strings.Contains(rec.Body.String(), `"instance":"/x"`) {
		t.Errorf("writeProblem: %d %s", rec.Code, rec.Body)
	}
}
