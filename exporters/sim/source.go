// Package sim is the exporter's simulated source: it serves the devices and
// the allocations of one node of a scenario (sim/scenario) as the real
// sources would, on a clock the caller chooses, so that a month of a
// cluster can be replayed in seconds and the ledger checked against the
// scenario's exact intervals.
//
// Everything static is prepared when the source is built: the node's
// allocations sorted by start, their label pairs, the device lists. A scrape
// only finds the allocations active or recently ended at its instant (a
// binary search over starts and a scan bounded by the longest allocation),
// evaluates the device model of model.go, and advances the energy and
// execution counters from where the previous scrape left them.
package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/sim/clock"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// Errors of Check.
var (
	// ErrOutOfRange: the instant is outside the scenario.
	ErrOutOfRange = errors.New("instant outside the scenario")
	// ErrUnavailable: the node's exporter is down at that instant (an
	// exporter_restart or scrape_gap fault).
	ErrUnavailable = errors.New("exporter unavailable")
	// ErrUnknownNode: the scenario has no such node.
	ErrUnknownNode = errors.New("unknown node")
)

// Options tune a Source.
type Options struct {
	// Retention is how long ended allocations stay exported; zero means the
	// scenario's (scenario.Retention, one hour by default).
	Retention time.Duration
	// Logger receives construction notes; nil discards them.
	Logger *slog.Logger
}

// Source serves one node of a scenario. It implements collector.Collector
// (reading its clock) and its At method pins it to an instant. It is safe
// for concurrent use.
type Source struct {
	scen      *scenario.Scenario
	node      *scenario.Node
	clk       clock.Clock
	retention int64 // ms
	startMs   int64
	endMs     int64

	outages  []outage
	restarts []int64 // end of each exporter restart of this node, ms, sorted

	gpus      []*gpuState
	fpgas     []*fpgaState
	closed    []*allocState // ended within the scenario or later, sorted by start
	open      []*allocState // running past the scenario's end, sorted by start
	maxClosed int64         // longest closed allocation, ms

	mu sync.Mutex // guards the counter caches
}

type outage struct {
	fault    scenario.Fault
	from, to int64 // ms, [from, to)
}

type allocState struct {
	startMs, endMs int64 // endMs is MaxInt64 when open
	start, end     float64
	weight         float64
	devices        float64
	pod            *scenario.Pod
	labels         []*dto.LabelPair
	gpu            int // index in Source.gpus, -1 when none
	mig            int // index in that GPU's migs, -1 when none
	fpga           int // index in Source.fpgas, -1 when none
	weightMilli    int64
}

type gpuState struct {
	maxEnd      []int64 // prefixMaxEnd(holds)
	spec        GPUSpec
	migEnabled  bool
	labels      []*dto.LabelPair
	info        []*dto.LabelPair
	eccCorr     []*dto.LabelPair
	eccUncorr   []*dto.LabelPair
	migs        []*migState
	holds       []Hold
	energy      counterCache
	memoryTotal int64
}

// liveFrom returns the holds that may still be active at ms: those after
// the last one whose prefix of holds all ended by ms. maxEnd[i] is the
// latest end among holds[:i+1], so it never decreases.
func liveFrom(holds []Hold, maxEnd []int64, ms int64) []Hold {
	return holds[sort.Search(len(maxEnd), func(i int) bool { return maxEnd[i] > ms }):]
}

func prefixMaxEnd(holds []Hold) []int64 {
	out := make([]int64, len(holds))
	var m int64 = math.MinInt64
	for i := range holds {
		m = max(m, holds[i].endMs())
		out[i] = m
	}
	return out
}

type migState struct {
	labels      []*dto.LabelPair
	weight      float64
	memoryTotal int64
}

type fpgaState struct {
	maxEnd  []int64 // prefixMaxEnd(holds)
	spec    FPGASpec
	info    []*dto.LabelPair
	labels  []*dto.LabelPair
	sensors [len(FPGASensors)][]*dto.LabelPair
	cu      []*dto.LabelPair
	holds   []Hold
	execs   counterCache
}

// New builds the source of node from a valid scenario and its allocations
// (s.Allocations(rules); those of other nodes are ignored). clk is the
// simulated clock Update reads.
func New(s *scenario.Scenario, allocs []scenario.Allocation, node string, clk clock.Clock, opts Options) (*Source, error) {
	if s == nil {
		return nil, errors.New("sim: no scenario")
	}
	if clk == nil {
		return nil, errors.New("sim: no clock")
	}
	n, ok := s.Node(node)
	if !ok {
		return nil, fmt.Errorf("%w %q in scenario %s (nodes: %s)", ErrUnknownNode, node, s.Cluster, nodeList(s, 8))
	}
	ret := opts.Retention
	if ret == 0 {
		ret = s.Retention()
	}
	if ret < 0 {
		return nil, fmt.Errorf("sim: negative retention %s", ret)
	}
	src := &Source{scen: s, node: n, clk: clk, retention: ret.Milliseconds(),
		startMs: s.Start.UnixMilli(), endMs: s.End.UnixMilli()}
	src.faults(s)
	if err := src.devices(); err != nil {
		return nil, err
	}
	if err := src.allocations(allocs); err != nil {
		return nil, err
	}
	if opts.Logger != nil {
		opts.Logger.Debug("sim source ready", "node", node, "gpus", len(src.gpus), "fpgas", len(src.fpgas),
			"allocations", len(src.closed)+len(src.open))
	}
	return src, nil
}

func nodeList(s *scenario.Scenario, max int) string {
	names := make([]string, 0, len(s.Nodes))
	for _, n := range s.Nodes {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	if len(names) > max {
		return strings.Join(names[:max], ", ") + fmt.Sprintf(", … and %d more", len(names)-max)
	}
	return strings.Join(names, ", ")
}

func (s *Source) faults(sc *scenario.Scenario) {
	for _, f := range sc.Faults {
		if f.Kind != scenario.FaultExporterRestart && f.Kind != scenario.FaultScrapeGap {
			continue
		}
		if f.Node != "" && f.Node != s.node.Name {
			continue
		}
		o := outage{fault: f, from: f.At.UnixMilli(), to: f.At.Add(f.Duration.D()).UnixMilli()}
		s.outages = append(s.outages, o)
		if f.Kind == scenario.FaultExporterRestart {
			s.restarts = append(s.restarts, o.to)
		}
	}
	sort.Slice(s.outages, func(i, j int) bool { return s.outages[i].from < s.outages[j].from })
	sort.Slice(s.restarts, func(i, j int) bool { return s.restarts[i] < s.restarts[j] })
}

// pairs builds the label pairs of desc for values, checking them once.
func pairs(desc *prometheus.Desc, values ...string) ([]*dto.LabelPair, error) {
	if _, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, 0, values...); err != nil {
		return nil, fmt.Errorf("sim: labels %q: %w", values, err)
	}
	return prometheus.MakeLabelPairs(desc, values), nil
}

func (s *Source) devices() error {
	node := s.node.Name
	for i := range s.node.GPUs {
		g := &s.node.GPUs[i]
		idx := strconv.Itoa(g.Index)
		st := &gpuState{spec: SpecOf(g.Model), migEnabled: len(g.MIG) > 0}
		st.memoryTotal = st.spec.MemoryBytes
		mode := "disabled"
		if st.migEnabled {
			mode = "enabled"
		}
		var err error
		if st.labels, err = pairs(gpuMemTotalDesc, node, idx, g.UUID); err != nil {
			return err
		}
		if st.info, err = pairs(gpuInfoDesc, node, idx, g.UUID, g.Model, mode); err != nil {
			return err
		}
		if st.eccCorr, err = pairs(gpuECCDesc, node, idx, g.UUID, "corrected"); err != nil {
			return err
		}
		if st.eccUncorr, err = pairs(gpuECCDesc, node, idx, g.UUID, "uncorrected"); err != nil {
			return err
		}
		for _, m := range g.MIG {
			w, err := accounting.MIGWeight(g.Model, m.Profile)
			if err != nil {
				return fmt.Errorf("sim: GPU %s: %w", g.UUID, err)
			}
			p, err := accounting.ParseProfile(m.Profile)
			if err != nil {
				return fmt.Errorf("sim: GPU %s: %w", g.UUID, err)
			}
			ms := &migState{weight: float64(w) / accounting.MilliPerGPU, memoryTotal: int64(p.MemoryGiB) * GiB}
			if ms.labels, err = pairs(migInfoDesc, node, idx, g.UUID, m.UUID, strconv.Itoa(m.GI), strconv.Itoa(m.CI), m.Profile); err != nil {
				return err
			}
			st.migs = append(st.migs, ms)
		}
		s.gpus = append(s.gpus, st)
	}
	for i := range s.node.FPGAs {
		f := &s.node.FPGAs[i]
		st := &fpgaState{spec: FPGASpecOf(f.Model)}
		var err error
		if st.info, err = pairs(fpgaInfoDesc, node, f.PCI, f.Model, f.Shell, xclbinUUID(node, f.PCI)); err != nil {
			return err
		}
		if st.labels, err = pairs(fpgaPowerDesc, node, f.PCI); err != nil {
			return err
		}
		for k, name := range FPGASensors {
			if st.sensors[k], err = pairs(fpgaTempDesc, node, f.PCI, name); err != nil {
				return err
			}
		}
		if st.cu, err = pairs(fpgaCUDesc, node, f.PCI, "0"); err != nil {
			return err
		}
		s.fpgas = append(s.fpgas, st)
	}
	return nil
}

// xclbinUUID is the simulated UUID of the xclbin loaded on a card: stable
// for the card, derived from its node and PCI address.
func xclbinUUID(node, pci string) string {
	a := mix(seedOf(node+"/"+pci), 0, 3)
	b := mix(seedOf(node+"/"+pci), 0, 4)
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", a>>32, (a>>16)&0xffff, a&0xfff, (b>>48)&0xfff, b&0xffffffffffff)
}

func (s *Source) allocations(all []scenario.Allocation) error {
	gpuByUUID := map[string]int{}
	for i := range s.node.GPUs {
		gpuByUUID[s.node.GPUs[i].UUID] = i
	}
	fpgaByPCI := map[string]int{}
	for i := range s.node.FPGAs {
		fpgaByPCI[s.node.FPGAs[i].PCI] = i
	}
	for i := range all {
		a := &all[i]
		if a.Node != s.node.Name {
			continue
		}
		if a.Pod == nil {
			return fmt.Errorf("sim: allocation %d of node %s has no pod", i, a.Node)
		}
		gpu := ""
		if a.GPUIndex >= 0 {
			gpu = strconv.Itoa(a.GPUIndex)
		}
		st := &allocState{startMs: a.Start.UnixMilli(), endMs: math.MaxInt64, pod: a.Pod,
			weight: float64(a.WeightMilli) / accounting.MilliPerGPU, weightMilli: a.WeightMilli,
			devices: float64(a.Devices), gpu: -1, mig: -1, fpga: -1}
		st.start = float64(st.startMs) / 1000
		if !a.Open() {
			st.endMs = a.End.UnixMilli()
			st.end = float64(st.endMs) / 1000
		}
		var err error
		st.labels, err = pairs(allocStartDesc, s.node.Name, a.Resource, string(a.Class), a.DeviceID, a.GPUUUID, gpu,
			a.Model, a.Profile, a.Pod.Namespace, a.Pod.Name, a.Pod.UID, a.User, a.Project, a.Queue, a.Site)
		if err != nil {
			return err
		}
		hold := Hold{Pod: a.Pod, WeightMilli: a.WeightMilli, Start: a.Start, End: a.End}
		switch a.Class {
		case accounting.ClassGPU, accounting.ClassShared, accounting.ClassMIG:
			gi, ok := gpuByUUID[a.GPUUUID]
			if !ok {
				return fmt.Errorf("sim: pod %s/%s holds GPU %q, not on node %s", a.Pod.Namespace, a.Pod.Name, a.GPUUUID, s.node.Name)
			}
			st.gpu = gi
			g := &s.node.GPUs[gi]
			if a.Class == accounting.ClassMIG {
				for k, m := range g.MIG {
					if m.GI == a.GI && m.CI == a.CI {
						st.mig = k
					}
				}
				if st.mig < 0 {
					return fmt.Errorf("sim: pod %s/%s holds MIG %d/%d, not on GPU %s", a.Pod.Namespace, a.Pod.Name, a.GI, a.CI, g.UUID)
				}
			}
			s.gpus[gi].holds = append(s.gpus[gi].holds, hold)
		case accounting.ClassFPGA:
			fi, ok := fpgaByPCI[a.DeviceID]
			if !ok {
				return fmt.Errorf("sim: pod %s/%s holds FPGA %q, not on node %s", a.Pod.Namespace, a.Pod.Name, a.DeviceID, s.node.Name)
			}
			st.fpga = fi
			s.fpgas[fi].holds = append(s.fpgas[fi].holds, hold)
		}
		if a.Open() {
			s.open = append(s.open, st)
		} else {
			s.closed = append(s.closed, st)
			s.maxClosed = max(s.maxClosed, st.endMs-st.startMs)
		}
	}
	byStart := func(as []*allocState) {
		sort.SliceStable(as, func(i, j int) bool { return as[i].startMs < as[j].startMs })
	}
	byStart(s.closed)
	byStart(s.open)
	for _, g := range s.gpus {
		sort.SliceStable(g.holds, func(i, j int) bool { return g.holds[i].Start.Before(g.holds[j].Start) })
		g.maxEnd = prefixMaxEnd(g.holds)
		g.energy.init(s.startMs)
	}
	for _, f := range s.fpgas {
		sort.SliceStable(f.holds, func(i, j int) bool { return f.holds[i].Start.Before(f.holds[j].Start) })
		f.maxEnd = prefixMaxEnd(f.holds)
		f.execs.init(s.startMs)
	}
	return nil
}

// Node returns the name of the node served.
func (s *Source) Node() string { return s.node.Name }

// Now reads the source's clock.
func (s *Source) Now() time.Time { return s.clk.Now() }

// Range returns the instants the source serves: the scenario's [start, end].
func (s *Source) Range() (start, end time.Time) { return s.scen.Start, s.scen.End }

// Retention returns how long ended allocations stay exported.
func (s *Source) Retention() time.Duration { return time.Duration(s.retention) * time.Millisecond }

// Check tells whether the node's exporter answers at t: an error wrapping
// ErrOutOfRange when t is outside the scenario, ErrUnavailable while an
// exporter_restart or scrape_gap fault of this node (or of every node) is
// in progress. Update and At serve any instant of the range; callers that
// simulate the HTTP endpoint (exporters.NewSimNode) call Check first.
func (s *Source) Check(t time.Time) error {
	ms := t.UnixMilli()
	if ms < s.startMs || ms > s.endMs {
		return fmt.Errorf("%w: %s is outside [%s, %s]", ErrOutOfRange, t.UTC().Format(time.RFC3339Nano),
			s.scen.Start.UTC().Format(time.RFC3339), s.scen.End.UTC().Format(time.RFC3339))
	}
	for _, o := range s.outages {
		if o.from > ms {
			break
		}
		if ms < o.to {
			return fmt.Errorf("%w: simulated %s of node %s from %s for %s", ErrUnavailable, o.fault.Kind, s.node.Name,
				o.fault.At.UTC().Format(time.RFC3339), o.fault.Duration.D())
		}
	}
	return nil
}

// Update sends the node's metrics at the clock's current time.
func (s *Source) Update(ch chan<- prometheus.Metric) error { return s.update(ch, s.clk.Now()) }

// At returns the source pinned to t, for one scrape. It fails with
// ErrOutOfRange outside the scenario.
func (s *Source) At(t time.Time) (collector.Collector, error) {
	ms := t.UnixMilli()
	if ms < s.startMs || ms > s.endMs {
		return nil, s.Check(t)
	}
	return pinned{s: s, t: t}, nil
}

type pinned struct {
	s *Source
	t time.Time
}

func (p pinned) Update(ch chan<- prometheus.Metric) error { return p.s.update(ch, p.t) }

// gaugeSample and counterSample are metrics whose label pairs were built
// once, with the source; each costs one allocation per scrape.
type gaugeSample struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  float64
	pb     dto.Gauge
}

func (m *gaugeSample) Desc() *prometheus.Desc { return m.desc }

func (m *gaugeSample) Write(out *dto.Metric) error {
	m.pb.Value = &m.value
	out.Label, out.Gauge = m.labels, &m.pb
	return nil
}

type counterSample struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  float64
	pb     dto.Counter
}

func (m *counterSample) Desc() *prometheus.Desc { return m.desc }

func (m *counterSample) Write(out *dto.Metric) error {
	m.pb.Value = &m.value
	out.Label, out.Counter = m.labels, &m.pb
	return nil
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, l []*dto.LabelPair, v float64) {
	ch <- &gaugeSample{desc: d, labels: l, value: v}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, l []*dto.LabelPair, v float64) {
	ch <- &counterSample{desc: d, labels: l, value: v}
}

// scratch is the per-scrape state of the devices.
type scratch struct {
	gpuUtil []int64 // Σ activity (thousandths) × weight (milli-GPU)
	gpuMem  []int64
	migAct  [][]int64 // thousandths
	migHeld [][]bool
	fpgaAct []int64 // thousandths
}

func (s *Source) update(ch chan<- prometheus.Metric, t time.Time) error {
	ms := t.UnixMilli()
	if ms < s.startMs || ms > s.endMs {
		return s.Check(t)
	}
	minute := minuteOf(ms)
	sc := scratch{
		gpuUtil: make([]int64, len(s.gpus)), gpuMem: make([]int64, len(s.gpus)),
		migAct: make([][]int64, len(s.gpus)), migHeld: make([][]bool, len(s.gpus)),
		fpgaAct: make([]int64, len(s.fpgas)),
	}
	for i, g := range s.gpus {
		if len(g.migs) > 0 {
			sc.migAct[i] = make([]int64, len(g.migs))
			sc.migHeld[i] = make([]bool, len(g.migs))
		}
	}

	gauge(ch, timeDesc, nil, float64(ms)/1000)

	// Allocations: the open ones that have started, and the closed ones
	// whose start lies within the longest allocation plus the retention.
	forgetBefore := s.lastRestart(ms)
	emit := func(a *allocState) {
		if a.startMs > ms {
			return
		}
		if ms < a.endMs { // active
			act := profileMilli(a.pod.UID, a.pod.Profile, minute)
			gauge(ch, allocStartDesc, a.labels, a.start)
			gauge(ch, allocWeightDesc, a.labels, a.weight)
			gauge(ch, allocDevicesDesc, a.labels, a.devices)
			gauge(ch, allocActivityDesc, a.labels, float64(act)/1000)
			s.account(&sc, a, act)
			return
		}
		if ms-a.endMs >= s.retention || a.endMs <= forgetBefore {
			return
		}
		gauge(ch, allocStartDesc, a.labels, a.start)
		gauge(ch, allocEndDesc, a.labels, a.end)
		gauge(ch, allocWeightDesc, a.labels, a.weight)
		gauge(ch, allocDevicesDesc, a.labels, a.devices)
	}
	for _, a := range s.open {
		if a.startMs > ms {
			break
		}
		emit(a)
	}
	hi := sort.Search(len(s.closed), func(i int) bool { return s.closed[i].startMs > ms })
	lo := sort.Search(hi, func(i int) bool { return s.closed[i].startMs > ms-s.retention-s.maxClosed })
	for _, a := range s.closed[lo:hi] {
		emit(a)
	}

	s.mu.Lock()
	energy := make([]int64, len(s.gpus))
	for i, g := range s.gpus {
		energy[i] = g.energy.at(ms, func(from, to int64) int64 {
			return EnergyMicrojoules(g.spec, liveFrom(g.holds, g.maxEnd, from), time.UnixMilli(from), time.UnixMilli(to))
		})
	}
	execs := make([]int64, len(s.fpgas))
	for i, f := range s.fpgas {
		execs[i] = f.execs.at(ms, func(from, to int64) int64 {
			return f.spec.ExecutionsMicro(liveFrom(f.holds, f.maxEnd, from), time.UnixMilli(from), time.UnixMilli(to))
		})
	}
	s.mu.Unlock()

	for i, g := range s.gpus {
		u := min(sc.gpuUtil[i], 1_000_000)
		mem := min(sc.gpuMem[i], g.memoryTotal)
		gauge(ch, gpuInfoDesc, g.info, 1)
		gauge(ch, gpuMemTotalDesc, g.labels, float64(g.memoryTotal))
		gauge(ch, gpuMemUsedDesc, g.labels, float64(mem))
		gauge(ch, gpuPowerDesc, g.labels, float64(g.spec.PowerMilliwatts(u))/1000)
		counter(ch, gpuEnergyDesc, g.labels, float64(energy[i])/1e6)
		gauge(ch, gpuTempDesc, g.labels, float64(g.spec.TemperatureCelsius(u)))
		gauge(ch, gpuClockDesc, g.labels, g.spec.SMClockHz(u))
		if !g.migEnabled {
			gauge(ch, gpuUtilDesc, g.labels, float64(u)/1e6)
		}
		counter(ch, gpuECCDesc, g.eccCorr, 0)
		counter(ch, gpuECCDesc, g.eccUncorr, 0)
		for k, m := range g.migs {
			act := sc.migAct[i][k]
			gauge(ch, migInfoDesc, m.labels, 1)
			gauge(ch, migWeightDesc, m.labels, m.weight)
			gauge(ch, migMemTotalDesc, m.labels, float64(m.memoryTotal))
			gauge(ch, migMemUsedDesc, m.labels, float64(MemoryUsed(m.memoryTotal, sc.migHeld[i][k], act)))
			gauge(ch, migActivityDesc, m.labels, float64(act)/1000)
		}
	}
	for i, f := range s.fpgas {
		a := min(sc.fpgaAct[i], 1000)
		gauge(ch, fpgaInfoDesc, f.info, 1)
		gauge(ch, fpgaPowerDesc, f.labels, float64(f.spec.PowerMilliwatts(a))/1000)
		for k, v := range f.spec.Temperatures(a) {
			gauge(ch, fpgaTempDesc, f.sensors[k], float64(v))
		}
		counter(ch, fpgaCUDesc, f.cu, float64(execs[i]/1_000_000))
	}
	return nil
}

// account adds an active allocation to its device's figures.
func (s *Source) account(sc *scratch, a *allocState, act int64) {
	switch {
	case a.gpu >= 0 && a.mig >= 0:
		m := s.gpus[a.gpu].migs[a.mig]
		sc.migAct[a.gpu][a.mig] += act
		sc.migHeld[a.gpu][a.mig] = true
		sc.gpuUtil[a.gpu] += act * a.weightMilli
		sc.gpuMem[a.gpu] += MemoryUsed(m.memoryTotal, true, act)
	case a.gpu >= 0:
		g := s.gpus[a.gpu]
		sc.gpuUtil[a.gpu] += act * a.weightMilli
		sc.gpuMem[a.gpu] += MemoryUsed(g.memoryTotal/1000*a.weightMilli, true, act)
	case a.fpga >= 0:
		sc.fpgaAct[a.fpga] += act
	}
}

// lastRestart returns the end of the last exporter restart finished by ms
// (math.MinInt64 when none): ended allocations whose end came before it are
// forgotten, as a restarted exporter never saw them.
func (s *Source) lastRestart(ms int64) int64 {
	i := sort.Search(len(s.restarts), func(i int) bool { return s.restarts[i] > ms })
	if i == 0 {
		return math.MinInt64
	}
	return s.restarts[i-1]
}

// counterCache keeps a counter integrated up to a cursor, with checkpoints
// every hour from the origin, so that moving forward costs only the new
// stretch and moving backwards at most an hour's integration.
type counterCache struct {
	origin      int64
	cursor      int64
	total       int64
	checkpoints []int64 // total at origin + k hours
}

const hourMs = int64(time.Hour / time.Millisecond)

func (c *counterCache) init(origin int64) {
	c.origin, c.cursor, c.total, c.checkpoints = origin, origin, 0, []int64{0}
}

// at returns the counter at t, integrating with f(from, to) as needed.
func (c *counterCache) at(t int64, f func(from, to int64) int64) int64 {
	if t <= c.origin {
		return 0
	}
	if t < c.cursor {
		k := min(int((t-c.origin)/hourMs), len(c.checkpoints)-1)
		c.cursor, c.total = c.origin+int64(k)*hourMs, c.checkpoints[k]
	}
	for {
		cp := c.origin + int64(len(c.checkpoints))*hourMs
		if cp > t {
			break
		}
		c.total += f(c.cursor, cp)
		c.cursor = cp
		c.checkpoints = append(c.checkpoints, c.total)
	}
	c.total += f(c.cursor, t)
	c.cursor = t
	return c.total
}
