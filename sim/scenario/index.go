package scenario

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/gpuledger/gpuledger/accounting"
)

var pciRE = regexp.MustCompile(`^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`)

type gpuRef struct {
	node *Node
	gpu  *GPU
}

type migRef struct {
	node *Node
	gpu  *GPU
	mig  *MIGInstance
}

type fpgaRef struct {
	node *Node
	fpga *FPGA
}

// index finds devices by the IDs pods use.
type index struct {
	nodes  map[string]*Node
	gpus   map[string]gpuRef  // GPU UUID
	migs   map[string]migRef  // MIG UUID
	legacy map[string]string  // MIG-GPU-<uuid>/<gi>/<ci> → MIG UUID
	fpgas  map[string]fpgaRef // node/PCI
}

func newIndex() *index {
	return &index{
		nodes:  map[string]*Node{},
		gpus:   map[string]gpuRef{},
		migs:   map[string]migRef{},
		legacy: map[string]string{},
		fpgas:  map[string]fpgaRef{},
	}
}

func buildIndex(s *Scenario) *index {
	v := validator{}
	return v.nodes(s)
}

// refError is a device reference that does not resolve; field is the
// DeviceRef field at fault (resource, id or milli).
type refError struct {
	field string
	err   error
}

func (e *refError) Error() string { return e.err.Error() }
func (e *refError) Unwrap() error { return e.err }

func refErrorf(field, format string, args ...any) error {
	return &refError{field: field, err: fmt.Errorf(format, args...)}
}

// resolved is a device reference checked against the hardware.
type resolved struct {
	key      string // the physical device whose capacity the claim uses
	replica  string // the time-slicing replica ID held, if any
	capacity int64  // milli-GPU of that device the claim uses
	class    accounting.Class
	weight   int64 // milli-GPU accounted (1000 per FPGA card)
	gpu      *GPU
	mig      *MIGInstance
	fpga     *FPGA
	model    string
	profile  string
}

func (ix *index) resolve(n *Node, d DeviceRef) (resolved, error) {
	class, profile, ok := accounting.ResourceClass(d.Resource)
	if !ok {
		return resolved{}, refErrorf("resource", "resource %q is not an accelerator gpuledger accounts", d.Resource)
	}
	if d.Milli != 0 && class != accounting.ClassShared && class != accounting.ClassGPU {
		return resolved{}, refErrorf("milli", "milli is only for shared GPUs, not %s", d.Resource)
	}
	switch class {
	case accounting.ClassFPGA:
		ref, ok := ix.fpgas[n.Name+"/"+d.ID]
		if !ok {
			return resolved{}, refErrorf("id", "no FPGA %q on node %s", d.ID, n.Name)
		}
		return resolved{key: n.Name + "/" + d.ID, capacity: accounting.MilliPerGPU, class: class,
			weight: accounting.MilliPerGPU, fpga: ref.fpga, model: ref.fpga.Model}, nil
	case accounting.ClassMIG:
		return ix.resolveMIG(n, d, profile)
	case accounting.ClassGPU:
		// The "single" MIG strategy hands out MIG devices as nvidia.com/gpu.
		if _, isMIG := ix.migID(d.ID); isMIG && d.Milli == 0 {
			return ix.resolveMIG(n, d, "")
		}
	}
	// Whole or shared GPU.
	base, replica, isReplica := accounting.SplitReplica(d.ID)
	ref, ok := ix.gpus[base]
	if !ok || ref.node != n {
		return resolved{}, refErrorf("id", "no GPU %q on node %s", base, n.Name)
	}
	g := ref.gpu
	if len(g.MIG) > 0 {
		return resolved{}, refErrorf("id", "GPU %s is MIG-enabled; hold one of its MIG devices", base)
	}
	shared := isReplica || d.Milli != 0 || class == accounting.ClassShared
	if !shared {
		if g.Replicas > 1 {
			return resolved{}, refErrorf("id", "GPU %s is time-sliced (%d replicas); hold a replica %s::<n>", base, g.Replicas, base)
		}
		return resolved{key: base, capacity: accounting.MilliPerGPU, class: accounting.ClassGPU,
			weight: accounting.MilliPerGPU, gpu: g, model: g.Model}, nil
	}
	if isReplica && g.Replicas < 2 {
		return resolved{}, refErrorf("id", "GPU %s is not time-sliced (replicas < 2); it has no replica %d", base, replica)
	}
	if isReplica && replica >= g.Replicas {
		return resolved{}, refErrorf("id", "replica %d of GPU %s does not exist (%d replicas: 0..%d)", replica, base, g.Replicas, g.Replicas-1)
	}
	if d.Milli == 0 && g.Replicas < 2 {
		return resolved{}, refErrorf("milli", "shared GPU %s needs milli or a GPU with replicas", base)
	}
	w, err := accounting.FractionWeight(d.Milli, g.Replicas)
	if err != nil {
		return resolved{}, &refError{field: "milli", err: err}
	}
	r := resolved{key: base, capacity: w, class: accounting.ClassShared, weight: w, gpu: g, model: g.Model}
	if isReplica {
		r.replica = d.ID
	}
	return r, nil
}

// migID returns the MIG UUID a device ID names, in either form.
func (ix *index) migID(id string) (string, bool) {
	if u, ok := ix.legacy[id]; ok {
		id = u
	}
	_, ok := ix.migs[id]
	return id, ok
}

// resolveMIG resolves a MIG device; profile is the one the resource names,
// "" under the single strategy (nvidia.com/gpu).
func (ix *index) resolveMIG(n *Node, d DeviceRef, profile string) (resolved, error) {
	id, ok := ix.migID(d.ID)
	ref := ix.migs[id]
	if !ok || ref.node != n {
		return resolved{}, refErrorf("id", "no MIG device %q on node %s", d.ID, n.Name)
	}
	if profile == "" {
		profile = ref.mig.Profile
	} else if ref.mig.Profile != profile {
		return resolved{}, refErrorf("resource", "MIG device %q has profile %s, not %s", d.ID, ref.mig.Profile, profile)
	}
	w, err := accounting.MIGWeight(ref.gpu.Model, profile)
	if err != nil {
		return resolved{}, &refError{field: "resource", err: err}
	}
	return resolved{key: id, capacity: accounting.MilliPerGPU, class: accounting.ClassMIG, weight: w,
		gpu: ref.gpu, mig: ref.mig, model: ref.gpu.Model, profile: profile}, nil
}

// lookup answers attribution questions from the scenario.
type lookup struct {
	ns     map[string]map[string]string
	queues map[string]string
}

func newLookup(s *Scenario) *lookup {
	l := &lookup{ns: map[string]map[string]string{}, queues: map[string]string{}}
	for _, n := range s.Namespaces {
		l.ns[n.Name] = n.Labels
	}
	for _, q := range s.Queues {
		l.queues[q.Namespace+"/"+q.Name] = q.ClusterQueue
	}
	return l
}

func (l *lookup) NamespaceLabels(ns string) map[string]string { return l.ns[ns] }

func (l *lookup) ClusterQueue(ns, lq string) (string, bool) {
	cq, ok := l.queues[ns+"/"+strings.TrimSpace(lq)]
	return cq, ok
}
