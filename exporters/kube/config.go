package kube

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gpuledger/gpuledger/attribution"
)

// Mode is what the informers watch.
type Mode string

// Modes.
const (
	// ModeNode watches the pods of one node (a DaemonSet's exporter).
	ModeNode Mode = "node"
	// ModeCluster watches every pod with accelerator requests, on every
	// node (one replica).
	ModeCluster Mode = "cluster"
)

// Defaults of Config.
const (
	DefaultRetention     = time.Hour
	DefaultProbeInterval = 30 * time.Second
)

// Config configures the informers.
type Config struct {
	// Mode is ModeNode (the default) or ModeCluster.
	Mode Mode
	// Node is the node watched in node mode (spec.nodeName).
	Node string
	// Kubeconfig is the path of a kubeconfig file; empty means the
	// in-cluster service account. Ignored when Client is set.
	Kubeconfig string
	// Client and Dynamic replace the clients Kubeconfig would build
	// (tests pass client-go's fake clientset through kubefake.New).
	// Dynamic may be nil: then Kueue is not read.
	Client  API
	Dynamic dynamic.Interface
	// Rules resolve attribution; zero means attribution.Default().
	Rules attribution.Rules
	// Retention is how long a deleted pod stays known; zero means
	// DefaultRetention.
	Retention time.Duration
	// Resync is the informers' resync period; zero means none.
	Resync time.Duration
	// ProbeInterval is how often the API server is probed while it is
	// unreachable, and how often deleted pods past the retention are
	// forgotten; zero means DefaultProbeInterval.
	ProbeInterval time.Duration
	// Logger receives the informers' notes; nil discards them.
	Logger *slog.Logger
	// Now is the clock (deletion times, retention); nil means time.Now.
	Now func() time.Time
}

// normalize fills defaults and checks the configuration.
func (c Config) normalize() (Config, error) {
	if c.Mode == "" {
		c.Mode = ModeNode
	}
	switch c.Mode {
	case ModeNode:
		if c.Node == "" {
			return c, errors.New("kube: node mode needs the node name (spec.nodeName)")
		}
	case ModeCluster:
	default:
		return c, fmt.Errorf("kube: unknown mode %q (node or cluster)", c.Mode)
	}
	if len(c.Rules.User) == 0 && len(c.Rules.Project) == 0 {
		c.Rules = attribution.Default()
	}
	if err := c.Rules.Validate(); err != nil {
		return c, fmt.Errorf("kube: %w", err)
	}
	if c.Retention < 0 || c.Resync < 0 || c.ProbeInterval < 0 {
		return c, errors.New("kube: negative retention, resync or probe interval")
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Clients builds the API and the dynamic client from a kubeconfig file,
// or from the in-cluster service account when path is empty.
func Clients(path string) (API, dynamic.Interface, error) {
	var cfg *rest.Config
	var err error
	if path == "" {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, nil, fmt.Errorf("kube: in-cluster config (outside a cluster, pass --kubeconfig): %w", err)
		}
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, nil, fmt.Errorf("kube: kubeconfig %s: %w", path, err)
		}
	}
	cfg.UserAgent = "gpuledger"
	api, err := newRESTAPI(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kube: client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kube: dynamic client: %w", err)
	}
	return api, dyn, nil
}
