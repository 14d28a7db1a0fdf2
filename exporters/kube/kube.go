// Package kube is the exporter's view of the Kubernetes API: the pods of
// the node (or, in cluster mode, of every node) with their metadata,
// container times and attribution, kept by client-go informers and read
// from memory. The allocation collector joins it to the kubelet's
// pod-resources answer and the node's device inventory; nothing here is
// called on the scrape path except the in-memory getters.
package kube

import (
	"time"

	"github.com/gpuledger/gpuledger/attribution"
)

// Pod is what the exporter knows of one pod.
type Pod struct {
	UID, Name, Namespace string
	// Node is spec.nodeName ("" while pending).
	Node string
	// Phase is status.phase: Pending, Running, Succeeded, Failed, Unknown.
	Phase string
	// Attribution is the pod's user, project and queue, resolved by the
	// rules when the pod was first seen with the metadata it then had
	// (the attribution in force when the usage happened).
	Attribution attribution.Result
	// Provisional is true while Attribution was resolved before the
	// lookups it may need (namespaces, Kueue LocalQueues) had synced: it
	// may still change. Consumers that keep an attribution for the life
	// of an allocation wait until it is false.
	Provisional bool
	// Site is the InterLink site of a pod on a virtual node; "" otherwise.
	Site string
	// Virtual is true for a pod on a virtual node
	// (label virtual-node.interlink/type=virtual-kubelet on the node).
	Virtual bool
	// RemoteModel is the model of the remote GPUs a virtual node declares
	// (see KeyGPUModel); "" when not declared or not virtual.
	RemoteModel string
	// Containers are the pod's containers' times, by container name.
	Containers map[string]ContainerTimes
	// Requests are the pod's accelerator requests by extended-resource
	// name (nvidia.com/gpu, nvidia.com/mig-1g.10gb, amd.com/…, xilinx.com/…),
	// summed over its app containers (init containers as Kubernetes
	// counts them: the larger of their maximum and the sum).
	Requests map[string]int64
	// Deleted is when the pod was seen deleted (zero while it exists).
	Deleted time.Time
}

// ContainerTimes are a container's exact start and end, from its status
// (state.running.startedAt, state.terminated.startedAt/finishedAt, or the
// last termination state after a restart). Zero when not (yet) known.
type ContainerTimes struct {
	Started, Finished time.Time
	// Restarts is the container's restart count.
	Restarts int32
}

// Start is the pod's allocation start: the earliest start of its
// containers (zero when none has started).
func (p *Pod) Start() time.Time {
	var t time.Time
	for _, c := range p.Containers {
		if !c.Started.IsZero() && (t.IsZero() || c.Started.Before(t)) {
			t = c.Started
		}
	}
	return t
}

// End is the pod's allocation end: the latest finish of its containers
// once every started container has finished, or its deletion; zero while
// it runs.
func (p *Pod) End() time.Time {
	var t time.Time
	for _, c := range p.Containers {
		if c.Started.IsZero() {
			continue
		}
		if c.Finished.IsZero() {
			return p.Deleted
		}
		if c.Finished.After(t) {
			t = c.Finished
		}
	}
	if t.IsZero() {
		return p.Deleted
	}
	return t
}

// Pods answers what the allocation collector asks of the API server.
// Implementations read memory only.
type Pods interface {
	// Pod returns the pod with the given UID, including a pod deleted
	// within the retention.
	Pod(uid string) (Pod, bool)
	// List returns every pod known, deleted ones within the retention
	// included.
	List() []Pod
	// Synced reports whether the informers have synced; before that,
	// and while the API server is unreachable, attribution is
	// unavailable.
	Synced() bool
}
