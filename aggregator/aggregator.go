// Package aggregator runs the accounting loop: it takes scrapes from a
// source, turns them into closed windows through the interval
// reconstruction, and writes each window to the ledger in one transaction,
// retrying with backoff while the database is away; after each window it
// records the changes of the Kueue quotas the window's scrapes carried
// (quotas.go). Nothing here computes a figure: the arithmetic is in
// aggregator/intervals (pure) and the storage in aggregator/ledger.
package aggregator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// Reconstructor turns scrapes into closed windows (aggregator/intervals).
type Reconstructor interface {
	Observe(s observe.Scrape)
	// Close emits every window ending at or before upTo (Unix seconds).
	Close(upTo int64) []observe.Window
}

// Ledger stores windows (aggregator/ledger). A Ledger that is also a
// QuotaRecorder gets the Kueue quotas the scrapes carry, after the windows
// that contain them are written.
type Ledger interface {
	ApplyWindow(ctx context.Context, w observe.Window) error
}

// Scraper scrapes every target once (aggregator/source).
type Scraper interface {
	ScrapeAll(ctx context.Context) []observe.Scrape
}

// Config tunes the loop.
type Config struct {
	// Window is the ledger's window length; windows are aligned to it.
	Window time.Duration
	// Lag is how long after a window's end, by the exporters' clock, the
	// window is closed: scrapes that arrive later are late data.
	Lag time.Duration
	// Interval is the time between two rounds of scrapes; zero scrapes
	// back to back (the replay, where exporters run on virtual time).
	Interval time.Duration
	// Transient reports whether a ledger error is worth retrying.
	Transient func(error) bool
	// MaxBackoff caps the wait between two retries of a window.
	MaxBackoff time.Duration
	// Until, when set (Unix seconds), ends the loop once the exporters'
	// clock reaches it and every window up to it is written: a backfill or
	// a replay.
	Until int64
	// Logger receives progress and errors; nil discards them.
	Logger *slog.Logger
	// Registerer receives the loop's own metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Loop is a running aggregator.
type Loop struct {
	cfg     Config
	rec     Reconstructor
	ledger  Ledger
	scraper Scraper
	logger  *slog.Logger
	m       loopMetrics
	latest  int64         // latest exporter time seen, Unix ms
	quotas  QuotaRecorder // nil when the ledger keeps no quotas
	qt      quotaTracker

	pending   []observe.Window // closed, not yet written, in order
	writtenTo int64            // end of the last window written, Unix seconds
	failures  int              // consecutive failed writes
	backoff   time.Duration
	retryAt   time.Time
}

type loopMetrics struct {
	windows      prometheus.Counter
	writeErrors  prometheus.Counter
	scrapes      *prometheus.CounterVec
	watermark    prometheus.Gauge
	lastScrapeTS prometheus.Gauge
	quotaChanges prometheus.Counter
	quotaErrors  prometheus.Counter
}

// New builds a loop.
func New(cfg Config, rec Reconstructor, l Ledger, s Scraper) (*Loop, error) {
	if cfg.Window <= 0 || time.Hour%cfg.Window != 0 || cfg.Window%time.Second != 0 {
		return nil, fmt.Errorf("aggregator: window %s must be whole seconds and divide an hour", cfg.Window)
	}
	if cfg.Lag < 0 || cfg.Interval < 0 {
		return nil, errors.New("aggregator: negative lag or interval")
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Transient == nil {
		cfg.Transient = func(error) bool { return true }
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := loopMetrics{
		windows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gpuledger_aggregator_windows_applied_total",
			Help: "Windows the aggregator wrote to the ledger.",
		}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gpuledger_aggregator_ledger_write_errors_total",
			Help: "Failed attempts to write a window to the ledger (each is retried).",
		}),
		scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gpuledger_aggregator_scrapes_total",
			Help: "Scrapes of exporters by the aggregator, by result (ok or failed).",
		}, []string{"result"}),
		watermark: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gpuledger_aggregator_watermark_seconds",
			Help: "End of the last window written to the ledger, in Unix seconds (by the exporters' clock).",
		}),
		lastScrapeTS: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gpuledger_aggregator_last_scrape_time_seconds",
			Help: "Exporter clock of the latest successful scrape, in Unix seconds; its distance to the watermark is the aggregator's lag.",
		}),
		quotaChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gpuledger_aggregator_quota_changes_total",
			Help: "Changes of Kueue ClusterQueue nominal quotas the aggregator recorded in the ledger's quota history.",
		}),
		quotaErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gpuledger_aggregator_quota_write_errors_total",
			Help: "Failed attempts to record quota changes in the ledger (the windows are written regardless; the changes are retried after the next window).",
		}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{m.windows, m.writeErrors, m.scrapes, m.watermark, m.lastScrapeTS,
			m.quotaChanges, m.quotaErrors} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("aggregator: register metrics: %w", err)
			}
		}
	}
	loop := &Loop{cfg: cfg, rec: rec, ledger: l, scraper: s, logger: logger, m: m}
	if q, ok := l.(QuotaRecorder); ok {
		loop.quotas = q
	}
	return loop, nil
}

// ErrDone is returned by Step once the loop has written everything up to
// Config.Until.
var ErrDone = errors.New("aggregator: reached the end of the range")

// Run scrapes, reconstructs and writes until ctx ends (nil) or, with
// Config.Until, until everything up to it is written (nil). Windows not yet
// written when ctx ends are rebuilt by the next run from the ledger's open
// intervals and the exporters' ended-allocation retention.
func (l *Loop) Run(ctx context.Context) error {
	var tick <-chan time.Time
	if l.cfg.Interval > 0 {
		t := time.NewTicker(l.cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		switch err := l.Step(ctx); {
		case errors.Is(err, ErrDone):
			return nil
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if tick == nil {
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		}
	}
}

// Step scrapes once, closes the windows the scrapes completed, and writes
// what it can. Windows the ledger refuses for a transient reason stay
// queued, in order, and are retried at later steps with backoff, so that
// scraping goes on while the database is away.
func (l *Loop) Step(ctx context.Context) error {
	for _, s := range l.scraper.ScrapeAll(ctx) {
		if !s.OK {
			l.m.scrapes.WithLabelValues("failed").Inc()
		} else {
			l.m.scrapes.WithLabelValues("ok").Inc()
			if s.Time > l.latest {
				l.latest = s.Time
				l.m.lastScrapeTS.Set(float64(s.Time) / 1000)
			}
		}
		l.rec.Observe(s)
		l.observeQuotas(s)
	}
	if l.latest == 0 {
		return nil
	}
	win := int64(l.cfg.Window / time.Second)
	upTo := (l.latest/1000 - int64(l.cfg.Lag/time.Second)) / win * win
	done := false
	if l.cfg.Until > 0 && l.latest/1000 >= l.cfg.Until {
		upTo, done = l.cfg.Until, true
	}
	l.pending = append(l.pending, l.rec.Close(upTo)...)
	if err := l.drain(ctx, done); err != nil {
		return err
	}
	if done && len(l.pending) == 0 {
		return ErrDone
	}
	return nil
}

// drain writes the queued windows in order. With wait it retries until they
// are all written; otherwise it stops at the first transient failure and
// leaves the rest for a later step.
func (l *Loop) drain(ctx context.Context, wait bool) error {
	for len(l.pending) > 0 {
		if now := time.Now(); now.Before(l.retryAt) {
			if !wait {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(l.retryAt.Sub(now)):
			}
		}
		w := l.pending[0]
		err := l.ledger.ApplyWindow(ctx, w)
		if err == nil {
			l.pending[0] = observe.Window{}
			l.pending = l.pending[1:]
			l.m.windows.Inc()
			l.m.watermark.Set(float64(w.To))
			l.writtenTo = w.To
			l.recordQuotas(ctx, w)
			if l.failures > 0 {
				l.logger.Info("ledger writes resumed", "from", time.Unix(w.From, 0).UTC(), "failed_attempts", l.failures)
			}
			l.failures, l.backoff = 0, 0
			continue
		}
		l.m.writeErrors.Inc()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !l.cfg.Transient(err) {
			return fmt.Errorf("aggregator: write window %s: %w", time.Unix(w.From, 0).UTC().Format(time.RFC3339), err)
		}
		l.failures++
		l.backoff = min(max(2*l.backoff, 100*time.Millisecond), l.cfg.MaxBackoff)
		l.retryAt = time.Now().Add(l.backoff)
		l.logger.Warn("ledger write failed; window queued for retry", "from", time.Unix(w.From, 0).UTC(),
			"queued", len(l.pending), "backoff", l.backoff, "err", err)
	}
	return nil
}

// written is the end of the last window written (Unix seconds; 0 before
// the first).
func (l *Loop) written() int64 { return l.writtenTo }

// Pending is the number of closed windows waiting to be written.
func (l *Loop) Pending() int { return len(l.pending) }
