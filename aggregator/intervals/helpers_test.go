package intervals

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/exporters/sim"
	"github.com/gpuledger/gpuledger/sim/clock"
	"github.com/gpuledger/gpuledger/sim/generate"
	"github.com/gpuledger/gpuledger/sim/scenario"
	"github.com/gpuledger/gpuledger/sim/truth"
)

// This file turns a scenario into the scrapes its simulated exporters
// (exporters/sim) answer, through a minimal test-only conversion from
// metric families to observe.Scrape, and emulates the ledger's view of the
// windows: the latest version of every interval, open ones running to the
// watermark.

const smallPath = "../../testdata/scenarios/small.yaml"

// descNames caches the metric name of each descriptor of the simulated
// source (prometheus.Desc exposes it only through String).
var descNames sync.Map

func descName(d *prometheus.Desc) string {
	if v, ok := descNames.Load(d); ok {
		return v.(string)
	}
	s := d.String()
	const marker = `fqName: "`
	i := strings.Index(s, marker)
	if i < 0 {
		panic("no fqName in " + s)
	}
	rest := s[i+len(marker):]
	name := rest[:strings.IndexByte(rest, '"')]
	descNames.Store(d, name)
	return name
}

// wanted are the families toScrape reads.
var wanted = map[string]bool{
	"gpuledger_exporter_time_seconds": true, "gpuledger_gpu_info": true, "gpuledger_gpu_energy_joules_total": true,
	"gpuledger_allocation_start_time_seconds": true, "gpuledger_allocation_end_time_seconds": true,
	"gpuledger_allocation_weight_ratio": true, "gpuledger_allocation_devices": true, "gpuledger_allocation_activity_ratio": true,
}

// gather collects, as metric families, what c sends of the wanted families.
func gather(c collector.Collector) (map[string]*dto.MetricFamily, error) {
	ch := make(chan prometheus.Metric, 256)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Update(ch)
		close(ch)
	}()
	fams := map[string]*dto.MetricFamily{}
	var werr error
	for m := range ch {
		name := descName(m.Desc())
		if !wanted[name] {
			continue
		}
		pb := &dto.Metric{}
		if err := m.Write(pb); err != nil && werr == nil {
			werr = err
		}
		f := fams[name]
		if f == nil {
			f = &dto.MetricFamily{Name: &name}
			fams[name] = f
		}
		f.Metric = append(f.Metric, pb)
	}
	if err := <-errc; err != nil {
		return nil, err
	}
	return fams, werr
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return m.GetUntyped().GetValue()
}

// toScrape is the test's minimal conversion of one exposition of target
// into a Scrape (aggregator/source has the production one).
func toScrape(target string, fams map[string]*dto.MetricFamily) (observe.Scrape, error) {
	s := observe.Scrape{Target: target, OK: true}
	tf := fams["gpuledger_exporter_time_seconds"]
	if tf == nil || len(tf.Metric) != 1 {
		return s, fmt.Errorf("no exporter time")
	}
	s.Time = int64(math.Round(metricValue(tf.Metric[0]) * 1000))
	type id struct {
		observe.AllocKey
		observe.Attrs
	}
	allocs := map[id]*observe.Alloc{}
	get := func(m *dto.Metric) *observe.Alloc {
		k := id{
			AllocKey: observe.AllocKey{Node: label(m, "node"), Device: label(m, "device"), PodUID: label(m, "pod_uid"), Resource: label(m, "resource")},
			Attrs: observe.Attrs{Class: label(m, "class"), GPUUUID: label(m, "gpu_uuid"), Model: label(m, "model"), Profile: label(m, "profile"),
				Namespace: label(m, "namespace"), Pod: label(m, "pod"), User: label(m, "user"), Project: label(m, "project"),
				Queue: label(m, "queue"), Site: label(m, "site")},
		}
		a := allocs[k]
		if a == nil {
			a = &observe.Alloc{AllocKey: k.AllocKey, Attrs: k.Attrs, ActivityMilli: -1}
			allocs[k] = a
		}
		return a
	}
	for name, set := range map[string]func(*observe.Alloc, float64){
		"gpuledger_allocation_start_time_seconds": func(a *observe.Alloc, v float64) { a.Start = int64(math.Round(v)) },
		"gpuledger_allocation_end_time_seconds":   func(a *observe.Alloc, v float64) { a.End = int64(math.Round(v)) },
		"gpuledger_allocation_weight_ratio":       func(a *observe.Alloc, v float64) { a.WeightMilli = int64(math.Round(v * 1000)) },
		"gpuledger_allocation_devices":            func(a *observe.Alloc, v float64) { a.Devices = int64(math.Round(v)) },
		"gpuledger_allocation_activity_ratio":     func(a *observe.Alloc, v float64) { a.ActivityMilli = int64(math.Round(v * 1000)) },
	} {
		if f := fams[name]; f != nil {
			for _, m := range f.Metric {
				set(get(m), metricValue(m))
			}
		}
	}
	for _, a := range allocs {
		s.Allocs = append(s.Allocs, *a)
	}
	sort.Slice(s.Allocs, func(i, j int) bool { return keyCompare(s.Allocs[i].AllocKey, s.Allocs[j].AllocKey) < 0 })
	gpus := map[string]*observe.GPU{}
	if f := fams["gpuledger_gpu_info"]; f != nil {
		for _, m := range f.Metric {
			gpus[label(m, "uuid")] = &observe.GPU{Node: label(m, "node"), UUID: label(m, "uuid"), Model: label(m, "model"), EnergyMillijoules: -1}
		}
	}
	if f := fams["gpuledger_gpu_energy_joules_total"]; f != nil {
		for _, m := range f.Metric {
			if g := gpus[label(m, "uuid")]; g != nil {
				g.EnergyMillijoules = int64(math.Round(metricValue(m) * 1000))
			}
		}
	}
	for _, g := range gpus {
		s.GPUs = append(s.GPUs, *g)
	}
	sort.Slice(s.GPUs, func(i, j int) bool { return s.GPUs[i].UUID < s.GPUs[j].UUID })
	return s, nil
}

// cluster is a scenario served by one simulated source per node.
type cluster struct {
	s      *scenario.Scenario
	allocs []scenario.Allocation
	nodes  []string
	srcs   []*sim.Source
}

func newCluster(tb testing.TB, s *scenario.Scenario) *cluster {
	tb.Helper()
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		tb.Fatal(err)
	}
	c := &cluster{s: s, allocs: allocs}
	for _, n := range s.Nodes {
		src, err := sim.New(s, allocs, n.Name, clock.Fixed(s.Start), sim.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		c.nodes = append(c.nodes, n.Name)
		c.srcs = append(c.srcs, src)
	}
	return c
}

// scrape is node i's exporter answering at t: a failed scrape while a
// fault makes it unavailable.
func (c *cluster) scrape(tb testing.TB, i int, t time.Time) observe.Scrape {
	src := c.srcs[i]
	if err := src.Check(t); err != nil {
		return observe.Scrape{Target: c.nodes[i], Time: t.UnixMilli()}
	}
	col, err := src.At(t)
	if err != nil {
		tb.Fatal(err)
	}
	fams, err := gather(col)
	if err != nil {
		tb.Fatal(err)
	}
	sc, err := toScrape(c.nodes[i], fams)
	if err != nil {
		tb.Fatal(err)
	}
	return sc
}

func mustAt(tb testing.TB, c *cluster, i int, t time.Time) collector.Collector {
	tb.Helper()
	col, err := c.srcs[i].At(t)
	if err != nil {
		tb.Fatal(err)
	}
	return col
}

// round is one scrape of every node at one time.
type round struct {
	at      int64 // ms
	scrapes []observe.Scrape
}

// rounds scrapes every node every scrape interval over the scenario from
// offset after its start, its end included when on the grid.
func (c *cluster) rounds(tb testing.TB, offset time.Duration) []round {
	tb.Helper()
	step := c.s.ScrapeInterval.D()
	var out []round
	for t := c.s.Start.Add(offset); !t.After(c.s.End); t = t.Add(step) {
		r := round{at: t.UnixMilli()}
		for i := range c.srcs {
			r.scrapes = append(r.scrapes, c.scrape(tb, i, t))
		}
		out = append(out, r)
	}
	return out
}

// caches of scenario rounds, shared by the tests of the package.
var (
	cacheMu sync.Mutex
	cache   = map[string]*fixture{}
)

type fixture struct {
	c      *cluster
	rounds []round
}

// fixtureOf builds (once per name) the cluster and rounds of a scenario.
func fixtureOf(tb testing.TB, name string, build func() *scenario.Scenario) *fixture {
	tb.Helper()
	return fixtureOffset(tb, name, 0, build)
}

// fixtureOffset is fixtureOf with the scrapes offset from the scenario's
// start (off the window grid).
func fixtureOffset(tb testing.TB, name string, offset time.Duration, build func() *scenario.Scenario) *fixture {
	tb.Helper()
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if f := cache[name]; f != nil {
		return f
	}
	c := newCluster(tb, build())
	f := &fixture{c: c, rounds: c.rounds(tb, offset)}
	cache[name] = f
	return f
}

func loadSmall(tb testing.TB) *scenario.Scenario {
	tb.Helper()
	s, err := scenario.Load(smallPath)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func generated(tb testing.TB, seed uint64, nodes int, d time.Duration) *scenario.Scenario {
	tb.Helper()
	cfg := generate.DefaultConfig()
	cfg.Nodes, cfg.Duration, cfg.Seed = nodes, d, seed
	s, err := generate.Generate(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func withFaults(s *scenario.Scenario, retention time.Duration, faults ...scenario.Fault) *scenario.Scenario {
	c := *s
	c.Faults = faults
	if retention > 0 {
		c.EndedRetention = scenario.Duration(retention)
	}
	return &c
}

// replay feeds the rounds to a new Reconstructor, closing windows lag
// behind each round, then everything up to the window after the last
// round.
func replay(tb testing.TB, cfg Config, rounds []round, lag time.Duration) (*Reconstructor, []observe.Window) {
	tb.Helper()
	r, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return r, feed(r, rounds, lag, true)
}

func feed(r *Reconstructor, rounds []round, lag time.Duration, flush bool) []observe.Window {
	var out []observe.Window
	for _, rd := range rounds {
		for _, s := range rd.scrapes {
			r.Observe(s)
		}
		out = append(out, r.Close((rd.at-lag.Milliseconds())/1000)...)
	}
	if flush && len(rounds) > 0 {
		last := rounds[len(rounds)-1].at / 1000
		out = append(out, r.Close(last+r.cfg.win)...)
	}
	return out
}

// ledger emulates what the ledger keeps of windows.
type ledger struct {
	iv        map[observe.AllocKey]observe.Interval
	watermark int64
	windows   map[int64]observe.Window // by From: the latest applied
}

func newLedger() *ledger {
	return &ledger{iv: map[observe.AllocKey]observe.Interval{}, windows: map[int64]observe.Window{}}
}

func (l *ledger) apply(ws ...observe.Window) {
	for _, w := range ws {
		for _, in := range w.Intervals {
			l.iv[in.AllocKey] = in
		}
		l.watermark = max(l.watermark, w.To)
		l.windows[w.From] = w
	}
}

func ledgerOf(ws []observe.Window) *ledger {
	l := newLedger()
	l.apply(ws...)
	return l
}

// open returns the intervals the ledger holds open.
func (l *ledger) open() []observe.Interval {
	var out []observe.Interval
	for _, in := range l.iv {
		if in.End == 0 {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return keyCompare(out[i].AllocKey, out[j].AllocKey) < 0 })
	return out
}

// seconds is the part of [from, to) the interval covers, an open one
// running to the watermark.
func (l *ledger) seconds(in observe.Interval, from, to int64) int64 {
	end := in.End
	if end == 0 {
		end = l.watermark
	}
	return max(min(end, to)-max(in.Start, from), 0)
}

// byProject sums the ledger like sim/truth does, by project.
func (l *ledger) byProject(from, to int64) map[string]sums {
	out := map[string]sums{}
	for _, in := range l.iv {
		secs := l.seconds(in, from, to)
		if secs == 0 {
			continue
		}
		r := out[in.Project]
		if in.Class == string(accounting.ClassFPGA) {
			r.FPGASeconds += in.Devices * secs
		} else {
			r.AllocatedMilliGPUSeconds += in.WeightMilli * secs
			r.DeviceSeconds += in.Devices * secs
		}
		out[in.Project] = r
	}
	return out
}

// sums are the allocated figures of one group.
type sums struct {
	AllocatedMilliGPUSeconds, DeviceSeconds, FPGASeconds int64
}

func truthByProject(tb testing.TB, allocs []scenario.Allocation, from, to time.Time) map[string]sums {
	tb.Helper()
	rep, err := truth.Compute(allocs, from, to, []string{truth.KeyProject})
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]sums{}
	for _, r := range rep.Rows {
		out[r.Keys[0]] = sums{r.AllocatedMilliGPUSeconds, r.DeviceSeconds, r.FPGASeconds}
	}
	return out
}

func keyOfAlloc(a *scenario.Allocation) observe.AllocKey {
	return observe.AllocKey{Node: a.Node, Device: a.DeviceID, PodUID: a.Pod.UID, Resource: a.Resource}
}
