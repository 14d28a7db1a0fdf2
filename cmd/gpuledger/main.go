// Command gpuledger is the one binary of the gpuledger suite: node and
// cluster exporters, the aggregator, the accounting API and the simulator
// are its subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand. run gets the arguments after the command name.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"exporter":        {"serve device, MIG, FPGA and allocation metrics of a node", cmdExporter},
		"sim generate":    {"generate an AI_INFN-like cluster scenario", cmdSimGenerate},
		"sim from-trace":  {"turn a window of a public GPU trace into a scenario", cmdSimFromTrace},
		"sim truth":       {"report a scenario's exact allocated GPU-hours", cmdSimTruth},
		"sim openmetrics": {"write a scenario's exporter history as OpenMetrics, for promtool backfill", cmdSimOpenMetrics},
		"aggregator":      {"turn exporter samples into the hourly PostgreSQL ledger", cmdAggregator},
		"replay":          {"run the real pipeline on a scenario on virtual time, faults included", cmdReplay},
		"report":          {"write the ledger's GPU-hours over a range, grouped, as CSV or JSON", cmdReport},
		"api":             {"serve the accounting API: usage, monthly reports, idle GPUs, quotas (OIDC)", cmdAPI},
		"ledger close":    {"make a month of the ledger immutable (later corrections become adjustments)", cmdLedgerClose},
		"demo":            {"run a simulated cluster and show where to look", cmdDemo},
		"dashboards":      {"write the Grafana dashboards as JSON, one file per dashboard", cmdDashboards},
		"version":         {"print the version", cmdVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	name, rest := lookup(cmds, args)
	if name == "" {
		usage(stderr, cmds)
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			return 0
		}
		fmt.Fprintf(stderr, "\nunknown command %q\n", strings.Join(args, " "))
		return 2
	}
	if err := cmds[name].run(ctx, rest, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "gpuledger %s: %v\n", name, err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// lookup finds the longest command name that prefixes args.
func lookup(cmds map[string]command, args []string) (string, []string) {
	for n := min(2, len(args)); n > 0; n-- {
		name := strings.Join(args[:n], " ")
		if _, ok := cmds[name]; ok {
			return name, args[n:]
		}
	}
	return "", args
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "gpuledger: GPU, MIG and FPGA monitoring and accounting for Kubernetes.")
	fmt.Fprintln(w, "\nUsage: gpuledger <command> [flags]   (gpuledger <command> -h for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, cmds[n].summary)
	}
}

// usageError marks a bad invocation (exit status 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gpuledger "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args and rejects stray positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return nil
}
