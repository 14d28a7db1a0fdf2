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

// resolved is a device reference checked against the hardware.
type resolved struct {
	key      string // the physical device whose capacity the claim uses
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
		return resolved{}, fmt.Errorf("resource %q is not an accelerator gpuledger accounts", d.Resource)
	}
	if d.Milli != 0 && class != accounting.ClassShared && class != accounting.ClassGPU {
		return resolved{}, fmt.Errorf("milli is only for shared GPUs, not %s", d.Resource)
	}
	switch class {
	case accounting.ClassFPGA:
		ref, ok := ix.fpgas[n.Name+"/"+d.ID]
		if !ok {
			return resolved{}, fmt.Errorf("no FPGA %q on node %s", d.ID, n.Name)
		}
		return resolved{key: n.Name + "/" + d.ID, capacity: accounting.MilliPerGPU, class: class,
			weight: accounting.MilliPerGPU, fpga: ref.fpga, model: ref.fpga.Model}, nil
	case accounting.ClassMIG:
		id := d.ID
		if u, ok := ix.legacy[id]; ok {
			id = u
		}
		ref, ok := ix.migs[id]
		if !ok || ref.node != n {
			return resolved{}, fmt.Errorf("no MIG device %q on node %s", d.ID, n.Name)
		}
		if ref.mig.Profile != profile {
			return resolved{}, fmt.Errorf("MIG device %q has profile %s, not %s", d.ID, ref.mig.Profile, profile)
		}
		w, err := accounting.MIGWeight(ref.gpu.Model, profile)
		if err != nil {
			return resolved{}, err
		}
		return resolved{key: id, capacity: accounting.MilliPerGPU, class: class, weight: w,
			gpu: ref.gpu, mig: ref.mig, model: ref.gpu.Model, profile: profile}, nil
	}
	// Whole or shared GPU.
	base, replica, isReplica := accounting.SplitReplica(d.ID)
	ref, ok := ix.gpus[base]
	if !ok || ref.node != n {
		return resolved{}, fmt.Errorf("no GPU %q on node %s", base, n.Name)
	}
	g := ref.gpu
	if len(g.MIG) > 0 {
		return resolved{}, fmt.Errorf("GPU %s is MIG-enabled; hold one of its MIG devices", base)
	}
	shared := isReplica || d.Milli != 0 || class == accounting.ClassShared
	if !shared {
		if g.Replicas > 1 {
			return resolved{}, fmt.Errorf("GPU %s is time-sliced (%d replicas); hold a replica %s::<n>", base, g.Replicas, base)
		}
		return resolved{key: base, capacity: accounting.MilliPerGPU, class: accounting.ClassGPU,
			weight: accounting.MilliPerGPU, gpu: g, model: g.Model}, nil
	}
	if isReplica && g.Replicas > 1 && replica >= g.Replicas {
		return resolved{}, fmt.Errorf("replica %d of GPU %s does not exist (%d replicas)", replica, base, g.Replicas)
	}
	if d.Milli == 0 && g.Replicas < 2 {
		return resolved{}, fmt.Errorf("shared GPU %s needs milli or a GPU with replicas", base)
	}
	w, err := accounting.FractionWeight(d.Milli, g.Replicas)
	if err != nil {
		return resolved{}, err
	}
	return resolved{key: base, capacity: w, class: accounting.ClassShared, weight: w, gpu: g, model: g.Model}, nil
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
