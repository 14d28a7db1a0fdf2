package exporters

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/aggregator/source"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/kube"
	"github.com/gpuledger/gpuledger/exporters/kube/kubefake"
	"github.com/gpuledger/gpuledger/exporters/kubelet/kubelettest"
	"github.com/gpuledger/gpuledger/exporters/nvml"
	"github.com/gpuledger/gpuledger/exporters/nvml/nvmltest"
)

// A real node exporter (NewNode) over fakes of everything it talks to:
// NVML (go-nvml's mock, completed by nvmltest), the kubelet (a gRPC
// pod-resources server on a unix socket) and the API server (client-go
// fake clientsets, Kueue served through the dynamic client).

// realPod is one pod of a fake node: the API server's object (nil when the
// API server does not know it) and what the kubelet lists for it.
type realPod struct {
	obj       *corev1.Pod
	namespace string
	name      string
	resource  string
	ids       []string
}

// realNode is the fakes a real exporter runs over, and its options.
type realNode struct {
	lib     *nvmltest.Lib
	kubelet *kubelettest.Server
	listed  []kubelettest.Assignment // what List answers
	cs      *fake.Clientset
	dyn     *dynamicfake.FakeDynamicClient
	opts    NodeOptions
	// objs and queues are what the fake API server holds (core v1
	// objects, Kueue LocalQueues), for a fake served over HTTP instead.
	objs   []runtime.Object
	queues []*unstructured.Unstructured
}

// listPods makes the kubelet list the node's pods; until then it lists
// none.
func (rn *realNode) listPods() { rn.kubelet.Set(rn.listed...) }

// newRealNode starts the fake kubelet, and fills the fake API server with
// the pods it knows, the namespaces hub (project label jupyterhub) and
// batch, the node, and a Kueue LocalQueue batch/gpu → ClusterQueue cq-gpu.
func newRealNode(tb testing.TB, nodeName string, lib *nvmltest.Lib, pods []realPod) *realNode {
	tb.Helper()
	sock := filepath.Join(tb.TempDir(), "kubelet.sock")
	kl, err := kubelettest.Start(sock)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(kl.Stop)
	var as []kubelettest.Assignment
	objs := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hub", Labels: map[string]string{attribution.LabelProject: "jupyterhub"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "batch"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}},
	}
	for _, p := range pods {
		as = append(as, kubelettest.Assignment{Namespace: p.namespace, Pod: p.name, Container: "main", Resource: p.resource, IDs: p.ids})
		if p.obj != nil {
			objs = append(objs, p.obj)
		}
	}
	cs := fake.NewClientset(objs...)
	cs.Resources = []*metav1.APIResourceList{{GroupVersion: kube.KueueGroupVersion.String(), APIResources: []metav1.APIResource{
		{Name: "localqueues", Namespaced: true, Kind: "LocalQueue"},
		{Name: "clusterqueues", Kind: "ClusterQueue"},
	}}}
	lq := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": kube.KueueGroupVersion.String(), "kind": "LocalQueue",
		"metadata": map[string]any{"name": "gpu", "namespace": "batch"},
		"spec":     map[string]any{"clusterQueue": "cq-gpu"},
	}}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		kube.LocalQueues: "LocalQueueList", kube.ClusterQueues: "ClusterQueueList"}, lq)
	return &realNode{lib: lib, kubelet: kl, listed: as, cs: cs, dyn: dyn, objs: objs, queues: []*unstructured.Unstructured{lq}, opts: NodeOptions{
		Node: nodeName, KubeletSocket: sock, FPGASysfsRoot: tb.TempDir(), Logger: discard(),
		kube: &kube.Config{Client: kubefake.New(cs), Dynamic: dyn}, nvmlLib: lib,
	}}
}

// podOpt sets a pod's attribution metadata.
type podOpt func(*corev1.Pod)

func withAnnotation(k, v string) podOpt {
	return func(p *corev1.Pod) { p.Annotations = map[string]string{k: v} }
}

func withLabels(kv ...string) podOpt {
	return func(p *corev1.Pod) {
		p.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}

// apiPod is a pod on node requesting n of res, its main container
// started at start and, when end is not zero, terminated at end.
func apiPod(ns, name, node, res string, n int64, start, end time.Time, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: "default", Containers: []corev1.Container{{Name: "main",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
				corev1.ResourceName(res): *resource.NewQuantity(n, resource.DecimalSI)}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &metav1.Time{Time: start}},
	}
	st := corev1.ContainerStatus{Name: "main", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(start)}}}
	if !end.IsZero() {
		p.Status.Phase = corev1.PodSucceeded
		st.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{StartedAt: metav1.NewTime(start), FinishedAt: metav1.NewTime(end)}}
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{st}
	for _, o := range opts {
		o(p)
	}
	return p
}

// serveNode builds the exporter and serves it on loopback until the test
// ends; it returns the /metrics URL.
func serveNode(t *testing.T, opts NodeOptions) string {
	t.Helper()
	n, err := NewNode(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- n.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + l.Addr().String() + "/metrics"
}

// scrapeURL fetches an exposition over HTTP.
func scrapeURL(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", url, resp.StatusCode, body)
	}
	return string(body)
}

func parseExposition(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	return mfs
}

// value returns the value of the series of a family whose labels include
// want.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		got := map[string]string{}
		for _, lp := range m.Label {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

// waitFor scrapes url until done holds of the exposition, and returns it;
// ok is false when it never held. The bound only keeps a broken test from
// hanging.
func waitFor(t *testing.T, url string, done func(body string) bool) (body string, ok bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		body := scrapeURL(t, url)
		if done(body) {
			return body, true
		}
		if time.Now().After(deadline) {
			return body, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sortAllocs(as []observe.Alloc) {
	slices.SortFunc(as, func(a, b observe.Alloc) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Device, b.Device),
			cmp.Compare(a.PodUID, b.PodUID), cmp.Compare(a.Resource, b.Resource))
	})
}

// TestRealNodeEndToEnd runs the node exporter over the mixed A100 node:
// GPUs 0–5 whole, GPU 6 a 3g.40gb and three 1g.10gb, GPU 7 two 3g.40gb.
func TestRealNodeEndToEnd(t *testing.T) {
	const nodeName = "gpu-a100-01"
	lib := nvmltest.NewA100(t, "a100e2e0", nvmltest.A100Specs())
	now := time.Now().Truncate(time.Second)
	gpu := func(i int) string { return lib.GPUs[i].UUID }
	alice := lib.GPUs[6].MIGs[1]                     // 1g.10gb, GPU instance 9
	carolID := fmt.Sprintf("MIG-%s/%d/0", gpu(7), 1) // the old drivers' form of GPU 7's first 3g.40gb
	aliceStart, bobStart, carolStart := now.Add(-2*time.Hour), now.Add(-30*time.Minute), now.Add(-time.Hour)
	daveStart, daveEnd := now.Add(-3*time.Hour), now.Add(-10*time.Minute)
	pods := []realPod{
		{namespace: "hub", name: "jupyter-alice", resource: "nvidia.com/mig-1g.10gb", ids: []string{alice.UUID},
			obj: apiPod("hub", "jupyter-alice", nodeName, "nvidia.com/mig-1g.10gb", 1, aliceStart, time.Time{},
				withAnnotation(attribution.AnnotationJupyterHubUser, "alice"))},
		{namespace: "batch", name: "train-bob", resource: "nvidia.com/gpu", ids: []string{gpu(2), gpu(3)},
			obj: apiPod("batch", "train-bob", nodeName, "nvidia.com/gpu", 2, bobStart, time.Time{},
				withLabels(attribution.LabelKueueQueue, "gpu", attribution.LabelUser, "bob"))},
		{namespace: "hub", name: "jupyter-carol", resource: "nvidia.com/mig-3g.40gb", ids: []string{carolID},
			obj: apiPod("hub", "jupyter-carol", nodeName, "nvidia.com/mig-3g.40gb", 1, carolStart, time.Time{},
				withAnnotation(attribution.AnnotationJupyterHubUser, "carol"))},
		{namespace: "batch", name: "done-dave", resource: "nvidia.com/gpu", ids: []string{gpu(4)},
			obj: apiPod("batch", "done-dave", nodeName, "nvidia.com/gpu", 1, daveStart, daveEnd,
				withLabels(attribution.LabelUser, "dave"))},
		// Listed by the kubelet, unknown to the API server: not exported,
		// counted as unresolved.
		{namespace: "batch", name: "ghost", resource: "nvidia.com/gpu", ids: []string{gpu(5)}},
	}
	rn := newRealNode(t, nodeName, lib, pods)
	rn.opts.kubeletInterval = 100 * time.Millisecond
	url := serveNode(t, rn.opts)

	const model = nvmltest.A100Name
	mig := func(dev, uid, res, gpuUUID, profile, ns, pod, user, project string, start time.Time, w int64) observe.Alloc {
		return observe.Alloc{
			AllocKey: observe.AllocKey{Node: nodeName, Device: dev, PodUID: uid, Resource: res},
			Attrs: observe.Attrs{Class: "mig", GPUUUID: gpuUUID, Model: model, Profile: profile, Namespace: ns, Pod: pod,
				User: user, Project: project},
			Start: start.Unix(), WeightMilli: w, Devices: 1, ActivityMilli: -1, // no MIG activity on an A100 without DCGM
		}
	}
	whole := func(i int, uid, pod, user, project, queue string, start, end time.Time, activity int64) observe.Alloc {
		a := observe.Alloc{
			AllocKey: observe.AllocKey{Node: nodeName, Device: gpu(i), PodUID: uid, Resource: "nvidia.com/gpu"},
			Attrs: observe.Attrs{Class: "gpu", GPUUUID: gpu(i), Model: model, Namespace: "batch", Pod: pod,
				User: user, Project: project, Queue: queue},
			Start: start.Unix(), WeightMilli: 1000, Devices: 1, ActivityMilli: activity,
		}
		if !end.IsZero() {
			a.End = end.Unix()
		}
		return a
	}
	want := []observe.Alloc{
		mig(alice.UUID, "uid-jupyter-alice", "nvidia.com/mig-1g.10gb", gpu(6), "1g.10gb", "hub", "jupyter-alice",
			"alice", "jupyterhub", aliceStart, 143),
		mig(carolID, "uid-jupyter-carol", "nvidia.com/mig-3g.40gb", gpu(7), "3g.40gb", "hub", "jupyter-carol",
			"carol", "jupyterhub", carolStart, 500),
		// Utilization of GPU i is 14·i %.
		whole(2, "uid-train-bob", "train-bob", "bob", "cq-gpu", "cq-gpu", bobStart, time.Time{}, 280),
		whole(3, "uid-train-bob", "train-bob", "bob", "cq-gpu", "cq-gpu", bobStart, time.Time{}, 420),
		whole(4, "uid-done-dave", "done-dave", "dave", "batch", "", daveStart, daveEnd, -1),
	}
	sortAllocs(want)

	// The kubelet lists the pods once the exporter's view of the API is
	// complete (see TestRealNodeAttributionBeforeLookups for the other
	// order).
	apiUp := func(body string) bool {
		return strings.Contains(body, `gpuledger_attribution_available{node="`+nodeName+`",source="apiserver"} 1`)
	}
	if body, ok := waitFor(t, url, apiUp); !ok {
		t.Fatalf("the API server's view never synced:\n%s", body)
	}
	rn.listPods()

	var sc observe.Scrape
	var parseErr error
	body, ok := waitFor(t, url, func(body string) bool {
		sc, parseErr = source.ParseText(nodeName, strings.NewReader(body), now)
		return parseErr == nil && slices.Equal(sc.Allocs, want)
	})
	if !ok {
		t.Fatalf("the aggregator never read the allocations expected (parse error: %v):\ngot  %+v\nwant %+v", parseErr, sc.Allocs, want)
	}

	mfs := parseExposition(t, body)
	for _, c := range []string{CollectorNVML, CollectorAttribution} {
		if v, ok := value(mfs, "gpuledger_exporter_collector_success", map[string]string{"collector": c}); !ok || v != 1 {
			t.Errorf("collector %s success = %v (served %v), want 1", c, v, ok)
		}
	}
	if _, ok := value(mfs, "gpuledger_exporter_collector_success", map[string]string{"collector": CollectorFPGA}); !ok {
		t.Error("the fpga collector, without cards, is not reported")
	}
	counts := map[string]int{"gpuledger_gpu_info": 8, "gpuledger_mig_instance_info": 6, "gpuledger_gpu_power_watts": 8,
		"gpuledger_gpu_energy_joules_total": 8, "gpuledger_mig_instance_weight_ratio": 6,
		"gpuledger_allocation_start_time_seconds": 5, "gpuledger_allocation_end_time_seconds": 1}
	for name, n := range counts {
		if mf := mfs[name]; mf == nil || len(mf.Metric) != n {
			t.Errorf("%s: %d series, want %d", name, len(mfs[name].GetMetric()), n)
		}
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gpuledger_attribution_available", map[string]string{"source": "kubelet"}, 1},
		{"gpuledger_attribution_available", map[string]string{"source": "apiserver"}, 1},
		{"gpuledger_attribution_unresolved_devices", nil, 1}, // the ghost pod
		// Weights are exported in milli-GPU, as the simulator exports them:
		// a 1g.10gb of an A100-80GB is round(1000/7) = 143.
		{"gpuledger_allocation_weight_ratio", map[string]string{"pod": "jupyter-alice", "profile": "1g.10gb"}, 0.143},
		{"gpuledger_mig_instance_weight_ratio", map[string]string{"mig_uuid": alice.UUID}, 0.143},
		{"gpuledger_allocation_weight_ratio", map[string]string{"pod": "jupyter-carol", "gpu": "7"}, 0.5},
		{"gpuledger_allocation_end_time_seconds", map[string]string{"pod": "done-dave"}, float64(daveEnd.Unix())},
	} {
		if v, ok := value(mfs, tc.name, tc.labels); !ok || v != tc.want {
			t.Errorf("%s%v = %v (served %v), want %v", tc.name, tc.labels, v, ok, tc.want)
		}
	}
	if _, ok := value(mfs, "gpuledger_allocation_start_time_seconds", map[string]string{"pod": "ghost"}); ok {
		t.Error("a pod the API server does not know is exported")
	}
	if len(sc.GPUs) != 8 {
		t.Errorf("the aggregator reads %d GPUs, want 8", len(sc.GPUs))
	}
}

// TestRealNodeDCGMActivity runs the node with its dcgm collector reading
// a dcgm-exporter over HTTP: the profiling activity DCGM gives a MIG
// instance (parent UUID and GPU_I_ID, as dcgm-exporter labels it) reaches
// the allocation on that slice, which without DCGM has none on an A100.
func TestRealNodeDCGMActivity(t *testing.T) {
	const nodeName = "gpu-a100-dcgm"
	lib := nvmltest.NewA100(t, "a100dc6d", nvmltest.A100Specs())
	now := time.Now().Truncate(time.Second)
	alice := lib.GPUs[6].MIGs[1] // 1g.10gb, GPU instance 9
	parent := lib.GPUs[6].UUID
	dcgmBody := fmt.Sprintf(`# HELP DCGM_FI_PROF_GR_ENGINE_ACTIVE Ratio of time the graphics engine is active.
# TYPE DCGM_FI_PROF_GR_ENGINE_ACTIVE gauge
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="6",UUID="%s",device="nvidia6",modelName="%s",GPU_I_PROFILE="1g.10gb",GPU_I_ID="9",Hostname="%s",container="notebook",namespace="hub",pod="jupyter-alice"} 0.730000
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="6",UUID="%s",device="nvidia6",modelName="%s",GPU_I_PROFILE="3g.40gb",GPU_I_ID="2",Hostname="%s"} 0.250000
`, parent, nvmltest.A100Name, nodeName, parent, nvmltest.A100Name, nodeName)
	var polls sync.WaitGroup
	polls.Add(1)
	var once sync.Once
	dcgmSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, dcgmBody)
		once.Do(polls.Done)
	}))
	t.Cleanup(dcgmSrv.Close)

	pods := []realPod{
		{namespace: "hub", name: "jupyter-alice", resource: "nvidia.com/mig-1g.10gb", ids: []string{alice.UUID},
			obj: apiPod("hub", "jupyter-alice", nodeName, "nvidia.com/mig-1g.10gb", 1, now.Add(-time.Hour), time.Time{},
				withAnnotation(attribution.AnnotationJupyterHubUser, "alice"))},
	}
	rn := newRealNode(t, nodeName, lib, pods)
	rn.opts.kubeletInterval = 100 * time.Millisecond
	rn.opts.DCGMURL = dcgmSrv.URL + "/metrics"
	url := serveNode(t, rn.opts)
	polls.Wait()
	rn.listPods()

	body, ok := waitFor(t, url, func(body string) bool {
		sc, err := source.ParseText(nodeName, strings.NewReader(body), now)
		return err == nil && len(sc.Allocs) == 1 && sc.Allocs[0].ActivityMilli == 730
	})
	if !ok {
		t.Fatalf("the MIG allocation never carried DCGM's activity 0.73:\n%s", body)
	}
	mfs := parseExposition(t, body)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gpuledger_exporter_collector_success", map[string]string{"collector": CollectorDCGM}, 1},
		{"gpuledger_allocation_activity_ratio", map[string]string{"pod": "jupyter-alice", "profile": "1g.10gb"}, 0.73},
		{"gpuledger_dcgm_graphics_activity_ratio", map[string]string{"mig_uuid": alice.UUID, "gpu_instance_id": "9", "profile": "1g.10gb"}, 0.73},
		{"gpuledger_dcgm_up", nil, 1},
	} {
		if v, ok := value(mfs, tc.name, tc.labels); !ok || v != tc.want {
			t.Errorf("%s%v = %v (served %v), want %v", tc.name, tc.labels, v, ok, tc.want)
		}
	}
}

// TestRealNodeAttributionBeforeLookups: the kubelet lists a Kueue pod
// while the exporter's view of the API has the pods but not yet Kueue's
// LocalQueues, as when the exporter restarts on a busy node. The
// allocation must end up attributed to the ClusterQueue, as the informers
// resolve it once the LocalQueues are listed.
//
// kube.Informers lists pods with a provisional attribution (here project
// batch, queue gpu) until the lookups are ready; the allocation collector
// holds such pods back, so the allocation is created with the final one.
func TestRealNodeAttributionBeforeLookups(t *testing.T) {
	const nodeName = "gpu-a100-02"
	lib := nvmltest.NewA100(t, "a100100b", nvmltest.A100MIG1g(1))
	now := time.Now().Truncate(time.Second)
	slice := lib.GPUs[0].MIGs[0].UUID
	rn := newRealNode(t, nodeName, lib, []realPod{{namespace: "batch", name: "train-erin", resource: "nvidia.com/mig-1g.10gb",
		ids: []string{slice}, obj: apiPod("batch", "train-erin", nodeName, "nvidia.com/mig-1g.10gb", 1, now.Add(-time.Hour), time.Time{},
			withLabels(attribution.LabelKueueQueue, "gpu", attribution.LabelUser, "erin"))}})
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open) // a test that stops early leaves no list held
	rn.dyn.PrependReactor("list", "localqueues", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-release
		return false, nil, nil
	})
	rn.opts.kubeletInterval = 100 * time.Millisecond
	rn.listPods()
	url := serveNode(t, rn.opts)

	// While the LocalQueues are not listed, the pod's device is held back
	// as unresolved rather than exported with a provisional project.
	body, ok := waitFor(t, url, func(body string) bool {
		return strings.Contains(body, `gpuledger_attribution_unresolved_devices{node="`+nodeName+`"} 1`)
	})
	if !ok {
		t.Fatalf("the pod's device was never counted unresolved while the lookups were pending:\n%s", body)
	}
	if strings.Contains(body, `pod="train-erin"`) {
		t.Fatalf("the allocation was exported before its attribution was final:\n%s", body)
	}
	open()
	project := func(body string) string {
		mfs := parseExposition(t, body)
		for _, m := range mfs["gpuledger_allocation_start_time_seconds"].GetMetric() {
			for _, lp := range m.Label {
				if lp.GetName() == "project" {
					return lp.GetValue()
				}
			}
		}
		return ""
	}
	body, ok = waitFor(t, url, func(body string) bool {
		return strings.Contains(body, `gpuledger_attribution_available{node="`+nodeName+`",source="apiserver"} 1`) &&
			strings.Contains(body, `pod="train-erin"`)
	})
	if !ok {
		t.Fatalf("the API server's view never synced, or the allocation never appeared:\n%s", body)
	}
	// Reconciliations follow the kubelet's polls: wait for a few.
	for polls := rn.kubelet.Lists() + 3; rn.kubelet.Lists() < polls; {
		time.Sleep(20 * time.Millisecond)
	}
	if got := project(scrapeURL(t, url)); got != "cq-gpu" {
		t.Errorf("allocation attributed to project %q, want cq-gpu (the LocalQueue's ClusterQueue)", got)
	}
}

// Without NVML, kubelet or API server, the node exporter still starts and
// serves, and says what is missing.
func TestRealNodeNothingThere(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a cluster, whatever runs the test
	probe, err := nvml.Open(nvml.Options{Node: "probe"})
	if err != nil {
		t.Fatal(err)
	}
	hasNVML := probe.Err() == nil
	if err := probe.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	url := serveNode(t, NodeOptions{Node: "bare", KubeletSocket: filepath.Join(dir, "absent.sock"), FPGASysfsRoot: dir,
		Logger: discard()})
	body, ok := waitFor(t, url, func(body string) bool { return strings.Contains(body, "gpuledger_attribution_available") })
	if !ok {
		t.Fatalf("no attribution series served:\n%s", body)
	}
	mfs := parseExposition(t, body)
	if hasNVML {
		t.Log("this machine has NVML: its collector's failure is not checked")
	} else if v, ok := value(mfs, "gpuledger_exporter_collector_success", map[string]string{"collector": CollectorNVML}); !ok || v != 0 {
		t.Errorf("nvml collector success = %v (served %v), want 0 without libnvidia-ml", v, ok)
	}
	for _, src := range []string{"kubelet", "apiserver"} {
		if v, ok := value(mfs, "gpuledger_attribution_available", map[string]string{"source": src}); !ok || v != 0 {
			t.Errorf("attribution_available{source=%q} = %v (served %v), want 0", src, v, ok)
		}
	}
	if v, ok := value(mfs, "gpuledger_exporter_collector_success", map[string]string{"collector": CollectorAttribution}); !ok || v != 1 {
		t.Errorf("attribution collector success = %v (served %v), want 1: it reports its sources itself", v, ok)
	}
	if mfs["gpuledger_build_info"] == nil {
		t.Error("gpuledger_build_info not served")
	}
	if n := len(mfs["gpuledger_allocation_start_time_seconds"].GetMetric()); n != 0 {
		t.Errorf("%d allocations served with no kubelet", n)
	}
}

func TestNewNodeErrors(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		opts NodeOptions
		want []string // in the error
	}{
		{"cluster mode without an API server", NodeOptions{Mode: ModeCluster},
			[]string{"collector attribution", "cluster mode needs the Kubernetes API", "--kubeconfig"}},
		{"cluster mode with a missing kubeconfig", NodeOptions{Mode: ModeCluster, Kubeconfig: filepath.Join(dir, "absent")},
			[]string{"cluster mode needs the Kubernetes API", "kubeconfig " + filepath.Join(dir, "absent")}},
		{"unknown mode", NodeOptions{Mode: "rack", Node: "n"}, []string{`unknown mode "rack"`}},
		{"node mode without a node name", NodeOptions{}, []string{"node name"}},
		{"unknown collector", NodeOptions{Node: "n", Collectors: []string{"nvml", "gpu"}}, []string{`collector "gpu" is not available in node mode`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := NewNode(tc.opts)
			if err == nil {
				n.Close()
				t.Fatal("NewNode succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestCollectorsFor(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts NodeOptions
		want []string
		err  string // in the error; "" for none
	}{
		{"node defaults", NodeOptions{Mode: ModeNode}, []string{"nvml", "fpga", "attribution"}, ""},
		{"node defaults with dcgm", NodeOptions{Mode: ModeNode, DCGMURL: "http://localhost:9400/metrics"},
			[]string{"nvml", "fpga", "attribution", "dcgm"}, ""},
		{"cluster defaults", NodeOptions{Mode: ModeCluster}, []string{"attribution"}, ""},
		{"chosen, spaces trimmed", NodeOptions{Mode: ModeNode, Collectors: []string{" attribution", "nvml "}},
			[]string{"attribution", "nvml"}, ""},
		{"dcgm with its URL", NodeOptions{Mode: ModeNode, Collectors: []string{"dcgm"}, DCGMURL: "http://x/metrics"}, []string{"dcgm"}, ""},
		{"unknown collector", NodeOptions{Mode: ModeNode, Collectors: []string{"sim"}}, nil,
			`collector "sim" is not available in node mode (available: nvml, dcgm, fpga, attribution)`},
		{"device collector in cluster mode", NodeOptions{Mode: ModeCluster, Collectors: []string{"nvml"}}, nil,
			`collector "nvml" is not available in cluster mode (available: attribution)`},
		{"dcgm without URL", NodeOptions{Mode: ModeNode, Collectors: []string{"nvml", "dcgm"}}, nil, "--dcgm-exporter-url"},
		{"duplicate", NodeOptions{Mode: ModeNode, Collectors: []string{"nvml", "fpga", " nvml"}}, nil, `collector "nvml" given twice`},
		{"empty name", NodeOptions{Mode: ModeNode, Collectors: []string{""}}, nil, `collector "" is not available`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.opts.collectorsFor()
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("error: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one saying %q", err, tc.err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("collectors %q, want %q", got, tc.want)
			}
		})
	}
}

// The exporter of the real node closes what it started, and a second
// Close is harmless.
func TestRealNodeClose(t *testing.T) {
	lib := nvmltest.NewA100(t, "a100c105", nvmltest.A100MIG1g(1))
	rn := newRealNode(t, "close-01", lib, nil)
	n, err := NewNode(rn.opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Collectors(); !slices.Equal(got, []string{"nvml", "fpga", "attribution"}) {
		t.Errorf("collectors %q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(n.Close(), n.Close()); err != nil {
		t.Errorf("Close: %v", err)
	}
	if st := lib.Stats(); st.Inits != 1 || st.Shutdowns != 1 {
		t.Errorf("NVML initialised %d and shut down %d times, want once each", st.Inits, st.Shutdowns)
	}
}
