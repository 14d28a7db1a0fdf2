package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// PrometheusOptions configure a Prometheus source.
type PrometheusOptions struct {
	// URL is the Prometheus (or Thanos Query, or Mimir Prometheus API)
	// base URL, e.g. http://prometheus:9090 or http://mimir/prometheus.
	URL string
	// Cluster, when set, selects series whose ClusterLabel has this value.
	Cluster string
	// ClusterLabel names the label that tells clusters apart (default
	// "cluster").
	ClusterLabel string
	// Job, when set, selects series of this job only, and reads the job's
	// up series so that failed scrapes are reported (Scrape.OK false).
	Job string
	// Chunk is the longest range one query covers (default 1 h). A query
	// that Prometheus refuses as too large is split in halves, down to a
	// minute.
	Chunk time.Duration
	// Timeout bounds one query (default 2 min); it is also passed to the
	// server as the query's evaluation timeout.
	Timeout time.Duration
	// Retries is how many times a query that failed transiently (a 5xx,
	// a timeout, a connection error, a partial answer) is tried again
	// (default 5; negative: never).
	Retries int
	// Backoff is the wait before the first retry; it doubles at each
	// retry, with jitter, up to MaxBackoff (defaults 1 s and 30 s).
	Backoff, MaxBackoff time.Duration
	// RoundTripper sends the requests (default http.DefaultTransport):
	// where TLS or authentication would be configured.
	RoundTripper http.RoundTripper
	// Logger receives retries and warnings; nil discards.
	Logger *slog.Logger
}

// Errors of the Prometheus source.
var (
	// ErrBadRange: from is not before to.
	ErrBadRange = errors.New("bad time range")
	// ErrPartial: the server answered with warnings (Thanos and Mimir say
	// so when some store did not answer), so the answer may lack series.
	ErrPartial = errors.New("partial response")
	// ErrQuery: the server refused or failed the query.
	ErrQuery = errors.New("prometheus query failed")
)

// Prometheus reads the exporters' series through the Prometheus HTTP API.
//
// It asks for raw samples: an instant query of a range selector,
// {__name__=~"gpuledger_…"}[range], evaluated at the end of the range,
// returns every stored sample with its own timestamp, unlike a range query
// (query_range), which returns values resampled at evaluation steps with a
// lookback. The samples of one scrape share one timestamp, so grouping them
// by target and timestamp rebuilds each scrape as the exporter served it.
type Prometheus struct {
	api    v1.API
	opts   PrometheusOptions
	sel    string // the selector of every family read
	logger *slog.Logger
}

var _ Source = (*Prometheus)(nil)

// NewPrometheus returns a Prometheus source. It does not contact the
// server.
func NewPrometheus(opts PrometheusOptions) (*Prometheus, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("source: --prometheus-url %q: want an http(s) URL such as http://prometheus:9090", opts.URL)
	}
	if opts.Chunk < 0 || opts.Timeout < 0 || opts.Backoff < 0 || opts.MaxBackoff < 0 {
		return nil, errors.New("source: negative Prometheus option")
	}
	if opts.ClusterLabel == "" {
		opts.ClusterLabel = "cluster"
	}
	if !model.LegacyValidation.IsValidLabelName(opts.ClusterLabel) {
		return nil, fmt.Errorf("source: cluster label %q is not a valid label name", opts.ClusterLabel)
	}
	if opts.Chunk == 0 {
		opts.Chunk = time.Hour
	}
	if opts.Chunk < time.Second {
		return nil, fmt.Errorf("source: chunk %s is shorter than a second", opts.Chunk)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.Retries == 0 {
		opts.Retries = 5
	}
	if opts.Backoff == 0 {
		opts.Backoff = time.Second
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c, err := api.NewClient(api.Config{Address: opts.URL, RoundTripper: opts.RoundTripper})
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	p := &Prometheus{api: v1.NewAPI(strictClient{c}), opts: opts, logger: logger}
	p.sel = p.selector()
	return p, nil
}

// strictClient asks Thanos to fail a query rather than answer it from some
// stores only (partial_response=false); Prometheus and Mimir ignore the
// parameter.
type strictClient struct{ api.Client }

func (c strictClient) URL(ep string, args map[string]string) *url.URL {
	u := c.Client.URL(ep, args)
	q := u.Query()
	q.Set("partial_response", "false")
	u.RawQuery = q.Encode()
	return u
}

// selector returns the series selector of the families read.
func (p *Prometheus) selector() string {
	names := Families()
	if p.opts.Job != "" {
		names = append(names, FamilyUp)
	}
	sort.Strings(names)
	m := []string{`__name__=~"` + strings.Join(names, "|") + `"`}
	if p.opts.Cluster != "" {
		m = append(m, p.opts.ClusterLabel+"="+strconv.Quote(p.opts.Cluster))
	}
	if p.opts.Job != "" {
		m = append(m, "job="+strconv.Quote(p.opts.Job))
	}
	return "{" + strings.Join(m, ",") + "}"
}

// Query returns the query that reads the raw samples of [from, to). It is
// evaluated at to − 1 ms over a range 1 ms longer than the window, which
// covers [from, to) whether the server's range selectors include their
// left end (Prometheus 2) or not (Prometheus 3); samples outside the
// window are dropped on arrival.
func (p *Prometheus) Query(from, to time.Time) (query string, at time.Time) {
	ms := to.Sub(from).Milliseconds() + 1
	return fmt.Sprintf("%s[%dms]", p.sel, ms), to.Add(-time.Millisecond)
}

// Fetch returns the scrapes of [from, to), in time order, then by target.
// Long ranges are read in chunks. Transient failures are retried with
// backoff; a partial answer counts as a failure, since a missing series
// would read as an allocation that ended. NaN and other malformed values
// drop their series (reported in a *SeriesError returned with the scrapes).
func (p *Prometheus) Fetch(ctx context.Context, from, to time.Time) ([]observe.Scrape, error) {
	from, to = from.Truncate(time.Millisecond), to.Truncate(time.Millisecond)
	if !from.Before(to) {
		return nil, fmt.Errorf("%w: from %s is not before to %s", ErrBadRange,
			from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano))
	}
	var out []observe.Scrape
	errs := &SeriesError{}
	names := map[string]string{} // instance → node, learned over the whole range
	for start := from; start.Before(to); {
		end := start.Add(p.opts.Chunk)
		if end.After(to) {
			end = to
		}
		scrapes, se, err := p.fetchChunk(ctx, start, end, names)
		if err != nil {
			return nil, err
		}
		errs.merge(se)
		out = append(out, scrapes...)
		start = end
	}
	return out, errs.orNil()
}

// fetchChunk reads [from, to), splitting it when the server finds it too
// large.
func (p *Prometheus) fetchChunk(ctx context.Context, from, to time.Time, names map[string]string) ([]observe.Scrape, *SeriesError, error) {
	m, err := p.query(ctx, from, to)
	var qe *v1.Error
	if errors.As(err, &qe) && qe.Type == v1.ErrExec && to.Sub(from) > time.Minute {
		// Most likely a limit on the samples of one query: halve the range.
		mid := from.Add(to.Sub(from) / 2).Truncate(time.Millisecond)
		p.logger.Info("prometheus refused a query; splitting it", "from", from, "to", to, "err", err)
		a, sa, err := p.fetchChunk(ctx, from, mid, names)
		if err != nil {
			return nil, nil, err
		}
		b, sb, err := p.fetchChunk(ctx, mid, to, names)
		if err != nil {
			return nil, nil, err
		}
		sa.merge(sb)
		return append(a, b...), sa, nil
	}
	if err != nil {
		return nil, nil, err
	}
	scrapes, se := decodeMatrix(m, from, to, names)
	return scrapes, se, nil
}

// query runs the raw-sample query of [from, to) with retries.
func (p *Prometheus) query(ctx context.Context, from, to time.Time) (model.Matrix, error) {
	q, at := p.Query(from, to)
	wait := p.opts.Backoff
	for attempt := 0; ; attempt++ {
		m, err := p.queryOnce(ctx, q, at)
		if err == nil {
			return m, nil
		}
		if !retryable(err) || attempt >= p.opts.Retries || ctx.Err() != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: %s at %s: %w", ErrQuery, q, at.UTC().Format(time.RFC3339Nano), ctx.Err())
			}
			return nil, fmt.Errorf("%w (after %d attempts): %s at %s: %w", ErrQuery, attempt+1, q,
				at.UTC().Format(time.RFC3339Nano), err)
		}
		d := wait/2 + rand.N(wait/2+1) // jitter in [wait/2, wait]
		p.logger.Warn("prometheus query failed; retrying", "attempt", attempt+1, "in", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w: %s: %w (last error: %w)", ErrQuery, q, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, p.opts.MaxBackoff)
	}
}

func (p *Prometheus) queryOnce(ctx context.Context, q string, at time.Time) (model.Matrix, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	v, warnings, _, err := p.api.Query(ctx, q, at, v1.WithTimeout(p.opts.Timeout))
	if err != nil {
		return nil, err
	}
	if len(warnings) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrPartial, strings.Join(warnings, "; "))
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, &v1.Error{Type: v1.ErrBadResponse, Msg: fmt.Sprintf("want a matrix, got a %s", v.Type())}
	}
	return m, nil
}

// retryable tells transient failures (worth another try) from answers
// that will not change (a bad query, a refused one).
func retryable(err error) bool {
	if errors.Is(err, ErrPartial) {
		return true
	}
	var qe *v1.Error
	if errors.As(err, &qe) {
		switch qe.Type {
		case v1.ErrServer, v1.ErrTimeout, v1.ErrCanceled, v1.ErrBadResponse:
			return true
		case v1.ErrClient:
			// 429 Too Many Requests is the only client error worth a retry.
			return strings.Contains(qe.Msg, "429")
		}
		return false
	}
	// Connection errors, timeouts of the request itself.
	return true
}

// groupKey identifies one scrape in Prometheus: its target and timestamp.
type groupKey struct {
	job, instance string
	ts            int64
}

type group struct {
	b    *builder
	node string // a node label seen in the group
}

// decodeMatrix groups the samples of m within [from, to) into scrapes.
func decodeMatrix(m model.Matrix, from, to time.Time, names map[string]string) ([]observe.Scrape, *SeriesError) {
	lo, hi := from.UnixMilli(), to.UnixMilli()
	groups := map[groupKey]*group{}
	errs := &SeriesError{}
	for _, ss := range m {
		l := metricLabels(ss.Metric)
		name := l.get(model.MetricNameLabel)
		fam := familyOf(name)
		if name == FamilyUp {
			fam = famUp
		}
		if fam == famNone {
			continue
		}
		var s *series
		var serr error
		if fam == famUp {
			s = &series{fam: famUp, labels: l}
		} else {
			s, serr = decodeSeries(fam, l)
		}
		job, inst := l.get("job"), l.get("instance")
		node := nodeOf(l)
		if node != "" && inst != "" {
			names[inst] = node
		}
		for _, sp := range ss.Values {
			ts := int64(sp.Timestamp)
			if ts < lo || ts >= hi {
				continue
			}
			k := groupKey{job, inst, ts}
			g := groups[k]
			if g == nil {
				g = &group{b: newBuilder()}
				groups[k] = g
			}
			if node != "" && g.node == "" && fam != famUp {
				g.node = node
			}
			if serr != nil {
				g.b.errs.add(serr)
				continue
			}
			g.b.add(s, float64(sp.Value))
		}
	}
	out := make([]observe.Scrape, 0, len(groups))
	for k, g := range groups {
		target := g.node
		if target == "" {
			target = names[k.instance]
		}
		if target == "" {
			target = k.instance
		}
		sc, se := g.b.finish(target, k.ts)
		errs.merge(se)
		if g.b.samples == 0 {
			// No valid gpuledger sample: a failed scrape when up is 0 or
			// every series was malformed, since such a scrape says nothing
			// about the allocations; a target of the job that served no
			// gpuledger series at all is a successful, empty scrape.
			sc.OK = g.b.hasUp && g.b.up == 1 && se.Dropped == 0
		}
		out = append(out, sc)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Time != out[j].Time {
			return out[i].Time < out[j].Time
		}
		return out[i].Target < out[j].Target
	})
	return out, errs
}
