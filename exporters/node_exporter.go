package exporters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/common/version"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/alloc"
	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/exporters/dcgm"
	"github.com/gpuledger/gpuledger/exporters/fpga"
	"github.com/gpuledger/gpuledger/exporters/kube"
	"github.com/gpuledger/gpuledger/exporters/kubelet"
	"github.com/gpuledger/gpuledger/exporters/node"
	"github.com/gpuledger/gpuledger/exporters/nvml"
	"github.com/gpuledger/gpuledger/exporters/server"
)

// Names of the collectors of a real exporter.
const (
	CollectorNVML        = "nvml"
	CollectorDCGM        = "dcgm"
	CollectorFPGA        = "fpga"
	CollectorAttribution = "attribution"
)

// Exporter modes.
const (
	ModeNode    = "node"    // a DaemonSet's exporter: this node's devices and pods
	ModeCluster = "cluster" // one replica: every pod with accelerator requests, quotas
)

// NodeOptions configure the exporter of a real node (ModeNode) or of the
// cluster (ModeCluster).
type NodeOptions struct {
	// Mode is ModeNode (default) or ModeCluster.
	Mode string
	// Node is the node's name (node mode).
	Node string
	// Collectors names the collectors to run; empty runs those that
	// apply: in node mode nvml, fpga and attribution, and dcgm when
	// DCGMURL is set; in cluster mode attribution.
	Collectors []string
	// DCGMURL is the node-local dcgm-exporter's /metrics URL.
	DCGMURL string
	// FPGASysfsRoot is where sysfs is mounted (default /sys);
	// FPGAXbutil is fpga.Options.XbutilSource.
	FPGASysfsRoot, FPGAXbutil string
	// KubeletSocket is the pod-resources socket (default the kubelet's).
	KubeletSocket string
	// Kubeconfig is a kubeconfig file; empty means in-cluster.
	Kubeconfig string
	// Rules resolve attribution; zero means attribution.Default().
	Rules attribution.Rules
	// Retention is how long ended allocations stay exported (default 1 h).
	Retention time.Duration
	// DefaultReplicas is the time-slicing replicas of a GPU when the
	// kubelet does not advertise them.
	DefaultReplicas int
	// CollectorTimeout bounds each collector's Update (default 2 s: the
	// real collectors only send snapshots, so this is a safety net).
	CollectorTimeout time.Duration
	// Server carries the HTTP settings; its Gatherer is set here.
	Server server.Options
	// Logger receives everything; nil discards.
	Logger *slog.Logger

	// kube, when set, replaces the Kubernetes clients (tests).
	kube *kube.Config
	// nvmlLib, when set, replaces libnvidia-ml (tests: a go-nvml mock).
	nvmlLib gonvml.Interface
	// kubeletInterval, when set, replaces the kubelet's poll interval
	// (tests).
	kubeletInterval time.Duration
}

// Node is a running real exporter: its sources and its server.
type Node struct {
	srv     *server.Server
	start   []func(context.Context) error
	close   []func() error
	running []string
}

// collectorsFor returns the collectors to run.
func (o *NodeOptions) collectorsFor() ([]string, error) {
	known := []string{CollectorNVML, CollectorDCGM, CollectorFPGA, CollectorAttribution}
	if o.Mode == ModeCluster {
		known = []string{CollectorAttribution}
	}
	if len(o.Collectors) == 0 {
		if o.Mode == ModeCluster {
			return []string{CollectorAttribution}, nil
		}
		out := []string{CollectorNVML, CollectorFPGA, CollectorAttribution}
		if o.DCGMURL != "" {
			out = append(out, CollectorDCGM)
		}
		return out, nil
	}
	var out []string
	for _, n := range o.Collectors {
		n = strings.TrimSpace(n)
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("collector %q is not available in %s mode (available: %s)", n, o.Mode, strings.Join(known, ", "))
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("collector %q given twice", n)
		}
		out = append(out, n)
	}
	if slices.Contains(out, CollectorDCGM) && o.DCGMURL == "" {
		return nil, errors.New("the dcgm collector needs --dcgm-exporter-url")
	}
	return out, nil
}

// NewNode builds a real exporter. Sources that find no hardware or no
// API server do not fail it: they report themselves failed in the
// exporter's metrics (gpuledger_exporter_collector_success) and log why.
// Only a configuration error is returned.
func NewNode(opts NodeOptions) (*Node, error) {
	if opts.Mode == "" {
		opts.Mode = ModeNode
	}
	if opts.Mode != ModeNode && opts.Mode != ModeCluster {
		return nil, fmt.Errorf("unknown mode %q (node or cluster)", opts.Mode)
	}
	if opts.Mode == ModeNode && opts.Node == "" {
		return nil, errors.New("node mode needs the node name (--node-name or $NODE_NAME)")
	}
	if opts.CollectorTimeout == 0 {
		opts.CollectorTimeout = 2 * time.Second
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	names, err := opts.collectorsFor()
	if err != nil {
		return nil, err
	}
	n := &Node{running: names}
	inv := node.NewInventory()
	cs := map[string]collector.Collector{}
	for _, name := range names {
		log := logger.With("collector", name)
		var c collector.Collector
		switch name {
		case CollectorNVML:
			c, err = n.nvml(opts, inv, log)
		case CollectorDCGM:
			c, err = n.dcgm(opts, inv, log)
		case CollectorFPGA:
			c, err = n.fpga(opts, inv, log)
		case CollectorAttribution:
			c, err = n.attribution(opts, inv, log)
		}
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("collector %s: %w", name, err)
		}
		cs[name] = c
	}
	reg := StaticRegistry(true)
	if err := reg.Register(collector.NewExporter(cs, opts.CollectorTimeout, logger)); err != nil {
		n.Close()
		return nil, err
	}
	so := opts.Server
	so.Gatherer, so.TimeMachine = reg, nil
	if so.Logger == nil {
		so.Logger = logger
	}
	if so.Version == "" {
		so.Version = version.Info()
	}
	if so.Description == "" {
		if opts.Mode == ModeCluster {
			so.Description = "Cluster: offloaded and pending accelerator requests, Kueue quotas."
		} else {
			so.Description = fmt.Sprintf("Node %s: GPU, MIG, FPGA and allocation metrics.", opts.Node)
		}
	}
	srv, err := server.New(so)
	if err != nil {
		n.Close()
		return nil, err
	}
	n.srv = srv
	return n, nil
}

// Collectors returns the names of the collectors the exporter runs.
func (n *Node) Collectors() []string { return slices.Clone(n.running) }

// Start starts every source's polling.
func (n *Node) Start(ctx context.Context) error {
	for _, f := range n.start {
		if err := f(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close stops every source.
func (n *Node) Close() error {
	var errs []error
	for i := len(n.close) - 1; i >= 0; i-- {
		errs = append(errs, n.close[i]())
	}
	n.close = nil
	return errors.Join(errs...)
}

// Serve starts the sources and serves on l until ctx ends, then stops
// them.
func (n *Node) Serve(ctx context.Context, l net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		return err
	}
	defer n.Close()
	return n.srv.Serve(ctx, l)
}

// Server returns the HTTP server.
func (n *Node) Server() *server.Server { return n.srv }

func (n *Node) nvml(opts NodeOptions, inv *node.Inventory, log *slog.Logger) (collector.Collector, error) {
	no := nvml.Options{Node: opts.Node, Inventory: inv, Logger: log}
	var c *nvml.Collector
	var err error
	if opts.nvmlLib != nil {
		c, err = nvml.New(opts.nvmlLib, no)
	} else {
		c, err = nvml.Open(no)
	}
	if err != nil {
		return nil, err
	}
	n.start = append(n.start, c.Start)
	n.close = append(n.close, c.Close)
	return c, nil
}

func (n *Node) dcgm(opts NodeOptions, inv *node.Inventory, log *slog.Logger) (collector.Collector, error) {
	s, err := dcgm.New(dcgm.Options{URL: opts.DCGMURL, Node: opts.Node, Inventory: inv, Logger: log})
	if err != nil {
		return nil, err
	}
	n.start = append(n.start, s.Start)
	n.close = append(n.close, s.Close)
	return s, nil
}

func (n *Node) fpga(opts NodeOptions, inv *node.Inventory, log *slog.Logger) (collector.Collector, error) {
	s, err := fpga.New(fpga.Options{Node: opts.Node, SysfsRoot: opts.FPGASysfsRoot, XbutilSource: opts.FPGAXbutil,
		Inventory: inv, Logger: log})
	if err != nil {
		return nil, err
	}
	n.start = append(n.start, func(ctx context.Context) error { s.Start(ctx); return nil })
	n.close = append(n.close, s.Close)
	return s, nil
}

// attribution builds the informers and, in node mode, the kubelet client
// and the allocation collector; in cluster mode the cluster collector.
// Without an API server (no kubeconfig, not in a cluster) the node's
// allocations are still read from the kubelet, attributed as unknown
// until pods are known, and gpuledger_attribution_available says so.
func (n *Node) attribution(opts NodeOptions, inv *node.Inventory, log *slog.Logger) (collector.Collector, error) {
	cfg := kube.Config{Node: opts.Node, Kubeconfig: opts.Kubeconfig, Rules: opts.Rules, Retention: opts.Retention, Logger: log}
	if opts.Mode == ModeCluster {
		cfg.Mode = kube.ModeCluster
	}
	if opts.kube != nil {
		cfg.Client, cfg.Dynamic = opts.kube.Client, opts.kube.Dynamic
	}
	inf, infErr := kube.NewInformers(cfg)
	if infErr != nil {
		if opts.Mode == ModeCluster {
			return nil, fmt.Errorf("cluster mode needs the Kubernetes API: %w", infErr)
		}
		log.Error("Kubernetes API unavailable: allocations are exported without pod attribution", "err", infErr)
	} else {
		n.start = append(n.start, func(ctx context.Context) error { inf.Start(ctx); return nil })
	}
	if opts.Mode == ModeCluster {
		cc, err := kube.NewClusterCollector(inf, kube.ClusterOptions{Retention: opts.Retention, Logger: log})
		if err != nil {
			return nil, err
		}
		n.start = append(n.start, func(ctx context.Context) error { go cc.Run(ctx); return nil })
		return cc, nil
	}
	kl, err := kubelet.New(kubelet.Options{Socket: opts.KubeletSocket, Interval: opts.kubeletInterval, Logger: log})
	if err != nil {
		return nil, err
	}
	var pods kube.Pods = noPods{}
	if inf != nil {
		pods = inf
	}
	ac, err := alloc.New(kl, pods, inv, alloc.Options{Node: opts.Node, Retention: opts.Retention,
		DefaultReplicas: opts.DefaultReplicas, Logger: log,
		// Activity comes from NVML and DCGM polls (10 s apart by default):
		// stale after two missed polls, not after two kubelet polls.
		ActivityMaxAge: 2 * max(nvml.DefaultInterval, dcgm.DefaultInterval)})
	if err != nil {
		return nil, err
	}
	n.start = append(n.start, kl.Start, ac.Start)
	n.close = append(n.close, kl.Close, ac.Close)
	return ac, nil
}

// noPods is the pod view without an API server: nothing known, never
// synced.
type noPods struct{}

func (noPods) Pod(string) (kube.Pod, bool) { return kube.Pod{}, false }
func (noPods) List() []kube.Pod            { return nil }
func (noPods) Synced() bool                { return false }
