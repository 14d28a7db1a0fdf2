package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/gpuledger/gpuledger/internal/demo"
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	out := fs.String("out", "demo-out", "directory for the scenario, the ground truth, the Prometheus configuration, the dashboards, the alert rules and the API tokens")
	traceDir := fs.String("trace-dir", envOr("TRACE_DIR", defaultTraceDir), "directory of the public traces (default $TRACE_DIR, else "+defaultTraceDir+")")
	generated := fs.Bool("generated", false, "use a generated cluster even when the public traces are at hand")
	window := fs.Duration("window", demo.DefaultWindow, "length of the simulated range")
	offset := fs.Duration("trace-offset", demo.DefaultTraceOffset, "where the window starts in the trace")
	nodes := fs.Int("nodes", demo.DefaultNodes, "nodes of a generated cluster")
	seed := fs.Uint64("seed", 1, "seed of tenants, UUIDs and a generated cluster")
	speed := fs.Float64("speed", demo.DefaultSpeed, "simulated seconds per wall-clock second")
	serveFor := fs.Duration("serve-for", 0, "stop after this long (default: serve until Ctrl-C)")
	dbURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "ledger database (default $DATABASE_URL; empty: a private throwaway PostgreSQL)")
	noLedger := fs.Bool("no-ledger", false, "skip the replay into the ledger")
	scrape := fs.Duration("scrape-interval", time.Minute, "scrape interval of the demo's scenario")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *window <= 0 || *speed <= 0 || *nodes <= 0 || *serveFor < 0 || *offset < 0 {
		return usagef("--window, --speed and --nodes must be positive, --serve-for and --trace-offset not negative")
	}
	return demo.Run(ctx, demo.Options{
		Out: *out, TraceDir: *traceDir, Generated: *generated, Window: *window, TraceOffset: *offset,
		Nodes: *nodes, Seed: *seed, Speed: *speed, ServeFor: *serveFor,
		DatabaseURL: *dbURL, NoLedger: *noLedger, ScrapeInterval: *scrape,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, stdout)
}

// envOr returns the environment variable's value, or def when it is unset.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}
