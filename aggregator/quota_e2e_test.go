package aggregator_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/gpuledger/gpuledger/aggregator"
	"github.com/gpuledger/gpuledger/aggregator/intervals"
	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/aggregator/source"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/exporters/kube"
	"github.com/gpuledger/gpuledger/exporters/kube/kubefake"
	"github.com/gpuledger/gpuledger/internal/pgtest"
	"github.com/gpuledger/gpuledger/sim/clock"
)

// e2eT0 is 2026-11-02T08:00:00Z.
var e2eT0 = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)

// clusterQueue is a Kueue ClusterQueue with one resource group: flavor →
// resource → nominal quota.
func clusterQueue(name string, flavors map[string]map[string]any) *unstructured.Unstructured {
	var fl []any
	for f, rs := range flavors {
		var res []any
		for r, q := range rs {
			res = append(res, map[string]any{"name": r, "nominalQuota": q})
		}
		fl = append(fl, map[string]any{"name": f, "resources": res})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": kube.KueueGroupVersion.String(), "kind": "ClusterQueue",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"resourceGroups": []any{map[string]any{"flavors": fl}}},
	}}
}

// offloadPod runs on the virtual node vk-cnaf from e2eT0, holding two
// GPUs, submitted to the LocalQueue batch of cms-ml.
func offloadPod() *corev1.Pod {
	started := metav1.NewTime(e2eT0)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "mc-gen-0", Namespace: "cms-ml", UID: "uid-mc-gen-0",
			Labels: map[string]string{attribution.LabelKueueQueue: "batch", attribution.LabelUser: "bob"}},
		Spec: corev1.PodSpec{NodeName: "vk-cnaf", Containers: []corev1.Container{{Name: "main",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
				"nvidia.com/gpu": *resource.NewQuantity(2, resource.DecimalSI)}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &started,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "main",
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}}}},
	}
}

// scraperFunc adapts source.Scraper to the loop.
type scraperFunc func(ctx context.Context) []observe.Scrape

func (f scraperFunc) ScrapeAll(ctx context.Context) []observe.Scrape { return f(ctx) }

// TestQuotasEndToEnd: Kueue ClusterQueues in a (fake) Kubernetes API, the
// cluster-mode collector serving them over HTTP, the aggregator scraping
// it and writing windows to a real PostgreSQL ledger, whose quota history
// and QuotaUsage then hold the quotas, and the change made mid-way.
func TestQuotasEndToEnd(t *testing.T) {
	dbURL := pgtest.New(t)
	ctx := t.Context()

	// Kubernetes: Kueue served, two ClusterQueues, a LocalQueue, a
	// virtual node and a pod offloaded to it.
	cs := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cms-ml"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "vk-cnaf", Labels: map[string]string{
			kube.LabelVirtualNode: kube.VirtualKubelet, kube.KeyGPUModel: "NVIDIA A100-PCIE-40GB", kube.KeySite: "INFN-CNAF"}}},
		offloadPod())
	cs.Resources = []*metav1.APIResourceList{{GroupVersion: kube.KueueGroupVersion.String(), APIResources: []metav1.APIResource{
		{Name: "localqueues", Namespaced: true, Kind: "LocalQueue"},
		{Name: "clusterqueues", Kind: "ClusterQueue"},
	}}}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{kube.LocalQueues: "LocalQueueList", kube.ClusterQueues: "ClusterQueueList"},
		clusterQueue("cms-gpu", map[string]map[string]any{
			"a100": {"nvidia.com/gpu": "8", "cpu": "64"},
			"t4":   {"nvidia.com/gpu": int64(2)},
		}),
		clusterQueue("hub", map[string]map[string]any{"t4": {"nvidia.com/gpu.shared": "16"}}),
		&unstructured.Unstructured{Object: map[string]any{
			"apiVersion": kube.KueueGroupVersion.String(), "kind": "LocalQueue",
			"metadata": map[string]any{"name": "batch", "namespace": "cms-ml"},
			"spec":     map[string]any{"clusterQueue": "cms-gpu"},
		}})
	clk := clock.NewManual(e2eT0)
	inf, err := kube.NewInformers(kube.Config{Mode: kube.ModeCluster, Client: kubefake.New(cs), Dynamic: dyn, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	inf.Start(ctx)
	syncCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !inf.WaitForSync(syncCtx) {
		t.Fatal("informers did not sync")
	}
	cc, err := kube.NewClusterCollector(inf, kube.ClusterOptions{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	waitQuotas(t, inf, "cms-gpu", 10)
	cc.Rebuild()

	// The cluster exporter over HTTP, scraped on the manual clock.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector.NewExporter(map[string]collector.Collector{"cluster": cc}, 0, nil))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	targets, err := source.ParseTargets("gpuledger-cluster=" + srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := source.NewScraper(targets, source.ScraperOptions{Timeout: 10 * time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}

	store, err := ledger.Open(ctx, dbURL, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	rec, err := intervals.New(intervals.Config{Cluster: "ai-infn", Window: 5 * time.Minute, ScrapeInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	end := e2eT0.Add(10 * time.Minute)
	loop, err := aggregator.New(aggregator.Config{Window: 5 * time.Minute, Until: end.Unix(), Transient: ledger.IsTransient},
		rec, store, scraperFunc(func(ctx context.Context) []observe.Scrape {
			results, err := sc.ScrapeAll(ctx)
			if err != nil {
				t.Errorf("scrape: %v", err)
			}
			for _, r := range results {
				if !r.OK || r.Err != nil {
					t.Errorf("scrape of %s at %s: %s %v", r.Target, clk.Now().Format(time.RFC3339), r.Reason, r.Err)
				}
			}
			return source.Scrapes(results)
		}))
	if err != nil {
		t.Fatal(err)
	}

	// A scrape a minute; just before the one at 08:05 the cms-gpu quota
	// on a100 goes from 8 to 4 GPUs.
	for at := e2eT0; !at.After(end); at = at.Add(time.Minute) {
		clk.Set(at)
		if at.Equal(e2eT0.Add(5 * time.Minute)) {
			changed := clusterQueue("cms-gpu", map[string]map[string]any{"a100": {"nvidia.com/gpu": "4"}, "t4": {"nvidia.com/gpu": "2"}})
			if _, err := dyn.Resource(kube.ClusterQueues).Update(ctx, changed, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			waitQuotas(t, inf, "cms-gpu", 6)
			cc.Rebuild()
		}
		err := loop.Step(ctx)
		if at.Equal(end) {
			if !errors.Is(err, aggregator.ErrDone) {
				t.Fatalf("last step: %v, want ErrDone", err)
			}
			break
		}
		if err != nil {
			t.Fatalf("step at %s: %v", at.Format(time.RFC3339), err)
		}
	}

	hist, err := store.Quotas(ctx, "ai-infn")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, q := range hist {
		got = append(got, fmt.Sprintf("%s %s %s %s %d", q.Queue, q.Resource, q.Project, q.From.Sub(e2eT0), q.NominalMilli))
	}
	want := []string{
		"cms-gpu nvidia.com/gpu cms-gpu 0s 10000",
		"cms-gpu nvidia.com/gpu cms-gpu 5m0s 6000",
		"hub nvidia.com/gpu.shared hub 0s 16000",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("quota history\n got %q\nwant %q", got, want)
	}

	rows, err := store.QuotaUsage(ctx, ledger.QuotaQuery{From: e2eT0, To: e2eT0.Add(time.Hour), Visible: ledger.Visibility{All: true}})
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %s nominal=%d quota=%d used=%d", r.Queue, r.Resource, r.NominalMilli,
			r.QuotaMilliSeconds, r.UsedDeviceSeconds))
	}
	want = []string{
		// 10 GPUs for 5 min, 6 for 55 min; the offloaded pod's 2 GPUs
		// over the 10 minutes written.
		fmt.Sprintf("cms-gpu nvidia.com/gpu nominal=6000 quota=%d used=%d", 10_000*300+6_000*3300, 2*600),
		fmt.Sprintf("hub nvidia.com/gpu.shared nominal=16000 quota=%d used=0", 16_000*3600),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("quota usage\n got %q\nwant %q", got, want)
	}
}

// waitQuotas waits until the informers' nvidia.com/gpu quota of queue
// sums to gpus; the bound only keeps a broken test from hanging.
func waitQuotas(t *testing.T, inf *kube.Informers, queue string, gpus float64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		sum := 0.0
		for _, q := range inf.Quotas() {
			if q.ClusterQueue == queue && q.Resource == "nvidia.com/gpu" {
				sum += q.Value
			}
		}
		if sum == gpus {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the informers never saw %s at %v GPUs (last %v)", queue, gpus, sum)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
