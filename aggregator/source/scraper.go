package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/sim/clock"
)

// ScraperOptions tune a Scraper. Zero values take the defaults.
type ScraperOptions struct {
	// Timeout bounds one target's scrape, connection to last byte
	// (default 10 s).
	Timeout time.Duration
	// Concurrency is how many targets are scraped at once (default 16).
	Concurrency int
	// MaxBodyBytes bounds one exposition, after decompression
	// (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// Clock gives the time of a scrape whose exposition carries no
	// gpuledger_exporter_time_seconds, and of failed scrapes (default the
	// wall clock). A replay passes the clock it drives the exporters with.
	Clock clock.Clock
	// Client sends the requests (default: a client of its own, with
	// keep-alive connections per target).
	Client *http.Client
	// Logger receives discovery errors; nil discards.
	Logger *slog.Logger
}

// Result is the outcome of one target's scrape.
type Result struct {
	// Scrape is what the target answered; Scrape.OK is false when the
	// scrape failed.
	observe.Scrape
	// Reason is "" for a clean scrape, else one of the Reason constants.
	Reason string
	// Err says what went wrong: why the scrape failed, or (with
	// ReasonDroppedSeries) the *SeriesError of the series dropped.
	Err error
	// Dropped counts the series dropped from a successful scrape.
	Dropped int
	// StatusCode is the HTTP status, 0 when there was no answer.
	StatusCode int
	// Duration is how long the scrape took.
	Duration time.Duration
}

// Scraper scrapes exporters directly. It is safe for concurrent use.
type Scraper struct {
	disc   Discoverer
	opts   ScraperOptions
	logger *slog.Logger

	mu   sync.Mutex
	last []Target // the last targets discovered without error
}

// NewScraper returns a scraper of the targets d finds.
func NewScraper(d Discoverer, opts ScraperOptions) (*Scraper, error) {
	if d == nil {
		return nil, errors.New("source: scraper without targets")
	}
	if opts.Timeout < 0 || opts.Concurrency < 0 || opts.MaxBodyBytes < 0 {
		return nil, errors.New("source: negative scraper option")
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = 16
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Clock == nil {
		opts.Clock = clock.Wall{}
	}
	if opts.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 2
		opts.Client = &http.Client{Transport: tr}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Scraper{disc: d, opts: opts, logger: logger}, nil
}

// ScrapeAll scrapes every target once, Concurrency at a time, each within
// Timeout, and returns one Result per target in the order the Discoverer
// gave them. A target that fails never delays the others beyond the
// timeout. When discovery fails, the targets it last found are scraped and
// the discovery error is returned with their results.
func (s *Scraper) ScrapeAll(ctx context.Context) ([]Result, error) {
	targets, derr := s.disc.Targets(ctx)
	s.mu.Lock()
	if derr != nil {
		s.logger.Warn("target discovery failed; scraping the last targets found", "err", derr, "targets", len(s.last))
		targets = s.last
	} else {
		s.last = targets
	}
	s.mu.Unlock()

	out := make([]Result, len(targets))
	sem := make(chan struct{}, s.opts.Concurrency)
	var wg sync.WaitGroup
	for i, t := range targets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			out[i] = s.failed(t, s.opts.Clock.Now(), time.Time{}, ReasonCanceled, ctx.Err())
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = s.Scrape(ctx, t)
		}()
	}
	wg.Wait()
	if derr != nil {
		return out, fmt.Errorf("source: target discovery: %w", derr)
	}
	return out, nil
}

// accept asks for the text exposition, or delimited protocol buffers.
const accept = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3`

// Scrape scrapes one target within the scraper's timeout.
func (s *Scraper) Scrape(ctx context.Context, t Target) Result {
	begin := time.Now()
	at := s.opts.Clock.Now()
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return s.failed(t, at, begin, ReasonUnreachable, fmt.Errorf("target %s: %w", t.Name, err))
	}
	req.Header.Set("Accept", accept)
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return s.failed(t, at, begin, reasonOf(ctx, err), fmt.Errorf("target %s: %w", t.Name, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		r := s.failed(t, at, begin, ReasonHTTPStatus,
			fmt.Errorf("target %s: HTTP %s: %s", t.Name, resp.Status, strings.TrimSpace(string(msg))))
		r.StatusCode = resp.StatusCode
		return r
	}
	sc, err := parseFormat(t.Name, resp.Body, expfmt.ResponseFormat(resp.Header), s.opts.MaxBodyBytes, at)
	r := Result{Scrape: sc, StatusCode: resp.StatusCode, Duration: time.Since(begin)}
	var se *SeriesError
	switch {
	case err == nil:
	case errors.As(err, &se):
		r.Reason, r.Err, r.Dropped = ReasonDroppedSeries, fmt.Errorf("target %s: %w", t.Name, err), se.Dropped
	case ctx.Err() != nil: // the body was cut by the timeout or the caller
		r.Scrape.OK = false
		r.Reason, r.Err = reasonOf(ctx, ctx.Err()), fmt.Errorf("target %s: reading the exposition: %w", t.Name, ctx.Err())
	case errors.Is(err, ErrBodyTooLarge):
		r.Reason, r.Err = ReasonTooLarge, fmt.Errorf("target %s: %w", t.Name, err)
	default:
		r.Reason, r.Err = ReasonBadBody, fmt.Errorf("target %s: %w", t.Name, err)
	}
	return r
}

func (s *Scraper) failed(t Target, at time.Time, begin time.Time, reason string, err error) Result {
	r := Result{Scrape: observe.Scrape{Target: t.Name, Time: at.UnixMilli()}, Reason: reason, Err: err}
	if !begin.IsZero() {
		r.Duration = time.Since(begin)
	}
	return r
}

// reasonOf classifies a request error.
func reasonOf(ctx context.Context, err error) string {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	case ctx.Err() != nil, errors.Is(err, context.Canceled):
		return ReasonCanceled
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ReasonTimeout
	}
	return ReasonUnreachable
}

// Scrapes returns the scrapes of results, failed ones included (OK false).
func Scrapes(results []Result) []observe.Scrape {
	out := make([]observe.Scrape, len(results))
	for i := range results {
		out[i] = results[i].Scrape
	}
	return out
}
