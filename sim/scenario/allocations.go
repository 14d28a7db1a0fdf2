package scenario

import (
	"fmt"
	"sort"
	"time"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/attribution"
)

// Allocation is one device (or, on a virtual node, one request) held by one
// pod over [Start, End). It is the simulator's ground truth: the exporters
// publish it and the ledger must reproduce it.
type Allocation struct {
	Pod      *Pod
	Node     string
	Site     string           // the node's site: the InterLink site of a virtual node, else usually ""
	Resource string           // extended-resource name
	Class    accounting.Class // mig also for a MIG device held as nvidia.com/gpu
	DeviceID string           // the device ID as the kubelet reports it; "" for offload
	GPUUUID  string           // the physical GPU, for gpu, mig and shared
	GPUIndex int              // index of the physical GPU, -1 when none
	GI, CI   int              // MIG instance IDs, -1 when not MIG
	Model    string           // GPU or FPGA model
	Profile  string           // MIG profile
	// WeightMilli is the allocation's weight in milli-GPU: 1000 for a whole
	// GPU or an FPGA card, the MIG or fraction weight, or the requested count
	// × 1000 on a virtual node.
	WeightMilli int64
	// Devices is the raw number of devices (1, or the requested count).
	Devices int64
	Start   time.Time
	End     time.Time // zero when the pod runs past the scenario's end

	attribution.Result
}

// Open reports whether the allocation has no end within the scenario.
func (a *Allocation) Open() bool { return a.End.IsZero() }

// ActiveAt reports whether the allocation holds its device at t.
func (a *Allocation) ActiveAt(t time.Time) bool {
	return !t.Before(a.Start) && (a.End.IsZero() || t.Before(a.End))
}

// Allocations expands the pods of a valid scenario into allocations with
// their attribution under rules, sorted by start time, then node, pod and
// device.
func (s *Scenario) Allocations(rules attribution.Rules) ([]Allocation, error) {
	idx := buildIndex(s)
	look := newLookup(s)
	out := make([]Allocation, 0, len(s.Pods))
	for i := range s.Pods {
		p := &s.Pods[i]
		node, ok := idx.nodes[p.Node]
		if !ok {
			return nil, fmt.Errorf("pod %s/%s: unknown node %q", p.Namespace, p.Name, p.Node)
		}
		attr := rules.Resolve(attribution.Pod{
			Name: p.Name, Namespace: p.Namespace, UID: p.UID, ServiceAccount: p.ServiceAccount,
			Labels: p.Labels, Annotations: p.Annotations,
		}, look)
		base := Allocation{Pod: p, Node: node.Name, Site: node.Site, GPUIndex: -1, GI: -1, CI: -1,
			Start: p.Start, Result: attr}
		if p.End != nil {
			base.End = *p.End
		}
		if node.Virtual {
			res := make([]string, 0, len(p.Requests))
			for r := range p.Requests {
				res = append(res, r)
			}
			sort.Strings(res)
			for _, r := range res {
				a := base
				a.Resource, a.Class, a.Model = r, accounting.ClassOffload, node.GPUModel
				a.Devices = p.Requests[r]
				a.WeightMilli = a.Devices * accounting.MilliPerGPU
				out = append(out, a)
			}
			continue
		}
		for _, d := range p.Devices {
			r, err := idx.resolve(node, d)
			if err != nil {
				return nil, fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
			}
			a := base
			a.Resource, a.Class, a.DeviceID = d.Resource, r.class, d.ID
			a.Model, a.Profile, a.WeightMilli, a.Devices = r.model, r.profile, r.weight, 1
			if r.gpu != nil {
				a.GPUUUID, a.GPUIndex = r.gpu.UUID, r.gpu.Index
			}
			if r.mig != nil {
				a.GI, a.CI = r.mig.GI, r.mig.CI
			}
			out = append(out, a)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		if a.Pod.UID != b.Pod.UID {
			return a.Pod.UID < b.Pod.UID
		}
		return a.DeviceID < b.DeviceID
	})
	return out, nil
}

// Retention returns the scenario's ended-allocation retention.
func (s *Scenario) Retention() time.Duration {
	if s.EndedRetention > 0 {
		return s.EndedRetention.D()
	}
	return DefaultEndedRetention
}

// Node returns the named node.
func (s *Scenario) Node(name string) (*Node, bool) {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i], true
		}
	}
	return nil, false
}
