package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/common/model"

	"github.com/gpuledger/gpuledger/sim/generate"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// durationFlag is a flag holding a Prometheus-style duration ("15s", "7d").
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return model.Duration(*f.d).String()
}

func (f durationFlag) Set(s string) error {
	d, err := model.ParseDuration(s)
	if err != nil {
		return err
	}
	*f.d = time.Duration(d)
	return nil
}

// timeFlag is a flag holding an RFC 3339 instant.
type timeFlag struct{ t *time.Time }

func (f timeFlag) String() string {
	if f.t == nil {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f timeFlag) Set(s string) error {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("want an RFC 3339 time such as 2026-11-02T00:00:00Z")
	}
	*f.t = t
	return nil
}

func cmdSimGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := generate.DefaultConfig()
	fs := newFlags("sim generate", stderr)
	fs.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "physical nodes (the InterLink virtual nodes, one per remote site, come on top)")
	fs.Var(durationFlag{&cfg.Duration}, "duration", "length of the scenario, a `duration` such as 24h or 30d")
	fs.Var(timeFlag{&cfg.Start}, "start", "start of the scenario, an RFC 3339 `time`")
	fs.Var(durationFlag{&cfg.ScrapeInterval}, "scrape-interval", "scrape `interval` of the scenario")
	fs.StringVar(&cfg.Cluster, "cluster", cfg.Cluster, "cluster name")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed; the same seed and flags give the same scenario, byte for byte")
	fs.Float64Var(&cfg.Load, "load", cfg.Load, fmt.Sprintf("target mean share of local GPU capacity allocated, in (0, %v]", generate.MaxLoad))
	fs.BoolVar(&cfg.Faults, "faults", false, "add one fault of each kind inside the scenario")
	out := fs.String("out", "-", "scenario file to write; - for standard output")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: gpuledger sim generate [flags]\n\nGenerate an AI_INFN-like cluster scenario (docs/generated-clusters.md).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("missing --out (a file, or - for standard output)")
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := generate.Generate(cfg)
	if err != nil {
		return err
	}
	if *out == "-" {
		w := bufio.NewWriter(stdout)
		if err := scenario.Write(w, s); err != nil {
			return err
		}
		return w.Flush()
	}
	if err := writeFileAtomic(*out, s); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s: %d nodes (%d physical), %d pods, %s from %s\n", *out, len(s.Nodes),
		cfg.Nodes, len(s.Pods), model.Duration(cfg.Duration), s.Start.Format(time.RFC3339))
	return nil
}

// writeFileAtomic writes the scenario to a temporary file beside path and
// renames it into place, so that a failed run leaves no partial file.
func writeFileAtomic(path string, s *scenario.Scenario) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write scenario: %w", err)
	}
	w := bufio.NewWriter(f)
	err = scenario.Write(w, s)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write scenario %s: %w", path, err)
	}
	return nil
}
