// Package cli is the exporter's command line: the flags of `gpuledger
// exporter` and of the exporter-only binary gpuledger-exporter, parsed and
// run by the same code. It builds a real exporter (exporters.NewNode) or a
// simulated node (exporters.NewSimNode) and serves it until the context
// ends.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/version"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters"
	"github.com/gpuledger/gpuledger/exporters/server"
	"github.com/gpuledger/gpuledger/exporters/sim"
	"github.com/gpuledger/gpuledger/sim/clock"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// ErrUsage marks a bad invocation: unknown or malformed flags, values out
// of range, a configuration the exporter rejects (exit status 2).
var ErrUsage = errors.New("usage error")

// usage is a usage error: its text is the message, and errors.Is matches
// ErrUsage.
type usage struct{ err error }

func (u usage) Error() string        { return u.err.Error() }
func (u usage) Unwrap() error        { return u.err }
func (u usage) Is(target error) bool { return target == ErrUsage }

func usagef(format string, args ...any) error { return usage{fmt.Errorf(format, args...)} }

// Sources the exporter knows: the real devices and pods, or a simulated
// node of a scenario.
var Sources = []string{"real", "sim"}

// Run parses the exporter's flags from args and serves until ctx ends.
// name is the command's name in usage messages ("gpuledger exporter",
// "gpuledger-exporter"); logs and flag errors go to stderr. -h returns
// flag.ErrHelp.
func Run(ctx context.Context, name string, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	source := fs.String("source", "", "where device and pod data come from: "+strings.Join(Sources, ", ")+
		" (default: sim with --scenario or --collectors sim, else real)")
	mode := fs.String("mode", exporters.ModeNode, "real source: node (a DaemonSet's exporter of this node) or cluster (one replica: offloaded and pending requests, Kueue quotas)")
	dcgmURL := fs.String("dcgm-exporter-url", "", "node-local dcgm-exporter /metrics URL, e.g. http://localhost:9400/metrics (enables the dcgm collector)")
	fpgaRoot := fs.String("fpga-sysfs-root", "/sys", "where sysfs is mounted, for the fpga collector")
	fpgaXbutil := fs.String("fpga-xbutil", "", "xbutil/xrt-smi JSON: a command, a .json file, or off (default: xrt-smi or xbutil when installed)")
	kubeletSocket := fs.String("kubelet-socket", "/var/lib/kubelet/pod-resources/kubelet.sock", "kubelet pod-resources socket")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: in-cluster service account)")
	attrConfig := fs.String("attribution-config", "", "attribution rules file (default: the built-in rules of docs/attribution.md)")
	replicas := fs.Int("default-replicas", 0, "time-slicing replicas per GPU when the kubelet does not advertise them")
	scenarioFile := fs.String("scenario", "", "scenario file to simulate (--source sim)")
	nodeName := fs.String("node-name", os.Getenv("NODE_NAME"), "node whose devices and pods to serve (default $NODE_NAME)")
	listen := fs.String("listen-address", ":9835", "address to serve /metrics, /healthz and /readyz on")
	collectorsFlag := fs.String("collectors", "", "comma-separated collectors to run (default: all that apply)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	simStart := fs.String("sim-start", "", "simulated time at start, RFC 3339 or Unix seconds (default: the scenario's start)")
	simSpeed := fs.Float64("sim-speed", 1, "simulated seconds per wall-clock second (3600: an hour per second)")
	retention := fs.Duration("ended-retention", 0, "how long ended allocations stay exported (default: the scenario's, 1h if it says nothing)")
	webConfig := fs.String("web.config.file", "", "exporter-toolkit web configuration file enabling TLS or basic authentication")
	maxRequests := fs.Int("web.max-requests", 40, "maximum concurrent /metrics requests (0: no limit)")
	collectorTimeout := fs.Duration("collector-timeout", 0, "time limit of each collector in a scrape (0: none for sim, 2s for real sources)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usage{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	var names []string
	for n := range strings.SplitSeq(*collectorsFlag, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if *source == "" {
		// A scenario, or the sim collector, means the simulated node.
		*source = "real"
		if *scenarioFile != "" || slices.Contains(names, "sim") {
			*source = "sim"
		}
	}
	if *retention < 0 {
		return usagef("--ended-retention %s: must not be negative", *retention)
	}
	if *maxRequests < 0 {
		return usagef("--web.max-requests %d: must not be negative", *maxRequests)
	}
	inFlight := *maxRequests
	if inFlight == 0 {
		inFlight = -1
	}
	serverOpts := server.Options{
		MaxRequestsInFlight: inFlight,
		WebConfigFile:       *webConfig,
		Name:                "gpuledger exporter",
		Version:             version.Info(),
	}
	switch *source {
	case "sim":
	case "real":
		if *scenarioFile != "" {
			return usagef("--scenario is for --source sim")
		}
		if slices.Contains(names, "sim") {
			return usagef("--collectors sim serves a simulated node: it needs --source sim and --scenario FILE")
		}
		rules := attribution.Default()
		if *attrConfig != "" {
			r, err := attribution.LoadRules(*attrConfig)
			if err != nil {
				return usagef("--attribution-config: %v", err)
			}
			rules = r
		}
		if *replicas < 0 {
			return usagef("--default-replicas %d: must not be negative", *replicas)
		}
		n, err := exporters.NewNode(exporters.NodeOptions{
			Mode: *mode, Node: *nodeName, Collectors: names, DCGMURL: *dcgmURL,
			FPGASysfsRoot: *fpgaRoot, FPGAXbutil: *fpgaXbutil, KubeletSocket: *kubeletSocket,
			Kubeconfig: *kubeconfig, Rules: rules, Retention: *retention, DefaultReplicas: *replicas,
			CollectorTimeout: *collectorTimeout, Server: serverOpts, Logger: logger,
		})
		if err != nil {
			return usagef("%v", err)
		}
		l, err := server.Listen(*listen)
		if err != nil {
			n.Close()
			return err
		}
		logger.Info("listening", "address", l.Addr().String(), "mode", *mode, "node", *nodeName,
			"collectors", strings.Join(n.Collectors(), ","))
		if err := n.Serve(ctx, l); err != nil {
			return err
		}
		logger.Info("stopped")
		return nil
	default:
		return usagef("unknown --source %q (%s)", *source, strings.Join(Sources, ", "))
	}
	if *scenarioFile == "" {
		return usagef("the simulated node (--source sim, --collectors sim) needs --scenario FILE")
	}
	if *nodeName == "" {
		return usagef("--node-name is required (or set $NODE_NAME)")
	}
	if *simSpeed <= 0 {
		return usagef("--sim-speed %v: must be positive", *simSpeed)
	}

	s, err := scenario.Load(*scenarioFile)
	if err != nil {
		return err
	}
	start := s.Start
	if *simStart != "" {
		if start, err = server.ParseInstant(*simStart); err != nil {
			return usagef("--sim-start: %v", err)
		}
		if start.Before(s.Start) || start.After(s.End) {
			return usagef("--sim-start %s is outside the scenario [%s, %s]", start.Format(time.RFC3339),
				s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339))
		}
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		return fmt.Errorf("scenario %s: %w", *scenarioFile, err)
	}
	clk := clock.NewVirtual(start, *simSpeed)
	src, err := sim.New(s, allocs, *nodeName, clk, sim.Options{Retention: *retention, Logger: logger})
	if err != nil {
		if errors.Is(err, sim.ErrUnknownNode) {
			return usagef("--node-name: %v", err)
		}
		return err
	}
	srv, err := exporters.NewSimNode(src, exporters.Options{
		Collectors:       names,
		CollectorTimeout: *collectorTimeout,
		ProcessMetrics:   true,
		Logger:           logger,
		Server:           serverOpts,
	})
	if err != nil {
		return err
	}
	l, err := server.Listen(*listen)
	if err != nil {
		return err
	}
	logger.Info("listening", "address", l.Addr().String(), "source", *source, "node", *nodeName,
		"scenario", *scenarioFile, "sim_start", start.Format(time.RFC3339), "sim_speed", *simSpeed,
		"ended_retention", src.Retention())
	if err := srv.Serve(ctx, l); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// ExitCode reports err on stderr, prefixed with name, and returns the
// process's exit status: 0 for none or -h, 2 for a usage error, 1 for
// any other.
func ExitCode(name string, err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return 1
}
