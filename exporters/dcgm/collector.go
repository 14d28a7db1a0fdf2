package dcgm

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/exporters/metrics"
)

var _ collector.Collector = (*Source)(nil)

// activityFamilies are the fields served as metrics, with their families.
var activityFamilies = [...]struct {
	field Field
	desc  *prometheus.Desc
}{
	{GraphicsActive, metrics.DCGMGraphicsActivity},
	{TensorActive, metrics.DCGMTensorActivity},
	{DRAMActive, metrics.DCGMDRAMActivity},
	{SMActive, metrics.DCGMSMActivity},
}

// Update implements collector.Collector: it sends the source's health and,
// while the last snapshot is fresh, its profiling activity. It only reads
// memory. Before the first poll has ended it returns collector.ErrNoData;
// with no snapshot, or a stale one, it returns an error (the collector is
// reported as failed) after sending the health series.
func (s *Source) Update(ch chan<- prometheus.Metric) error {
	now := s.now()
	s.mu.RLock()
	snap, polled, lastErr := s.snap, s.polled, s.lastErr
	dropped := make(map[string]float64, len(s.dropped))
	for r, n := range s.dropped {
		dropped[r] = n
	}
	s.mu.RUnlock()

	up := 0.0
	if polled && lastErr == nil {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(metrics.DCGMUp, prometheus.GaugeValue, up, s.node)
	for _, r := range Reasons() {
		ch <- prometheus.MustNewConstMetric(metrics.DCGMSamplesDropped, prometheus.CounterValue, dropped[r], s.node, r)
	}
	if snap != nil {
		ch <- prometheus.MustNewConstMetric(metrics.DCGMLastSuccess, prometheus.GaugeValue,
			float64(snap.At.UnixNano())/1e9, s.node)
	}
	switch {
	case !polled:
		return fmt.Errorf("dcgm-exporter %s not polled yet: %w", s.url, collector.ErrNoData)
	case snap == nil:
		return fmt.Errorf("dcgm-exporter %s: no successful poll yet: %w", s.url, lastErr)
	case !s.fresh(snap, now):
		return s.staleError(snap, now, lastErr)
	}
	for i := range snap.Devices {
		s.sendDevice(ch, &snap.Devices[i])
	}
	return nil
}

func (s *Source) staleError(snap *Snapshot, now time.Time, lastErr error) error {
	age := now.Sub(snap.At).Round(time.Second)
	if lastErr == nil {
		return fmt.Errorf("dcgm-exporter %s: data stale, last poll %s ago", s.url, age)
	}
	return fmt.Errorf("dcgm-exporter %s: data stale, last success %s ago: %w", s.url, age, lastErr)
}

// sendDevice sends the activity series of one device.
func (s *Source) sendDevice(ch chan<- prometheus.Metric, d *Device) {
	var migUUID, gi, profile string
	if d.MIG() {
		gi, profile = strconv.Itoa(d.GPUInstanceID), d.Profile
		if d.Resolved {
			migUUID = d.Key
		}
	}
	for _, fam := range activityFamilies {
		if v, ok := d.Value(fam.field); ok {
			ch <- prometheus.MustNewConstMetric(fam.desc, prometheus.GaugeValue, v,
				s.node, d.GPU, d.UUID, migUUID, gi, profile)
		}
	}
}
