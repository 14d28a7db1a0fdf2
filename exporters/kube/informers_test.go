package kube

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/internal/testlog"
)

func TestNodeScoping(t *testing.T) {
	e := newEnv(t, envOpts{objs: []runtime.Object{
		newPod("mine", "ml", "gpu-a", gpus("nvidia.com/gpu", 1), running(0)),
		newPod("mine-cpu", "ml", "gpu-a", running(0)),
		newPod("theirs", "ml", "gpu-b", gpus("nvidia.com/gpu", 1), running(0)),
		newPod("unscheduled", "ml", "", gpus("nvidia.com/gpu", 1)),
		namespace("ml"), node("gpu-a", nil, nil), node("gpu-b", nil, nil),
	}})
	var podSel, nodeSel atomic.Value
	e.cs.PrependReactor("list", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		l, ok := a.(k8stesting.ListActionImpl)
		if !ok {
			return false, nil, nil
		}
		switch a.GetResource().Resource {
		case "pods":
			podSel.Store(l.ListOptions.FieldSelector)
		case "nodes":
			nodeSel.Store(l.ListOptions.FieldSelector)
		}
		return false, nil, nil
	})
	e.start(t)
	if got := podSel.Load(); got != "spec.nodeName=gpu-a" {
		t.Errorf("pods listed with field selector %v, want spec.nodeName=gpu-a", got)
	}
	if got := nodeSel.Load(); got != "metadata.name=gpu-a" {
		t.Errorf("nodes listed with field selector %v, want metadata.name=gpu-a", got)
	}
	// The fake API server ignores field selectors: the informers filter
	// again, so a pod of another node never enters the view. Pods without
	// accelerator requests are kept in node mode (devices assigned by
	// dynamic resource allocation carry no extended-resource request).
	if got, want := e.uids(), []string{"uid-mine", "uid-mine-cpu"}; !slices.Equal(got, want) {
		t.Errorf("node view %v, want %v", got, want)
	}
	p := e.mustPod(t, "uid-mine")
	if p.Node != "gpu-a" || p.Phase != "Running" || p.Requests["nvidia.com/gpu"] != 1 || !p.Start().Equal(t0) {
		t.Errorf("pod %+v", p)
	}
}

func TestClusterModeKeepsAcceleratorPodsOnly(t *testing.T) {
	e := newEnv(t, envOpts{mode: ModeCluster, start: true, objs: []runtime.Object{
		newPod("a", "ml", "gpu-a", gpus("nvidia.com/gpu", 1), running(0)),
		newPod("b", "ml", "gpu-b", gpus("nvidia.com/mig-1g.10gb", 1), running(0)),
		newPod("pending", "ml", "", gpus("nvidia.com/gpu", 2)),
		newPod("cpu", "ml", "gpu-a", running(0)),
		namespace("ml"),
	}})
	if got, want := e.uids(), []string{"uid-a", "uid-b", "uid-pending"}; !slices.Equal(got, want) {
		t.Errorf("cluster view %v, want %v", got, want)
	}
	// The cache keeps only the identity of a pod without accelerators.
	obj, ok, err := e.inf.pods.GetStore().GetByKey("ml/cpu")
	if err != nil || !ok {
		t.Fatalf("cpu pod not cached: %v", err)
	}
	if p := obj.(*corev1.Pod); p.UID != "uid-cpu" || p.Status.Phase != "" || len(p.Spec.Containers) != 0 {
		t.Errorf("cpu pod cached whole: %+v", p)
	}
	obj, _, _ = e.inf.pods.GetStore().GetByKey("ml/a")
	if p := obj.(*corev1.Pod); len(p.Spec.Containers) != 1 {
		t.Errorf("GPU pod slimmed: %+v", p)
	}
}

func TestContainerTimesThroughRestarts(t *testing.T) {
	p := newPod("trainer", "ml", "gpu-a", gpus("nvidia.com/gpu", 1), running(time.Minute))
	e := newEnv(t, envOpts{start: true, objs: []runtime.Object{p, namespace("ml"), node("gpu-a", nil, nil)}})
	ctx := t.Context()
	update := func(mut func(*corev1.Pod)) {
		t.Helper()
		cur, err := e.cs.CoreV1().Pods("ml").Get(ctx, "trainer", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		mut(cur)
		if _, err := e.cs.CoreV1().Pods("ml").UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Crash, back-off, restart, crash again: the status only ever shows
	// the last two runs; the view keeps the first start.
	for r := int32(1); r <= 3; r++ {
		prevStart := time.Duration(r-1)*time.Hour + time.Minute
		update(func(p *corev1.Pod) {
			p.Status.ContainerStatuses[0] = corev1.ContainerStatus{Name: "main", RestartCount: r,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(time.Duration(r) * time.Hour)}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					StartedAt: at(prevStart), FinishedAt: at(time.Duration(r)*time.Hour - time.Second), ExitCode: 137}}}
		})
		eventually(t, "restart seen", func() bool { return e.mustPod(t, "uid-trainer").Containers["main"].Restarts == r })
		got := e.mustPod(t, "uid-trainer")
		if !got.Start().Equal(t0.Add(time.Minute)) || !got.End().IsZero() {
			t.Fatalf("after restart %d: allocation [%s, %s), want [%s, open)", r, got.Start(), got.End(), t0.Add(time.Minute))
		}
	}
	update(func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodFailed
		p.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			StartedAt: at(3 * time.Hour), FinishedAt: at(4 * time.Hour), ExitCode: 1}}
	})
	eventually(t, "failure seen", func() bool { return e.mustPod(t, "uid-trainer").Phase == "Failed" })
	got := e.mustPod(t, "uid-trainer")
	if !got.Start().Equal(t0.Add(time.Minute)) || !got.End().Equal(t0.Add(4*time.Hour)) {
		t.Errorf("allocation [%s, %s), want [%s, %s)", got.Start(), got.End(), t0.Add(time.Minute), t0.Add(4*time.Hour))
	}
}

// kueueCluster is AI_INFN-like: a JupyterHub namespace, two experiment
// namespaces with Kueue LocalQueues.
func kueueCluster() envOpts {
	return envOpts{
		objs: []runtime.Object{
			namespace("hub", attribution.LabelProject, "jupyterhub"),
			namespace("cms-ml", attribution.LabelProject, "cms"),
			namespace("lhcb", attribution.LabelProject, "  "),
			namespace("atlas"),
			node("gpu-a", nil, nil),
			newPod("jupyter-alice", "hub", "gpu-a", gpus("nvidia.com/mig-1g.10gb", 1), running(0),
				annotations(attribution.AnnotationJupyterHubUser, "alice"), labels(attribution.LabelUser, "mallory"), serviceAccount("hub-sa")),
			newPod("train", "cms-ml", "gpu-a", gpus("nvidia.com/gpu", 2), running(0),
				labels(attribution.LabelKueueQueue, "batch", attribution.LabelUser, "bob")),
			newPod("unknown-queue", "cms-ml", "gpu-a", gpus("nvidia.com/gpu", 1), running(0),
				labels(attribution.LabelKueueQueue, "nosuch"), serviceAccount("runner")),
			newPod("blank", "lhcb", "gpu-a", gpus("nvidia.com/gpu", 1), running(0), serviceAccount("default")),
			newPod("plain", "atlas", "gpu-a", gpus("nvidia.com/gpu", 1), running(0), serviceAccount("pipeline")),
		},
		kueue: true,
		kobjs: []runtime.Object{localQueue("cms-ml", "batch", "cms-gpu")},
	}
}

func TestAttribution(t *testing.T) {
	o := kueueCluster()
	o.start = true
	e := newEnv(t, o)
	cases := []struct {
		uid  string
		want attribution.Result
	}{
		{"uid-jupyter-alice", attribution.Result{User: "alice", Project: "jupyterhub"}},
		{"uid-train", attribution.Result{User: "bob", Project: "cms-gpu", Queue: "cms-gpu"}},
		{"uid-unknown-queue", attribution.Result{User: "runner", Project: "cms", Queue: "nosuch"}},
		{"uid-blank", attribution.Result{User: attribution.Unknown, Project: "lhcb"}},
		{"uid-plain", attribution.Result{User: "pipeline", Project: "atlas"}},
	}
	for _, c := range cases {
		if got := e.mustPod(t, c.uid).Attribution; got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.uid, got, c.want)
		}
	}
}

func TestAttributionCustomRules(t *testing.T) {
	o := kueueCluster()
	o.start = true
	o.rules = attribution.Rules{
		User:    []attribution.Source{{From: attribution.FromLabel, Key: attribution.LabelUser}},
		Project: []attribution.Source{{From: attribution.FromNamespace}},
	}
	e := newEnv(t, o)
	if got := e.mustPod(t, "uid-jupyter-alice").Attribution; got.User != "mallory" || got.Project != "hub" {
		t.Errorf("got %+v", got)
	}
	if got := e.mustPod(t, "uid-plain").Attribution; got.User != attribution.Unknown {
		t.Errorf("no label: got %+v, want user unknown", got)
	}
}

func TestKueueAbsent(t *testing.T) {
	o := kueueCluster()
	o.kueue = false
	o.start = true
	e := newEnv(t, o)
	if got, want := e.mustPod(t, "uid-train").Attribution, (attribution.Result{User: "bob", Project: "cms", Queue: "batch"}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if n := e.logs.Count("Kueue API not served"); n != 1 {
		t.Errorf("Kueue absence logged %d times, want once:\n%s", n, e.logs)
	}
	if q := e.inf.Quotas(); q != nil {
		t.Errorf("quotas without Kueue: %v", q)
	}
}

func TestAttributionKeptWhenMetadataChanges(t *testing.T) {
	o := kueueCluster()
	o.start = true
	e := newEnv(t, o)
	ctx := t.Context()
	p, err := e.cs.CoreV1().Pods("hub").Get(ctx, "jupyter-alice", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Annotations[attribution.AnnotationJupyterHubUser] = "eve"
	p.Labels["touched"] = "yes"
	if _, err := e.cs.CoreV1().Pods("hub").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ns, err := e.cs.CoreV1().Namespaces().Get(ctx, "hub", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels[attribution.LabelProject] = "renamed"
	if _, err := e.cs.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "namespace update seen", func() bool { return e.inf.NamespaceLabels("hub")[attribution.LabelProject] == "renamed" })
	// A later event of the pod, after both changes, must not re-resolve.
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue})
	if _, err := e.cs.CoreV1().Pods("hub").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod updates seen", func() bool {
		return len(e.mustPod(t, "uid-jupyter-alice").Containers) > 0 && podResourceVersionSeen(e, "hub", "jupyter-alice")
	})
	if got, want := e.mustPod(t, "uid-jupyter-alice").Attribution, (attribution.Result{User: "alice", Project: "jupyterhub"}); got != want {
		t.Errorf("attribution changed with the metadata: got %+v, want %+v", got, want)
	}
	// A new pod resolves with today's metadata.
	if _, err := e.cs.CoreV1().Pods("hub").Create(ctx, newPod("jupyter-eve", "hub", "gpu-a", gpus("nvidia.com/gpu", 1),
		annotations(attribution.AnnotationJupyterHubUser, "eve")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "new pod seen", func() bool { _, ok := e.inf.Pod("uid-jupyter-eve"); return ok })
	if got, want := e.mustPod(t, "uid-jupyter-eve").Attribution, (attribution.Result{User: "eve", Project: "renamed"}); got != want {
		t.Errorf("new pod: got %+v, want %+v", got, want)
	}
}

// podResourceVersionSeen tells whether the informer's cache holds the
// pod's current version.
func podResourceVersionSeen(e *env, ns, name string) bool {
	cur, err := e.cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	obj, ok, err := e.inf.pods.GetStore().GetByKey(ns + "/" + name)
	if err != nil || !ok {
		return false
	}
	return obj.(*corev1.Pod).ResourceVersion == cur.ResourceVersion
}

func TestAttributionWaitsForLookups(t *testing.T) {
	// Pods arrive before the namespaces are listed: their attribution is
	// resolved once the lookups are ready, not from the empty cache.
	o := kueueCluster()
	e := newEnv(t, o)
	var release atomic.Bool
	e.cs.PrependReactor("list", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
		if !release.Load() {
			return true, nil, errors.New("namespaces: the server is currently unable to handle the request")
		}
		return false, nil, nil
	})
	e.inf.Start(t.Context())
	eventually(t, "pods listed", func() bool { return len(e.inf.List()) == 5 })
	if e.inf.Synced() {
		t.Fatal("synced before the namespaces were listed")
	}
	if got := e.mustPod(t, "uid-jupyter-alice").Attribution.Project; got != "hub" {
		t.Errorf("provisional project %q, want hub (no namespace labels yet)", got)
	}
	release.Store(true)
	eventually(t, "namespaces listed", e.inf.namespaces.HasSynced)
	e.clk.Set(e.clk.Now().Add(time.Hour))
	e.inf.probe(t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if !e.inf.WaitForSync(ctx) {
		t.Fatal("never synced")
	}
	if got := e.mustPod(t, "uid-jupyter-alice").Attribution.Project; got != "jupyterhub" {
		t.Errorf("project %q, want jupyterhub (from the namespace label)", got)
	}
}

func TestDeletionAndRetention(t *testing.T) {
	e := newEnv(t, envOpts{start: true, objs: []runtime.Object{
		newPod("run", "ml", "gpu-a", gpus("nvidia.com/gpu", 1), running(time.Minute)),
		newPod("done", "ml", "gpu-a", gpus("nvidia.com/gpu", 1), succeeded(time.Minute, time.Hour)),
		namespace("ml"), node("gpu-a", nil, nil),
	}})
	ctx := t.Context()
	deletedAt := e.clk.Now()
	for _, n := range []string{"run", "done"} {
		if err := e.cs.CoreV1().Pods("ml").Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "deletions seen", func() bool {
		return !e.mustPod(t, "uid-run").Deleted.IsZero() && !e.mustPod(t, "uid-done").Deleted.IsZero()
	})
	run, done := e.mustPod(t, "uid-run"), e.mustPod(t, "uid-done")
	if !run.Deleted.Equal(deletedAt) || !run.End().Equal(deletedAt) {
		t.Errorf("running pod deleted: Deleted %s End %s, want both %s", run.Deleted, run.End(), deletedAt)
	}
	if !done.End().Equal(t0.Add(time.Hour)) {
		t.Errorf("finished pod deleted: End %s, want its container's finish %s", done.End(), t0.Add(time.Hour))
	}
	e.clk.Set(deletedAt.Add(DefaultRetention - time.Second))
	if len(e.inf.List()) != 2 {
		t.Errorf("within the retention: %v", e.uids())
	}
	e.clk.Set(deletedAt.Add(DefaultRetention))
	if _, ok := e.inf.Pod("uid-run"); ok || len(e.inf.List()) != 0 {
		t.Errorf("past the retention: still %v", e.uids())
	}
	e.inf.prune()
	e.inf.mu.RLock()
	n := len(e.inf.state)
	e.inf.mu.RUnlock()
	if n != 0 {
		t.Errorf("prune kept %d pods past the retention", n)
	}
}

func TestVirtualNodePods(t *testing.T) {
	e := newEnv(t, envOpts{mode: ModeCluster, start: true, objs: []runtime.Object{
		virtualNode("vk-cnaf", "INFN-CNAF"),
		node("vk-anon", map[string]string{LabelVirtualNode: VirtualKubelet}, nil),
		node("gpu-a", nil, nil),
		namespace("ml"),
		newPod("offloaded", "ml", "vk-cnaf", gpus("nvidia.com/gpu", 2), running(0)),
		newPod("anon", "ml", "vk-anon", gpus("nvidia.com/gpu", 1), running(0)),
		newPod("local", "ml", "gpu-a", gpus("nvidia.com/gpu", 1), running(0)),
	}})
	cases := []struct {
		uid           string
		virtual       bool
		site, model   string
		wantRequested int64
	}{
		{"uid-offloaded", true, "INFN-CNAF", "NVIDIA A100-PCIE-40GB", 2},
		{"uid-anon", true, "vk-anon", "", 1},
		{"uid-local", false, "", "", 1},
	}
	for _, c := range cases {
		p := e.mustPod(t, c.uid)
		if p.Virtual != c.virtual || p.Site != c.site || p.RemoteModel != c.model || p.Requests["nvidia.com/gpu"] != c.wantRequested {
			t.Errorf("%s: virtual %v site %q model %q requests %v", c.uid, p.Virtual, p.Site, p.RemoteModel, p.Requests)
		}
	}
}

func TestPodBeforeItsNode(t *testing.T) {
	// A pod seen before its node gets the node's site when the node comes.
	e := newEnv(t, envOpts{mode: ModeCluster, start: true, objs: []runtime.Object{
		namespace("ml"),
		newPod("offloaded", "ml", "vk-late", gpus("nvidia.com/gpu", 1), running(0)),
	}})
	if p := e.mustPod(t, "uid-offloaded"); p.Virtual {
		t.Fatalf("virtual before the node is known: %+v", p)
	}
	if _, err := e.cs.CoreV1().Nodes().Create(t.Context(), virtualNode("vk-late", "ReCaS-Bari"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node seen", func() bool { return e.mustPod(t, "uid-offloaded").Virtual })
	if p := e.mustPod(t, "uid-offloaded"); p.Site != "ReCaS-Bari" {
		t.Errorf("site %q", p.Site)
	}
}

func TestAPIServerDown(t *testing.T) {
	e := newEnv(t, envOpts{mode: ModeCluster, objs: []runtime.Object{
		namespace("ml"), newPod("a", "ml", "gpu-a", gpus("nvidia.com/gpu", 1), running(0)),
	}})
	var down atomic.Bool
	down.Store(true)
	e.cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if down.Load() {
			return true, nil, errors.New("dial tcp 10.96.0.1:443: connect: connection refused")
		}
		return false, nil, nil
	})
	c, err := NewClusterCollector(e.inf, ClusterOptions{Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.inf.Start(t.Context())
	eventually(t, "failure noticed", func() bool { return e.inf.health.isDown() })
	c.Rebuild()
	if err := c.Update(make(chan prometheus.Metric, 100)); !errors.Is(err, ErrNotSynced) {
		t.Errorf("Update while down: %v, want ErrNotSynced", err)
	}
	if e.inf.Synced() {
		t.Error("synced while the API server is down")
	}
	down.Store(false)
	eventually(t, "pods listed", func() bool { return e.inf.pods.HasSynced() })
	// Recovery is noticed by a probe once no informer failed for a quiet
	// interval.
	e.inf.probe(t.Context())
	e.clk.Set(e.clk.Now().Add(time.Hour))
	e.inf.probe(t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if !e.inf.WaitForSync(ctx) {
		t.Fatalf("never recovered:\n%s", e.logs)
	}
	if n := e.logs.Count("Kubernetes API unreachable"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, e.logs)
	}
	if !strings.Contains(e.logs.String(), "Kubernetes API answers again") {
		t.Errorf("recovery not logged:\n%s", e.logs)
	}
}

func TestHealth(t *testing.T) {
	log, logs := testlog.New(slog.LevelInfo)
	h := health{log: log}
	quiet := 30 * time.Second
	h.failed("pods", errors.New("refused"), t0)
	h.failed("nodes", errors.New("refused"), t0.Add(time.Second))
	steps := []struct {
		name string
		err  error
		at   time.Duration
		down bool
	}{
		{"probe fails", errors.New("refused"), 10 * time.Second, true},
		{"probe answers, but an informer failed lately", nil, 20 * time.Second, true},
		{"probe answers after a quiet interval", nil, 41 * time.Second, false},
		{"probes while up change nothing", errors.New("ignored"), 50 * time.Second, false},
	}
	for _, s := range steps {
		h.probed(s.err, t0.Add(s.at), quiet)
		if h.isDown() != s.down {
			t.Errorf("%s: down %v, want %v", s.name, h.isDown(), s.down)
		}
	}
	if n := logs.Count("unreachable"); n != 1 {
		t.Errorf("outage logged %d times:\n%s", n, logs)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"node mode without a node", Config{Mode: ModeNode}, "needs the node name"},
		{"unknown mode", Config{Mode: "everywhere", Node: "x"}, `unknown mode "everywhere"`},
		{"bad rules", Config{Node: "x", Rules: attribution.Rules{User: []attribution.Source{{From: "ldap"}}}}, `unknown source "ldap"`},
		{"negative retention", Config{Node: "x", Retention: -time.Second}, "negative"},
	}
	for _, c := range cases {
		if _, err := NewInformers(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	e := newEnv(t, envOpts{})
	if _, err := NewClusterCollector(e.inf, ClusterOptions{}); err == nil {
		t.Error("cluster collector over node-mode informers accepted")
	}
}

func TestKueueDiscoveryRetried(t *testing.T) {
	o := kueueCluster()
	e := newEnv(t, o)
	var down atomic.Bool
	down.Store(true)
	e.cs.PrependReactor("get", "resource", func(k8stesting.Action) (bool, runtime.Object, error) {
		if down.Load() {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	if e.inf.findKueue(t.Context()) {
		t.Fatal("discovery failed, yet Kueue was decided")
	}
	if !e.inf.health.isDown() || e.inf.kueue.Load() != nil {
		t.Fatal("a failed discovery must mark the API down and start nothing")
	}
	down.Store(false)
	if !e.inf.findKueue(t.Context()) {
		t.Fatal("discovery answered, yet Kueue was not decided")
	}
	k := e.inf.kueue.Load()
	if k == nil || k.localQueues == nil || k.clusterQueues != nil {
		t.Fatalf("node mode with Kueue: want the LocalQueue informer only, got %+v", k)
	}
	eventually(t, "LocalQueues listed", k.localQueues.HasSynced)
	if cq, ok := e.inf.ClusterQueue("cms-ml", "batch"); !ok || cq != "cms-gpu" {
		t.Errorf("ClusterQueue(cms-ml, batch) = %q, %v", cq, ok)
	}
}

func TestClients(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/kubeconfig"
	const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: ai-infn
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: exporter
  user: {token: test}
contexts:
- name: ai-infn
  context: {cluster: ai-infn, user: exporter}
current-context: ai-infn
`
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cs, dyn, err := Clients(path)
	if err != nil || cs == nil || dyn == nil {
		t.Fatalf("Clients(%s): %v", path, err)
	}
	if _, _, err := Clients(dir + "/missing"); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing kubeconfig: %v", err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, _, err := Clients(""); err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Errorf("in-cluster outside a cluster: %v", err)
	}
}
