package kube

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestClusterQueueQuotas(t *testing.T) {
	u := clusterQueue("cms-gpu", map[string][][2]any{
		"a100": {{"nvidia.com/gpu", "8"}, {"cpu", "64"}, {"nvidia.com/mig-1g.10gb", int64(14)}, {"nvidia.com/gpu.shared", float64(2.5)}},
		"t4":   {{"nvidia.com/gpu", "4k"}},
		"bad":  {{"nvidia.com/gpu", "lots"}, {"xilinx.com/fpga-u55c", true}},
	})
	got, errs := clusterQueueQuotas(u)
	want := []Quota{
		{"cms-gpu", "a100", "nvidia.com/gpu", 8},
		{"cms-gpu", "a100", "nvidia.com/gpu.shared", 2.5},
		{"cms-gpu", "a100", "nvidia.com/mig-1g.10gb", 14},
		{"cms-gpu", "t4", "nvidia.com/gpu", 4000},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("quotas %v, want %v", got, want)
	}
	if len(errs) != 2 || !strings.Contains(errs[0].Error()+errs[1].Error(), `"lots"`) {
		t.Errorf("errors %v, want the two bad entries", errs)
	}
}

func TestClusterQueueQuotasMalformed(t *testing.T) {
	cases := []struct {
		name string
		spec any
		want string
	}{
		{"resourceGroups not a list", map[string]any{"resourceGroups": "x"}, "spec.resourceGroups"},
		{"group not an object", map[string]any{"resourceGroups": []any{"x"}}, "resourceGroups[0] is not an object"},
		{"flavor not an object", map[string]any{"resourceGroups": []any{map[string]any{"flavors": []any{1}}}}, "flavors[0] is not an object"},
		{"no nominalQuota", map[string]any{"resourceGroups": []any{map[string]any{"flavors": []any{
			map[string]any{"name": "f", "resources": []any{map[string]any{"name": "nvidia.com/gpu"}}}}}}}, "no nominalQuota"},
	}
	for _, c := range cases {
		u := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": "q"}, "spec": c.spec}}
		got, errs := clusterQueueQuotas(u)
		if len(got) != 0 || len(errs) != 1 || !strings.Contains(errs[0].Error(), c.want) {
			t.Errorf("%s: quotas %v errors %v, want one error with %q", c.name, got, errs, c.want)
		}
	}
}

func TestLocalQueueTarget(t *testing.T) {
	if cq, ok := localQueueTarget(localQueue("ns", "lq", "cq")); !ok || cq != "cq" {
		t.Errorf("got %q, %v", cq, ok)
	}
	if _, ok := localQueueTarget(localQueue("ns", "lq", "")); ok {
		t.Error("empty clusterQueue accepted")
	}
	u := localQueue("ns", "lq", "cq")
	u.Object["spec"] = "broken"
	if _, ok := localQueueTarget(u); ok {
		t.Error("malformed spec accepted")
	}
}

// FuzzClusterQueueQuotas feeds ClusterQueues as the API server's JSON
// gives them: no input may panic, and every quota kept is an accelerator's.
func FuzzClusterQueueQuotas(f *testing.F) {
	f.Add([]byte(`{"metadata":{"name":"cms-gpu"},"spec":{"resourceGroups":[{"flavors":[{"name":"a100","resources":[{"name":"nvidia.com/gpu","nominalQuota":"8"},{"name":"cpu","nominalQuota":64}]}]}]}}`))
	f.Add([]byte(`{"spec":{"resourceGroups":[{"flavors":[{"name":"x","resources":[{"name":"nvidia.com/gpu","nominalQuota":[1]}]}]}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return
		}
		qs, _ := clusterQueueQuotas(u)
		for _, q := range qs {
			if !strings.Contains(q.Resource, "/") {
				t.Errorf("quota of a non-accelerator resource %q", q.Resource)
			}
		}
	})
}
