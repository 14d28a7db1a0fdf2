package kube

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/kube/kubefake"
	"github.com/gpuledger/gpuledger/internal/testlog"
	"github.com/gpuledger/gpuledger/sim/clock"
)

// t0 is the fixtures' reference instant.
var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

func at(d time.Duration) metav1.Time { return metav1.NewTime(t0.Add(d)) }

// Pod builders.
type podOpt func(*corev1.Pod)

func newPod(name, ns, node string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: "default",
			Containers: []corev1.Container{{Name: "main"}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// gpus makes the main container request n of resource.
func gpus(res string, n int64) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{
			corev1.ResourceName(res): *resource.NewQuantity(n, resource.DecimalSI)}
	}
}

func labels(kv ...string) podOpt {
	return func(p *corev1.Pod) {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}

func annotations(kv ...string) podOpt {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func serviceAccount(sa string) podOpt { return func(p *corev1.Pod) { p.Spec.ServiceAccountName = sa } }

// running starts the main container at t0+d.
func running(d time.Duration) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		st := at(0)
		p.Status.StartTime = &st
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main",
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(d)}}}}
	}
}

// succeeded ends the main container, started at t0+start, at t0+end.
func succeeded(start, end time.Duration) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodSucceeded
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{StartedAt: at(start), FinishedAt: at(end)}}}}
	}
}

func namespace(name string, kv ...string) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	for i := 0; i+1 < len(kv); i += 2 {
		ns.Labels[kv[i]] = kv[i+1]
	}
	return ns
}

func node(name string, labels, annotations map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
}

func virtualNode(name, site string) *corev1.Node {
	l := map[string]string{LabelVirtualNode: VirtualKubelet, KeyGPUModel: "NVIDIA A100-PCIE-40GB"}
	if site != "" {
		l[KeySite] = site
	}
	return node(name, l, nil)
}

func localQueue(ns, name, cq string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": KueueGroupVersion.String(), "kind": "LocalQueue",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     map[string]any{"clusterQueue": cq},
	}}
}

// clusterQueue has one resource group of flavors, each a list of
// resource/quota pairs.
func clusterQueue(name string, flavors map[string][][2]any) *unstructured.Unstructured {
	var fl []any
	for f, rs := range flavors {
		var res []any
		for _, r := range rs {
			res = append(res, map[string]any{"name": r[0], "nominalQuota": r[1]})
		}
		fl = append(fl, map[string]any{"name": f, "resources": res})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": KueueGroupVersion.String(), "kind": "ClusterQueue",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"resourceGroups": []any{map[string]any{"coveredResources": []any{"nvidia.com/gpu"}, "flavors": fl}}},
	}}
}

// env is a fake cluster and informers over it.
type env struct {
	cs   *fake.Clientset
	dyn  *dynamicfake.FakeDynamicClient
	clk  *clock.Manual
	logs *testlog.Buffer // the informers' log
	inf  *Informers
}

type envOpts struct {
	mode  Mode
	kueue bool // serve the Kueue API
	objs  []runtime.Object
	kobjs []runtime.Object // Kueue objects
	rules attribution.Rules
	start bool // start and wait for sync
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	logger, logs := testlog.New(slog.LevelDebug)
	e := &env{cs: fake.NewClientset(o.objs...), clk: clock.NewManual(t0.Add(2 * time.Hour)), logs: logs}
	if o.kueue {
		e.cs.Resources = []*metav1.APIResourceList{{GroupVersion: KueueGroupVersion.String(), APIResources: []metav1.APIResource{
			{Name: "localqueues", Namespaced: true, Kind: "LocalQueue"},
			{Name: "clusterqueues", Kind: "ClusterQueue"},
		}}}
	}
	e.dyn = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		LocalQueues: "LocalQueueList", ClusterQueues: "ClusterQueueList"}, o.kobjs...)
	mode := o.mode
	if mode == "" {
		mode = ModeNode
	}
	inf, err := NewInformers(Config{Mode: mode, Node: "gpu-a", Client: kubefake.New(e.cs), Dynamic: e.dyn, Rules: o.rules,
		Now: e.clk.Now, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.inf = inf
	if o.start {
		e.start(t)
	}
	return e
}

func (e *env) start(t *testing.T) {
	t.Helper()
	e.inf.Start(t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if !e.inf.WaitForSync(ctx) {
		t.Fatalf("informers did not sync; log:\n%s", e.logs)
	}
}

// eventually polls cond until it holds; the bound only keeps a broken
// test from hanging.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) mustPod(t *testing.T, uid string) Pod {
	t.Helper()
	p, ok := e.inf.Pod(uid)
	if !ok {
		t.Fatalf("pod %s unknown; known: %v", uid, e.uids())
	}
	return p
}

func (e *env) uids() []string {
	var out []string
	for _, p := range e.inf.List() {
		out = append(out, p.UID)
	}
	return out
}
