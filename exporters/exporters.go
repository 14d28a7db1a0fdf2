// Package exporters wires the exporter together: the collectors a node can
// run, registered by name in an explicit collector.Registry, the registry
// Prometheus gathers, and the HTTP server. The exporter's command line
// (exporters/cli: `gpuledger exporter` and gpuledger-exporter) and any
// program that serves simulated nodes in process (the demo, the replay)
// build their exporters here.
//
// Serving N simulated nodes from one process:
//
//	clk := clock.NewVirtual(s.Start, 3600)
//	allocs, _ := s.Allocations(attribution.Default())
//	for _, n := range s.Nodes {
//		src, _ := sim.New(s, allocs, n.Name, clk, sim.Options{})
//		srv, _ := exporters.NewSimNode(src, exporters.Options{})
//		l, _ := server.Listen("127.0.0.1:0")
//		go srv.Serve(ctx, l) // l.Addr() is the node's scrape address
//	}
package exporters

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/version"

	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/exporters/server"
	"github.com/gpuledger/gpuledger/exporters/sim"
)

// Sources are the data sources an exporter found at start; nil ones are
// absent. Only the simulator exists today.
type Sources struct {
	Sim *sim.Source
}

// Collectors returns the collectors an exporter can run, by name, each
// enabled by default when its source is present.
func Collectors(src Sources) *collector.Registry {
	r := collector.NewRegistry()
	r.Register("sim", src.Sim != nil, func(*slog.Logger) (collector.Collector, error) {
		if src.Sim == nil {
			return nil, errors.New("the sim collector needs a scenario (--source sim --scenario FILE)")
		}
		return src.Sim, nil
	})
	return r
}

// Options configure a node exporter.
type Options struct {
	// Collectors names the collectors to run; empty runs the defaults.
	Collectors []string
	// CollectorTimeout, when positive, bounds each collector's Update. The
	// simulated source only reads memory, so the default is none.
	CollectorTimeout time.Duration
	// ProcessMetrics adds the Go runtime and process collectors. A program
	// that serves many nodes in one process would repeat them on each.
	ProcessMetrics bool
	// Server carries the HTTP settings (MaxRequestsInFlight, Timeout,
	// WebConfigFile, Logger…); its Gatherer and TimeMachine are set here.
	Server server.Options
	// Logger receives collector errors; nil discards them.
	Logger *slog.Logger
}

// StaticRegistry returns a registry with the build information and, when
// asked, the Go runtime and process collectors (the process one without
// the network counters, see processCollector): what every exporter serves
// besides its collectors.
func StaticRegistry(processMetrics bool) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(versioncollector.NewCollector(collector.Namespace))
	if processMetrics {
		reg.MustRegister(collectors.NewGoCollector(), newProcessCollector())
	}
	return reg
}

// NewSimNode builds the exporter of one simulated node: the collectors of
// opts (by default the sim one) under the collector wrapper, the static
// registry, and a server in sim mode, whose /metrics answers at the source's
// clock or at an at parameter, 503 during the node's faults.
func NewSimNode(src *sim.Source, opts Options) (*server.Server, error) {
	if src == nil {
		return nil, errors.New("exporters: no sim source")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cs, err := Collectors(Sources{Sim: src}).Build(opts.Collectors, logger)
	if err != nil {
		return nil, err
	}
	tm := &simTime{src: src, exp: collector.NewExporter(cs, opts.CollectorTimeout, logger), static: StaticRegistry(opts.ProcessMetrics)}
	so := opts.Server
	so.Gatherer, so.TimeMachine = nil, tm
	if so.Logger == nil {
		so.Logger = logger
	}
	if so.Version == "" {
		so.Version = version.Info()
	}
	if so.Description == "" {
		so.Description = fmt.Sprintf("Simulated node %s: GPU, MIG, FPGA and allocation metrics.", src.Node())
	}
	return server.New(so)
}

// simTime adapts a sim source and its exporter to server.TimeMachine.
type simTime struct {
	src    *sim.Source
	exp    *collector.Exporter
	static *prometheus.Registry
}

func (m *simTime) Now() time.Time { return m.src.Now() }

func (m *simTime) At(t time.Time) (prometheus.Gatherer, error) {
	if err := m.src.Check(t); err != nil {
		switch {
		case errors.Is(err, sim.ErrOutOfRange):
			return nil, marked{server.ErrOutOfRange, err}
		case errors.Is(err, sim.ErrUnavailable):
			return nil, marked{server.ErrUnavailable, err}
		}
		return nil, err
	}
	exp, err := m.exp.At(t)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(exp); err != nil {
		return nil, err
	}
	return disjoint{m.static, reg}, nil
}

// disjoint gathers two registries whose family names never overlap (the
// static collectors and the pinned collectors). Each registry has checked
// its own metrics; unlike prometheus.Gatherers it does not check them all
// a second time, which would double the cost of a scrape.
type disjoint [2]prometheus.Gatherer

func (d disjoint) Gather() ([]*dto.MetricFamily, error) {
	a, errA := d[0].Gather()
	b, errB := d[1].Gather()
	out := make([]*dto.MetricFamily, 0, len(a)+len(b))
	out = append(append(out, a...), b...)
	slices.SortFunc(out, func(x, y *dto.MetricFamily) int { return strings.Compare(x.GetName(), y.GetName()) })
	for i := 1; i < len(out); i++ {
		if out[i].GetName() == out[i-1].GetName() {
			return out, fmt.Errorf("metric family %s gathered twice", out[i].GetName())
		}
	}
	return out, errors.Join(errA, errB)
}

// marked is err, also matching kind under errors.Is, with err's text.
type marked struct{ kind, err error }

func (m marked) Error() string   { return m.err.Error() }
func (m marked) Unwrap() []error { return []error{m.kind, m.err} }
