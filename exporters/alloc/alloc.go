// Package alloc is the allocation collector of a real node: it joins the
// kubelet's pod-resources answer (which pod holds which device ID under
// which resource), the API server's view of the pods (UID, attribution,
// exact container start and end) and the node's device inventory
// (identity, model, MIG profile, weight, activity) into the
// gpuledger_allocation_* series the simulator also serves, with the same
// labels and value conventions (docs/metrics.md).
//
// The join runs on the kubelet client's polls and on a ticker, never on a
// scrape: Reconcile rebuilds a list of ready-made metrics, and Update only
// sends it. Label pairs are built once per allocation.
//
// An allocation is (pod UID, device ID, resource). Its start is the pod's
// exact container start; when the API server does not know it yet
// (a running pod without container times), the kubelet answer that first
// showed the allocation, flagged as inferred. Its end is the pod's exact
// end; when the pod is gone without one, the first kubelet answer that no
// longer showed the allocation, flagged as inferred. Ended allocations stay
// exported for the retention, like the simulator's.
//
// The collector fails soft: when the kubelet or the API server is
// unavailable it keeps what it knew, says so in
// gpuledger_attribution_available, and the node's device collectors carry
// on.
package alloc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/kube"
	"github.com/gpuledger/gpuledger/exporters/kubelet"
	"github.com/gpuledger/gpuledger/exporters/metrics"
	"github.com/gpuledger/gpuledger/exporters/node"
)

// DefaultRetention is how long ended allocations stay exported, as in
// the simulator (scenario.DefaultEndedRetention).
const DefaultRetention = time.Hour

// UnknownModel is the model label of a device the inventory does not know.
const UnknownModel = "unknown"

// Sources named by gpuledger_attribution_available.
const (
	SourceKubelet   = "kubelet"
	SourceAPIServer = "apiserver"
)

// Kubelet is what the collector reads of the kubelet client
// (*kubelet.Client): its latest answer, from memory.
type Kubelet interface {
	Snapshot() *kubelet.Snapshot
}

// updater is implemented by a Kubelet that says when it has polled.
type updater interface {
	Updates() <-chan struct{}
}

// Options tune a Collector.
type Options struct {
	// Node is the node's name, the node label of every series. Required.
	Node string
	// Retention is how long ended allocations stay exported; zero is
	// DefaultRetention.
	Retention time.Duration
	// Interval is the period of the reconciliation besides the kubelet's
	// polls, and half the age past which a device's activity is stale;
	// zero is kubelet.DefaultInterval.
	Interval time.Duration
	// ActivityMaxAge is the age past which a device's activity is stale
	// and no longer exported; zero is twice Interval. Set it to at least
	// twice the device sources' poll interval (NVML and DCGM poll every
	// 10 s by default).
	ActivityMaxAge time.Duration
	// DefaultReplicas is the number of time-slicing replicas of a GPU
	// when the kubelet does not advertise them (a kubelet without
	// GetAllocatableResources): the device plugin's configured
	// sharing.timeSlicing replicas. Zero, with the kubelet silent, weighs
	// a replica as the whole GPU.
	DefaultReplicas int
	// Logger receives allocation events and resolution problems; nil
	// discards them.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Allocation is the state of one allocation, as Allocations reports it.
type Allocation struct {
	PodUID, Namespace, Pod string
	Resource, Device       string
	Class                  accounting.Class
	Start, End             time.Time // End zero while active
	// StartInferred: Start is when the kubelet first showed the
	// allocation, the API server not knowing the container start.
	StartInferred bool
	// EndInferred: End is when the kubelet stopped showing the allocation,
	// the pod being gone without an end (or its end coming later).
	EndInferred bool
	WeightMilli int64
	// Known: the device inventory knows the device.
	Known bool
}

// Collector is the allocation collector. Update sends what the last
// Reconcile prepared; it is safe for concurrent use.
type Collector struct {
	kl   Kubelet
	pods kube.Pods
	inv  *node.Inventory
	opts Options
	log  *slog.Logger

	view atomic.Pointer[[]prometheus.Metric]

	mu      sync.Mutex // guards the state below
	allocs  map[key]*allocation
	waiting map[entry]time.Time // unresolved kubelet entries: first seen
	noted   map[string]bool     // problems logged once
	avail   [2][]*dto.LabelPair // kubelet, apiserver
	unres   []*dto.LabelPair

	startMu sync.Mutex // guards cancel and done
	cancel  chan struct{}
	done    chan struct{}
}

// key identifies an allocation.
type key struct{ uid, device, resource string }

// entry is one device of one pod as the kubelet lists it.
type entry struct{ namespace, pod, resource, device string }

type allocation struct {
	key
	namespace, pod string
	class          accounting.Class
	start, end     time.Time
	startInferred  bool
	endInferred    bool
	missingSince   time.Time // first kubelet answer without it; zero while listed
	weightMilli    int64
	known          bool
	activityID     string
	labels         []*dto.LabelPair
	series         []prometheus.Metric // start, end (once ended), weight, devices
}

// New returns a collector joining the kubelet client kl, the pods and the
// inventory. Start runs its reconciliation; Reconcile runs one.
func New(kl Kubelet, pods kube.Pods, inv *node.Inventory, opts Options) (*Collector, error) {
	if kl == nil || pods == nil || inv == nil {
		return nil, errors.New("alloc: the kubelet client, the pods and the inventory are required")
	}
	if opts.Node == "" {
		return nil, errors.New("alloc: no node name")
	}
	if opts.Retention < 0 || opts.Interval < 0 || opts.DefaultReplicas < 0 || opts.ActivityMaxAge < 0 {
		return nil, fmt.Errorf("alloc: negative retention %s, interval %s or replicas %d", opts.Retention, opts.Interval, opts.DefaultReplicas)
	}
	opts.Retention = cmp.Or(opts.Retention, DefaultRetention)
	opts.Interval = cmp.Or(opts.Interval, kubelet.DefaultInterval)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Collector{kl: kl, pods: pods, inv: inv, opts: opts, log: opts.Logger,
		allocs: map[key]*allocation{}, waiting: map[entry]time.Time{}, noted: map[string]bool{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("node", opts.Node)
	c.avail[0] = labelPairs(metrics.AttributionAvailable, opts.Node, SourceKubelet)
	c.avail[1] = labelPairs(metrics.AttributionAvailable, opts.Node, SourceAPIServer)
	c.unres = labelPairs(metrics.AttributionUnresolved, opts.Node)
	c.Reconcile()
	return c, nil
}

// Update sends the metrics the last reconciliation prepared.
func (c *Collector) Update(ch chan<- prometheus.Metric) error {
	for _, m := range *c.view.Load() {
		ch <- m
	}
	return nil
}

// Start reconciles now, then after each kubelet poll and every interval,
// until ctx ends or Close is called.
func (c *Collector) Start(ctx context.Context) error {
	c.startMu.Lock()
	defer c.startMu.Unlock()
	if c.done != nil {
		return errors.New("alloc: collector already started")
	}
	c.cancel, c.done = make(chan struct{}), make(chan struct{})
	var updates <-chan struct{}
	if u, ok := c.kl.(updater); ok {
		updates = u.Updates()
	}
	go c.loop(ctx.Done(), c.cancel, c.done, updates)
	return nil
}

func (c *Collector) loop(ctxDone, cancel <-chan struct{}, done chan<- struct{}, updates <-chan struct{}) {
	defer close(done)
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		c.Reconcile()
		select {
		case <-ctxDone:
			return
		case <-cancel:
			return
		case <-t.C:
		case <-updates:
		}
	}
}

// Close stops the reconciliation started by Start and waits for it. The
// last metrics stay served.
func (c *Collector) Close() error {
	c.startMu.Lock()
	defer c.startMu.Unlock()
	if c.done == nil {
		return nil
	}
	select {
	case <-c.cancel:
	default:
		close(c.cancel)
	}
	<-c.done
	return nil
}

// Allocations returns the allocations known, sorted by pod UID, device and
// resource.
func (c *Collector) Allocations() []Allocation {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Allocation, 0, len(c.allocs))
	for _, a := range c.sorted() {
		out = append(out, Allocation{PodUID: a.uid, Namespace: a.namespace, Pod: a.pod, Resource: a.resource,
			Device: a.device, Class: a.class, Start: a.start, End: a.end, StartInferred: a.startInferred,
			EndInferred: a.endInferred, WeightMilli: a.weightMilli, Known: a.known})
	}
	return out
}

func (c *Collector) sorted() []*allocation {
	out := make([]*allocation, 0, len(c.allocs))
	for _, a := range c.allocs {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b *allocation) int {
		return cmp.Or(cmp.Compare(a.uid, b.uid), cmp.Compare(a.device, b.device), cmp.Compare(a.resource, b.resource))
	})
	return out
}

// Reconcile joins the latest kubelet answer, the pods and the inventory,
// updates the allocations and prepares the metrics Update sends. It reads
// memory only.
func (c *Collector) Reconcile() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.opts.Now()
	snap := c.kl.Snapshot()
	byName := c.podsByName()

	seen := map[key]bool{}
	unresolvedListed := map[entry]bool{}
	unresolved := 0
	for _, kp := range snap.Pods {
		pod, podOK := byName[kp.Namespace+"/"+kp.Name]
		// A pod whose attribution may still change waits, as an unknown
		// pod does: an allocation keeps the labels it is created with.
		podOK = podOK && !pod.Provisional
		for _, ct := range kp.Containers {
			for _, ds := range ct.Devices {
				for _, id := range ds.IDs {
					e := entry{kp.Namespace, kp.Name, ds.Resource, id}
					d, err := kubelet.ParseDeviceID(ds.Resource, id)
					switch {
					case errors.Is(err, kubelet.ErrUnknownResource):
						continue // not an accelerator gpuledger accounts
					case err != nil:
						unresolved++
						c.noteOnce("bad:"+ds.Resource+"/"+id, "device ID not understood; not accounted",
							"namespace", kp.Namespace, "pod", kp.Name, "err", err)
						continue
					case !podOK:
						unresolved++
						unresolvedListed[e] = true
						if _, ok := c.waiting[e]; !ok {
							c.waiting[e] = snap.At
						}
						continue
					}
					k := key{pod.UID, id, ds.Resource}
					if seen[k] {
						continue // also listed for another container
					}
					seen[k] = true
					a := c.allocs[k]
					if a == nil {
						if a = c.create(k, d, pod, snap, now); a == nil {
							continue
						}
						c.allocs[k] = a
					} else {
						c.refresh(a, pod)
					}
					delete(c.waiting, e)
					if !a.known {
						unresolved++
					}
				}
			}
		}
	}
	for e := range c.waiting {
		if !unresolvedListed[e] {
			delete(c.waiting, e)
		}
	}
	for k, a := range c.allocs {
		present := seen[k] || unresolvedListed[entry{a.namespace, a.pod, a.resource, a.device}]
		c.settle(a, present, snap)
		if !a.end.IsZero() && now.Sub(a.end) >= c.opts.Retention {
			c.log.Debug("ended allocation past the retention", "pod_uid", a.uid, "device", a.device)
			delete(c.allocs, k)
		}
	}
	c.publish(now, snap.Available(), c.pods.Synced(), unresolved)
}

// podsByName indexes the pods of this node by namespace/name, keeping for
// each name the pod the kubelet most likely means: one not deleted, then
// one not ended, then the latest started.
func (c *Collector) podsByName() map[string]kube.Pod {
	out := map[string]kube.Pod{}
	for _, p := range c.pods.List() {
		if p.Node != "" && p.Node != c.opts.Node {
			continue
		}
		n := p.Namespace + "/" + p.Name
		if prev, ok := out[n]; !ok || better(p, prev) {
			out[n] = p
		}
	}
	return out
}

func better(a, b kube.Pod) bool {
	if a.Deleted.IsZero() != b.Deleted.IsZero() {
		return a.Deleted.IsZero()
	}
	if ae, be := a.End().IsZero(), b.End().IsZero(); ae != be {
		return ae
	}
	return a.Start().After(b.Start())
}

// create starts tracking an allocation the kubelet lists; nil when it is
// not (or no longer) one: a pod whose containers have not started, or
// that ended before the retention.
func (c *Collector) create(k key, d kubelet.DeviceID, pod kube.Pod, snap *kubelet.Snapshot, now time.Time) *allocation {
	start, end := pod.Start(), pod.End()
	inferred := false
	if start.IsZero() {
		if pod.Phase == "Pending" || !end.IsZero() {
			return nil // containers not started (yet, or ever)
		}
		start, inferred = snap.At, true
		if first, ok := c.waiting[entry{pod.Namespace, pod.Name, k.resource, k.device}]; ok && !first.IsZero() {
			start = first
		}
	}
	if !end.IsZero() && now.Sub(end) >= c.opts.Retention {
		return nil
	}
	dev, _, known := c.inv.Lookup(d.ID)
	a := &allocation{key: k, namespace: pod.Namespace, pod: pod.Name, class: d.Class, start: start,
		startInferred: inferred, known: known, activityID: d.Base}
	if known {
		a.activityID = dev.ID
	} else {
		c.noteOnce("unknown:"+d.ID, "device not in the node's inventory; exported with model unknown",
			"device", d.ID, "resource", d.Resource)
	}
	a.weightMilli = c.weight(d, dev, known, snap)
	a.labels = labelPairs(metrics.AllocStart, c.labelValues(d, dev, known, pod)...)
	if !end.IsZero() {
		a.end = later(end, start)
	}
	a.build()
	c.log.Info("allocation", "pod_uid", k.uid, "namespace", pod.Namespace, "pod", pod.Name, "device", k.device,
		"resource", k.resource, "start", start, "start_inferred", inferred, "ended", !a.end.IsZero())
	return a
}

// refresh adopts the exact start once the API server knows it.
func (c *Collector) refresh(a *allocation, pod kube.Pod) {
	if s := pod.Start(); a.startInferred && !s.IsZero() {
		a.start, a.startInferred = s, false
		if !a.end.IsZero() {
			a.end = later(a.end, a.start)
		}
		a.build()
	}
}

// settle ends an allocation: at the pod's end, or, when the pod is gone
// without one (or its end is later), when the kubelet stopped listing it.
// An inferred end gives way to an earlier exact one.
func (c *Collector) settle(a *allocation, present bool, snap *kubelet.Snapshot) {
	if present {
		a.missingSince = time.Time{}
	} else if a.missingSince.IsZero() && !snap.At.IsZero() && a.end.IsZero() {
		a.missingSince = snap.At
	}
	if !a.end.IsZero() && !a.endInferred {
		return
	}
	pod, known := c.pods.Pod(a.uid)
	var end time.Time
	if known {
		end = pod.End()
	}
	inferred := false
	if ms := a.missingSince; !ms.IsZero() && (!known || !end.IsZero()) && (end.IsZero() || ms.Before(end)) {
		end, inferred = ms, true
	}
	if end.IsZero() {
		return
	}
	end = later(end, a.start)
	if !a.end.IsZero() && !end.Before(a.end) {
		return
	}
	if a.end.IsZero() {
		c.log.Info("allocation ended", "pod_uid", a.uid, "namespace", a.namespace, "pod", a.pod, "device", a.device,
			"resource", a.resource, "end", end, "end_inferred", inferred)
	}
	a.end, a.endInferred = end, inferred
	a.build()
}

// weight returns an allocation's weight in milli-GPU.
func (c *Collector) weight(d kubelet.DeviceID, dev node.Device, known bool, snap *kubelet.Snapshot) int64 {
	var w int64 = accounting.MilliPerGPU
	if d.Class == accounting.ClassMIG {
		w = c.migWeight(d, dev, known)
	}
	if d.Class != accounting.ClassShared && d.Replica < 0 {
		return w
	}
	replicas := snap.Replicas(d.Resource, d.Base)
	if replicas == 0 {
		replicas = c.opts.DefaultReplicas
	}
	if replicas <= 0 {
		c.noteOnce("replicas:"+d.Base, "time-slicing replicas unknown (kubelet without GetAllocatableResources, no default); weighing the share as its whole device",
			"device", d.ID, "resource", d.Resource)
		return w
	}
	return (2*w + int64(replicas)) / (2 * int64(replicas)) // rounded half up
}

// migWeight is the inventory's weight of a MIG instance, else the
// profile's on the inventory's model, else — the device being unknown —
// the profile's compute share of a 7-slice GPU (A100, H100, H200; the
// profile alone cannot tell an A30), else one such slice.
func (c *Collector) migWeight(d kubelet.DeviceID, dev node.Device, known bool) int64 {
	if known && dev.WeightMilli > 0 {
		return dev.WeightMilli
	}
	profile := d.Profile
	if known && dev.Profile != "" {
		profile = dev.Profile
	}
	if known {
		if w, err := accounting.MIGWeight(dev.Model, profile); err == nil {
			return w
		}
	}
	c.noteOnce("migweight:"+d.ID, "MIG weight unknown; assuming a 7-slice GPU", "device", d.ID, "profile", profile)
	slices := 1
	if p, err := accounting.ParseProfile(profile); err == nil {
		slices = cmp.Or(p.ComputeInstance, p.ComputeSlices)
	}
	return accounting.WeightFromSlices(min(slices, 7), 7, min(slices, 7), 7)
}

// labelValues are an allocation's values of metrics.AllocationLabels.
func (c *Collector) labelValues(d kubelet.DeviceID, dev node.Device, known bool, pod kube.Pod) []string {
	gpuUUID, gpu, model, profile := d.GPUUUID, "", UnknownModel, d.Profile
	if known {
		gpuUUID, gpu, model = dev.GPUUUID, dev.GPU, cmp.Or(dev.Model, UnknownModel)
		if dev.Profile != "" {
			profile = dev.Profile
		}
	}
	if d.Class == accounting.ClassFPGA {
		gpuUUID, gpu = "", ""
	}
	if d.Class != accounting.ClassMIG {
		profile = ""
	}
	return []string{c.opts.Node, d.Resource, string(d.Class), d.ID, gpuUUID, gpu, model, profile,
		pod.Namespace, pod.Name, pod.UID, cmp.Or(pod.Attribution.User, attribution.Unknown),
		cmp.Or(pod.Attribution.Project, attribution.Unknown), pod.Attribution.Queue, pod.Site}
}

// build prepares an allocation's fixed series.
func (a *allocation) build() {
	a.series = a.series[:0]
	a.series = append(a.series, newGauge(metrics.AllocStart, a.labels, unixSeconds(a.start)))
	if !a.end.IsZero() {
		a.series = append(a.series, newGauge(metrics.AllocEnd, a.labels, unixSeconds(a.end)))
	}
	a.series = append(a.series,
		newGauge(metrics.AllocWeight, a.labels, float64(a.weightMilli)/accounting.MilliPerGPU),
		newGauge(metrics.AllocDevices, a.labels, 1))
}

// publish prepares the metrics Update sends.
func (c *Collector) publish(now time.Time, kubeletUp, apiUp bool, unresolved int) {
	all := c.sorted()
	out := make([]prometheus.Metric, 0, 5*len(all)+3)
	maxAge := cmp.Or(c.opts.ActivityMaxAge, 2*c.opts.Interval)
	for _, a := range all {
		out = append(out, a.series...)
		if !a.end.IsZero() {
			continue
		}
		if act, ok := c.inv.Activity(a.activityID, now, maxAge); ok && !math.IsNaN(act.Ratio) {
			out = append(out, newGauge(metrics.AllocActivity, a.labels, min(max(act.Ratio, 0), 1)))
		}
	}
	out = append(out,
		newGauge(metrics.AttributionAvailable, c.avail[0], boolValue(kubeletUp)),
		newGauge(metrics.AttributionAvailable, c.avail[1], boolValue(apiUp)),
		newGauge(metrics.AttributionUnresolved, c.unres, float64(unresolved)))
	c.view.Store(&out)
}

// maxNoted bounds the problems remembered as logged.
const maxNoted = 4096

// noteOnce logs a problem the first time it is seen.
func (c *Collector) noteOnce(id, msg string, args ...any) {
	if c.noted[id] {
		return
	}
	if len(c.noted) >= maxNoted {
		clear(c.noted)
	}
	c.noted[id] = true
	c.log.Warn(msg, args...)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// later returns the later of two times.
func later(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// labelPairs builds the label pairs of desc, with values made valid UTF-8.
func labelPairs(desc *prometheus.Desc, values ...string) []*dto.LabelPair {
	for i, v := range values {
		values[i] = strings.ToValidUTF8(v, "\uFFFD")
	}
	return prometheus.MakeLabelPairs(desc, values)
}

// gauge is a ready-made metric. Its label pairs and value are shared by
// every scrape, read-only, as client_golang's constant metrics share
// theirs.
type gauge struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  *dto.Gauge
}

func newGauge(desc *prometheus.Desc, labels []*dto.LabelPair, v float64) gauge {
	return gauge{desc: desc, labels: labels, value: &dto.Gauge{Value: proto.Float64(v)}}
}

func (g gauge) Desc() *prometheus.Desc { return g.desc }

func (g gauge) Write(out *dto.Metric) error {
	out.Label, out.Gauge = g.labels, g.value
	return nil
}
