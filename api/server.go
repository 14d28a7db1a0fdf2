// Package api is gpuledger's accounting API: the ledger's GPU-hours over
// HTTP, as JSON or CSV, for the users, project managers and operators of
// the platform. docs/api.md describes it for its users and
// docs/openapi.json is its OpenAPI 3 document (served at
// /api/v1/openapi.json).
//
//	GET /api/v1/usage                    usage over a range, grouped, filtered, by period
//	GET /api/v1/reports/monthly/{month}  a month by project and user, closed or provisional
//	GET /api/v1/projects                 the projects the caller sees
//	GET /api/v1/idle                     who holds idle GPU time, most first
//	GET /api/v1/quota                    Kueue ClusterQueue quotas against usage
//	GET /healthz, /readyz, /metrics, /api/v1/openapi.json
//
// Every /api/v1 resource but the OpenAPI document needs an OIDC bearer
// token (package auth); what a caller sees — everything, the projects it
// manages, its own rows — is applied as SQL filters by the ledger. Errors
// are RFC 9457 problem documents. Tables stream from the database row by
// row, so memory does not grow with the answer.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/api/auth"
)

// Ledger is what the API reads: *ledger.Store.
type Ledger interface {
	Usage(ctx context.Context, q ledger.UsageQuery, fn func(ledger.UsageRow) error) error
	Idle(ctx context.Context, q ledger.UsageQuery, limit int, fn func(ledger.ReportRow) error) error
	Projects(ctx context.Context, cluster string, v ledger.Visibility) ([]ledger.ProjectSummary, error)
	MonthClosed(ctx context.Context, cluster string, month time.Time) (bool, error)
	LatestHour(ctx context.Context, cluster string) (time.Time, bool, error)
	QuotaUsage(ctx context.Context, q ledger.QuotaQuery) ([]ledger.QuotaRow, error)
	Ping(ctx context.Context) error
}

// Authenticator checks bearer tokens: *auth.Verifier.
type Authenticator interface {
	Verify(ctx context.Context, token string) (auth.Identity, error)
	Ready() error
}

// SessionAuthenticator authenticates a browser by its session cookie:
// *web.UI. found is false when r carries no session; err is non-nil when
// it carries one that is refused (expired, tampered).
type SessionAuthenticator interface {
	Session(r *http.Request) (id auth.Identity, found bool, err error)
}

// webPaths are the routes of Options.Web.
var webPaths = []string{"/", "/login", "/callback", "/logout", "/assets/*"}

// Defaults of Options.
const (
	DefaultRequestTimeout = 2 * time.Minute
	DefaultMaxInFlight    = 64
	DefaultMaxRange       = 366 * 24 * time.Hour
	DefaultMaxHourlyRange = 31 * 24 * time.Hour
	DefaultIdleLimit      = 100
	MaxIdleLimit          = 10000
	// maxQueryBytes bounds a request's query string.
	maxQueryBytes = 8 << 10
	// maxBodyBytes bounds a request body: every route is a GET.
	maxBodyBytes = 1 << 10
	// maxHeaderBytes bounds the request headers, bearer token included.
	maxHeaderBytes = 64 << 10
)

// Options configure a Server.
type Options struct {
	// Ledger is read by every resource. Required.
	Ledger Ledger
	// Authenticator checks bearer tokens. Required unless NoAuth.
	Authenticator Authenticator
	// Policy maps verified identities to what they see.
	Policy auth.Policy
	// Sessions, when set, authenticates the requests that carry no bearer
	// token by their browser session (package web); a session's identity
	// goes through Policy as a token's does.
	Sessions SessionAuthenticator
	// Web, when set, serves the browser pages (package web) at /, /login,
	// /callback, /logout and /assets/*: pages, not API resources, so they
	// are not in the OpenAPI document.
	Web http.Handler
	// NoAuth serves every request as an administrator, without a token:
	// for development only. The server logs it loudly.
	NoAuth bool
	// Registry receives the server's metrics and is served at /metrics
	// (default: a new registry).
	Registry *prometheus.Registry
	// RequestTimeout bounds each request's work (default 2 min).
	RequestTimeout time.Duration
	// MaxInFlight bounds the API requests answered at once (default 64);
	// more are refused with 503 and Retry-After.
	MaxInFlight int
	// MaxRange bounds a query's range (default 366 days); MaxHourlyRange
	// bounds it with granularity=hour (default 31 days).
	MaxRange, MaxHourlyRange time.Duration
	// Logger receives errors and, at debug level, requests.
	Logger *slog.Logger

	// afterQuery, when set, runs as each table's query has returned its
	// last row (tests of streaming).
	afterQuery func()
}

// Server is the accounting API.
type Server struct {
	opts    Options
	log     *slog.Logger
	handler http.Handler
	metrics *httpMetrics
}

// New checks opts and builds the server's routes.
func New(opts Options) (*Server, error) {
	if opts.Ledger == nil {
		return nil, errors.New("api: no ledger")
	}
	if opts.Authenticator == nil && !opts.NoAuth {
		return nil, errors.New("api: no authenticator (authentication can only be disabled explicitly, with NoAuth)")
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.MaxRange <= 0 {
		opts.MaxRange = DefaultMaxRange
	}
	if opts.MaxHourlyRange <= 0 {
		opts.MaxHourlyRange = DefaultMaxHourlyRange
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	s := &Server{opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	m, err := newHTTPMetrics(opts.Registry, opts.NoAuth)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if opts.NoAuth {
		s.log.Error("AUTHENTICATION IS DISABLED (--no-auth): every request is served as an administrator, " +
			"without a token. Never run this way outside development.")
	}
	s.handler = s.routes()
	return s, nil
}

// routes builds the router: every resource is a struct with Routes.
func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(s.metrics.middleware, s.limits)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, problemf(http.StatusNotFound, probNotFound, "No route %s", r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, problemf(http.StatusMethodNotAllowed, probMethod, "%s is not allowed on %s", r.Method, r.URL.Path))
	})
	health{s}.Routes(r)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{MaxRequestsInFlight: 10}))
	if s.opts.Web != nil {
		for _, p := range webPaths {
			r.Handle(p, s.opts.Web)
		}
	}
	r.Route("/api/v1", func(r chi.Router) {
		openAPI{}.Routes(r)
		r.Group(func(r chi.Router) {
			r.Use(s.bound, s.timeout, s.authenticate)
			usageResource{s}.Routes(r)
			monthlyResource{s}.Routes(r)
			projectsResource{s}.Routes(r)
			idleResource{s}.Routes(r)
			quotaResource{s}.Routes(r)
		})
	})
	return r
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers requests on l until ctx ends, then shuts down gracefully:
// it stops accepting connections and waits up to grace for the requests
// in flight (a report being streamed) to finish.
func (s *Server) Serve(ctx context.Context, l net.Listener, grace time.Duration) error {
	srv := s.HTTPServer()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return fmt.Errorf("api: serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("api: shutdown: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: serve: %w", err)
	}
	return nil
}

// HTTPServer returns an http.Server for the handler with the API's
// timeouts and size limits.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A table may stream for as long as its request may run.
		WriteTimeout:   s.opts.RequestTimeout + 30*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}
