package exporters

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/procfs"
)

// Descriptors of the process metrics, as client_golang's process collector
// names and explains them.
var (
	processCPUDesc = prometheus.NewDesc("process_cpu_seconds_total",
		"Total user and system CPU time spent in seconds.", nil, nil)
	processOpenFDsDesc = prometheus.NewDesc("process_open_fds",
		"Number of open file descriptors.", nil, nil)
	processMaxFDsDesc = prometheus.NewDesc("process_max_fds",
		"Maximum number of open file descriptors.", nil, nil)
	processVsizeDesc = prometheus.NewDesc("process_virtual_memory_bytes",
		"Virtual memory size in bytes.", nil, nil)
	processMaxVsizeDesc = prometheus.NewDesc("process_virtual_memory_max_bytes",
		"Maximum amount of virtual memory available in bytes.", nil, nil)
	processRSSDesc = prometheus.NewDesc("process_resident_memory_bytes",
		"Resident memory size in bytes.", nil, nil)
	processStartDesc = prometheus.NewDesc("process_start_time_seconds",
		"Start time of the process since unix epoch in seconds.", nil, nil)
)

// processCollector serves the process metrics of client_golang's process
// collector that tell an exporter's health, at a tenth of its cost per
// scrape. On each scrape it reads /proc/self/stat (CPU time, virtual and
// resident memory) and the size of /proc/self/fd; the start time and the
// limits, which do not change during the process's life, are read once.
// It leaves out the network counters (process_network_*): they are those
// of the pod's network namespace, which the kubelet's cAdvisor already
// serves, and reading them (/proc/self/net/netstat) was the dearest part of
// the library collector's scrape (docs/performance.md).
type processCollector struct {
	proc     procfs.Proc
	constant []prometheus.Metric // start time and limits
}

// newProcessCollector returns the collector; where /proc cannot be read,
// client_golang's own.
func newProcessCollector() prometheus.Collector {
	p, err := procfs.Self()
	if err != nil {
		return collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})
	}
	stat, err := p.Stat()
	if err != nil {
		return collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})
	}
	c := &processCollector{proc: p}
	if start, err := stat.StartTime(); err == nil {
		c.constant = append(c.constant, prometheus.MustNewConstMetric(processStartDesc, prometheus.GaugeValue, start))
	}
	if l, err := p.Limits(); err == nil {
		c.constant = append(c.constant,
			prometheus.MustNewConstMetric(processMaxFDsDesc, prometheus.GaugeValue, float64(l.OpenFiles)),
			prometheus.MustNewConstMetric(processMaxVsizeDesc, prometheus.GaugeValue, float64(l.AddressSpace)))
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *processCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{processCPUDesc, processOpenFDsDesc, processMaxFDsDesc, processVsizeDesc,
		processMaxVsizeDesc, processRSSDesc, processStartDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A file that cannot be read
// leaves its metrics out, as the library collector does by default.
func (c *processCollector) Collect(ch chan<- prometheus.Metric) {
	if stat, err := c.proc.Stat(); err == nil {
		ch <- prometheus.MustNewConstMetric(processCPUDesc, prometheus.CounterValue, stat.CPUTime())
		ch <- prometheus.MustNewConstMetric(processVsizeDesc, prometheus.GaugeValue, float64(stat.VirtualMemory()))
		ch <- prometheus.MustNewConstMetric(processRSSDesc, prometheus.GaugeValue, float64(stat.ResidentMemory()))
	}
	if n, err := c.proc.FileDescriptorsLen(); err == nil {
		ch <- prometheus.MustNewConstMetric(processOpenFDsDesc, prometheus.GaugeValue, float64(n))
	}
	for _, m := range c.constant {
		ch <- m
	}
}
