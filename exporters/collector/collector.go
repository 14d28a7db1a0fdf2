// Package collector is the exporter's collector contract: every source
// (simulator, NVML, DCGM, FPGA, attribution) implements Collector, is
// registered by name in an explicit Registry, and runs under one
// prometheus.Collector that reports each source's success and duration.
// A failing source never fails the scrape.
package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Namespace is the prefix of every gpuledger metric.
const Namespace = "gpuledger"

// ErrNoData is returned by a collector whose source has nothing to report
// (no such device on this node). It is not counted as a failure.
var ErrNoData = errors.New("collector returned no data")

// Collector is one source of metrics.
type Collector interface {
	// Update sends the source's current metrics. It must not block on
	// anything slower than reading memory or a local file.
	Update(ch chan<- prometheus.Metric) error
}

// Pinnable is implemented by collectors that can report an instant other
// than now: the simulator's, whose clock is virtual. At returns a collector
// that reports t, for one scrape.
type Pinnable interface {
	At(t time.Time) (Collector, error)
}

// ErrNotPinnable is returned by Exporter.At when a collector reads real
// devices and cannot report another instant.
var ErrNotPinnable = errors.New("collector cannot report another instant")

// Factory builds a collector.
type Factory func(logger *slog.Logger) (Collector, error)

type entry struct {
	defaultEnabled bool
	factory        Factory
}

// Registry holds the collectors an exporter can run, by name.
type Registry struct {
	entries map[string]entry
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{entries: map[string]entry{}} }

// Register adds a collector factory. It panics on a duplicate name, which
// is a programming error.
func (r *Registry) Register(name string, defaultEnabled bool, f Factory) {
	if _, dup := r.entries[name]; dup {
		panic(fmt.Sprintf("collector %q registered twice", name))
	}
	r.entries[name] = entry{defaultEnabled: defaultEnabled, factory: f}
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.entries))
	for n := range r.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Defaults returns the names enabled by default, sorted.
func (r *Registry) Defaults() []string {
	var names []string
	for _, n := range r.Names() {
		if r.entries[n].defaultEnabled {
			names = append(names, n)
		}
	}
	return names
}

// Build instantiates the named collectors ("" or nil means the defaults).
func (r *Registry) Build(names []string, logger *slog.Logger) (map[string]Collector, error) {
	if len(names) == 0 {
		names = r.Defaults()
	}
	out := make(map[string]Collector, len(names))
	for _, n := range names {
		n = strings.TrimSpace(n)
		e, ok := r.entries[n]
		if !ok {
			return nil, fmt.Errorf("unknown collector %q (known: %s)", n, strings.Join(r.Names(), ", "))
		}
		c, err := e.factory(logger.With("collector", n))
		if err != nil {
			return nil, fmt.Errorf("collector %s: %w", n, err)
		}
		out[n] = c
	}
	return out, nil
}

var (
	scrapeDurationDesc = prometheus.NewDesc(
		Namespace+"_exporter_collector_duration_seconds",
		"Time the collector took to produce its metrics in the last scrape, in seconds.",
		[]string{"collector"}, nil)
	scrapeSuccessDesc = prometheus.NewDesc(
		Namespace+"_exporter_collector_success",
		"Whether the collector succeeded in the last scrape (1) or failed (0).",
		[]string{"collector"}, nil)
)

// Exporter runs collectors concurrently as one prometheus.Collector.
type Exporter struct {
	collectors map[string]Collector
	logger     *slog.Logger
	timeout    time.Duration
	log        *failureLog // shared with the exporters At derives
}

// failureLog remembers the last error per collector, so that each is logged
// once per change.
type failureLog struct {
	mu     sync.Mutex
	failed map[string]string
}

// NewExporter wraps collectors. timeout, when positive, bounds each
// collector's Update; a collector that overruns is reported as failed for
// this scrape. A nil logger discards.
func NewExporter(cs map[string]Collector, timeout time.Duration, logger *slog.Logger) *Exporter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Exporter{collectors: cs, logger: logger, timeout: timeout, log: &failureLog{failed: map[string]string{}}}
}

// At returns an exporter whose collectors report instant t, for one scrape.
// Every collector must be Pinnable; otherwise the error wraps
// ErrNotPinnable. Errors of a collector's At are returned as they are.
func (e *Exporter) At(t time.Time) (*Exporter, error) {
	cs := make(map[string]Collector, len(e.collectors))
	for name, c := range e.collectors {
		p, ok := c.(Pinnable)
		if !ok {
			return nil, fmt.Errorf("collector %s: %w", name, ErrNotPinnable)
		}
		pc, err := p.At(t)
		if err != nil {
			return nil, fmt.Errorf("collector %s: %w", name, err)
		}
		cs[name] = pc
	}
	return &Exporter{collectors: cs, logger: e.logger, timeout: e.timeout, log: e.log}, nil
}

// Describe is empty: the exporter is unchecked, as its series depend on
// the hardware found at scrape time.
func (e *Exporter) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	for name, c := range e.collectors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.run(name, c, ch)
		}()
	}
	wg.Wait()
}

func (e *Exporter) run(name string, c Collector, ch chan<- prometheus.Metric) {
	begin := time.Now()
	err := e.update(c, ch)
	dur := time.Since(begin).Seconds()
	success := 1.0
	switch {
	case err == nil:
		e.recovered(name)
	case errors.Is(err, ErrNoData):
		e.logger.Debug("collector returned no data", "collector", name, "err", err)
	default:
		success = 0
		e.noteFailure(name, err)
	}
	ch <- prometheus.MustNewConstMetric(scrapeDurationDesc, prometheus.GaugeValue, dur, name)
	ch <- prometheus.MustNewConstMetric(scrapeSuccessDesc, prometheus.GaugeValue, success, name)
}

// update runs Update, bounded by the timeout when one is set. Metrics the
// collector sends after the deadline are dropped.
func (e *Exporter) update(c Collector, ch chan<- prometheus.Metric) error {
	if e.timeout <= 0 {
		return c.Update(ch)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	buf := make(chan prometheus.Metric, 256)
	done := make(chan error, 1)
	go func() {
		err := c.Update(buf)
		close(buf)
		done <- err
	}()
	for {
		select {
		case m, ok := <-buf:
			if !ok {
				return <-done
			}
			ch <- m
		case <-ctx.Done():
			go func() { // drain the late collector so it can finish
				for range buf {
				}
			}()
			return fmt.Errorf("timed out after %s", e.timeout)
		}
	}
}

// noteFailure logs a collector's error once, until it changes or recovers.
func (e *Exporter) noteFailure(name string, err error) {
	msg := err.Error()
	e.log.mu.Lock()
	prev, seen := e.log.failed[name]
	e.log.failed[name] = msg
	e.log.mu.Unlock()
	if !seen || prev != msg {
		e.logger.Error("collector failed", "collector", name, "err", err)
	}
}

func (e *Exporter) recovered(name string) {
	e.log.mu.Lock()
	_, was := e.log.failed[name]
	delete(e.log.failed, name)
	e.log.mu.Unlock()
	if was {
		e.logger.Info("collector recovered", "collector", name)
	}
}
