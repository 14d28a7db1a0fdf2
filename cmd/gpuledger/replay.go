package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/internal/pgtemp"
	"github.com/gpuledger/gpuledger/sim/replay"
	"github.com/gpuledger/gpuledger/sim/scenario"
	"github.com/gpuledger/gpuledger/sim/truth"
)

func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", stderr)
	file := fs.String("scenario", "", "scenario file to replay (required)")
	dbURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL of the ledger (default $DATABASE_URL; empty: a private throwaway server)")
	window := fs.Duration("window", 5*time.Minute, "ledger window of the aggregator")
	workDir := fs.String("work-dir", "", "directory for the targets file and the aggregator's log (default: a temporary one)")
	groupBy := fs.String("group-by", "project", "keys of the comparison with the ground truth")
	exact := fs.Bool("require-exact", false, "fail unless the ledger equals the ground truth to the milli-GPU-second")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return usagef("--scenario is required")
	}
	keys, err := truth.ParseGroupBy(*groupBy)
	if err != nil {
		return usagef("--group-by: %v", err)
	}
	s, err := scenario.Load(*file)
	if err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	if *workDir == "" {
		if *workDir, err = os.MkdirTemp("", "gpuledger-replay-"); err != nil {
			return err
		}
		defer os.RemoveAll(*workDir)
	} else if err := os.MkdirAll(*workDir, 0o755); err != nil {
		return err
	}
	if *dbURL == "" {
		pg, err := pgtemp.Start(ctx)
		if err != nil {
			return fmt.Errorf("no --database-url, and a throwaway PostgreSQL could not start: %w", err)
		}
		defer pg.Stop()
		*dbURL = pg.URL
		fmt.Fprintf(stdout, "replay: no --database-url: using a private throwaway PostgreSQL %s at %s (removed at exit)\n", pg.Version, pg.URL)
	}
	tty := false
	if f, ok := stdout.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	fmt.Fprintf(stdout, "replay: %s, %s to %s, %d pods, %d faults\n", s.Cluster,
		s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339), len(s.Pods), len(s.Faults))
	sum, err := replay.Run(ctx, replay.Options{
		Scenario: s, DatabaseURL: *dbURL, Binary: bin, Window: *window,
		WorkDir: *workDir, Progress: stdout, Terminal: tty,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replay: %d nodes, %d steps, %d scrapes, %s simulated in %s (%.0fx); faults played: %d aggregator crashes, %d database outages, %d scrape gaps, %d exporter restarts\n",
		sum.Nodes, sum.Steps, sum.Scrapes, sum.Simulated, sum.Wall.Round(time.Millisecond), sum.Speedup(),
		sum.Crashes, sum.Outages, sum.ScrapeGaps, sum.Restarts)
	if *workDir != "" {
		fmt.Fprintf(stdout, "replay: aggregator log %s\n", filepath.Join(*workDir, "aggregator.log"))
	}
	store, err := ledger.Open(ctx, *dbURL, ledger.Options{NoMigrate: true})
	if err != nil {
		return err
	}
	defer store.Close()
	cmp, err := replay.Compare(ctx, store, s, s.Start, s.End, keys)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%-40s %16s %16s %12s\n", "group", "truth GPU-h", "ledger GPU-h", "diff GPU-s")
	for _, r := range cmp.Rows {
		name := fmt.Sprint(r.Keys)
		fmt.Fprintf(stdout, "%-40s %16.6f %16.6f %12.3f\n", name, float64(r.Truth)/3.6e6, float64(r.Ledger)/3.6e6,
			float64(r.Ledger-r.Truth)/1000)
	}
	fmt.Fprintf(stdout, "%-40s %16.6f %16.6f %12.3f\n", "total", float64(cmp.Truth)/3.6e6, float64(cmp.Ledger)/3.6e6,
		float64(cmp.Ledger-cmp.Truth)/1000)
	if cmp.Exact() {
		fmt.Fprintln(stdout, "replay: the ledger equals the ground truth exactly (to the milli-GPU-second)")
		return nil
	}
	fmt.Fprintf(stdout, "replay: the ledger differs from the ground truth by %d milli-GPU-seconds (FPGA: %d s)\n",
		cmp.Ledger-cmp.Truth, cmp.LedgerF-cmp.TruthFPGA)
	if *exact {
		return fmt.Errorf("the ledger is not exact")
	}
	return nil
}
