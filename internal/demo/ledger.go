package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/internal/pgtemp"
	"github.com/gpuledger/gpuledger/internal/tabular"
	"github.com/gpuledger/gpuledger/sim/replay"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// ledgerReplay replays the scenario through the real aggregator into the
// ledger, prints the ledger's report beside the ground truth and writes it,
// and returns the database URL and a function that stops a throwaway
// server.
func ledgerReplay(ctx context.Context, p *printer, opts Options, s *scenario.Scenario, scenFile string) (string, func(), error) {
	stop := func() {}
	url := opts.DatabaseURL
	p.say("")
	if url == "" {
		pg, err := pgtemp.Start(ctx)
		if err != nil {
			return "", nil, fmt.Errorf("demo: no DATABASE_URL, and a throwaway PostgreSQL could not start: %w", err)
		}
		stop = pg.Stop
		url = pg.URL
		p.say("Ledger: no DATABASE_URL, so a private throwaway PostgreSQL %s runs at %s", pg.Version, url)
		p.say("  (started from the system's server binaries; it is removed when the demo stops)")
	} else {
		p.say("Ledger: PostgreSQL at DATABASE_URL")
	}
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			stop()
			return "", nil, err
		}
	}
	work := filepath.Join(opts.Out, "replay")
	if err := os.MkdirAll(work, 0o755); err != nil {
		stop()
		return "", nil, err
	}
	p.say("  replaying the scenario through the real pipeline: simulated exporters on loopback, the aggregator")
	p.say("  scraping them on virtual time, faults played for real (%d in the scenario) …", len(s.Faults))
	sum, err := replay.Run(ctx, replay.Options{Scenario: s, DatabaseURL: url, Binary: bin, WorkDir: work, Logger: opts.Logger})
	if err != nil {
		stop()
		return "", nil, err
	}
	p.say("  %s simulated in %s (%.0fx): %d scrapes of %d exporters; %d aggregator crashes, %d database outages, %d scrape gaps, %d exporter restarts",
		sum.Simulated, sum.Wall.Round(time.Millisecond), sum.Speedup(), sum.Scrapes, sum.Nodes,
		sum.Crashes, sum.Outages, sum.ScrapeGaps, sum.Restarts)

	store, err := ledger.Open(ctx, url, ledger.Options{NoMigrate: true})
	if err != nil {
		stop()
		return "", nil, err
	}
	defer store.Close()
	cmp, err := replay.Compare(ctx, store, s, s.Start, s.End, []string{"project"})
	if err != nil {
		stop()
		return "", nil, err
	}
	p.say("")
	p.say("Ledger report, %s to %s, by project (allocated GPU-hours):", s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339))
	p.say("  %-22s %14s %14s", "project", "ledger", "ground truth")
	for _, r := range cmp.Rows {
		p.say("  %-22s %14.6f %14.6f", r.Keys[0], float64(r.Ledger)/3.6e6, float64(r.Truth)/3.6e6)
	}
	p.say("  %-22s %14.6f %14.6f", "total", float64(cmp.Ledger)/3.6e6, float64(cmp.Truth)/3.6e6)
	if cmp.Exact() {
		p.say("  The ledger equals the ground truth to the milli-GPU-second.")
	} else {
		p.say("  The ledger differs from the ground truth by %d milli-GPU-seconds: the faults' documented bound (docs/ledger.md).",
			cmp.Ledger-cmp.Truth)
	}
	if err := monthReports(ctx, p, store, s); err != nil {
		stop()
		return "", nil, err
	}
	out := filepath.Join(opts.Out, "ledger-by-project-user-resource.csv")
	if err := writeFile(out, func(w io.Writer) error { return ledgerCSV(ctx, store, s, w) }); err != nil {
		stop()
		return "", nil, err
	}
	p.say("  written to %s (the aggregator's log: %s)", out, filepath.Join(work, "aggregator.log"))
	return url, stop, nil
}

// monthReports prints the report of each calendar month the scenario
// touches, by project, as a project lead reads it (gpuledger report
// --group-by project over the month), saying whether the month is closed.
func monthReports(ctx context.Context, p *printer, store *ledger.Store, s *scenario.Scenario) error {
	first := time.Date(s.Start.Year(), s.Start.Month(), 1, 0, 0, 0, 0, time.UTC)
	for m := first; m.Before(s.End); m = m.AddDate(0, 1, 0) {
		closed, err := store.MonthClosed(ctx, s.Cluster, m)
		if err != nil {
			return err
		}
		state := "provisional: the month is open"
		if closed {
			state = "closed"
		}
		p.say("")
		p.say("The month's report, %s (%s), by project:", m.Format("2006-01"), state)
		p.say("  %-22s %14s %12s %12s %12s", "project", "allocated GPU-h", "used GPU-h", "idle GPU-h", "energy kWh")
		var total ledger.ReportRow
		err = store.Report(ctx, ledger.ReportQuery{Cluster: s.Cluster, From: m, To: m.AddDate(0, 1, 0), GroupBy: []string{ledger.KeyProject}},
			func(r ledger.ReportRow) error {
				p.say("  %-22s %14.3f %12.3f %12.3f %12.3f", r.Keys[0], float64(r.AllocatedMilliGPUSeconds)/3.6e6,
					float64(r.UsedMilliGPUSeconds)/3.6e6, float64(r.IdleMilliGPUSeconds)/3.6e6, float64(r.EnergyMillijoules)/3.6e9)
				total.AllocatedMilliGPUSeconds += r.AllocatedMilliGPUSeconds
				total.UsedMilliGPUSeconds += r.UsedMilliGPUSeconds
				total.IdleMilliGPUSeconds += r.IdleMilliGPUSeconds
				total.EnergyMillijoules += r.EnergyMillijoules
				return nil
			})
		if err != nil {
			return err
		}
		p.say("  %-22s %14.3f %12.3f %12.3f %12.3f", "total", float64(total.AllocatedMilliGPUSeconds)/3.6e6,
			float64(total.UsedMilliGPUSeconds)/3.6e6, float64(total.IdleMilliGPUSeconds)/3.6e6, float64(total.EnergyMillijoules)/3.6e9)
		p.say("  (gpuledger report --cluster %s --from %s --to %s --group-by project; the API's /api/v1/reports/monthly/%s)",
			s.Cluster, m.Format(time.RFC3339), m.AddDate(0, 1, 0).Format(time.RFC3339), m.Format("2006-01"))
	}
	return nil
}

// ledgerCSV writes the ledger's report by project, user and resource, as
// gpuledger report does.
func ledgerCSV(ctx context.Context, store *ledger.Store, s *scenario.Scenario, w io.Writer) error {
	groupBy := []string{"project", "user", "resource"}
	tw, err := tabular.New(tabular.FormatCSV, w, ledger.ReportColumns(groupBy, false))
	if err != nil {
		return err
	}
	err = store.Report(ctx, ledger.ReportQuery{Cluster: s.Cluster, From: s.Start, To: s.End, GroupBy: groupBy},
		func(r ledger.ReportRow) error { return tw.Write(r.Cells(false)) })
	if err != nil {
		return err
	}
	return tw.Close()
}
