// Package server is the exporter's HTTP side: /metrics through promhttp
// from an injected gatherer (gzip-compressed on request, by one compressor
// for the whole process), /healthz, /readyz and a landing page, TLS and
// basic authentication through the exporter toolkit's web configuration
// file, and a graceful shutdown when the context ends.
//
// In sim mode (Options.TimeMachine set) every /metrics request is answered
// for one instant: the one its at parameter names, or the simulated clock's.
// A simulated fault makes the answer 503; an at outside the simulated range
// is a 400. Outside sim mode the at parameter is rejected with 400.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
)

// Errors a TimeMachine returns; the server maps them to status codes.
var (
	// ErrOutOfRange: the instant is outside what the source can serve
	// (400 for an at parameter, 503 for the clock).
	ErrOutOfRange = errors.New("instant out of range")
	// ErrUnavailable: the source is down at that instant (503).
	ErrUnavailable = errors.New("metrics unavailable")
)

// TimeMachine serves metrics at chosen instants: a simulated exporter.
type TimeMachine interface {
	// Now is the simulated clock.
	Now() time.Time
	// At returns what /metrics serves at t. Errors wrapping ErrOutOfRange or
	// ErrUnavailable become 400/503 answers carrying the error's text.
	At(t time.Time) (prometheus.Gatherer, error)
}

// Options configure a Server.
type Options struct {
	// Gatherer is what /metrics serves outside sim mode.
	Gatherer prometheus.Gatherer
	// TimeMachine, when set, puts the server in sim mode: /metrics serves
	// TimeMachine.At(instant) and Gatherer is unused.
	TimeMachine TimeMachine
	// Ready reports whether the sources have loaded (nil: always ready).
	Ready func() error
	// MaxRequestsInFlight limits concurrent /metrics requests; more are
	// answered 503 at once. Zero means 40; negative means no limit.
	MaxRequestsInFlight int
	// Timeout, when positive, bounds one /metrics answer: promhttp answers
	// 503 past it. It buffers every answer, so it is off by default; the
	// collector wrapper's timeout already bounds each source.
	Timeout time.Duration
	// WebConfigFile is an exporter-toolkit web configuration (TLS, basic
	// authentication); empty serves plain HTTP.
	WebConfigFile string
	// Name, Description and Version show on the landing page.
	Name, Description, Version string
	// Logger receives serving errors; nil discards them.
	Logger *slog.Logger
}

// Server serves one exporter.
type Server struct {
	opts    Options
	handler http.Handler
	metrics http.Handler // outside sim mode
	hopts   promhttp.HandlerOpts
	sem     chan struct{} // in-flight limit in sim mode
	logger  *slog.Logger
}

// New builds a server. It checks the web configuration file, if any.
func New(opts Options) (*Server, error) {
	if opts.Gatherer == nil && opts.TimeMachine == nil {
		return nil, errors.New("server: nothing to serve (no gatherer, no time machine)")
	}
	if opts.MaxRequestsInFlight == 0 {
		opts.MaxRequestsInFlight = 40
	}
	if opts.Name == "" {
		opts.Name = "gpuledger exporter"
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.WebConfigFile != "" {
		if err := web.Validate(opts.WebConfigFile); err != nil {
			return nil, fmt.Errorf("server: web configuration %s: %w", opts.WebConfigFile, err)
		}
	}
	s := &Server{opts: opts, logger: logger}
	s.hopts = promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       max(opts.Timeout, 0),
		// The server compresses, with one compressor (gzip.go).
		DisableCompression: true,
	}
	if opts.TimeMachine == nil {
		ho := s.hopts
		ho.MaxRequestsInFlight = max(opts.MaxRequestsInFlight, 0)
		s.metrics = promhttp.HandlerFor(opts.Gatherer, ho)
	} else if opts.MaxRequestsInFlight > 0 {
		s.sem = make(chan struct{}, opts.MaxRequestsInFlight)
	}
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        opts.Name,
		Description: opts.Description,
		Version:     opts.Version,
		Links: []web.LandingLinks{
			{Address: "metrics", Text: "Metrics", Description: landingMetricsText(opts.TimeMachine != nil)},
			{Address: "healthz", Text: "Health", Description: "200 while the process runs"},
			{Address: "readyz", Text: "Readiness", Description: "200 once the sources have loaded"},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("server: landing page: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", gzipped(http.HandlerFunc(s.serveMetrics)))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { plain(w, http.StatusOK, "ok") })
	mux.HandleFunc("/readyz", s.serveReady)
	mux.Handle("/", landing)
	s.handler = mux
	return s, nil
}

func landingMetricsText(sim bool) string {
	if sim {
		return "simulated metrics; ?at=<RFC 3339 or Unix seconds> serves another instant"
	}
	return "device and allocation metrics"
}

// Handler returns the server's routes, for tests and for callers that run
// their own http.Server.
func (s *Server) Handler() http.Handler { return s.handler }

func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			plain(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
	}
	plain(w, http.StatusOK, "ready")
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	at, hasAt := r.URL.Query()["at"]
	tm := s.opts.TimeMachine
	if tm == nil {
		if hasAt {
			plain(w, http.StatusBadRequest, "the at parameter is only accepted by simulated exporters")
			return
		}
		s.metrics.ServeHTTP(w, r)
		return
	}
	if s.sem != nil {
		select {
		case s.sem <- struct{}{}:
			defer func() { <-s.sem }()
		default:
			plain(w, http.StatusServiceUnavailable,
				fmt.Sprintf("Limit of concurrent requests reached (%d), try again later.", cap(s.sem)))
			return
		}
	}
	t := tm.Now()
	if hasAt {
		var err error
		if t, err = ParseInstant(at[len(at)-1]); err != nil {
			plain(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	g, err := tm.At(t)
	switch {
	case err == nil:
	case errors.Is(err, ErrOutOfRange) && hasAt:
		plain(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, ErrOutOfRange), errors.Is(err, ErrUnavailable):
		plain(w, http.StatusServiceUnavailable, err.Error())
		return
	default:
		s.logger.Error("metrics unavailable", "err", err)
		plain(w, http.StatusInternalServerError, err.Error())
		return
	}
	promhttp.HandlerFor(g, s.hopts).ServeHTTP(w, r)
}

// ParseInstant reads an at parameter: RFC 3339 (fractions allowed) or Unix
// seconds (fractions allowed), to the millisecond.
func ParseInstant(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, errors.New("empty at parameter: want RFC 3339 or Unix seconds")
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.Truncate(time.Millisecond), nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e12 {
		return time.Time{}, fmt.Errorf("bad at parameter %q: want RFC 3339 (2026-11-02T11:07:00Z) or Unix seconds", v)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond)).UTC(), nil
}

// Listen opens a TCP listener on addr (":9835", "127.0.0.1:0").
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return l, nil
}

// Serve answers requests on l until ctx ends, then shuts down gracefully
// (in-flight requests get up to ten seconds). It closes l.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      max(s.opts.Timeout, 0) + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	cfg := s.opts.WebConfigFile
	flags := &web.FlagConfig{WebListenAddresses: &[]string{l.Addr().String()}, WebSystemdSocket: new(bool), WebConfigFile: &cfg}
	errc := make(chan error, 1)
	go func() { errc <- web.Serve(l, hs, flags, s.logger) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
