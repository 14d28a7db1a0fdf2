package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics are the server's metrics (docs/api.md lists them).
type httpMetrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	authFailures *prometheus.CounterVec
	inFlight     prometheus.Gauge
	overload     prometheus.Counter
}

func newHTTPMetrics(reg prometheus.Registerer, noAuth bool) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpuledger_api_requests_total",
			Help: "Requests answered by the accounting API, by method, route pattern and status code (aborted: a streamed answer cut short).",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gpuledger_api_request_duration_seconds",
			Help:    "Time the accounting API took to answer a request, streaming included, by method and route pattern.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"method", "route"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpuledger_api_auth_failures_total",
			Help: "Requests refused by authentication, by reason (no_token, invalid_token, invalid_session, keys_unavailable).",
		}, []string{"reason"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gpuledger_api_requests_in_flight",
			Help: "API requests being answered now (at most --max-requests-in-flight).",
		}),
		overload: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gpuledger_api_requests_refused_overload_total",
			Help: "API requests refused with 503 because --max-requests-in-flight requests were being answered.",
		}),
	}
	disabled := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gpuledger_api_auth_disabled",
		Help: "1 when the accounting API runs without authentication (--no-auth, development only), else 0.",
	})
	if noAuth {
		disabled.Set(1)
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.authFailures, m.inFlight, m.overload, disabled} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: register metrics: %w", err)
		}
	}
	return m, nil
}

// KeyFetchMetric registers gpuledger_api_jwks_fetches_total and returns
// the function that counts a fetch of the token signing keys, for
// auth.Options.OnRefresh.
func KeyFetchMetric(reg prometheus.Registerer) (func(ok bool), error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gpuledger_api_jwks_fetches_total",
		Help: "Fetches of the OIDC issuer's token signing keys, by result (ok or failed).",
	}, []string{"result"})
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("api: register metrics: %w", err)
	}
	return func(ok bool) {
		if ok {
			c.WithLabelValues("ok").Inc()
		} else {
			c.WithLabelValues("failed").Inc()
		}
	}, nil
}

// middleware counts each request by its route pattern (never its path:
// the labels stay few) and its status.
func (m *httpMetrics) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		aborted := true
		defer func() {
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			code := strconv.Itoa(max(ww.Status(), http.StatusOK))
			if aborted {
				code = "aborted"
			}
			m.requests.WithLabelValues(r.Method, route, code).Inc()
			m.duration.WithLabelValues(r.Method, route).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(ww, r)
		aborted = false
	})
}
