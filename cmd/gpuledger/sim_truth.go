package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/internal/tabular"
	"github.com/gpuledger/gpuledger/sim/scenario"
	"github.com/gpuledger/gpuledger/sim/truth"
)

// cmdSimTruth reports a scenario's exact allocated GPU-hours over a window.
func cmdSimTruth(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sim truth", stderr)
	file := fs.String("scenario", "", "scenario `file` (YAML, see docs/scenario.md)")
	fromFlag := fs.String("from", "", "window start, RFC 3339 (default: the scenario's start)")
	toFlag := fs.String("to", "", "window end, RFC 3339, excluded (default: the scenario's end)")
	groupFlag := fs.String("group-by", truth.KeyProject,
		"comma-separated `keys`: "+strings.Join(truth.Keys(), ", ")+"; empty for one total row")
	format := fs.String("format", tabular.FormatCSV, "output `format`: csv or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return usagef("--scenario is required")
	}
	if *format != tabular.FormatCSV && *format != tabular.FormatJSON {
		return usagef("--format %q: want csv or json", *format)
	}
	groupBy, err := truth.ParseGroupBy(*groupFlag)
	if err != nil {
		return usagef("--group-by: %v", err)
	}
	from, err := truthTimeFlag("from", *fromFlag)
	if err != nil {
		return err
	}
	to, err := truthTimeFlag("to", *toFlag)
	if err != nil {
		return err
	}

	s, err := scenario.Load(*file)
	if err != nil {
		return err
	}
	if from.IsZero() {
		from = s.Start
	}
	if to.IsZero() {
		to = s.End
	}
	if !to.After(from) {
		return usagef("window: --to %s is not after --from %s", to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		return fmt.Errorf("scenario %s: %w", *file, err)
	}
	rep, err := truth.Compute(allocs, from, to, groupBy)
	if err != nil {
		return err
	}
	w, err := tabular.New(*format, stdout, rep.Columns(), rep.Meta()...)
	if err != nil {
		return err
	}
	return rep.Write(w)
}

// truthTimeFlag parses an RFC 3339 time given to --name; "" is the zero time.
func truthTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usagef("--%s %q: want an RFC 3339 time such as 2026-11-02T08:00:00Z", name, v)
	}
	if !t.Truncate(time.Second).Equal(t) {
		return time.Time{}, usagef("--%s %q: want a whole second", name, v)
	}
	return t, nil
}
