package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/common/model"

	"github.com/gpuledger/gpuledger/sim/scenario"
	"github.com/gpuledger/gpuledger/sim/trace"
)

// defaultTraceDir is where the public traces sit beside a checkout.
const defaultTraceDir = "../shared/data"

// fromTraceDuration is a flag that takes Prometheus durations ("15s", "7d").
type fromTraceDuration time.Duration

func (d *fromTraceDuration) String() string { return model.Duration(*d).String() }

func (d *fromTraceDuration) Set(s string) error {
	md, err := model.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = fromTraceDuration(md)
	return nil
}

func cmdSimFromTrace(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := newFlags("sim from-trace", stderr)
	format := fl.String("format", "", "trace format: "+trace.FormatAlibabaV2023+" or "+trace.FormatPhillyChronus+" (required)")
	traceDir := fl.String("trace-dir", "", "directory of the public traces (default $TRACE_DIR, else "+defaultTraceDir+")")
	pods := fl.String("pods", "", "alibaba-v2023 pod list (default <trace-dir>/"+trace.AlibabaPodsFile+")")
	nodes := fl.String("nodes", "", "alibaba-v2023 node list (default <trace-dir>/"+trace.AlibabaNodesFile+")")
	orgs := fl.String("orgs", "", "alibaba-v2023 organisation shares (default <trace-dir>/"+trace.OrgsFile+"); '' for built-in uniform projects")
	jobs := fl.String("jobs", "", "philly-chronus job list (default <trace-dir>/"+trace.PhillyJobsFile+")")
	epoch := fl.String("epoch", "", "RFC 3339 time of trace second 0 (required)")
	var from, duration fromTraceDuration
	scrape := fromTraceDuration(trace.DefaultScrapeInterval)
	fl.Var(&from, "from-offset", "start of the window, as an offset from the epoch (e.g. 148d)")
	fl.Var(&duration, "duration", "length of the window (e.g. 1d; required)")
	fl.Var(&scrape, "scrape-interval", "scrape interval of the scenario")
	seed := fl.Uint64("seed", 1, "seed of tenants, device UUIDs, pod UIDs and placement")
	cluster := fl.String("cluster", "", "cluster name (default the format's name)")
	migShare := fl.Float64("mig-share", 0, "alibaba-v2023: share of 8-GPU nodes retyped as MIG-partitioned "+trace.MIGModel+" (changes GPU-hours; default 0)")
	out := fl.String("out", "-", "scenario file to write, - for stdout")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { set[f.Name] = true })

	opt := trace.Options{
		Cluster: *cluster, From: time.Duration(from), Duration: time.Duration(duration),
		Seed: *seed, ScrapeInterval: time.Duration(scrape), MIGShare: *migShare,
	}
	switch {
	case *epoch == "":
		return usagef("missing --epoch (RFC 3339 time of trace second 0, e.g. 2026-01-05T00:00:00Z)")
	case !set["duration"]:
		return usagef("missing --duration (the window's length, e.g. 1d)")
	}
	var err error
	if opt.Epoch, err = time.Parse(time.RFC3339, *epoch); err != nil {
		return usagef("bad --epoch: %v", err)
	}
	dir := fromTraceDir(*traceDir)
	path := func(flagValue, rel string) string {
		if flagValue != "" {
			return flagValue
		}
		return filepath.Join(dir, rel)
	}

	var s *scenario.Scenario
	switch *format {
	case trace.FormatAlibabaV2023:
		if set["jobs"] {
			return usagef("--jobs is for %s", trace.FormatPhillyChronus)
		}
		uniform := set["orgs"] && *orgs == ""
		s, err = fromTraceAlibaba(path(*pods, trace.AlibabaPodsFile), path(*nodes, trace.AlibabaNodesFile),
			path(*orgs, trace.OrgsFile), uniform, opt)
	case trace.FormatPhillyChronus:
		for _, f := range []string{"pods", "nodes", "orgs", "mig-share"} {
			if set[f] {
				return usagef("--%s is for %s", f, trace.FormatAlibabaV2023)
			}
		}
		var js []trace.PhillyJob
		if js, err = trace.LoadPhillyJobs(path(*jobs, trace.PhillyJobsFile)); err == nil {
			s, err = trace.Philly(js, opt)
		}
	case "":
		return usagef("missing --format (%s or %s)", trace.FormatAlibabaV2023, trace.FormatPhillyChronus)
	default:
		return usagef("unknown --format %q (%s or %s)", *format, trace.FormatAlibabaV2023, trace.FormatPhillyChronus)
	}
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := fromTraceWrite(*out, stdout, s); err != nil {
		return err
	}
	gpus := 0
	for _, n := range s.Nodes {
		gpus += len(n.GPUs)
	}
	slog.New(slog.NewTextHandler(stderr, nil)).Info("imported trace window", "format", *format, "start", s.Start.Format(time.RFC3339),
		"end", s.End.Format(time.RFC3339), "pods", len(s.Pods), "nodes", len(s.Nodes), "gpus", gpus, "out", *out)
	return nil
}

// fromTraceDir is --trace-dir, else $TRACE_DIR, else ../shared/data.
func fromTraceDir(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if env := os.Getenv("TRACE_DIR"); env != "" {
		return env
	}
	return defaultTraceDir
}

// fromTraceAlibaba reads the Alibaba files and imports the window; uniform
// replaces the organisation shares with trace.UniformOrgs.
func fromTraceAlibaba(podsPath, nodesPath, orgsPath string, uniform bool, opt trace.Options) (*scenario.Scenario, error) {
	pods, err := trace.LoadAlibabaPods(podsPath)
	if err != nil {
		return nil, err
	}
	nodes, err := trace.LoadAlibabaNodes(nodesPath)
	if err != nil {
		return nil, err
	}
	var orgs []trace.Org
	if uniform {
		orgs = trace.UniformOrgs()
	} else if orgs, err = trace.LoadOrgs(orgsPath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w (tenants are drawn from it; pass --orgs '' for %d built-in uniform projects)",
				err, trace.UniformOrgsCount)
		}
		return nil, err
	}
	return trace.Alibaba(pods, nodes, orgs, opt)
}

// fromTraceWrite writes the scenario to stdout or, through a temporary file
// renamed into place, to path.
func fromTraceWrite(path string, stdout io.Writer, s *scenario.Scenario) error {
	if path == "-" {
		bw := bufio.NewWriter(stdout)
		if err := scenario.Write(bw, s); err != nil {
			return err
		}
		return bw.Flush()
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write scenario: %w", err)
	}
	defer os.Remove(f.Name()) // no-op once renamed
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write scenario: %w", err)
	}
	bw := bufio.NewWriter(f)
	if err := scenario.Write(bw, s); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write scenario: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write scenario: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write scenario: %w", err)
	}
	return nil
}
