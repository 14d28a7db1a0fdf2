package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/gpuledger/gpuledger/aggregator/source"
	"github.com/gpuledger/gpuledger/aggregator/source/backfill"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// cmdSimOpenMetrics writes the history of a scenario's simulated exporters
// as OpenMetrics text for promtool tsdb create-blocks-from openmetrics.
func cmdSimOpenMetrics(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var opts backfill.Options
	fs := newFlags("sim openmetrics", stderr)
	file := fs.String("scenario", "", "scenario `file` (YAML, see docs/scenario.md)")
	fs.Var(optionalTime{&opts.From}, "from", "first instant written, an RFC 3339 `time` (default: the scenario's start)")
	fs.Var(optionalTime{&opts.To}, "to", "end of the range written, excluded, an RFC 3339 `time` (default: the scenario's end, included)")
	fs.Func("node", "write only this `node` (repeat, or separate with commas; default: every node)", func(v string) error {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				opts.Nodes = append(opts.Nodes, n)
			}
		}
		return nil
	})
	fs.Func("families", "write only these metric `families` (comma-separated exposition names, up included; "+
		"\"aggregator\" for the ones the aggregator reads; default: all)", func(v string) error {
		for _, f := range strings.Split(v, ",") {
			switch f = strings.TrimSpace(f); f {
			case "":
			case "aggregator":
				opts.Families = append(opts.Families, source.Families()...)
				opts.Families = append(opts.Families, source.FamilyUp)
			default:
				if !model.LegacyValidation.IsValidMetricName(f) {
					return fmt.Errorf("%q is not a metric name", f)
				}
				opts.Families = append(opts.Families, f)
			}
		}
		return nil
	})
	fs.Var(optionalDuration{&opts.Interval}, "interval", "scrape `interval` (default: the scenario's scrape_interval)")
	fs.Var(optionalDuration{&opts.Retention}, "ended-retention", "how long ended allocations stay exported, a `duration` (default: the scenario's)")
	fs.StringVar(&opts.Job, "job", backfill.DefaultJob, "job label of every series")
	fs.StringVar(&opts.ClusterLabel, "cluster-label", "cluster", "`label` carrying the scenario's cluster name; - for none")
	fs.StringVar(&opts.TempDir, "tmp-dir", "", "`directory` for the per-family temporary files, about the size of the output (default: the output's directory)")
	out := fs.String("out", "", "OpenMetrics `file` to write; - for standard output")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: gpuledger sim openmetrics --scenario FILE --out FILE [flags]

Write the history of the scenario's simulated exporters, one scrape per node
at every scrape interval, as OpenMetrics text with timestamps:

  gpuledger sim openmetrics --scenario s.yaml --out s.om
  promtool tsdb create-blocks-from openmetrics s.om DATA_DIR

Flags:`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return usagef("--scenario is required")
	}
	if *out == "" {
		return usagef("--out is required (a file, or - for standard output)")
	}
	if opts.Interval < 0 || opts.Retention < 0 {
		return usagef("--interval and --ended-retention must not be negative")
	}
	if !opts.From.IsZero() && !opts.To.IsZero() && !opts.To.After(opts.From) {
		return usagef("--to %s is not after --from %s", opts.To.UTC().Format(time.RFC3339), opts.From.UTC().Format(time.RFC3339))
	}
	s, err := scenario.Load(*file)
	if err != nil {
		return err
	}
	if (!opts.From.IsZero() && (opts.From.Before(s.Start) || opts.From.After(s.End))) ||
		(!opts.To.IsZero() && (!opts.To.After(s.Start) || opts.To.After(s.End))) {
		return usagef("--from and --to must lie within the scenario's [%s, %s]",
			s.Start.UTC().Format(time.RFC3339), s.End.UTC().Format(time.RFC3339))
	}
	for _, n := range opts.Nodes {
		if _, ok := s.Node(n); !ok {
			return usagef("--node %q: no such node in scenario %s", n, *file)
		}
	}
	begin := time.Now()
	var st backfill.Stats
	if *out == "-" {
		w := bufio.NewWriter(stdout)
		if st, err = backfill.Write(ctx, w, s, opts); err == nil {
			err = w.Flush()
		}
		if err != nil {
			return err
		}
		openMetricsReport(stderr, "standard output", st, begin)
		return nil
	}
	if opts.TempDir == "" {
		opts.TempDir = filepath.Dir(*out)
	}
	f, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	st, err = backfill.Write(ctx, f, s, opts)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), *out)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", *out, err)
	}
	openMetricsReport(stderr, *out, st, begin)
	return nil
}

// openMetricsReport says what sim openmetrics wrote.
func openMetricsReport(w io.Writer, out string, st backfill.Stats, begin time.Time) {
	if len(st.Missing) > 0 {
		fmt.Fprintf(w, "warning: no sample of %s in the range written\n", strings.Join(st.Missing, ", "))
	}
	fmt.Fprintf(w, "wrote %s: %d families, %d samples, %d instants, %d scrapes and %d failed inside faults, %.1f MB in %s\n",
		out, st.Families, st.Samples, st.Instants, st.Scrapes, st.Failed, float64(st.Bytes)/1e6,
		time.Since(begin).Round(10*time.Millisecond))
}

// optionalTime is an RFC 3339 flag whose zero value means "not given" (the
// help shows no default for it).
type optionalTime struct{ t *time.Time }

func (f optionalTime) String() string {
	if f.t == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f optionalTime) Set(s string) error { return timeFlag(f).Set(s) }

// optionalDuration is a Prometheus-style duration flag whose zero value
// means "not given".
type optionalDuration struct{ d *time.Duration }

func (f optionalDuration) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return durationFlag(f).String()
}

func (f optionalDuration) Set(s string) error { return durationFlag(f).Set(s) }
