package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	"github.com/gpuledger/gpuledger/attribution"
)

// Informers keeps the exporter's view of the Kubernetes API in memory:
// pods (of the node, or with accelerator requests on every node), their
// namespaces' labels, the nodes, and Kueue's queues when Kueue is
// installed. It implements Pods and attribution.Lookup; every getter reads
// memory only.
type Informers struct {
	cfg Config
	api API

	pods, namespaces, nodes cache.SharedIndexInformer
	// podsSynced and nodesSynced tell when the event handlers, not only
	// the caches, have seen the initial lists.
	podsSynced, nodesSynced cache.InformerSynced

	mu    sync.RWMutex
	state map[string]*podState // by UID
	subs  []chan struct{}

	kueue   atomic.Pointer[kueueInformers] // nil until Kueue is found
	started atomic.Bool

	lookupsReady atomic.Bool // namespaces (and Kueue, when served) synced
	kueueFailed  atomic.Bool // the LocalQueue informer reported an error

	health health
	once   onceLog
}

// podState is a pod with what was decided once about it.
type podState struct {
	pod       Pod
	attrPod   attribution.Pod // the metadata first seen, for a deferred resolution
	resolved  bool            // attribution final
	nodeKnown bool            // Virtual, Site and RemoteModel final
}

// kueueInformers are Kueue's informers, once its API is found.
type kueueInformers struct {
	localQueues   cache.SharedIndexInformer // nil when not served
	clusterQueues cache.SharedIndexInformer // cluster mode only
}

// NewInformers builds the informers; Start runs them.
func NewInformers(cfg Config) (*Informers, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	api := cfg.Client
	if api == nil {
		if api, cfg.Dynamic, err = Clients(cfg.Kubeconfig); err != nil {
			return nil, err
		}
	}
	i := &Informers{cfg: cfg, api: api, state: map[string]*podState{}}
	i.health.log = cfg.Logger
	i.once.log = cfg.Logger

	podScope := func(o *metav1.ListOptions) {}
	nodeScope := func(o *metav1.ListOptions) {}
	if cfg.Mode == ModeNode {
		podScope = func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", cfg.Node).String()
		}
		nodeScope = func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", cfg.Node).String()
		}
	}
	for _, c := range []struct {
		inf      *cache.SharedIndexInformer
		resource string
		scope    func(*metav1.ListOptions)
	}{{&i.pods, "pods", podScope}, {&i.namespaces, "namespaces", nil}, {&i.nodes, "nodes", nodeScope}} {
		lw, err := api.ListWatch(c.resource, c.scope)
		if err != nil {
			return nil, err
		}
		*c.inf = cache.NewSharedIndexInformer(lw, coreResources[c.resource].obj, cfg.Resync, cache.Indexers{})
	}

	for _, s := range []struct {
		name   string
		inf    cache.SharedIndexInformer
		h      cache.ResourceEventHandler
		synced *cache.InformerSynced
	}{
		{"pods", i.pods, cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { i.onPod(o, false) },
			UpdateFunc: func(_, o any) { i.onPod(o, false) },
			DeleteFunc: func(o any) { i.onPod(o, true) },
		}, &i.podsSynced},
		{"namespaces", i.namespaces, nil, nil},
		{"nodes", i.nodes, cache.ResourceEventHandlerFuncs{
			AddFunc:    i.onNode,
			UpdateFunc: func(_, o any) { i.onNode(o) },
		}, &i.nodesSynced},
	} {
		reg, err := i.prepare(s.name, s.inf, s.h, true)
		if err != nil {
			return nil, err
		}
		if s.synced != nil {
			*s.synced = reg.HasSynced
		}
	}
	if cfg.Mode == ModeCluster {
		// Every pod of the cluster passes through the cache: keep only
		// the identity of those that request no accelerator.
		if err := i.pods.SetTransform(slimPod); err != nil {
			return nil, fmt.Errorf("kube: pods informer: %w", err)
		}
	}
	return i, nil
}

// prepare sets an informer's transform, error handler and event handler.
// Errors of a core informer (pods, namespaces, nodes) mark the API server
// unreachable; those of Kueue's are logged only.
func (i *Informers) prepare(name string, inf cache.SharedIndexInformer, h cache.ResourceEventHandler, core bool) (cache.ResourceEventHandlerRegistration, error) {
	if err := inf.SetTransform(stripManagedFields); err != nil {
		return nil, fmt.Errorf("kube: %s informer: %w", name, err)
	}
	handler := func(_ context.Context, _ *cache.Reflector, err error) {
		if benign(err) {
			return
		}
		if core {
			i.health.failed(name, err, i.cfg.Now())
			return
		}
		if name == "localqueues" {
			i.kueueFailed.Store(true)
		}
		i.once.warn("kueue:"+name+":"+err.Error(), "cannot list or watch Kueue "+name+"; cluster_queue rules find nothing and quotas are not exported",
			"err", err)
	}
	if err := inf.SetWatchErrorHandlerWithContext(handler); err != nil {
		return nil, fmt.Errorf("kube: %s informer: %w", name, err)
	}
	if h == nil {
		return nil, nil
	}
	reg, err := inf.AddEventHandler(h)
	if err != nil {
		return nil, fmt.Errorf("kube: %s informer: %w", name, err)
	}
	return reg, nil
}

// benign tells the watch errors that are part of normal operation.
func benign(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		apierrors.IsResourceExpired(err) || apierrors.IsGone(err) || errors.Is(err, context.Canceled)
}

func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// slimPod reduces a pod that requests no accelerator to its identity.
func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return stripManagedFields(obj)
	}
	if Requests(&p.Spec) != nil {
		return stripManagedFields(obj)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion},
		Spec:       corev1.PodSpec{NodeName: p.Spec.NodeName},
	}, nil
}

// Start runs the informers until ctx ends. It returns at once; Synced
// tells when the view is complete, WaitForSync waits for it.
func (i *Informers) Start(ctx context.Context) {
	if !i.started.CompareAndSwap(false, true) {
		return
	}
	for _, inf := range []cache.SharedIndexInformer{i.pods, i.namespaces, i.nodes} {
		go inf.RunWithContext(ctx)
	}
	go i.run(ctx)
}

// run finds Kueue (again at each tick while discovery does not answer),
// then waits for the lookups; at each tick it probes the API server while
// it is unreachable and forgets deleted pods past the retention.
func (i *Informers) run(ctx context.Context) {
	tick := time.NewTicker(i.cfg.ProbeInterval)
	defer tick.Stop()
	kueueDone := i.findKueue(ctx)
	if kueueDone {
		go i.waitLookups(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		i.probe(ctx)
		i.prune()
		if !kueueDone {
			if kueueDone = i.findKueue(ctx); kueueDone {
				go i.waitLookups(ctx)
			}
		}
	}
}

// findKueue asks discovery whether Kueue's API is served and starts its
// informers when it is. false means discovery did not answer (try again).
func (i *Informers) findKueue(ctx context.Context) bool {
	if i.cfg.Dynamic == nil {
		i.once.info("kueue:none", "no dynamic client: Kueue queues are not read")
		return true
	}
	dctx, cancel := context.WithTimeout(ctx, i.cfg.ProbeInterval)
	defer cancel()
	list, err := i.api.ServerResources(dctx, KueueGroupVersion)
	switch {
	case apierrors.IsNotFound(err):
		i.once.info("kueue:absent", "Kueue API not served: cluster_queue rules find nothing and no quotas are exported",
			"group_version", KueueGroupVersion.String())
		return true
	case err != nil:
		if ctx.Err() == nil { // not a shutdown
			i.health.failed("discovery", err, i.cfg.Now())
		}
		return false
	}
	served := map[string]bool{}
	for _, r := range list.APIResources {
		served[r.Name] = true
	}
	k := &kueueInformers{}
	if served[LocalQueues.Resource] {
		k.localQueues = dynamicInformer(i.cfg.Dynamic, LocalQueues, i.cfg.Resync)
	}
	if served[ClusterQueues.Resource] && i.cfg.Mode == ModeCluster {
		k.clusterQueues = dynamicInformer(i.cfg.Dynamic, ClusterQueues, i.cfg.Resync)
	}
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { i.notify() },
		UpdateFunc: func(any, any) { i.notify() },
		DeleteFunc: func(any) { i.notify() },
	}
	for name, inf := range map[string]cache.SharedIndexInformer{"localqueues": k.localQueues, "clusterqueues": k.clusterQueues} {
		if inf == nil {
			continue
		}
		if _, err := i.prepare(name, inf, notify, false); err != nil {
			// Not expected on a new informer; Kueue is then not read.
			i.once.warn("kueue:prepare:"+name, "cannot watch Kueue "+name, "err", err)
			return true
		}
	}
	i.kueue.Store(k)
	for _, inf := range []cache.SharedIndexInformer{k.localQueues, k.clusterQueues} {
		if inf != nil {
			go inf.RunWithContext(ctx)
		}
	}
	i.cfg.Logger.Info("Kueue API found", "localqueues", k.localQueues != nil, "clusterqueues", k.clusterQueues != nil)
	return true
}

// waitLookups waits until the namespaces and the LocalQueues (unless
// their informer fails) are synced, then resolves the attribution of the
// pods seen so far. false when ctx ended first.
func (i *Informers) waitLookups(ctx context.Context) bool {
	var lq cache.SharedIndexInformer
	if k := i.kueue.Load(); k != nil {
		lq = k.localQueues
	}
	ready := func() bool {
		return i.namespaces.HasSynced() && (lq == nil || lq.HasSynced() || i.kueueFailed.Load())
	}
	for !ready() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	i.mu.Lock()
	i.lookupsReady.Store(true)
	for _, st := range i.state {
		if !st.resolved {
			st.pod.Attribution = i.cfg.Rules.Resolve(st.attrPod, i)
			st.resolved = true
		}
		st.pod.Provisional = false
	}
	i.mu.Unlock()
	i.notify()
	return true
}

// WaitForSync waits until Synced or ctx ends, and reports Synced.
func (i *Informers) WaitForSync(ctx context.Context) bool {
	for !i.Synced() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return true
}

// Synced implements Pods: the informers have listed everything, the
// attribution lookups are ready and the API server answers.
func (i *Informers) Synced() bool {
	return i.started.Load() && i.podsSynced() && i.namespaces.HasSynced() && i.nodesSynced() &&
		i.lookupsReady.Load() && !i.health.isDown()
}

// Subscribe returns a channel that receives a value after the view
// changes (coalesced: one pending value at most).
func (i *Informers) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	i.mu.Lock()
	i.subs = append(i.subs, ch)
	i.mu.Unlock()
	return ch
}

func (i *Informers) notify() {
	i.mu.RLock()
	defer i.mu.RUnlock()
	for _, ch := range i.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Pod implements Pods.
func (i *Informers) Pod(uid string) (Pod, bool) {
	now := i.cfg.Now()
	i.mu.RLock()
	defer i.mu.RUnlock()
	st, ok := i.state[uid]
	if !ok || i.expired(st, now) {
		return Pod{}, false
	}
	return st.pod, true
}

// List implements Pods: sorted by namespace, name and UID.
func (i *Informers) List() []Pod {
	now := i.cfg.Now()
	i.mu.RLock()
	out := make([]Pod, 0, len(i.state))
	for _, st := range i.state {
		if !i.expired(st, now) {
			out = append(out, st.pod)
		}
	}
	i.mu.RUnlock()
	sort.Slice(out, func(a, b int) bool {
		if out[a].Namespace != out[b].Namespace {
			return out[a].Namespace < out[b].Namespace
		}
		if out[a].Name != out[b].Name {
			return out[a].Name < out[b].Name
		}
		return out[a].UID < out[b].UID
	})
	return out
}

func (i *Informers) expired(st *podState, now time.Time) bool {
	return !st.pod.Deleted.IsZero() && now.Sub(st.pod.Deleted) >= i.cfg.Retention
}

// prune forgets deleted pods past the retention.
func (i *Informers) prune() {
	now := i.cfg.Now()
	i.mu.Lock()
	n := 0
	for uid, st := range i.state {
		if i.expired(st, now) {
			delete(i.state, uid)
			n++
		}
	}
	i.mu.Unlock()
	if n > 0 {
		i.notify()
	}
}

// NamespaceLabels implements attribution.Lookup.
func (i *Informers) NamespaceLabels(namespace string) map[string]string {
	obj, ok, err := i.namespaces.GetStore().GetByKey(namespace)
	if err != nil || !ok {
		return nil
	}
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return nil
	}
	return ns.Labels
}

// ClusterQueue implements attribution.Lookup: the ClusterQueue of a Kueue
// LocalQueue, when Kueue is installed and the LocalQueue known.
func (i *Informers) ClusterQueue(namespace, localQueue string) (string, bool) {
	k := i.kueue.Load()
	if k == nil || k.localQueues == nil {
		return "", false
	}
	obj, ok, err := k.localQueues.GetStore().GetByKey(namespace + "/" + localQueue)
	if err != nil || !ok {
		return "", false
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return "", false
	}
	return localQueueTarget(u)
}

// Node returns what is known of a node.
func (i *Informers) Node(name string) (NodeInfo, bool) {
	if name == "" {
		return NodeInfo{}, false
	}
	obj, ok, err := i.nodes.GetStore().GetByKey(name)
	if err != nil || !ok {
		return NodeInfo{}, false
	}
	n, ok := obj.(*corev1.Node)
	if !ok {
		return NodeInfo{}, false
	}
	return nodeInfo(n), true
}

// Quotas returns the accelerator quotas of every Kueue ClusterQueue
// (cluster mode, Kueue installed), sorted by ClusterQueue, flavor and
// resource. Malformed entries are logged once and skipped.
func (i *Informers) Quotas() []Quota {
	k := i.kueue.Load()
	if k == nil || k.clusterQueues == nil {
		return nil
	}
	objs := k.clusterQueues.GetStore().List()
	var out []Quota
	for _, obj := range objs {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		q, errs := clusterQueueQuotas(u)
		for _, err := range errs {
			i.once.warn("quota:"+err.Error(), "skipping a Kueue quota", "err", err)
		}
		out = append(out, q...)
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].ClusterQueue < out[b].ClusterQueue })
	return out
}

// onPod records a pod added, updated or deleted.
func (i *Informers) onPod(obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if i.cfg.Mode == ModeNode && p.Spec.NodeName != i.cfg.Node {
		return
	}
	reqs := Requests(&p.Spec)
	uid := string(p.UID)
	i.mu.Lock()
	st := i.state[uid]
	if st == nil {
		if i.cfg.Mode == ModeCluster && len(reqs) == 0 {
			i.mu.Unlock()
			return
		}
		st = &podState{}
		i.state[uid] = st
	}
	i.update(st, p, reqs, deleted)
	i.mu.Unlock()
	i.notify()
}

// update rebuilds a pod's view; i.mu is held.
func (i *Informers) update(st *podState, p *corev1.Pod, reqs map[string]int64, deleted bool) {
	prev := st.pod
	v := Pod{UID: string(p.UID), Name: p.Name, Namespace: p.Namespace, Node: p.Spec.NodeName,
		Phase: string(p.Status.Phase), Requests: reqs, Deleted: prev.Deleted,
		Attribution: prev.Attribution, Virtual: prev.Virtual, Site: prev.Site, RemoteModel: prev.RemoteModel}
	if deleted && v.Deleted.IsZero() {
		v.Deleted = i.cfg.Now()
	}
	v.Containers = containerTimes(prev.Containers, p, deleted || !v.Deleted.IsZero() || terminal(p))
	if !st.resolved {
		st.attrPod = attributionPod(p)
		v.Attribution = i.cfg.Rules.Resolve(st.attrPod, i)
		st.resolved = i.lookupsReady.Load()
	}
	v.Provisional = !st.resolved
	if !st.nodeKnown {
		if ni, ok := i.Node(p.Spec.NodeName); ok {
			v.Virtual, v.Site, v.RemoteModel = ni.Virtual, ni.Site, ni.GPUModel
			st.nodeKnown = true
		}
	}
	st.pod = v
}

// onNode completes the pods of a node that arrived before it.
func (i *Informers) onNode(obj any) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	ni := nodeInfo(n)
	changed := false
	i.mu.Lock()
	for _, st := range i.state {
		if !st.nodeKnown && st.pod.Node == n.Name {
			st.pod.Virtual, st.pod.Site, st.pod.RemoteModel = ni.Virtual, ni.Site, ni.GPUModel
			st.nodeKnown = true
			changed = true
		}
	}
	i.mu.Unlock()
	if changed {
		i.notify()
	}
}

// probe asks the API server for its version while it is marked
// unreachable.
func (i *Informers) probe(ctx context.Context) {
	if !i.health.isDown() {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, i.cfg.ProbeInterval)
	defer cancel()
	err := i.api.ServerVersion(pctx)
	i.health.probed(err, i.cfg.Now(), i.cfg.ProbeInterval)
}

// dynamicInformer watches a resource of every namespace through the
// dynamic client (client-go's dynamicinformer would link every typed
// informer, see API).
func dynamicInformer(d dynamic.Interface, gvr schema.GroupVersionResource, resync time.Duration) cache.SharedIndexInformer {
	r := d.Resource(gvr)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return r.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return r.Watch(ctx, o)
		},
	}
	return cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, d), &unstructured.Unstructured{}, resync, cache.Indexers{})
}

var _ Pods = (*Informers)(nil)
var _ attribution.Lookup = (*Informers)(nil)
