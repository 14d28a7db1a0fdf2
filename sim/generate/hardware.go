package generate

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// Device models, as NVML and XRT name them.
const (
	modelA100 = "NVIDIA A100-SXM4-80GB"
	modelA30  = "NVIDIA A30"
	modelT4   = "Tesla T4"
	modelRTX  = "Quadro RTX 5000"

	fpgaModel    = "Alveo U55C"
	fpgaShell    = "xilinx_u55c_gen3x16_xdma_base_3"
	fpgaResource = "amd.com/" + fpgaShell + "-0"

	// t4Replicas is the time-slicing replica count of the T4s of
	// notebooks, each replica a quarter of a GPU.
	t4Replicas = 4
	// sharedReplicas is the time-slicing replica count of the batch GPUs
	// that fractional pods share: at most that many pods share a GPU at
	// once, and their gpu_milli add up to at most one GPU.
	sharedReplicas = 10
)

// Node labels.
const (
	labelProduct     = "nvidia.com/gpu.product"
	labelCount       = "nvidia.com/gpu.count"
	labelReplicas    = "nvidia.com/gpu.replicas"
	labelMIGConfig   = "nvidia.com/mig.config"
	labelMIGStrategy = "nvidia.com/mig.strategy"
	labelSharing     = "nvidia.com/gpu.sharing-strategy"
	labelVirtual     = "virtual-node.interlink/type"
)

// nodeKind is a kind of server. The order is the order in which kinds are
// added to small clusters, so that a few nodes already show the variety.
type nodeKind int

const (
	kindA100Mixed nodeKind = iota // 4× A100: two MIG-partitioned, two whole; the first one has an FPGA
	kindT4                        // 4× T4, time-sliced on every other node; FPGAs on those
	kindA100x8                    // 8× A100, whole: the only home of 8-GPU jobs
	kindA30                       // 4× A30, MIG-partitioned
	kindRTX                       // 4× Quadro RTX 5000 for notebooks; an FPGA on every other node
	kindA100x4                    // 4× A100, whole
	kindA100MIG                   // 4× A100, all MIG-partitioned
	numKinds
)

// kindSpecs give each kind its node-name prefix and its weight in a large
// cluster (weights out of 20).
var kindSpecs = [numKinds]struct {
	prefix string
	weight int
}{
	kindA100Mixed: {"a100mix", 3},
	kindT4:        {"t4", 3},
	kindA100x8:    {"a100x8", 2},
	kindA30:       {"a30", 3},
	kindRTX:       {"rtx5000", 3},
	kindA100x4:    {"a100x4", 4},
	kindA100MIG:   {"a100mig", 2},
}

// kindCounts splits n nodes into kinds: the first n kinds in order when n
// is smaller than the number of kinds, else at least one of each and the
// rest by weight (largest remainders, ties in kind order).
func kindCounts(n int) [numKinds]int {
	var c [numKinds]int
	if n < int(numKinds) {
		for k := range n {
			c[k] = 1
		}
		return c
	}
	var ideal [numKinds]float64
	var wsum int
	for _, s := range kindSpecs {
		wsum += s.weight
	}
	total := 0
	for k, s := range kindSpecs {
		ideal[k] = float64(n) * float64(s.weight) / float64(wsum)
		c[k] = max(1, int(ideal[k]))
		total += c[k]
	}
	for total < n {
		best := 0
		for k := range c {
			if ideal[k]-float64(c[k]) > ideal[best]-float64(c[best]) {
				best = k
			}
		}
		c[best]++
		total++
	}
	for total > n {
		best := -1
		for k := range c {
			if c[k] > 1 && (best < 0 || ideal[k]-float64(c[k]) < ideal[best]-float64(c[best])) {
				best = k
			}
		}
		c[best]--
		total--
	}
	return c
}

// migSlot is one MIG instance of a layout: its profile and GPU instance ID
// (the IDs NVIDIA assigns for that placement).
type migSlot struct {
	profile string
	gi      int
}

// migLayout is a mig-parted configuration of one GPU.
type migLayout struct {
	name  string
	slots []migSlot
}

var (
	a100All1g = migLayout{"all-1g.10gb", []migSlot{
		{"1g.10gb", 7}, {"1g.10gb", 8}, {"1g.10gb", 9}, {"1g.10gb", 10}, {"1g.10gb", 11}, {"1g.10gb", 12}, {"1g.10gb", 13}}}
	a100Balanced = migLayout{"all-balanced", []migSlot{{"3g.40gb", 2}, {"2g.20gb", 3}, {"1g.10gb", 9}, {"1g.10gb", 10}}}
	a100All3g    = migLayout{"all-3g.40gb", []migSlot{{"3g.40gb", 1}, {"3g.40gb", 2}}}
	a30All1g     = migLayout{"all-1g.6gb", []migSlot{{"1g.6gb", 3}, {"1g.6gb", 4}, {"1g.6gb", 5}, {"1g.6gb", 6}}}
	a30Balanced  = migLayout{"all-balanced", []migSlot{{"2g.12gb", 1}, {"1g.6gb", 5}, {"1g.6gb", 6}}}
)

// fpgaBuses are the PCI buses of the FPGA cards of a node; the user
// function of a card is <bus>:00.1.
var fpgaBuses = []string{"3b", "d8"}

// Remote sites reached through InterLink, one virtual node each. The GPU
// models are illustrative.
var sites = []struct {
	site, node, model string
	weight            float64
}{
	{"INFN-CNAF", "vk-infn-cnaf", "NVIDIA A100-PCIE-40GB", 0.5},
	{"ReCaS-Bari", "vk-recas-bari", "NVIDIA V100-PCIE-32GB", 0.3},
	{"CINECA-Leonardo", "vk-cineca-leonardo", "NVIDIA A100-SXM4-64GB", 0.2},
}

// batchGPU is a GPU for batch pods: taken whole on a whole node, or in
// fractions through time-slicing replicas on a shared node.
type batchGPU struct {
	node   int
	uuid   string
	shared bool
	held   int64  // milli-GPU held
	slots  uint32 // replica numbers in use by fractional pods
	until  int64  // end of the job holding a whole GPU
}

// batchNode is the batch view of a physical node.
type batchNode struct {
	gpus      []int // whole-pool GPUs, indexes into hardware.gpus
	freeWhole int   // of them, GPUs nobody holds
	reserved  int   // ID of the job the node is drained for, or -1
}

// unit is one interchangeable device of a group: a MIG instance, a T4
// replica, a whole notebook GPU or an FPGA card.
type unit struct {
	node int
	ref  scenario.DeviceRef
}

// unitGroup is a pool of interchangeable units with its waiting jobs.
type unitGroup struct {
	name   string
	weight int64 // milli-GPU of one unit; 1000 for an FPGA card
	units  []unit
	free   []int  // indexes of free units
	queue  []*job // FIFO of waiting jobs
}

// hardware is the cluster: scenario nodes and the device pools the
// scheduler allocates from.
type hardware struct {
	nodes       []scenario.Node // physical nodes, then the virtual ones
	kinds       []nodeKind      // of the physical nodes
	physical    int
	gpus        []batchGPU  // batch GPUs, whole and shared
	shared      []int       // indexes of the shared ones
	bnodes      []batchNode // by physical node index
	maxWhole    int         // most whole-pool GPUs on one node
	groups      []*unitGroup
	fpga        *unitGroup
	sites       []int // node indexes of the virtual nodes
	siteWeights []float64
}

// wholeGPUs is the number of batch GPUs handed out whole.
func (hw *hardware) wholeGPUs() int { return len(hw.gpus) - len(hw.shared) }

type hwBuilder struct {
	hw     *hardware
	r      *rng
	groups map[string]*unitGroup
}

func buildHardware(seed uint64, n int) *hardware {
	b := &hwBuilder{hw: &hardware{}, r: newRNG(seed, "hardware"), groups: map[string]*unitGroup{}}
	b.hw.fpga = &unitGroup{name: "fpga " + fpgaModel, weight: accounting.MilliPerGPU}
	counts := kindCounts(n)
	for k, c := range counts {
		width := max(2, len(strconv.Itoa(c)))
		for i := range c {
			b.node(nodeKind(k), i, fmt.Sprintf("%s-%0*d", kindSpecs[k].prefix, width, i+1))
		}
	}
	b.hw.physical = len(b.hw.nodes)
	b.splitShared()
	for _, s := range sites {
		b.hw.sites = append(b.hw.sites, len(b.hw.nodes))
		b.hw.siteWeights = append(b.hw.siteWeights, s.weight)
		b.hw.nodes = append(b.hw.nodes, scenario.Node{
			Name: s.node, Virtual: true, Site: s.site, GPUModel: s.model,
			Labels: map[string]string{labelVirtual: "virtual-kubelet"},
		})
	}
	return b.hw
}

// gpuSpec says how one GPU of a node is set up.
type gpuSpec struct {
	model    string
	mig      *migLayout
	replicas int
	notebook bool // a whole GPU for notebooks rather than batch
}

func (b *hwBuilder) node(k nodeKind, ordinal int, name string) {
	var specs []gpuSpec
	fpgas := 0
	labels := map[string]string{}
	whole := func(model string, count int) {
		for range count {
			specs = append(specs, gpuSpec{model: model})
		}
	}
	switch k {
	case kindA100Mixed:
		specs = []gpuSpec{{model: modelA100, mig: &a100Balanced}, {model: modelA100, mig: &a100All1g}}
		whole(modelA100, 2)
		labels[labelMIGConfig] = "a100-half-mig"
		if ordinal == 0 {
			fpgas = 1
		}
	case kindT4:
		if ordinal%2 == 0 {
			for range 4 {
				specs = append(specs, gpuSpec{model: modelT4, replicas: t4Replicas})
			}
			labels[labelReplicas] = strconv.Itoa(t4Replicas)
			labels[labelSharing] = "time-slicing"
			fpgas = 2
		} else {
			whole(modelT4, 4)
		}
	case kindA100x8:
		whole(modelA100, 8)
	case kindA30:
		layout := &a30All1g
		if ordinal%2 == 1 {
			layout = &a30Balanced
		}
		for range 4 {
			specs = append(specs, gpuSpec{model: modelA30, mig: layout})
		}
		labels[labelMIGConfig] = layout.name
	case kindRTX:
		for range 4 {
			specs = append(specs, gpuSpec{model: modelRTX, notebook: true})
		}
		if ordinal%2 == 0 {
			fpgas = 1
		}
	case kindA100x4:
		whole(modelA100, 4)
	case kindA100MIG:
		layout := []*migLayout{&a100All1g, &a100Balanced, &a100All3g}[ordinal%3]
		for range 4 {
			specs = append(specs, gpuSpec{model: modelA100, mig: layout})
		}
		labels[labelMIGConfig] = layout.name
	}

	ni := len(b.hw.nodes)
	b.hw.kinds = append(b.hw.kinds, k)
	node := scenario.Node{Name: name, Labels: labels}
	bn := batchNode{reserved: -1}
	product := strings.ReplaceAll(specs[0].model, " ", "-")
	if specs[0].replicas > 1 {
		product += "-SHARED"
	}
	labels[labelProduct] = product
	labels[labelCount] = strconv.Itoa(len(specs))
	if _, ok := labels[labelMIGConfig]; ok {
		labels[labelMIGStrategy] = "mixed"
	}
	for gi, sp := range specs {
		g := scenario.GPU{Index: gi, UUID: "GPU-" + b.r.uuid(false), Model: sp.model}
		switch {
		case sp.mig != nil:
			for _, sl := range sp.mig.slots {
				m := scenario.MIGInstance{Profile: sl.profile, GI: sl.gi, CI: 0, UUID: "MIG-" + b.r.uuid(false)}
				g.MIG = append(g.MIG, m)
				w, err := accounting.MIGWeight(sp.model, sl.profile)
				if err != nil {
					panic(fmt.Sprintf("generate: built-in MIG layout %s: %v", sp.mig.name, err)) // a bug in the tables above
				}
				b.add(fmt.Sprintf("%s %s", sp.model, sl.profile), w, unit{node: ni, ref: scenario.DeviceRef{
					Resource: accounting.ResourceMIGPrefix + sl.profile, ID: m.UUID}})
			}
		case sp.replicas > 1:
			g.Replicas = sp.replicas
			for rep := range sp.replicas {
				b.add(sp.model+" replica", accounting.MilliPerGPU/int64(sp.replicas), unit{node: ni, ref: scenario.DeviceRef{
					Resource: accounting.ResourceGPUShared, ID: fmt.Sprintf("%s::%d", g.UUID, rep)}})
			}
		case sp.notebook:
			b.add(sp.model, accounting.MilliPerGPU, unit{node: ni, ref: scenario.DeviceRef{
				Resource: accounting.ResourceGPU, ID: g.UUID}})
		default:
			bn.gpus = append(bn.gpus, len(b.hw.gpus))
			b.hw.gpus = append(b.hw.gpus, batchGPU{node: ni, uuid: g.UUID})
		}
		node.GPUs = append(node.GPUs, g)
	}
	for i := range fpgas {
		pci := fmt.Sprintf("0000:%s:00.1", fpgaBuses[i])
		node.FPGAs = append(node.FPGAs, scenario.FPGA{PCI: pci, Model: fpgaModel, Shell: fpgaShell})
		f := b.hw.fpga
		f.free = append(f.free, len(f.units))
		f.units = append(f.units, unit{node: ni, ref: scenario.DeviceRef{Resource: fpgaResource, ID: pci}})
	}
	bn.freeWhole = len(bn.gpus)
	b.hw.nodes = append(b.hw.nodes, node)
	b.hw.bnodes = append(b.hw.bnodes, bn)
}

// add puts a unit into the notebook group of that name, creating the group
// the first time.
func (b *hwBuilder) add(name string, weight int64, u unit) {
	g, ok := b.groups[name]
	if !ok {
		g = &unitGroup{name: name, weight: weight}
		b.groups[name] = g
		b.hw.groups = append(b.hw.groups, g)
	}
	g.free = append(g.free, len(g.units))
	g.units = append(g.units, u)
}

// splitShared turns some batch nodes into time-sliced nodes for fractional
// pods, as the device plugin's per-node configuration does, so that the
// shared GPUs are the fractional pods' share of batch demand (about 27 %):
// whole T4 nodes first (an inference GPU), then 4× A100 nodes, then the
// whole halves of mixed A100 nodes, each taken while it brings the count
// closer to the target. The 8× A100 nodes stay whole for the largest jobs.
// A cluster with a single batch node time-slices one GPU of it.
func (b *hwBuilder) splitShared() {
	hw := b.hw
	var batchNodes []int
	for i, bn := range hw.bnodes {
		if len(bn.gpus) > 0 {
			batchNodes = append(batchNodes, i)
		}
	}
	if len(batchNodes) == 1 {
		bn := &hw.bnodes[batchNodes[0]]
		gi := bn.gpus[len(bn.gpus)-1]
		bn.gpus = bn.gpus[:len(bn.gpus)-1]
		bn.freeWhole--
		b.share(gi)
	} else {
		target := fractionalDemandShare() * float64(len(hw.gpus))
		shared, whole := 0, len(batchNodes)
		for _, k := range []nodeKind{kindT4, kindA100x4, kindA100Mixed} {
			for _, i := range batchNodes {
				bn := &hw.bnodes[i]
				n := len(bn.gpus)
				if hw.kinds[i] != k || whole == 1 {
					continue
				}
				closer := math.Abs(float64(shared+n)-target) < math.Abs(float64(shared)-target)
				if !closer && shared > 0 {
					continue
				}
				for _, gi := range bn.gpus {
					b.share(gi)
				}
				bn.gpus, bn.freeWhole = nil, 0
				shared += n
				whole--
				node := &hw.nodes[i]
				node.Labels[labelReplicas] = strconv.Itoa(sharedReplicas)
				node.Labels[labelSharing] = "time-slicing"
				node.Labels[labelProduct] += "-SHARED"
			}
		}
	}
	for _, bn := range hw.bnodes {
		hw.maxWhole = max(hw.maxWhole, len(bn.gpus))
	}
}

// share makes batch GPU gi a time-sliced GPU for fractional pods.
func (b *hwBuilder) share(gi int) {
	g := &b.hw.gpus[gi]
	g.shared = true
	b.hw.shared = append(b.hw.shared, gi)
	node := &b.hw.nodes[g.node]
	for j := range node.GPUs {
		if node.GPUs[j].UUID == g.uuid {
			node.GPUs[j].Replicas = sharedReplicas
		}
	}
}
