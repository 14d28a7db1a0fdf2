package fpga

import (
	"fmt"
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/exporters/metrics"
)

var _ collector.Collector = (*Source)(nil)

// Update sends the latest snapshot. Before the first poll, and on a node
// without FPGA cards, it returns an error matching collector.ErrNoData
// (nothing to report, not a failure); when the last poll could not look
// for cards at all (sysfs unreadable, the xbutil file unusable and no
// card in sysfs) it returns that error.
func (s *Source) Update(ch chan<- prometheus.Metric) error {
	snap := s.snap.Load()
	if snap == nil {
		return fmt.Errorf("fpga: no poll has completed yet: %w", collector.ErrNoData)
	}
	s.sendErrors(ch, snap)
	for _, c := range snap.cards {
		s.sendCard(ch, c)
	}
	switch {
	case len(snap.cards) > 0:
		return nil
	case snap.failure != nil:
		return fmt.Errorf("fpga: %w", snap.failure)
	}
	return fmt.Errorf("fpga: no FPGA card under %s: %w", s.root, collector.ErrNoData)
}

// sendErrors sends the read-errors counters: one per card and source
// configured (0 included, so that rates work from the start), and any
// other that counted something.
func (s *Source) sendErrors(ch chan<- prometheus.Metric, snap *snapshot) {
	sources := []string{sourceSysfs}
	if snap.xbutil {
		sources = append(sources, sourceXbutil)
	}
	sent := map[errKey]bool{}
	for _, c := range snap.cards {
		for _, src := range sources {
			k := errKey{c.BDF, src}
			sent[k] = true
			send(ch, metrics.FPGAReadErrors, prometheus.CounterValue, snap.errors[k], s.node, c.BDF, src)
		}
	}
	for k, v := range snap.errors {
		if !sent[k] && v > 0 {
			send(ch, metrics.FPGAReadErrors, prometheus.CounterValue, v, s.node, k.device, k.source)
		}
	}
}

func (s *Source) sendCard(ch chan<- prometheus.Metric, c *Card) {
	send(ch, metrics.FPGAInfo, prometheus.GaugeValue, 1, s.node, c.BDF, c.Model, c.Shell, c.XclbinUUID)
	if c.Board != "" || c.Serial != "" || c.FPGAPart != "" {
		send(ch, metrics.FPGABoardInfo, prometheus.GaugeValue, 1, s.node, c.BDF, c.Board, c.Serial, c.FPGAPart)
	}
	if c.HasPower {
		send(ch, metrics.FPGAPower, prometheus.GaugeValue, c.Power, s.node, c.BDF)
	}
	for _, r := range []struct {
		desc *prometheus.Desc
		m    map[string]float64
	}{
		{metrics.FPGATemperature, c.Temperatures},
		{metrics.FPGAVoltage, c.Voltages},
		{metrics.FPGACurrent, c.Currents},
		{metrics.FPGAFanSpeed, c.Fans},
	} {
		for _, id := range slices.Sorted(maps.Keys(r.m)) {
			send(ch, r.desc, prometheus.GaugeValue, r.m[id], s.node, c.BDF, id)
		}
	}
	for _, cu := range c.ComputeUnits {
		send(ch, metrics.FPGAComputeUnit, prometheus.CounterValue, float64(cu.Usage), s.node, c.BDF, cu.Name)
	}
}

// send sends a constant metric. Label values are validated when read, so
// NewConstMetric cannot fail; if it did, the series would be left out
// rather than the scrape panic.
func send(ch chan<- prometheus.Metric, desc *prometheus.Desc, typ prometheus.ValueType, v float64, labels ...string) {
	if m, err := prometheus.NewConstMetric(desc, typ, v, labels...); err == nil {
		ch <- m
	}
}
