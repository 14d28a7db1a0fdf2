// Package scenario defines gpuledger's simulated-cluster format: the
// hardware of a cluster, the pods that hold its devices over time, and the
// faults to inject. A scenario is the single input of the simulator's
// exporters, of its ground truth and of the replay; docs/scenario.md is its
// reference.
package scenario

import (
	"time"

	"github.com/prometheus/common/model"
)

// Scenario is a simulated cluster over a time range.
type Scenario struct {
	Cluster        string         `yaml:"cluster"`
	Start          time.Time      `yaml:"start"`
	End            time.Time      `yaml:"end"`
	ScrapeInterval Duration       `yaml:"scrape_interval"`
	EndedRetention Duration       `yaml:"ended_retention,omitempty"`
	Source         string         `yaml:"source,omitempty"` // free text: how the scenario was made
	Namespaces     []Namespace    `yaml:"namespaces,omitempty"`
	Queues         []Queue        `yaml:"queues,omitempty"`
	ClusterQueues  []ClusterQueue `yaml:"cluster_queues,omitempty"`
	Nodes          []Node         `yaml:"nodes"`
	Pods           []Pod          `yaml:"pods"`
	Faults         []Fault        `yaml:"faults,omitempty"`
}

// Namespace carries the labels attribution rules may read.
type Namespace struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels,omitempty"`
}

// Queue is a Kueue LocalQueue and the ClusterQueue it feeds.
type Queue struct {
	Namespace    string `yaml:"namespace"`
	Name         string `yaml:"name"`
	ClusterQueue string `yaml:"cluster_queue"`
}

// ClusterQueue is a Kueue ClusterQueue with its nominal quotas by resource.
type ClusterQueue struct {
	Name  string           `yaml:"name"`
	Quota map[string]int64 `yaml:"quota,omitempty"`
}

// Node is a Kubernetes node: a real one with devices, or an InterLink
// virtual node that stands for a remote site.
type Node struct {
	Name     string            `yaml:"name"`
	Labels   map[string]string `yaml:"labels,omitempty"`
	Virtual  bool              `yaml:"virtual,omitempty"`
	Site     string            `yaml:"site,omitempty"`
	GPUModel string            `yaml:"gpu_model,omitempty"` // virtual nodes: the remote GPUs' model, when known
	GPUs     []GPU             `yaml:"gpus,omitempty"`
	FPGAs    []FPGA            `yaml:"fpgas,omitempty"`
}

// GPU is a physical GPU. With MIG instances it is MIG-enabled and only its
// instances can be held; with Replicas > 1 it is time-sliced and held
// through nvidia.com/gpu.shared replicas.
type GPU struct {
	Index    int           `yaml:"index"`
	UUID     string        `yaml:"uuid"`
	Model    string        `yaml:"model"`
	Replicas int           `yaml:"replicas,omitempty"`
	MIG      []MIGInstance `yaml:"mig,omitempty"`
}

// MIGInstance is a MIG device: a GPU instance with one compute instance.
type MIGInstance struct {
	Profile string `yaml:"profile"`
	GI      int    `yaml:"gi"`
	CI      int    `yaml:"ci"`
	UUID    string `yaml:"uuid"`
}

// FPGA is an accelerator card addressed by its PCI user function.
type FPGA struct {
	PCI   string `yaml:"pci"`
	Model string `yaml:"model"`
	Shell string `yaml:"shell"`
}

// Pod holds devices over [Start, End). End is nil when the pod is still
// running at the end of the scenario.
type Pod struct {
	Name           string            `yaml:"name"`
	Namespace      string            `yaml:"namespace"`
	UID            string            `yaml:"uid"`
	Labels         map[string]string `yaml:"labels,omitempty"`
	Annotations    map[string]string `yaml:"annotations,omitempty"`
	ServiceAccount string            `yaml:"service_account,omitempty"`
	Node           string            `yaml:"node"`
	Devices        []DeviceRef       `yaml:"devices,omitempty"`
	Requests       map[string]int64  `yaml:"requests,omitempty"` // virtual nodes only
	Start          time.Time         `yaml:"start"`
	End            *time.Time        `yaml:"end,omitempty"`
	Profile        Profile           `yaml:"profile,omitempty"`
}

// DeviceRef is one device a pod holds, as the kubelet reports it: the
// extended-resource name and the device ID. Milli, for nvidia.com/gpu.shared,
// is the pod's fraction of the GPU (gpu_milli); without it a replica weighs
// 1/replicas.
type DeviceRef struct {
	Resource string `yaml:"resource"`
	ID       string `yaml:"id"`
	Milli    int64  `yaml:"milli,omitempty"`
}

// Activity profile kinds.
const (
	ProfileConstant = "constant" // Mean all the time
	ProfileBursty   = "bursty"   // busy at about Mean of the minutes, idle the rest
	ProfileIdle     = "idle"     // allocated but not used
	ProfileDiurnal  = "diurnal"  // Mean modulated by the time of day
)

// Profile describes how busy a pod keeps its devices. Values are drawn per
// minute from a hash of the pod UID, so they are reproducible.
type Profile struct {
	Kind string  `yaml:"kind,omitempty"`
	Mean float64 `yaml:"mean,omitempty"`
}

// Fault kinds.
const (
	FaultExporterRestart = "exporter_restart"
	FaultScrapeGap       = "scrape_gap"
	FaultAggregatorCrash = "aggregator_crash"
	FaultDatabaseOutage  = "database_outage"
)

// Fault is an incident the replay injects at At for Duration. Node scopes
// exporter restarts and scrape gaps; empty means every node.
type Fault struct {
	Kind     string    `yaml:"kind"`
	Node     string    `yaml:"node,omitempty"`
	At       time.Time `yaml:"at"`
	Duration Duration  `yaml:"duration,omitempty"`
}

// Duration is a time.Duration written like Prometheus durations
// ("15s", "1h30m", "7d").
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalYAML writes the Prometheus form.
func (d Duration) MarshalYAML() (any, error) { return model.Duration(d).String(), nil }
