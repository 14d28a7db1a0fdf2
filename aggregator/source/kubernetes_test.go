package source

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sliceList = `{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","items":[
 {"addressType":"IPv4","endpoints":[
   {"addresses":["10.1.0.7"],"conditions":{"ready":true},"nodeName":"gpu-a100-01"},
   {"addresses":["10.1.0.8"],"conditions":{"ready":false},"nodeName":"gpu-a100-02"},
   {"addresses":["10.1.0.9"],"nodeName":"gpu-t4-01"}],
  "ports":[{"name":"http","port":8080},{"name":"metrics","port":9835}]},
 {"addressType":"IPv4","endpoints":[
   {"addresses":["10.1.0.7"],"conditions":{"ready":true},"nodeName":"gpu-a100-01"}],
  "ports":[{"name":"metrics","port":9835}]}]}`

func TestKubernetesEndpoints(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var gotPath, gotSelector, gotAuth string
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotSelector, gotAuth = r.URL.Path, r.URL.Query().Get("labelSelector"), r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(sliceList))
	}))
	defer api.Close()
	k := &KubernetesEndpoints{APIServer: api.URL, Namespace: "gpuledger", Service: "gpuledger-exporter",
		Port: "metrics", TokenFile: tokenFile, Client: api.Client()}
	targets, err := k.Targets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if gotPath != "/apis/discovery.k8s.io/v1/namespaces/gpuledger/endpointslices" ||
		gotSelector != "kubernetes.io/service-name=gpuledger-exporter" || gotAuth != "Bearer s3cret" {
		t.Errorf("request: path %q selector %q auth %q", gotPath, gotSelector, gotAuth)
	}
	want := []Target{
		{Name: "gpu-a100-01", URL: "http://10.1.0.7:9835/metrics"},
		{Name: "gpu-t4-01", URL: "http://10.1.0.9:9835/metrics"},
	}
	if len(targets) != len(want) {
		t.Fatalf("targets %+v, want %+v (not-ready and duplicate endpoints left out)", targets, want)
	}
	for i := range want {
		if targets[i] != want[i] {
			t.Errorf("target %d: %+v, want %+v", i, targets[i], want[i])
		}
	}
}

func TestKubernetesEndpointsErrors(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"forbidden": func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `{"kind":"Status","message":"endpointslices is forbidden"}`, http.StatusForbidden)
		},
		"garbage": func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) },
	} {
		t.Run(name, func(t *testing.T) {
			api := httptest.NewServer(h)
			defer api.Close()
			k := &KubernetesEndpoints{APIServer: api.URL, Namespace: "ns", Service: "svc"}
			_, err := k.Targets(context.Background())
			if err == nil || !strings.Contains(err.Error(), "kubernetes discovery") {
				t.Fatalf("error %v, want a kubernetes discovery error", err)
			}
		})
	}
	if _, err := (&KubernetesEndpoints{}).Targets(context.Background()); err == nil {
		t.Error("an empty discoverer must fail")
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := InClusterEndpoints("ns/svc", "metrics"); err == nil {
		t.Error("InClusterEndpoints outside a cluster must fail")
	}
}
