package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/exporters/metrics"
)

// ErrNotSynced is returned by the cluster collector's Update while the
// informers are not synced or the API server is unreachable: the metrics
// it still sends are the last ones built.
var ErrNotSynced = errors.New("kubernetes informers not synced or API server unreachable")

// DefaultRebuildInterval is how often the cluster collector rebuilds its
// metrics without a change, so that ended allocations expire.
const DefaultRebuildInterval = 15 * time.Second

// ClusterOptions tune a ClusterCollector.
type ClusterOptions struct {
	// Retention is how long an ended offload allocation stays exported;
	// zero means DefaultRetention.
	Retention time.Duration
	// RebuildInterval bounds how stale the expiry of ended allocations
	// is; zero means DefaultRebuildInterval.
	RebuildInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives notes (resources that cannot be weighed); nil
	// discards them.
	Logger *slog.Logger
}

// ClusterCollector serves what cluster mode knows from the Kubernetes API:
// the offload allocations of the pods on InterLink virtual nodes (the
// allocation families, class offload), the accelerator requests of pending
// pods and the Kueue ClusterQueues' nominal quotas. Its metrics are built
// on informer events (Run) and Update only sends them.
type ClusterCollector struct {
	inf  *Informers
	opts ClusterOptions
	once onceLog

	mu      sync.RWMutex
	metrics []prometheus.Metric
}

// NewClusterCollector builds the collector over informers in cluster mode.
func NewClusterCollector(inf *Informers, opts ClusterOptions) (*ClusterCollector, error) {
	if inf == nil {
		return nil, errors.New("kube: cluster collector: no informers")
	}
	if inf.cfg.Mode != ModeCluster {
		return nil, fmt.Errorf("kube: cluster collector needs informers in cluster mode, not %s mode", inf.cfg.Mode)
	}
	if opts.Retention < 0 || opts.RebuildInterval < 0 {
		return nil, errors.New("kube: cluster collector: negative retention or rebuild interval")
	}
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	if opts.RebuildInterval == 0 {
		opts.RebuildInterval = DefaultRebuildInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &ClusterCollector{inf: inf, opts: opts, once: onceLog{log: opts.Logger}}, nil
}

// Run rebuilds the metrics after every change of the informers' view and
// at least every RebuildInterval, until ctx ends.
func (c *ClusterCollector) Run(ctx context.Context) {
	changed := c.inf.Subscribe()
	tick := time.NewTicker(c.opts.RebuildInterval)
	defer tick.Stop()
	c.Rebuild()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
		c.Rebuild()
	}
}

// Update implements collector.Collector: it sends the metrics last built,
// and fails with ErrNotSynced while the view is incomplete or stale.
func (c *ClusterCollector) Update(ch chan<- prometheus.Metric) error {
	c.mu.RLock()
	ms := c.metrics
	c.mu.RUnlock()
	for _, m := range ms {
		ch <- m
	}
	if !c.inf.Synced() {
		return ErrNotSynced
	}
	return nil
}

// Rebuild recomputes the metrics from the informers' view now.
func (c *ClusterCollector) Rebuild() {
	now := c.opts.Now()
	var out []prometheus.Metric
	for _, p := range c.inf.List() {
		if p.Virtual {
			out = c.offload(out, &p, now)
		}
		out = c.pending(out, &p)
	}
	for _, q := range c.inf.Quotas() {
		out = c.gauge(out, metrics.KueueNominalQuota, q.Value, q.ClusterQueue, q.Flavor, q.Resource)
	}
	c.mu.Lock()
	c.metrics = out
	c.mu.Unlock()
}

// offload adds the allocations of a pod on a virtual node: one per
// accounted resource it requests, from its first container start to its
// last container end, weighing the requested count.
func (c *ClusterCollector) offload(out []prometheus.Metric, p *Pod, now time.Time) []prometheus.Metric {
	start := p.Start()
	if start.IsZero() {
		return out
	}
	end := p.End()
	if !end.IsZero() && now.Sub(end) >= c.opts.Retention {
		return out
	}
	for _, res := range sortedKeys(p.Requests) {
		n := p.Requests[res]
		class, profile, _ := accounting.ResourceClass(res)
		milli, err := offloadWeight(class, profile, p.RemoteModel, n)
		if err != nil {
			c.once.warn("offload:"+res+":"+p.RemoteModel, "offload allocation not exported: its weight is unknown",
				"resource", res, "node", p.Node, "model", p.RemoteModel, "err", err)
			continue
		}
		a := p.Attribution
		labels := []string{p.Node, res, string(accounting.ClassOffload), "", "", "", p.RemoteModel, profile,
			p.Namespace, p.Name, p.UID, a.User, a.Project, a.Queue, p.Site}
		out = c.gauge(out, metrics.AllocStart, unixSeconds(start), labels...)
		out = c.gauge(out, metrics.AllocWeight, float64(milli)/accounting.MilliPerGPU, labels...)
		out = c.gauge(out, metrics.AllocDevices, float64(n), labels...)
		if !end.IsZero() {
			out = c.gauge(out, metrics.AllocEnd, unixSeconds(end), labels...)
		}
	}
	return out
}

// offloadWeight is the weight in milli-GPU of n devices of a class
// requested on a virtual node: whole GPUs and FPGA cards weigh one each, a
// MIG slice its weight for the remote model; a fraction of a shared GPU
// cannot be known from the request.
func offloadWeight(class accounting.Class, profile, model string, n int64) (int64, error) {
	switch class {
	case accounting.ClassGPU, accounting.ClassFPGA:
		return n * accounting.MilliPerGPU, nil
	case accounting.ClassMIG:
		if model == "" {
			return 0, errors.New("a MIG request on a virtual node that declares no GPU model")
		}
		w, err := accounting.MIGWeight(model, profile)
		if err != nil {
			return 0, err
		}
		return n * w, nil
	}
	return 0, fmt.Errorf("class %s cannot be weighed from a request", class)
}

// pending adds the requests of a pod none of whose containers started.
func (c *ClusterCollector) pending(out []prometheus.Metric, p *Pod) []prometheus.Metric {
	if p.Phase != "Pending" || !p.Deleted.IsZero() || !p.Start().IsZero() {
		return out
	}
	a := p.Attribution
	for _, res := range sortedKeys(p.Requests) {
		out = c.gauge(out, metrics.PendingPodRequests, float64(p.Requests[res]),
			p.Namespace, p.Name, p.UID, res, a.User, a.Project, a.Queue)
	}
	return out
}

// gauge appends a gauge; label values that are not valid UTF-8 are
// reported once and the series skipped.
func (c *ClusterCollector) gauge(out []prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) []prometheus.Metric {
	m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...)
	if err != nil {
		c.once.warn("metric:"+err.Error(), "series skipped", "err", err)
		return out
	}
	return append(out, m)
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
