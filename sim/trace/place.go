package trace

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// request is a pod to place: it holds GPUs over [start, end) trace seconds,
// end > start.
type request struct {
	name       string
	start, end int64
	gpus       int    // whole GPUs on one node; 0 for a fraction
	milli      int64  // fraction of one GPU when gpus == 0 (1..999)
	rotation   uint64 // where the node search starts
}

func (r *request) needs() string {
	if r.gpus > 0 {
		return fmt.Sprintf("%d GPU(s) on one node", r.gpus)
	}
	return fmt.Sprintf("%d milli-GPU", r.milli)
}

// Unplaced is a pod no node had room for.
type Unplaced struct {
	Pod   string
	Needs string
	At    int64 // trace second of the pod's start
}

// PlacementError lists every pod that could not be placed.
type PlacementError struct {
	Pods []Unplaced
}

func (e *PlacementError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d pod(s) could not be placed on the trace's nodes:", len(e.Pods))
	for _, u := range e.Pods {
		fmt.Fprintf(&b, "\n  %s (needs %s at trace second %d)", u.Pod, u.Needs, u.At)
	}
	return b.String()
}

// Names returns the names of the unplaced pods.
func (e *PlacementError) Names() []string {
	out := make([]string, len(e.Pods))
	for i, u := range e.Pods {
		out[i] = u.Pod
	}
	return out
}

type gpuState struct {
	node, index int
	uuid        string
	held        int64  // milli-GPU held
	sharers     int    // fractional holders
	replicas    []bool // replica slots in use by sharers
	slices      []*sliceState
}

type sliceState struct {
	gpu     *gpuState
	profile string
	weight  int64
	uuid    string
	busy    bool
}

// nodeMode is how a node's GPUs are handed out: a node serves either whole
// GPUs or time-slicing replicas for the whole scenario, as the device
// plugin's per-node configuration does.
type nodeMode int

const (
	modeUnused nodeMode = iota // nothing placed yet
	modeWhole                  // nvidia.com/gpu
	modeShared                 // nvidia.com/gpu.shared replicas
)

type nodeState struct {
	idx  int
	name string
	gpus []*gpuState
	free int // GPUs nothing holds (never counts MIG-enabled GPUs)
	mig  bool
	mode nodeMode
}

// assignment is where a request was placed.
type assignment struct {
	node    int
	devices []scenario.DeviceRef
	whole   []*gpuState
	shared  *gpuState
	replica int
	slice   *sliceState
}

// placer assigns devices to requests in a sweep over time.
type placer struct {
	nodes      []*nodeState
	migNodes   []int
	shared     map[*gpuState]bool // GPUs with at least one fractional holder
	profiles   []profileWeight    // MIG profiles offered, lightest first
	freeSlices map[string]int
	// grow, when set, adds a node when nothing fits (Philly); without it a
	// request that does not fit is reported.
	grow func() (scenario.Node, error)
}

func newPlacer(nodes []scenario.Node) (*placer, error) {
	pl := &placer{shared: map[*gpuState]bool{}, freeSlices: map[string]int{}}
	for i := range nodes {
		if err := pl.addNode(&nodes[i]); err != nil {
			return nil, err
		}
	}
	return pl, nil
}

func (pl *placer) addNode(n *scenario.Node) error {
	ni := len(pl.nodes)
	ns := &nodeState{idx: ni, name: n.Name}
	for _, g := range n.GPUs {
		gs := &gpuState{node: ni, index: g.Index, uuid: g.UUID}
		for _, m := range g.MIG {
			w, err := accounting.MIGWeight(g.Model, m.Profile)
			if err != nil {
				return fmt.Errorf("node %s GPU %d: %w", n.Name, g.Index, err)
			}
			gs.slices = append(gs.slices, &sliceState{gpu: gs, profile: m.Profile, weight: w, uuid: m.UUID})
			pl.freeSlices[m.Profile]++
			pl.addProfile(m.Profile, w)
			ns.mig = true
		}
		if len(gs.slices) == 0 {
			ns.free++
		}
		ns.gpus = append(ns.gpus, gs)
	}
	pl.nodes = append(pl.nodes, ns)
	if ns.mig {
		pl.migNodes = append(pl.migNodes, ni)
	}
	return nil
}

func (pl *placer) addProfile(p string, w int64) {
	for _, pw := range pl.profiles {
		if pw.profile == p {
			return
		}
	}
	pl.profiles = append(pl.profiles, profileWeight{profile: p, weight: w})
	sort.Slice(pl.profiles, func(i, j int) bool { return pl.profiles[i].weight < pl.profiles[j].weight })
}

// run places every request. Requests are taken in order of start (ends
// before starts at the same second, then in slice order, which callers sort
// by start and name). It returns one assignment per request, or a
// *PlacementError naming every request that did not fit.
func (pl *placer) run(reqs []request) ([]*assignment, error) {
	type event struct {
		t   int64
		end bool
		i   int
	}
	evs := make([]event, 0, 2*len(reqs))
	for i, r := range reqs {
		evs = append(evs, event{r.start, false, i}, event{r.end, true, i})
	}
	sort.Slice(evs, func(a, b int) bool {
		ea, eb := evs[a], evs[b]
		if ea.t != eb.t {
			return ea.t < eb.t
		}
		if ea.end != eb.end {
			return ea.end
		}
		return ea.i < eb.i
	})
	out := make([]*assignment, len(reqs))
	var failed []Unplaced
	for _, e := range evs {
		r := &reqs[e.i]
		if e.end {
			if a := out[e.i]; a != nil {
				pl.release(a)
			}
			continue
		}
		a := pl.place(r)
		if a == nil && pl.grow != nil {
			n, err := pl.grow()
			if err != nil {
				return nil, err
			}
			if err := pl.addNode(&n); err != nil {
				return nil, err
			}
			a = pl.place(r)
		}
		if a == nil {
			failed = append(failed, Unplaced{Pod: r.name, Needs: r.needs(), At: r.start})
			continue
		}
		out[e.i] = a
	}
	if len(failed) > 0 {
		return nil, &PlacementError{Pods: failed}
	}
	return out, nil
}

func (pl *placer) place(r *request) *assignment {
	if r.gpus > 0 {
		return pl.placeWhole(r)
	}
	if a := pl.placeSlice(r); a != nil {
		return a
	}
	if a := pl.placeShared(r); a != nil {
		return a
	}
	return pl.placeNewShared(r)
}

// each visits the non-MIG nodes starting at the request's rotation point
// until f returns true.
func (pl *placer) each(r *request, f func(*nodeState) bool) {
	n := len(pl.nodes)
	if n == 0 {
		return
	}
	start := int(r.rotation % uint64(n))
	for k := range n {
		ns := pl.nodes[(start+k)%n]
		if !ns.mig && f(ns) {
			return
		}
	}
}

// placeWhole takes the lowest-index free GPUs of the first node with enough.
func (pl *placer) placeWhole(r *request) *assignment {
	var a *assignment
	pl.each(r, func(ns *nodeState) bool {
		if ns.mode == modeShared || ns.free < r.gpus {
			return false
		}
		ns.mode = modeWhole
		a = &assignment{node: ns.idx}
		for _, g := range ns.gpus {
			if len(a.whole) == r.gpus {
				break
			}
			if g.held == 0 && g.sharers == 0 && len(g.slices) == 0 {
				g.held = accounting.MilliPerGPU
				a.whole = append(a.whole, g)
				a.devices = append(a.devices, scenario.DeviceRef{Resource: accounting.ResourceGPU, ID: g.uuid})
			}
		}
		ns.free -= r.gpus
		return true
	})
	return a
}

// placeSlice moves a fraction onto the lightest free MIG slice that weighs
// at least the fraction.
func (pl *placer) placeSlice(r *request) *assignment {
	if len(pl.migNodes) == 0 {
		return nil
	}
	start := int(r.rotation % uint64(len(pl.migNodes)))
	for _, pw := range pl.profiles {
		if pw.weight < r.milli || pl.freeSlices[pw.profile] == 0 {
			continue
		}
		for k := range pl.migNodes {
			ns := pl.nodes[pl.migNodes[(start+k)%len(pl.migNodes)]]
			for _, g := range ns.gpus {
				for _, s := range g.slices {
					if s.busy || s.profile != pw.profile {
						continue
					}
					s.busy = true
					pl.freeSlices[s.profile]--
					return &assignment{node: g.node, slice: s, devices: []scenario.DeviceRef{
						{Resource: accounting.ResourceMIGPrefix + s.profile, ID: s.uuid},
					}}
				}
			}
		}
	}
	return nil
}

// placeShared joins a GPU that already has fractional holders: the fullest
// one that still has room (best fit), ties to the lowest node and index.
func (pl *placer) placeShared(r *request) *assignment {
	var best *gpuState
	for g := range pl.shared {
		if g.held+r.milli > accounting.MilliPerGPU || g.sharers >= SharedReplicas {
			continue
		}
		if best == nil || g.held > best.held ||
			g.held == best.held && (g.node < best.node || g.node == best.node && g.index < best.index) {
			best = g
		}
	}
	if best == nil {
		return nil
	}
	return pl.share(best, r)
}

// placeNewShared opens a free GPU for fractional holders: on a node that
// is already time-sliced, else on a node nothing has used yet.
func (pl *placer) placeNewShared(r *request) *assignment {
	var a *assignment
	for _, mode := range []nodeMode{modeShared, modeUnused} {
		pl.each(r, func(ns *nodeState) bool {
			if ns.mode != mode || ns.free == 0 {
				return false
			}
			for _, g := range ns.gpus {
				if g.held == 0 && g.sharers == 0 && len(g.slices) == 0 {
					ns.mode = modeShared
					a = pl.share(g, r)
					return true
				}
			}
			return false
		})
		if a != nil {
			return a
		}
	}
	return nil
}

func (pl *placer) share(g *gpuState, r *request) *assignment {
	if g.sharers == 0 {
		pl.nodes[g.node].free--
		pl.shared[g] = true
	}
	k := 0
	for k < len(g.replicas) && g.replicas[k] {
		k++
	}
	if k == len(g.replicas) {
		g.replicas = append(g.replicas, false)
	}
	g.replicas[k] = true
	g.held += r.milli
	g.sharers++
	return &assignment{node: g.node, shared: g, replica: k, devices: []scenario.DeviceRef{{
		Resource: accounting.ResourceGPUShared, ID: fmt.Sprintf("%s::%d", g.uuid, k), Milli: r.milli,
	}}}
}

// SharedReplicas is the time-slicing replica count of every GPU on a
// time-sliced node: at most that many pods share a GPU at once, and their
// fractions add up to at most one GPU.
const SharedReplicas = 10

// release returns what an assignment held.
func (pl *placer) release(a *assignment) {
	switch {
	case a.slice != nil:
		a.slice.busy = false
		pl.freeSlices[a.slice.profile]++
	case a.shared != nil:
		g := a.shared
		g.replicas[a.replica] = false
		g.sharers--
		g.held -= a.devices[0].Milli
		if g.sharers == 0 {
			delete(pl.shared, g)
			pl.nodes[g.node].free++
		}
	default:
		for _, g := range a.whole {
			g.held = 0
		}
		if len(a.whole) > 0 {
			pl.nodes[a.whole[0].node].free += len(a.whole)
		}
	}
}
