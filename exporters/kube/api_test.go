package kube

import (
	"context"
	"log/slog"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/kube/kubetest"
	"github.com/gpuledger/gpuledger/internal/testlog"
)

// TestRESTAPI runs the informers over HTTP through the exporter's own
// client (Clients), against kubetest's API server: watch lists, watches,
// the node's field selector, Kueue found by discovery and read through the
// dynamic client, the probe.
func TestRESTAPI(t *testing.T) {
	srv, err := kubetest.Start(
		namespace("cms-ml", attribution.LabelProject, "cms"),
		node("gpu-a", nil, nil),
		newPod("train", "cms-ml", "gpu-a", gpus("nvidia.com/gpu", 2), running(0),
			labels(attribution.LabelKueueQueue, "batch", attribution.LabelUser, "bob")),
		newPod("other-node", "cms-ml", "gpu-b", gpus("nvidia.com/gpu", 1), running(0)),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Serve(LocalQueues, "LocalQueue", true)
	if err := srv.Add(localQueue("cms-ml", "batch", "cms-gpu")); err != nil {
		t.Fatal(err)
	}
	path, err := srv.Kubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := testlog.New(slog.LevelDebug)
	inf, err := NewInformers(Config{Node: "gpu-a", Kubeconfig: path, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	inf.Start(ctx)
	if !inf.WaitForSync(ctx) {
		t.Fatalf("informers did not sync over HTTP; log:\n%s", logs)
	}
	p, ok := inf.Pod("uid-train")
	if !ok {
		t.Fatal("pod train not seen")
	}
	if want := (attribution.Result{User: "bob", Project: "cms-gpu", Queue: "cms-gpu"}); p.Attribution != want {
		t.Errorf("train: attribution %+v, want %+v (the LocalQueue read over HTTP)", p.Attribution, want)
	}
	if p.Requests["nvidia.com/gpu"] != 2 || !p.Start().Equal(t0) {
		t.Errorf("train: requests %v, start %v", p.Requests, p.Start())
	}
	if _, ok := inf.Pod("uid-other-node"); ok {
		t.Error("a pod of another node passed the field selector")
	}

	// A pod created later arrives by the watch; a deletion too.
	late := newPod("late", "cms-ml", "gpu-a", gpus("nvidia.com/gpu", 1), running(time.Minute))
	if err := srv.Add(late); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new pod watched", func() bool { _, ok := inf.Pod("uid-late"); return ok })
	if err := srv.Delete(late); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deletion watched", func() bool { p, ok := inf.Pod("uid-late"); return ok && !p.Deleted.IsZero() })
	for _, what := range []string{"watch pods", "watch namespaces", "watch nodes", "watch localqueues", "discovery"} {
		if srv.Requests(what) == 0 {
			t.Errorf("no %q request reached the server", what)
		}
	}

	api, _, err := Clients(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := api.ServerVersion(ctx); err != nil {
		t.Errorf("ServerVersion: %v", err)
	}
	if _, err := api.ServerResources(ctx, schema.GroupVersion{Group: "example.org", Version: "v1"}); !apierrors.IsNotFound(err) {
		t.Errorf("discovery of an unserved group: %v, want not found", err)
	}
	if _, err := api.ListWatch("secrets", nil); err == nil {
		t.Error("ListWatch of a resource the informers do not read succeeded")
	}
	cancel() // the informers stop before the server does
	srv.Close()
	if err := api.ServerVersion(t.Context()); err == nil {
		t.Error("ServerVersion succeeded against a closed server")
	}
}
