package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/internal/tabular"
)

// defaultDBWait is how long commands retry a database that is down or
// restarting before giving up.
const defaultDBWait = 30 * time.Second

// cmdReport writes the ledger's usage over a range, grouped, as CSV or JSON.
func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("report", stderr)
	dbURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL `URL` of the ledger (default $DATABASE_URL)")
	cluster := fs.String("cluster", "", "report one `cluster` (default: every cluster in the ledger, summed)")
	fromFlag := fs.String("from", "", "range start, RFC 3339, a whole UTC hour (required)")
	toFlag := fs.String("to", "", "range end, RFC 3339, a whole UTC hour, excluded (required)")
	groupFlag := fs.String("group-by", ledger.KeyProject,
		"comma-separated `keys`: "+strings.Join(ledger.Keys(), ", ")+"; empty for one total row")
	format := fs.String("format", tabular.FormatCSV, "output `format`: csv or json")
	weightsFile := fs.String("billing-weights", "", "YAML `file` of billing weights by GPU model (model: weight); "+
		"adds billed_gpu_hours")
	wait := fs.Duration("wait", defaultDBWait, "how long to retry a database that is down or restarting")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	q, err := reportQuery(*cluster, *fromFlag, *toFlag, *groupFlag, *format, *dbURL)
	if err != nil {
		return err
	}
	if *weightsFile != "" {
		if q.Weights, err = loadBillingWeights(*weightsFile); err != nil {
			return err
		}
	}
	if err := q.Validate(); err != nil {
		return usagef("%v", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := openLedger(ctx, *dbURL, *wait, log)
	if err != nil {
		return err
	}
	defer store.Close()

	if q.Cluster != "" {
		if wm, ok, err := store.Watermark(ctx, q.Cluster); err == nil && ok && wm.Before(q.To) {
			fmt.Fprintf(stderr, "warning: the ledger of cluster %q is complete up to %s; later hours of the range are partial\n",
				q.Cluster, wm.Format(time.RFC3339))
		}
	}
	billed := *weightsFile != ""
	meta := []tabular.Field{
		{Name: "window", Value: map[string]string{"from": q.From.UTC().Format(time.RFC3339), "to": q.To.UTC().Format(time.RFC3339)}},
		{Name: "group_by", Value: append([]string{}, q.GroupBy...)},
		{Name: "cluster", Value: q.Cluster},
	}
	w, err := tabular.New(*format, stdout, ledger.ReportColumns(q.GroupBy, billed), meta...)
	if err != nil {
		return err
	}
	// The query is retried while no row has been written: a database
	// restarting before the first row costs a delay, never a repeated row.
	written := 0
	err = retryUntil(ctx, *wait, log, "report", func(ctx context.Context) error {
		err := store.Report(ctx, q, func(r ledger.ReportRow) error {
			written++
			return w.Write(r.Cells(billed))
		})
		if err != nil && written > 0 {
			// Not retried (not wrapped): rows are out already.
			return fmt.Errorf("report incomplete after %d rows: %v", written, err)
		}
		return err
	})
	if err != nil {
		return err
	}
	return w.Close()
}

// reportQuery builds and checks a report's query from its flags.
func reportQuery(cluster, from, to, groupBy, format, dbURL string) (ledger.ReportQuery, error) {
	var q ledger.ReportQuery
	if dbURL == "" {
		return q, usagef("--database-url is required (or set DATABASE_URL)")
	}
	if format != tabular.FormatCSV && format != tabular.FormatJSON {
		return q, usagef("--format %q: want csv or json", format)
	}
	if from == "" || to == "" {
		return q, usagef("--from and --to are required")
	}
	var err error
	if q.From, err = truthTimeFlag("from", from); err != nil {
		return q, err
	}
	if q.To, err = truthTimeFlag("to", to); err != nil {
		return q, err
	}
	if q.GroupBy, err = ledger.ParseGroupBy(groupBy); err != nil {
		return q, usagef("--group-by: %v", err)
	}
	q.Cluster = cluster
	if err := q.Validate(); err != nil {
		return q, usagef("%v", err)
	}
	return q, nil
}

// loadBillingWeights reads a YAML mapping of GPU model to billing weight.
func loadBillingWeights(file string) (map[string]float64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("--billing-weights: %v", err)
	}
	weights := map[string]float64{}
	if err := yaml.Unmarshal(b, &weights); err != nil {
		return nil, usagef("--billing-weights %s: want a mapping of GPU model to weight: %v", file, err)
	}
	return weights, nil
}

// openLedger opens an existing ledger (it creates no schema: the
// aggregator does), retrying for up to wait while the database is down or
// restarting.
func openLedger(ctx context.Context, url string, wait time.Duration, log *slog.Logger) (*ledger.Store, error) {
	var store *ledger.Store
	err := retryUntil(ctx, wait, log, "connect to the ledger", func(ctx context.Context) error {
		s, err := ledger.Open(ctx, url, ledger.Options{Logger: log, NoMigrate: true})
		store = s
		return err
	})
	return store, err
}

// retryUntil retries fn's transient failures for up to wait.
func retryUntil(ctx context.Context, wait time.Duration, log *slog.Logger, what string, fn func(context.Context) error) error {
	b := ledger.DefaultBackoff
	b.MaxElapsed = wait
	return ledger.Retry(ctx, b, log, what, fn)
}
