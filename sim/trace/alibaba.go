package trace

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// maxPodGPUs bounds num_gpu so that sums of milli-GPU-seconds cannot
// overflow; real pods ask for at most 8.
const maxPodGPUs = 1 << 12

// AlibabaPod is one row of openb_pod_list_default.csv, with the columns the
// import uses.
type AlibabaPod struct {
	Name      string
	NumGPU    int64
	GPUMilli  int64
	QoS       string
	Scheduled int64 // scheduled_time, valid when IsScheduled
	// IsScheduled is false when scheduled_time is empty: the pod never ran.
	IsScheduled bool
	Deletion    int64 // deletion_time (end of trace for pods still running)
}

// Holding is what a pod holds over [Start, End) trace seconds: GPUs whole
// GPUs, or, when GPUs is 0, Milli thousandths of one GPU.
type Holding struct {
	Start, End int64
	GPUs       int
	Milli      int64
}

// Holding returns what the pod holds, and false when it holds nothing: it
// was never scheduled, asks for no GPU (num_gpu 0, or num_gpu 1 with
// gpu_milli 0), or was deleted the second it was scheduled.
func (p *AlibabaPod) Holding() (Holding, bool) {
	if !p.IsScheduled || p.NumGPU <= 0 || p.Deletion <= p.Scheduled {
		return Holding{}, false
	}
	h := Holding{Start: p.Scheduled, End: p.Deletion}
	if p.NumGPU == 1 && p.GPUMilli < accounting.MilliPerGPU {
		if p.GPUMilli <= 0 {
			return Holding{}, false
		}
		h.Milli = p.GPUMilli
		return h, true
	}
	h.GPUs = int(p.NumGPU)
	return h, true
}

// ReadAlibabaPods reads openb_pod_list_default.csv. name is used in error
// messages (file:line: column: problem).
func ReadAlibabaPods(r io.Reader, name string) ([]AlibabaPod, error) {
	t, err := newTable(r, name, "name", "num_gpu", "gpu_milli", "qos", "deletion_time", "scheduled_time")
	if err != nil {
		return nil, err
	}
	var pods []AlibabaPod
	seen := map[string]int{}
	for {
		ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return pods, nil
		}
		p := AlibabaPod{QoS: t.str("qos")}
		if p.Name, err = t.key("name", "pod", "missing pod name", seen); err != nil {
			return nil, err
		}
		if p.NumGPU, err = t.int("num_gpu"); err != nil {
			return nil, err
		}
		if p.NumGPU < 0 || p.NumGPU > maxPodGPUs {
			return nil, t.errorf("num_gpu", "%d GPUs out of range (0..%d)", p.NumGPU, maxPodGPUs)
		}
		if p.GPUMilli, err = t.int("gpu_milli"); err != nil {
			return nil, err
		}
		if p.GPUMilli < 0 || p.GPUMilli > accounting.MilliPerGPU {
			return nil, t.errorf("gpu_milli", "%d out of range (0..%d)", p.GPUMilli, accounting.MilliPerGPU)
		}
		if p.Scheduled, p.IsScheduled, err = t.optInt("scheduled_time"); err != nil {
			return nil, err
		}
		if p.Scheduled < 0 {
			return nil, t.errorf("scheduled_time", "negative time %d", p.Scheduled)
		}
		del, hasDel, err := t.optInt("deletion_time")
		if err != nil {
			return nil, err
		}
		p.Deletion = del
		if p.IsScheduled && p.NumGPU > 0 {
			switch {
			case !hasDel:
				return nil, t.errorf("deletion_time", "missing for a scheduled pod (pods still running carry the end of the trace)")
			case del < p.Scheduled:
				return nil, t.errorf("deletion_time", "%d is before scheduled_time %d", del, p.Scheduled)
			}
		}
		pods = append(pods, p)
	}
}

// AlibabaNode is one row of openb_node_list_gpu_node.csv.
type AlibabaNode struct {
	Name  string
	GPUs  int
	Model string // the trace's code: T4, V100M16, G2, …
}

// maxNodeGPUs bounds a node's GPU count.
const maxNodeGPUs = 64

// ReadAlibabaNodes reads openb_node_list_gpu_node.csv.
func ReadAlibabaNodes(r io.Reader, name string) ([]AlibabaNode, error) {
	t, err := newTable(r, name, "sn", "gpu", "model")
	if err != nil {
		return nil, err
	}
	var nodes []AlibabaNode
	seen := map[string]int{}
	for {
		ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return nodes, nil
		}
		n := AlibabaNode{Model: t.str("model")}
		if n.Name, err = t.key("sn", "node", "missing node name", seen); err != nil {
			return nil, err
		}
		g, err := t.int("gpu")
		if err != nil {
			return nil, err
		}
		if g < 0 || g > maxNodeGPUs {
			return nil, t.errorf("gpu", "%d GPUs out of range (0..%d)", g, maxNodeGPUs)
		}
		n.GPUs = int(g)
		if _, err := AlibabaModel(n.Model); err != nil && n.GPUs > 0 {
			return nil, t.errorf("model", "%v", err)
		}
		nodes = append(nodes, n)
	}
}

// Alibaba builds a scenario from a window of the Alibaba GPU v2023 trace:
// every pod whose holding overlaps the window, placed on the trace's nodes,
// with tenants drawn from orgs. It returns a *PlacementError (wrapped) when
// some pods do not fit.
func Alibaba(pods []AlibabaPod, nodes []AlibabaNode, orgs []Org, opt Options) (*scenario.Scenario, error) {
	s, _, err := buildAlibaba(pods, nodes, orgs, opt)
	return s, err
}

func buildAlibaba(pods []AlibabaPod, nodes []AlibabaNode, orgs []Org, opt Options) (*scenario.Scenario, map[string]tenant, error) {
	w, err := opt.check()
	if err != nil {
		return nil, nil, err
	}
	pick, err := newPicker(orgs)
	if err != nil {
		return nil, nil, err
	}
	cluster := opt.cluster(FormatAlibabaV2023)
	s := &scenario.Scenario{
		Cluster:        cluster,
		Start:          opt.at(w.start),
		End:            opt.at(w.end),
		ScrapeInterval: scenario.Duration(opt.scrapeInterval()),
		Source:         opt.Source,
	}
	if s.Source == "" {
		s.Source = fmt.Sprintf("%s trace, trace seconds [%d, %d) with second 0 at %s; seed %d; %d tenant organisations; MIG share %s",
			FormatAlibabaV2023, w.start, w.end, opt.Epoch.UTC().Format(time.RFC3339), opt.Seed, len(orgs),
			strconv.FormatFloat(opt.MIGShare, 'g', -1, 64))
	}
	if s.Nodes, err = alibabaNodes(nodes, cluster, opt); err != nil {
		return nil, nil, err
	}

	byName := map[string]*AlibabaPod{}
	var reqs []request
	for i := range pods {
		p := &pods[i]
		h, ok := p.Holding()
		if !ok || !w.overlaps(h.Start, h.End) {
			continue
		}
		byName[p.Name] = p
		reqs = append(reqs, request{name: p.Name, start: h.Start, end: h.End, gpus: h.GPUs, milli: h.Milli,
			rotation: hash64(opt.Seed, "place/"+p.Name)})
	}
	sortRequests(reqs)
	pl, err := newPlacer(s.Nodes)
	if err != nil {
		return nil, nil, err
	}
	placed, err := pl.run(reqs)
	if err != nil {
		return nil, nil, fmt.Errorf("window [%d, %d) of %s: %w", w.start, w.end, FormatAlibabaV2023, err)
	}
	markShared(s, pl)

	tenants := make(map[string]tenant, len(reqs))
	tc := newTenancy()
	s.Pods = make([]scenario.Pod, 0, len(reqs))
	for i, r := range reqs {
		a := placed[i]
		rng := rand.New(rand.NewPCG(opt.Seed, hash64(opt.Seed, "tenant/"+r.name)))
		org := pick.pick(rng)
		tn := tenant{project: org.Project, user: pickUser(rng, org.Project, usersIn(org.Jobs)),
			notebook: byName[r.name].QoS == "LS"}
		end := opt.at(r.end)
		pod := scenario.Pod{
			Name: r.name, UID: podUID(opt.Seed, cluster, r.name), Node: s.Nodes[a.node].Name,
			Devices: a.devices, Start: opt.at(r.start), End: &end, Profile: activity(rng, tn.notebook),
		}
		tn.apply(&pod)
		tc.add(tn)
		tenants[r.name] = tn
		s.Pods = append(s.Pods, pod)
	}
	tc.fill(s)
	if err := scenario.Validate(s); err != nil {
		return nil, nil, fmt.Errorf("imported scenario does not validate: %w", err)
	}
	return s, tenants, nil
}

// alibabaNodes turns the trace's GPU nodes into scenario nodes, retyping a
// share of the 8-GPU nodes as MIG-partitioned A100s when asked.
func alibabaNodes(nodes []AlibabaNode, cluster string, opt Options) ([]scenario.Node, error) {
	migNodes, err := chooseMIGNodes(nodes, opt)
	if err != nil {
		return nil, err
	}
	out := make([]scenario.Node, 0, len(nodes))
	for _, tn := range nodes {
		if tn.GPUs == 0 {
			continue // not a GPU node: nothing to account
		}
		model, err := AlibabaModel(tn.Model)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", tn.Name, err)
		}
		mig := migNodes[tn.Name]
		if mig {
			model = MIGModel
		}
		n := scenario.Node{Name: tn.Name, Labels: map[string]string{
			labelTraceModel: tn.Model,
			labelGPUProduct: productLabel(model),
			labelGPUCount:   strconv.Itoa(tn.GPUs),
		}}
		if mig {
			n.Labels[labelMIGConfig] = MIGConfig
		}
		for i := range tn.GPUs {
			g := scenario.GPU{Index: i, UUID: deviceUUID("GPU", opt.Seed, cluster, tn.Name, i), Model: model}
			if mig {
				for _, sl := range migLayout {
					g.MIG = append(g.MIG, scenario.MIGInstance{Profile: sl.profile, GI: sl.gi, CI: 0,
						UUID: deviceUUID("MIG", opt.Seed, cluster, tn.Name, i, sl.gi)})
				}
			}
			n.GPUs = append(n.GPUs, g)
		}
		out = append(out, n)
	}
	return out, nil
}

// chooseMIGNodes picks round(MIGShare × the number of 8-GPU nodes) of them,
// in an order drawn from the seed.
func chooseMIGNodes(nodes []AlibabaNode, opt Options) (map[string]bool, error) {
	out := map[string]bool{}
	if opt.MIGShare == 0 {
		return out, nil
	}
	if _, err := migWeights(); err != nil {
		return nil, err
	}
	type cand struct {
		name string
		key  uint64
	}
	var cands []cand
	for _, n := range nodes {
		if n.GPUs == migNodeGPUs {
			cands = append(cands, cand{n.Name, hash64(opt.Seed, "mig/"+n.Name)})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.name, b.name))
	})
	k := int(math.Round(opt.MIGShare * float64(len(cands))))
	for _, c := range cands[:k] {
		out[c.name] = true
	}
	return out, nil
}

// markShared configures time-slicing on the nodes the placement used for
// fractions.
func markShared(s *scenario.Scenario, pl *placer) {
	for i, ns := range pl.nodes {
		if ns.mode != modeShared {
			continue
		}
		n := &s.Nodes[i]
		for j := range n.GPUs {
			n.GPUs[j].Replicas = SharedReplicas
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[labelGPUReplicas] = strconv.Itoa(SharedReplicas)
		n.Labels[labelSharingStrategy] = "time-slicing"
	}
}

// sortRequests orders requests by start, then name.
func sortRequests(reqs []request) {
	slices.SortFunc(reqs, func(a, b request) int {
		return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.name, b.name))
	})
}
