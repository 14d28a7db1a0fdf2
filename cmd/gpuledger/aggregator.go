package main

import (
	"context"
	"errors"

	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gpuledger/gpuledger/aggregator"
	"github.com/gpuledger/gpuledger/aggregator/intervals"
	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/aggregator/source"
)

func cmdAggregator(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("aggregator", stderr)
	dbURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL of the ledger (default $DATABASE_URL)")
	cluster := fs.String("cluster", "", "cluster name the ledger rows carry (required)")
	targets := fs.String("targets", "", "exporters to scrape directly: host:port[,host:port…] (node=host:port to name one)")
	targetsFile := fs.String("targets-file", "", "exporters to scrape directly: a Prometheus file_sd file, read again every round")
	k8sService := fs.String("kubernetes-service", "", "exporters to scrape directly: the ready endpoints of these Services ([namespace/]name, comma-separated, e.g. the node exporters' and the cluster-mode exporter's), found through the API server (in cluster); with several, targets are named service/node")
	k8sPort := fs.String("kubernetes-port", "metrics", "with --kubernetes-service: the endpoint port, by name or number")
	promURL := fs.String("prometheus-url", "", "read the exporters' series from this Prometheus (or Thanos, Mimir) instead of scraping")
	promJob := fs.String("prometheus-job", "", "with --prometheus-url: the job of the exporters' series")
	promChunk := fs.Duration("prometheus-chunk", 24*time.Hour, "with --prometheus-url: the range one query reads")
	promCluster := fs.String("prometheus-cluster", "", "with --prometheus-url: select series whose cluster label has this value (default: no selection)")
	fromFlag := fs.String("from", "", "with --prometheus-url: read from this time (RFC 3339; default the ledger's watermark, or now); with --to, backfill [--from, --to) and stop, otherwise carry on as time passes")
	toFlag := fs.String("to", "", "with --prometheus-url and --from: backfill up to this time (RFC 3339, excluded), then stop")
	promDelay := fs.Duration("prometheus-delay", time.Minute, "with --prometheus-url, following: read what the source holds up to this long ago (its scrape and ingestion delay; Thanos or Mimir behind remote write: more)")
	interval := fs.Duration("interval", 15*time.Second, "time between two rounds of scrapes (0: back to back, as the replay does)")
	scrapeInterval := fs.Duration("scrape-interval", 0, "the exporters' scrape interval, for the reconstruction (default --interval, or estimated)")
	window := fs.Duration("window", intervals.DefaultWindow, "ledger window; divides an hour")
	lag := fs.Duration("lag", 30*time.Second, "how long after a window's end it is closed")
	untilFlag := fs.String("until", "", "stop once everything up to this time (RFC 3339) is written")
	idle := fs.Int64("idle-threshold", intervals.DefaultIdleThresholdMilli, "activity below this, in thousandths, counts as idle")
	stale := fs.Duration("stale-after", intervals.DefaultStaleAfter, "close an allocation no scrape has shown for this long (at least the exporters' ended-allocation retention)")
	timeout := fs.Duration("scrape-timeout", 10*time.Second, "time limit of one exporter's scrape")
	concurrency := fs.Int("scrape-concurrency", 16, "exporters scraped at once")
	listen := fs.String("listen-address", ":9836", "address of the aggregator's own /metrics (empty: none)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	switch {
	case *dbURL == "":
		return usagef("--database-url (or $DATABASE_URL) is required")
	case *cluster == "":
		return usagef("--cluster is required")
	case count(*promURL, *targets, *targetsFile, *k8sService) == 0:
		return usagef("give exporters to scrape (--targets, --targets-file or --kubernetes-service) or a --prometheus-url")
	case count(*promURL, *targets, *targetsFile, *k8sService) > 1:
		return usagef("--prometheus-url, --targets, --targets-file and --kubernetes-service exclude each other")
	case (*fromFlag != "" || *toFlag != "") && *promURL == "":
		return usagef("--from and --to backfill from a --prometheus-url")
	case *concurrency < 1:
		return usagef("--scrape-concurrency must be at least 1")
	case *interval < 0 || *lag < 0 || *scrapeInterval < 0:
		return usagef("--interval, --lag and --scrape-interval must not be negative")
	}
	until, err := optTime("until", *untilFlag)
	if err != nil {
		return err
	}
	from, err := optTime("from", *fromFlag)
	if err != nil {
		return err
	}
	to, err := optTime("to", *toFlag)
	if err != nil {
		return err
	}
	if !to.IsZero() && from.IsZero() {
		return usagef("--to needs --from (a closed range to backfill)")
	}
	if *promDelay < 0 {
		return usagef("--prometheus-delay must not be negative")
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		return usagef("--to %s is not after --from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	si := *scrapeInterval
	if si == 0 {
		si = *interval
	}
	rec, err := intervals.New(intervals.Config{Cluster: *cluster, Window: *window, IdleThresholdMilli: *idle,
		ScrapeInterval: si, StaleAfter: *stale})
	if err != nil {
		return usageError{err}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if *listen != "" {
		srv := &http.Server{Addr: *listen, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics server stopped", "err", err)
			}
		}()
		defer srv.Close()
	}

	// The database may not be up yet (a pod starting next to it): retry.
	var store *ledger.Store
	err = ledger.Retry(ctx, ledger.Backoff{}, logger, "open the ledger", func(ctx context.Context) error {
		var err error
		store, err = ledger.Open(ctx, *dbURL, ledger.Options{Logger: logger})
		return err
	})
	if err != nil {
		return err
	}
	defer store.Close()
	lock, err := store.WaitLock(ctx, *cluster, 2*time.Second)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer func() { _ = lock.Release(context.Background()) }()

	// Carry on from the ledger: its watermark and the intervals still open
	// at it seed the reconstruction, so a restart loses nothing the
	// exporters' ended-allocation retention still covers.
	// A connection cut meanwhile is retried like the opening.
	var wmTime time.Time
	var known bool
	var open []observe.Interval
	err = ledger.Retry(ctx, ledger.Backoff{}, logger, "read the watermark", func(ctx context.Context) error {
		var err error
		if wmTime, known, err = store.Watermark(ctx, *cluster); err != nil {
			return err
		}
		open, err = store.OpenIntervals(ctx, *cluster)
		return err
	})
	if err != nil {
		return err
	}
	var wm int64
	if known {
		wm = wmTime.Unix()
	}
	if wm > 0 {
		if err := rec.Seed(wm, open); err != nil {
			return err
		}
	}
	logger.Info("resuming", "cluster", *cluster, "watermark", time.Unix(wm, 0).UTC(), "open_intervals", len(open))

	var scraper aggregator.Scraper = noScraper{}
	if *promURL == "" {
		var d source.Discoverer = source.FileSD{Path: *targetsFile}
		switch {
		case *targets != "":
			if d, err = source.ParseTargets(*targets); err != nil {
				return usageError{err}
			}
		case *k8sService != "":
			var m source.Merged
			for svc := range strings.SplitSeq(*k8sService, ",") {
				if svc = strings.TrimSpace(svc); svc == "" {
					continue
				}
				e, err := source.InClusterEndpoints(svc, *k8sPort)
				if err != nil {
					return err
				}
				m.Names, m.Discoverers = append(m.Names, svc), append(m.Discoverers, e)
			}
			d = m
			if len(m.Discoverers) == 1 {
				d = m.Discoverers[0]
			}
		}
		sc, err := source.NewScraper(d, source.ScraperOptions{Timeout: *timeout, Concurrency: *concurrency, Logger: logger})
		if err != nil {
			return err
		}
		scraper = resultScraper{sc: sc, logger: logger}
	}
	loopLag := *lag
	if *promURL != "" && to.IsZero() {
		// Following a Prometheus: close a window only once the scrapes
		// after it are read, so that one failed scrape does not hide an
		// allocation's end from its window.
		loopLag = max(loopLag, 2*si)
	}
	loop, err := aggregator.New(aggregator.Config{
		Window: *window, Lag: loopLag, Interval: *interval, Transient: ledger.IsTransient,
		Until: unixOrZero(until), Logger: logger, Registerer: reg,
	}, rec, store, scraper)
	if err != nil {
		return usageError{err}
	}
	if *promURL != "" {
		prom, err := source.NewPrometheus(source.PrometheusOptions{URL: *promURL, Cluster: *promCluster, Job: *promJob,
			Chunk: *promChunk, Logger: logger})
		if err != nil {
			return usageError{err}
		}
		if !to.IsZero() {
			if err := loop.Backfill(ctx, prom, from, to, *promChunk); err != nil {
				return err
			}
			logger.Info("backfill done", "from", from, "to", to)
			return nil
		}
		start := from
		switch {
		case !start.IsZero():
		case known:
			start = wmTime
		default:
			start = time.Now().Add(-*promDelay)
		}
		logger.Info("following the Prometheus source", "from", start.UTC(), "delay", *promDelay, "lag", loopLag)
		if err := loop.Follow(ctx, prom, start, aggregator.FollowOptions{Chunk: *promChunk, Delay: *promDelay}); err != nil {
			return err
		}
		logger.Info("stopped", "pending_windows", loop.Pending())
		return nil
	}
	if err := loop.Run(ctx); err != nil {
		return err
	}
	logger.Info("stopped", "pending_windows", loop.Pending())
	return nil
}

// resultScraper adapts source.Scraper to the loop, logging failures.
type resultScraper struct {
	sc     *source.Scraper
	logger *slog.Logger
}

func (r resultScraper) ScrapeAll(ctx context.Context) []observe.Scrape {
	results, err := r.sc.ScrapeAll(ctx)
	if err != nil {
		r.logger.Warn("target discovery failed; scraping the last known targets", "err", err)
	}
	for _, res := range results {
		if res.Reason != "" && res.Reason != source.ReasonCanceled {
			r.logger.Debug("scrape", "target", res.Target, "reason", res.Reason, "err", res.Err)
		}
	}
	return source.Scrapes(results)
}

type noScraper struct{}

func (noScraper) ScrapeAll(context.Context) []observe.Scrape { return nil }

// count counts the non-empty strings.
func count(vs ...string) int {
	n := 0
	for _, v := range vs {
		if v != "" {
			n++
		}
	}
	return n
}

func optTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usagef("--%s %q: want RFC 3339, e.g. 2026-11-01T00:00:00Z", name, v)
	}
	return t.UTC(), nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
