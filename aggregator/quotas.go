package aggregator

import (
	"context"
	"sort"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// QuotaRecorder stores the history of Kueue ClusterQueue quotas
// (aggregator/ledger's Store). RecordQuotas must be idempotent: it is
// given each change once, but again after a failure, and a restarted loop
// gives again the values in force.
type QuotaRecorder interface {
	RecordQuotas(ctx context.Context, cluster string, qs []observe.QueueQuota) error
}

// quotaKey is one quota of the ledger's history: a ClusterQueue and a
// resource, its flavors summed.
type quotaKey struct{ queue, resource string }

// quotaObs is the quotas one scrape served, summed over flavors.
type quotaObs struct {
	at     int64 // Unix ms
	values map[quotaKey]int64
}

// quotaTracker turns the quotas of the scrapes into the changes of the
// quota history. A scrape that serves the quota family serves the whole
// of it (the exporter in cluster mode builds it from all ClusterQueues at
// once), so a quota it no longer shows has been removed, and is recorded
// as 0 from that scrape on; a scrape without the family (a node exporter,
// a cluster exporter not yet synced or without Kueue) says nothing.
//
// Observations are buffered until the windows that contain them are
// written, then applied in time order: a change is dated by the first
// scrape that showed the new value.
type quotaTracker struct {
	obs     []quotaObs         // observed, not yet applied
	current map[quotaKey]int64 // the values in force after the last applied observation
	at      int64              // time of the last applied observation, Unix ms
	pending []observe.QueueQuota
}

// observe buffers the quotas of a successful scrape that served any.
func (t *quotaTracker) observe(s observe.Scrape) {
	if !s.OK || len(s.Quotas) == 0 {
		return
	}
	values := make(map[quotaKey]int64, len(s.Quotas))
	for _, q := range s.Quotas {
		values[quotaKey{q.ClusterQueue, q.Resource}] += q.NominalMilli
	}
	// Drop a repetition of the last buffered values, so that the buffer
	// holds changes only while the ledger is away.
	if n := len(t.obs); n > 0 && t.obs[n-1].at <= s.Time && sameQuotas(t.obs[n-1].values, values) {
		return
	}
	t.obs = append(t.obs, quotaObs{at: s.Time, values: values})
}

func sameQuotas(a, b map[quotaKey]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// upTo applies the observations taken at or before upToMs and returns
// every change not yet recorded, in time order. An observation older than
// one already applied is late and ignored.
func (t *quotaTracker) upTo(upToMs int64) []observe.QueueQuota {
	sort.SliceStable(t.obs, func(i, j int) bool { return t.obs[i].at < t.obs[j].at })
	n := 0
	for n < len(t.obs) && t.obs[n].at <= upToMs {
		t.apply(t.obs[n])
		n++
	}
	t.obs = append(t.obs[:0], t.obs[n:]...)
	return t.pending
}

// apply records the differences between o and the values in force.
func (t *quotaTracker) apply(o quotaObs) {
	if t.current == nil {
		t.current = map[quotaKey]int64{}
	} else if o.at < t.at {
		return
	}
	var changes []observe.QueueQuota
	change := func(k quotaKey, v int64) {
		// With the default attribution rules a pod's project is its
		// ClusterQueue: the queue's usage is the project's.
		changes = append(changes, observe.QueueQuota{Queue: k.queue, Resource: k.resource, Project: k.queue,
			NominalMilli: v, At: o.at})
		t.current[k] = v
	}
	for k, v := range o.values {
		if old, ok := t.current[k]; !ok || old != v {
			change(k, v)
		}
	}
	for k, old := range t.current {
		if _, ok := o.values[k]; !ok && old != 0 {
			change(k, 0)
		}
	}
	sort.Slice(changes, func(i, j int) bool {
		if changes[i].Queue != changes[j].Queue {
			return changes[i].Queue < changes[j].Queue
		}
		return changes[i].Resource < changes[j].Resource
	})
	t.pending = append(t.pending, changes...)
	t.at = o.at
}

// recorded forgets the first n changes returned by upTo, now stored (or
// given up). The slice upTo returned is left as it was.
func (t *quotaTracker) recorded(n int) {
	t.pending = append([]observe.QueueQuota(nil), t.pending[n:]...)
}

// observeQuotas buffers the quotas of s when the ledger records quotas.
func (l *Loop) observeQuotas(s observe.Scrape) {
	if l.quotas != nil {
		l.qt.observe(s)
	}
}

// recordQuotas stores the quota changes observed up to the end of the
// window w, just written. A failure is logged and counted but never fails
// the loop: the accounting is written, and the changes are tried again
// after the next window (or dropped, when the error is not transient).
func (l *Loop) recordQuotas(ctx context.Context, w observe.Window) {
	if l.quotas == nil {
		return
	}
	changes := l.qt.upTo(w.To * 1000)
	if len(changes) == 0 {
		return
	}
	err := l.quotas.RecordQuotas(ctx, w.Cluster, changes)
	if err == nil {
		l.m.quotaChanges.Add(float64(len(changes)))
		l.qt.recorded(len(changes))
		return
	}
	l.m.quotaErrors.Inc()
	if ctx.Err() != nil || l.cfg.Transient(err) {
		l.logger.Warn("quota write failed; kept for the next window", "changes", len(changes),
			"window_end", time.Unix(w.To, 0).UTC(), "err", err)
		return
	}
	l.logger.Error("quota write failed; changes dropped", "changes", len(changes),
		"window_end", time.Unix(w.To, 0).UTC(), "err", err)
	l.qt.recorded(len(changes))
}
