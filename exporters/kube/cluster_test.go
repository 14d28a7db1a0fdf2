package kube

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/metrics"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const clusterGolden = "testdata/cluster.prom"

// updater serves a collector.Collector as a prometheus.Collector.
type updater struct {
	c interface {
		Update(chan<- prometheus.Metric) error
	}
}

func (u updater) Describe(chan<- *prometheus.Desc) {}

func (u updater) Collect(ch chan<- prometheus.Metric) { _ = u.c.Update(ch) }

// clusterFixture is a small AI_INFN-like cluster seen from cluster mode,
// at now = t0+2h.
func clusterFixture() envOpts {
	cms := func(p *corev1.Pod) { labels(attribution.LabelKueueQueue, "batch", attribution.LabelUser, "bob")(p) }
	return envOpts{
		mode:  ModeCluster,
		kueue: true,
		objs: []runtime.Object{
			namespace("cms-ml", attribution.LabelProject, "cms"),
			namespace("hub", attribution.LabelProject, "jupyterhub"),
			virtualNode("vk-cnaf", "INFN-CNAF"),
			node("gpu-a", nil, nil),
			// On the virtual node: running, ended within the retention,
			// ended before it, a MIG request, a shared GPU (not weighable),
			// one not started.
			newPod("mc-gen-0", "cms-ml", "vk-cnaf", gpus("nvidia.com/gpu", 2), running(10*time.Minute), cms),
			newPod("mc-gen-1", "cms-ml", "vk-cnaf", gpus("nvidia.com/gpu", 1), succeeded(5*time.Minute, 90*time.Minute), cms),
			newPod("mc-gen-old", "cms-ml", "vk-cnaf", gpus("nvidia.com/gpu", 1), succeeded(5*time.Minute, 30*time.Minute), cms),
			newPod("mig-remote", "cms-ml", "vk-cnaf", gpus("nvidia.com/mig-3g.20gb", 1), running(20*time.Minute), serviceAccount("runner")),
			newPod("shared-remote", "cms-ml", "vk-cnaf", gpus("nvidia.com/gpu.shared", 1), running(20*time.Minute)),
			newPod("mc-gen-2", "cms-ml", "vk-cnaf", gpus("nvidia.com/gpu", 1), cms),
			// A real node's running pod is the node exporter's business.
			newPod("jupyter-alice", "hub", "gpu-a", gpus("nvidia.com/mig-1g.10gb", 1), running(0),
				annotations(attribution.AnnotationJupyterHubUser, "alice")),
			// Pending: unscheduled, and scheduled but not started.
			newPod("queued", "cms-ml", "", gpus("nvidia.com/gpu", 4), cms),
			newPod("jupyter-carol", "hub", "gpu-a", gpus("nvidia.com/mig-1g.10gb", 1),
				annotations(attribution.AnnotationJupyterHubUser, "carol")),
		},
		kobjs: []runtime.Object{
			localQueue("cms-ml", "batch", "cms-gpu"),
			clusterQueue("cms-gpu", map[string][][2]any{
				"a100": {{"nvidia.com/gpu", "8"}, {"cpu", "64"}, {"nvidia.com/mig-1g.10gb", int64(14)}},
			}),
			clusterQueue("hub", map[string][][2]any{"t4": {{"nvidia.com/gpu.shared", "16"}}}),
			clusterQueue("broken", map[string][][2]any{"x": {{"nvidia.com/gpu", "lots"}}}),
		},
		start: true,
	}
}

func newClusterCollector(t *testing.T, e *env) *ClusterCollector {
	t.Helper()
	c, err := NewClusterCollector(e.inf, ClusterOptions{Now: e.clk.Now, Logger: e.inf.cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitQuotas waits for the ClusterQueues (their informer starts after
// discovery, so the first sync may precede them).
func waitQuotas(t *testing.T, e *env, n int) {
	t.Helper()
	eventually(t, "quotas listed", func() bool { return len(e.inf.Quotas()) == n })
}

func gather(t *testing.T, c *ClusterCollector) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(updater{c})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

func exposition(t *testing.T, mfs []*dto.MetricFamily) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// key is a series' key as series writes it: labels sorted by name, empty
// ones left out.
func key(name string, kv ...string) string {
	var ls []string
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			ls = append(ls, kv[i]+"="+kv[i+1])
		}
	}
	sort.Strings(ls)
	return name + "{" + strings.Join(ls, ",") + "}"
}

// series returns a gather's values by key (labels sorted by name, as the
// registry sorts them; empty ones left out).
func series(mfs []*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			var ls []string
			for _, lp := range m.Label {
				if lp.GetValue() != "" {
					ls = append(ls, lp.GetName()+"="+lp.GetValue())
				}
			}
			out[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestClusterCollector(t *testing.T) {
	e := newEnv(t, clusterFixture())
	waitQuotas(t, e, 3)
	c := newClusterCollector(t, e)
	c.Rebuild()
	got := series(gather(t, c))

	alloc := func(name, res, profile, pod, user, project, queue string) string {
		return key(name, "node", "vk-cnaf", "resource", res, "class", "offload", "model", "NVIDIA A100-PCIE-40GB",
			"profile", profile, "namespace", "cms-ml", "pod", pod, "pod_uid", "uid-"+pod, "user", user,
			"project", project, "queue", queue, "site", "INFN-CNAF")
	}
	pending := func(ns, pod, res, user, project, queue string) string {
		return key("gpuledger_pending_pod_requests", "namespace", ns, "pod", pod, "pod_uid", "uid-"+pod,
			"resource", res, "user", user, "project", project, "queue", queue)
	}
	quota := func(cq, flavor, res string) string {
		return key("gpuledger_kueue_clusterqueue_nominal_quota", "cluster_queue", cq, "flavor", flavor, "resource", res)
	}
	want := map[string]float64{
		alloc("gpuledger_allocation_start_time_seconds", "nvidia.com/gpu", "", "mc-gen-0", "bob", "cms-gpu", "cms-gpu"):    float64(t0.Add(10 * time.Minute).Unix()),
		alloc("gpuledger_allocation_weight_ratio", "nvidia.com/gpu", "", "mc-gen-0", "bob", "cms-gpu", "cms-gpu"):          2,
		alloc("gpuledger_allocation_devices", "nvidia.com/gpu", "", "mc-gen-0", "bob", "cms-gpu", "cms-gpu"):               2,
		alloc("gpuledger_allocation_start_time_seconds", "nvidia.com/gpu", "", "mc-gen-1", "bob", "cms-gpu", "cms-gpu"):    float64(t0.Add(5 * time.Minute).Unix()),
		alloc("gpuledger_allocation_end_time_seconds", "nvidia.com/gpu", "", "mc-gen-1", "bob", "cms-gpu", "cms-gpu"):      float64(t0.Add(90 * time.Minute).Unix()),
		alloc("gpuledger_allocation_weight_ratio", "nvidia.com/mig-3g.20gb", "3g.20gb", "mig-remote", "runner", "cms", ""): 0.5,
		alloc("gpuledger_allocation_devices", "nvidia.com/mig-3g.20gb", "3g.20gb", "mig-remote", "runner", "cms", ""):      1,
		pending("cms-ml", "queued", "nvidia.com/gpu", "bob", "cms-gpu", "cms-gpu"):                                         4,
		pending("cms-ml", "mc-gen-2", "nvidia.com/gpu", "bob", "cms-gpu", "cms-gpu"):                                       1,
		pending("hub", "jupyter-carol", "nvidia.com/mig-1g.10gb", "carol", "jupyterhub", ""):                               1,
		quota("cms-gpu", "a100", "nvidia.com/gpu"):                                                                         8,
		quota("cms-gpu", "a100", "nvidia.com/mig-1g.10gb"):                                                                 14,
		quota("hub", "t4", "nvidia.com/gpu.shared"):                                                                        16,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("missing %s", k)
		} else if g != v {
			t.Errorf("%s = %g, want %g", k, g, v)
		}
	}
	for k := range got {
		for _, absent := range []string{"mc-gen-old", "shared-remote", "jupyter-alice", "cluster_queue=broken", "resource=cpu"} {
			if strings.Contains(k, absent) {
				t.Errorf("unexpected series %s", k)
			}
		}
		if strings.Contains(k, "mc-gen-0") && strings.Contains(k, "end_time") {
			t.Errorf("running allocation has an end: %s", k)
		}
	}
	if n := e.logs.Count("offload allocation not exported"); n != 1 {
		t.Errorf("shared GPU offload logged %d times, want once:\n%s", n, e.logs)
	}
	c.Rebuild()
	if n := e.logs.Count("offload allocation not exported"); n != 1 {
		t.Errorf("after a second rebuild, logged %d times, want once", n)
	}
	if n := e.logs.Count("skipping a Kueue quota"); n != 1 {
		t.Errorf("broken quota logged %d times, want once:\n%s", n, e.logs)
	}

	// Past the retention, the ended allocation is gone.
	e.clk.Set(t0.Add(150 * time.Minute))
	c.Rebuild()
	for k := range series(gather(t, c)) {
		if strings.Contains(k, "mc-gen-1") {
			t.Errorf("ended allocation past the retention: %s", k)
		}
	}
}

func TestClusterGolden(t *testing.T) {
	e := newEnv(t, clusterFixture())
	waitQuotas(t, e, 3)
	c := newClusterCollector(t, e)
	c.Rebuild()
	got := exposition(t, gather(t, c))
	if *update {
		if err := os.MkdirAll(filepath.Dir(clusterGolden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(clusterGolden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(clusterGolden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("exposition differs from %s (go test -update rewrites it):\n--- got\n%s", clusterGolden, got)
	}
	if problems, err := testutil.CollectAndLint(updater{c}); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
}

func TestClusterGoldenPromtool(t *testing.T) {
	const promtool = "/usr/bin/promtool"
	if _, err := os.Stat(promtool); err != nil {
		t.Skipf("%s not installed: %v", promtool, err)
	}
	f, err := os.Open(clusterGolden)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = f
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestClusterCollectorRebuildsOnEvents(t *testing.T) {
	e := newEnv(t, clusterFixture())
	c := newClusterCollector(t, e)
	go c.Run(t.Context())
	if _, err := e.cs.CoreV1().Pods("hub").Create(t.Context(), newPod("jupyter-dave", "hub", "", gpus("nvidia.com/gpu", 1),
		annotations(attribution.AnnotationJupyterHubUser, "dave")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k := key("gpuledger_pending_pod_requests", "namespace", "hub", "pod", "jupyter-dave", "pod_uid", "uid-jupyter-dave",
		"resource", "nvidia.com/gpu", "user", "dave", "project", "jupyterhub")
	eventually(t, "new pending pod exported", func() bool { _, ok := series(gather(t, c))[k]; return ok })
	if err := c.Update(make(chan prometheus.Metric, 1000)); err != nil {
		t.Errorf("Update when synced: %v", err)
	}
}

// The cluster collector's allocation families are the sim's: same
// descriptors, hence same names and label order.
func TestClusterAllocationSchema(t *testing.T) {
	e := newEnv(t, clusterFixture())
	c := newClusterCollector(t, e)
	c.Rebuild()
	for _, mf := range gather(t, c) {
		if !strings.HasPrefix(mf.GetName(), "gpuledger_allocation_") {
			continue
		}
		for _, m := range mf.Metric {
			if len(m.Label) != len(metrics.AllocationLabels) {
				t.Errorf("%s has %d labels, want %d", mf.GetName(), len(m.Label), len(metrics.AllocationLabels))
			}
		}
	}
}
