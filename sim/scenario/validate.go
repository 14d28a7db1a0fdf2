package scenario

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gpuledger/gpuledger/accounting"
)

// DefaultEndedRetention is how long exporters keep ended allocations when a
// scenario does not say.
const DefaultEndedRetention = time.Hour

// MaxReplicas bounds the time-slicing replicas of a GPU, so that a replica
// weighs at least one milli-GPU.
const MaxReplicas = 1000

// MaxRequest bounds the GPUs one pod may request on a virtual node.
const MaxRequest = 100000

type validator struct {
	file string
	root func() *yaml.Node // the parsed tree, built on the first error; nil when there is no file
	errs []*FieldError
}

func (v *validator) errorf(field, format string, args ...any) {
	line := 0
	if v.root != nil {
		if root := v.root(); root != nil {
			line = lineOf(root, field)
		}
	}
	v.errs = append(v.errs, &FieldError{File: v.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks a scenario built in memory (by a generator or an importer);
// errors name the fields but no lines.
func Validate(s *Scenario) error {
	v := validator{file: "scenario"}
	v.scenario(s)
	if len(v.errs) > 0 {
		return &ValidationError{Errs: v.errs}
	}
	return nil
}

func (v *validator) scenario(s *Scenario) {
	if s.Cluster == "" {
		v.errorf("cluster", "missing cluster name")
	}
	if s.Start.IsZero() {
		v.errorf("start", "missing start time")
	}
	if s.End.IsZero() {
		v.errorf("end", "missing end time")
	}
	if !s.Start.IsZero() && !s.End.IsZero() && !s.End.After(s.Start) {
		v.errorf("end", "end %s is not after start %s", s.End.Format(time.RFC3339), s.Start.Format(time.RFC3339))
	}
	if !wholeSecond(s.Start) {
		v.errorf("start", "start %s is not a whole second", s.Start.Format(time.RFC3339Nano))
	}
	if !wholeSecond(s.End) {
		v.errorf("end", "end %s is not a whole second", s.End.Format(time.RFC3339Nano))
	}
	if s.ScrapeInterval <= 0 {
		v.errorf("scrape_interval", "missing or non-positive scrape interval")
	} else if s.ScrapeInterval.D()%time.Second != 0 {
		v.errorf("scrape_interval", "scrape interval %s is not a whole number of seconds", s.ScrapeInterval.D())
	}
	if s.EndedRetention < 0 {
		v.errorf("ended_retention", "negative retention")
	}

	namespaces := map[string]bool{}
	for i, ns := range s.Namespaces {
		f := fmt.Sprintf("namespaces[%d]", i)
		if ns.Name == "" {
			v.errorf(f+".name", "missing namespace name")
		} else if namespaces[ns.Name] {
			v.errorf(f+".name", "duplicate namespace %q", ns.Name)
		}
		namespaces[ns.Name] = true
	}
	cqs := map[string]bool{}
	for i, cq := range s.ClusterQueues {
		f := fmt.Sprintf("cluster_queues[%d]", i)
		if cq.Name == "" {
			v.errorf(f+".name", "missing cluster queue name")
		} else if cqs[cq.Name] {
			v.errorf(f+".name", "duplicate cluster queue %q", cq.Name)
		}
		cqs[cq.Name] = true
		for _, r := range sortedKeys(cq.Quota) {
			if q := cq.Quota[r]; q < 0 {
				v.errorf(f+".quota", "negative quota %d for %s", q, r)
			}
		}
	}
	queues := map[string]bool{}
	for i, q := range s.Queues {
		f := fmt.Sprintf("queues[%d]", i)
		if q.Namespace == "" {
			v.errorf(f+".namespace", "missing queue namespace")
		}
		if q.Name == "" {
			v.errorf(f+".name", "missing queue name")
		}
		key := q.Namespace + "/" + q.Name
		if queues[key] {
			v.errorf(f+".name", "duplicate queue %q", key)
		}
		queues[key] = true
		if q.ClusterQueue == "" {
			v.errorf(f+".cluster_queue", "missing cluster queue")
		} else if len(s.ClusterQueues) > 0 && !cqs[q.ClusterQueue] {
			v.errorf(f+".cluster_queue", "unknown cluster queue %q", q.ClusterQueue)
		}
	}

	idx := v.nodes(s)
	v.pods(s, idx)
	v.faults(s, idx)
}

func (v *validator) nodes(s *Scenario) *index {
	idx := newIndex()
	if len(s.Nodes) == 0 {
		v.errorf("nodes", "a scenario needs at least one node")
	}
	uuids := map[string]string{}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		f := fmt.Sprintf("nodes[%d]", i)
		if n.Name == "" {
			v.errorf(f+".name", "missing node name")
		} else if _, dup := idx.nodes[n.Name]; dup {
			v.errorf(f+".name", "duplicate node %q", n.Name)
		} else {
			idx.nodes[n.Name] = n
		}
		if n.Virtual {
			if n.Site == "" {
				v.errorf(f+".site", "virtual node %q needs a site", n.Name)
			}
			if len(n.GPUs) > 0 {
				v.errorf(f+".gpus", "virtual node %q cannot have local GPUs; its pods use requests", n.Name)
			}
			if len(n.FPGAs) > 0 {
				v.errorf(f+".fpgas", "virtual node %q cannot have local FPGAs; its pods use requests", n.Name)
			}
			continue
		}
		gpuIdx := map[int]bool{}
		for j := range n.GPUs {
			g := &n.GPUs[j]
			gf := fmt.Sprintf("%s.gpus[%d]", f, j)
			if g.Index < 0 {
				v.errorf(gf+".index", "negative GPU index %d", g.Index)
			} else if gpuIdx[g.Index] {
				v.errorf(gf+".index", "duplicate GPU index %d", g.Index)
			}
			gpuIdx[g.Index] = true
			if !strings.HasPrefix(g.UUID, "GPU-") {
				v.errorf(gf+".uuid", "GPU UUID %q must start with GPU-", g.UUID)
			} else if other, dup := uuids[g.UUID]; dup {
				v.errorf(gf+".uuid", "UUID %q already used by %s", g.UUID, other)
			} else {
				uuids[g.UUID] = gf
				idx.gpus[g.UUID] = gpuRef{node: n, gpu: g}
			}
			if g.Model == "" {
				v.errorf(gf+".model", "missing GPU model")
			}
			if g.Replicas < 0 || g.Replicas > MaxReplicas {
				v.errorf(gf+".replicas", "replicas %d out of range (0..%d)", g.Replicas, MaxReplicas)
			}
			if len(g.MIG) == 0 {
				continue
			}
			if g.Replicas > 1 {
				v.errorf(gf+".replicas", "time-slicing of MIG instances is not supported")
			}
			geo, ok := accounting.GeometryOf(g.Model)
			if !ok {
				v.errorf(gf+".mig", "model %q does not support MIG", g.Model)
				continue
			}
			v.migLayout(gf, g, geo, uuids, idx, n)
		}
		for j := range n.FPGAs {
			fp := &n.FPGAs[j]
			ff := fmt.Sprintf("%s.fpgas[%d]", f, j)
			if !pciRE.MatchString(fp.PCI) {
				v.errorf(ff+".pci", "PCI address %q is not of the form 0000:3b:00.1", fp.PCI)
			}
			key := n.Name + "/" + fp.PCI
			if _, dup := idx.fpgas[key]; dup {
				v.errorf(ff+".pci", "duplicate FPGA %q", fp.PCI)
			}
			idx.fpgas[key] = fpgaRef{node: n, fpga: fp}
			if fp.Model == "" {
				v.errorf(ff+".model", "missing FPGA model")
			}
		}
	}
	return idx
}

// gpuInstance is what the MIG devices of one GPU instance use.
type gpuInstance struct {
	field          string // the first MIG device of the instance
	slices, memory int    // compute and memory slices of the instance
	used           int    // compute slices its compute instances hold
}

// migLayout checks the MIG devices of a GPU against the geometry of its
// model: known profiles, unique instance IDs, and no more compute or memory
// slices than the GPU has. Devices of one GPU instance ("1c.3g.40gb" and
// "2c.3g.40gb" with the same gi) share its slices.
func (v *validator) migLayout(gf string, g *GPU, geo accounting.Geometry, uuids map[string]string, idx *index, n *Node) {
	instances := map[int]*gpuInstance{}
	ids := map[[2]int]bool{}
	for k := range g.MIG {
		m := &g.MIG[k]
		mf := fmt.Sprintf("%s.mig[%d]", gf, k)
		if !strings.HasPrefix(m.UUID, "MIG-") {
			v.errorf(mf+".uuid", "MIG UUID %q must start with MIG-", m.UUID)
		} else if other, dup := uuids[m.UUID]; dup {
			v.errorf(mf+".uuid", "UUID %q already used by %s", m.UUID, other)
		} else {
			uuids[m.UUID] = mf
			idx.migs[m.UUID] = migRef{node: n, gpu: g, mig: m}
		}
		if m.GI < 0 || m.CI < 0 {
			v.errorf(mf+".gi", "negative GPU or compute instance ID")
		}
		if ids[[2]int{m.GI, m.CI}] {
			v.errorf(mf+".gi", "duplicate MIG device gi %d, ci %d", m.GI, m.CI)
		}
		ids[[2]int{m.GI, m.CI}] = true
		idx.legacy[fmt.Sprintf("MIG-GPU-%s/%d/%d", strings.TrimPrefix(g.UUID, "GPU-"), m.GI, m.CI)] = m.UUID
		if _, err := accounting.MIGWeight(g.Model, m.Profile); err != nil {
			v.errorf(mf+".profile", "%v", err)
			continue
		}
		p, _ := accounting.ParseProfile(m.Profile) // MIGWeight parsed it
		mem := (p.MemoryGiB + geo.MemorySliceGiB - 1) / geo.MemorySliceGiB
		ci := p.ComputeInstance
		if ci == 0 {
			ci = p.ComputeSlices
		}
		gi, seen := instances[m.GI]
		if !seen {
			instances[m.GI] = &gpuInstance{field: mf, slices: p.ComputeSlices, memory: mem, used: ci}
			continue
		}
		if gi.slices != p.ComputeSlices || gi.memory != mem {
			v.errorf(mf+".profile", "profile %s does not match GPU instance %d of %s", m.Profile, m.GI, gi.field)
			continue
		}
		gi.used += ci
		if gi.used > gi.slices {
			v.errorf(mf+".profile", "GPU instance %d has %d compute slices; its compute instances use %d", m.GI, gi.slices, gi.used)
		}
	}
	slices, memory := 0, 0
	for _, gi := range instances {
		slices += gi.slices
		memory += gi.memory
	}
	if slices > geo.ComputeSlices {
		v.errorf(gf+".mig", "MIG layout uses %d compute slices; %s has %d", slices, geo.Family, geo.ComputeSlices)
	}
	if memory > geo.MemorySlices {
		v.errorf(gf+".mig", "MIG layout uses %d memory slices; %s has %d", memory, geo.Family, geo.MemorySlices)
	}
}

// holding is one claim on a device's capacity, for the overlap check.
type holding struct {
	start, end time.Time
	milli      int64
	pod        string
	field      string
}

func (v *validator) pods(s *Scenario, idx *index) {
	uids := map[string]string{}
	names := map[string]bool{}
	claims := map[string][]holding{}
	far := s.End.Add(100 * 365 * 24 * time.Hour)
	for i := range s.Pods {
		p := &s.Pods[i]
		f := fmt.Sprintf("pods[%d]", i)
		if p.Name == "" {
			v.errorf(f+".name", "missing pod name")
		}
		if p.Namespace == "" {
			v.errorf(f+".namespace", "missing namespace")
		}
		if key := p.Namespace + "/" + p.Name; names[key] {
			v.errorf(f+".name", "duplicate pod %q", key)
		} else {
			names[key] = true
		}
		if p.UID == "" {
			v.errorf(f+".uid", "missing pod UID")
		} else if other, dup := uids[p.UID]; dup {
			v.errorf(f+".uid", "UID %q already used by %s", p.UID, other)
		}
		uids[p.UID] = f
		if p.Start.IsZero() {
			v.errorf(f+".start", "missing start time")
		} else if !wholeSecond(p.Start) {
			v.errorf(f+".start", "start %s is not a whole second, as Kubernetes reports pod times", p.Start.Format(time.RFC3339Nano))
		}
		end := far
		if p.End != nil {
			end = *p.End
			if !p.End.After(p.Start) {
				v.errorf(f+".end", "end %s is not after start %s", p.End.Format(time.RFC3339), p.Start.Format(time.RFC3339))
			} else if !wholeSecond(*p.End) {
				v.errorf(f+".end", "end %s is not a whole second, as Kubernetes reports pod times", p.End.Format(time.RFC3339Nano))
			}
		}
		switch p.Profile.Kind {
		case "", ProfileConstant, ProfileBursty, ProfileIdle, ProfileDiurnal:
		default:
			v.errorf(f+".profile.kind", "unknown profile kind %q (constant, bursty, idle, diurnal)", p.Profile.Kind)
		}
		if !(p.Profile.Mean >= 0 && p.Profile.Mean <= 1) { // NaN too
			v.errorf(f+".profile.mean", "mean activity %v outside [0, 1]", p.Profile.Mean)
		}
		node, ok := idx.nodes[p.Node]
		switch {
		case p.Node == "":
			v.errorf(f+".node", "missing node")
			continue
		case !ok:
			v.errorf(f+".node", "unknown node %q", p.Node)
			continue
		}
		if node.Virtual {
			if len(p.Devices) > 0 {
				v.errorf(f+".devices", "pod on virtual node %q lists devices; use requests", node.Name)
			}
			if len(p.Requests) == 0 {
				v.errorf(f+".requests", "pod on virtual node %q requests nothing", node.Name)
			}
			for _, r := range sortedKeys(p.Requests) {
				if r != accounting.ResourceGPU {
					v.errorf(f+".requests", "resource %q cannot be offloaded: virtual nodes account whole GPUs (%s)", r, accounting.ResourceGPU)
				}
				if q := p.Requests[r]; q <= 0 {
					v.errorf(f+".requests", "request %d for %s is not positive", q, r)
				} else if q > MaxRequest {
					v.errorf(f+".requests", "request %d for %s is more than %d", q, r, MaxRequest)
				}
			}
			continue
		}
		if len(p.Requests) > 0 {
			v.errorf(f+".requests", "requests are only for pods on virtual nodes; list devices")
		}
		if len(p.Devices) == 0 {
			v.errorf(f+".devices", "pod holds no device")
		}
		for j, d := range p.Devices {
			df := fmt.Sprintf("%s.devices[%d]", f, j)
			r, err := idx.resolve(node, d)
			if err != nil {
				var re *refError
				if errors.As(err, &re) {
					v.errorf(df+"."+re.field, "%v", err)
				} else {
					v.errorf(df, "%v", err)
				}
				continue
			}
			h := holding{start: p.Start, end: end, milli: r.capacity, pod: p.Namespace + "/" + p.Name, field: df}
			claims[r.key] = append(claims[r.key], h)
			if r.replica != "" {
				// A time-slicing replica is handed to one container at a time.
				h.milli = accounting.MilliPerGPU
				claims[r.replica] = append(claims[r.replica], h)
			}
		}
	}
	keys := make([]string, 0, len(claims))
	for k := range claims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v.overlaps(k, claims[k])
	}
}

// overlaps reports the first moment a device's claims exceed one device.
func (v *validator) overlaps(key string, hs []holding) {
	if len(hs) < 2 {
		return
	}
	type ev struct {
		t     time.Time
		delta int64
		h     int
	}
	evs := make([]ev, 0, 2*len(hs))
	for i, h := range hs {
		if !h.end.After(h.start) {
			continue // reported on the pod's end
		}
		evs = append(evs, ev{h.start, h.milli, i}, ev{h.end, -h.milli, i})
	}
	sort.SliceStable(evs, func(a, b int) bool {
		if !evs[a].t.Equal(evs[b].t) {
			return evs[a].t.Before(evs[b].t)
		}
		return (evs[a].delta < 0) && (evs[b].delta > 0) // ends before starts
	})
	var used int64
	active := map[int]bool{}
	for _, e := range evs {
		used += e.delta
		if e.delta < 0 {
			delete(active, e.h)
			continue
		}
		active[e.h] = true
		if used > accounting.MilliPerGPU {
			var others []string
			for o := range active {
				if o != e.h {
					others = append(others, hs[o].pod)
				}
			}
			sort.Strings(others)
			v.errorf(hs[e.h].field, "device %s is over-committed at %s (%d milli held): pod %s overlaps %s",
				key, e.t.Format(time.RFC3339), used, hs[e.h].pod, strings.Join(others, ", "))
			return
		}
	}
}

func (v *validator) faults(s *Scenario, idx *index) {
	for i, fl := range s.Faults {
		f := fmt.Sprintf("faults[%d]", i)
		switch fl.Kind {
		case FaultExporterRestart, FaultScrapeGap:
			if fl.Node != "" {
				if n, ok := idx.nodes[fl.Node]; !ok {
					v.errorf(f+".node", "unknown node %q", fl.Node)
				} else if n.Virtual {
					v.errorf(f+".node", "virtual node %q runs no node exporter; its pods are seen by the cluster exporter", fl.Node)
				}
			}
		case FaultAggregatorCrash, FaultDatabaseOutage:
			if fl.Node != "" {
				v.errorf(f+".node", "a %s fault is not scoped to a node", fl.Kind)
			}
		default:
			v.errorf(f+".kind", "unknown fault kind %q (exporter_restart, scrape_gap, aggregator_crash, database_outage)", fl.Kind)
		}
		if fl.At.IsZero() {
			v.errorf(f+".at", "missing fault time")
		} else if fl.At.Before(s.Start) || !fl.At.Before(s.End) {
			v.errorf(f+".at", "fault time %s is outside the scenario [%s, %s)", fl.At.Format(time.RFC3339),
				s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339))
		}
		if fl.Duration < 0 {
			v.errorf(f+".duration", "negative duration")
		}
		if fl.Kind != FaultAggregatorCrash && fl.Duration == 0 {
			v.errorf(f+".duration", "a %s fault needs a duration", fl.Kind)
		}
	}
	v.overlappingFaults(s)
}

// overlappingFaults rejects two faults of one kind whose scopes meet and
// whose times overlap: the second would start while the first still holds
// (an outage inside an outage, a crash of an aggregator that is down), and
// when each ends would be ambiguous. An aggregator crash lasts at least a
// second here: two at one instant are one crash written twice.
func (v *validator) overlappingFaults(s *Scenario) {
	for i := range s.Faults {
		a := &s.Faults[i]
		for j := i + 1; j < len(s.Faults); j++ {
			b := &s.Faults[j]
			if a.Kind != b.Kind || (a.Node != "" && b.Node != "" && a.Node != b.Node) {
				continue
			}
			aEnd := a.At.Add(max(a.Duration.D(), time.Second))
			bEnd := b.At.Add(max(b.Duration.D(), time.Second))
			if a.At.Before(bEnd) && b.At.Before(aEnd) {
				v.errorf(fmt.Sprintf("faults[%d]", j), "%s at %s overlaps faults[%d] (%s at %s for %s)",
					b.Kind, b.At.Format(time.RFC3339), i, a.Kind, a.At.Format(time.RFC3339), a.Duration.D())
			}
		}
	}
}

func wholeSecond(t time.Time) bool { return t.Truncate(time.Second).Equal(t) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
