package kube

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gpuledger/gpuledger/accounting"
)

// The Kueue API the exporter reads.
var (
	KueueGroupVersion = schema.GroupVersion{Group: "kueue.x-k8s.io", Version: "v1beta1"}
	LocalQueues       = KueueGroupVersion.WithResource("localqueues")
	ClusterQueues     = KueueGroupVersion.WithResource("clusterqueues")
)

// Quota is the nominal quota of a Kueue ClusterQueue for one accelerator
// resource in one resource flavor.
type Quota struct {
	ClusterQueue, Flavor, Resource string
	// Value is the quota in devices (the quantity's value).
	Value float64
}

// localQueueTarget returns the ClusterQueue a LocalQueue points to
// (.spec.clusterQueue).
func localQueueTarget(u *unstructured.Unstructured) (string, bool) {
	cq, found, err := unstructured.NestedString(u.Object, "spec", "clusterQueue")
	if err != nil || !found || cq == "" {
		return "", false
	}
	return cq, true
}

// clusterQueueQuotas reads the accelerator quotas of a ClusterQueue
// (.spec.resourceGroups[].flavors[].resources[].nominalQuota), sorted by
// flavor and resource. Resources gpuledger does not account are skipped;
// a malformed entry is reported and skipped, the others kept.
func clusterQueueQuotas(u *unstructured.Unstructured) ([]Quota, []error) {
	var out []Quota
	var errs []error
	name := u.GetName()
	groups, err := slice(u.Object, "spec", "resourceGroups")
	if err != nil {
		return nil, []error{fmt.Errorf("clusterqueue %s: spec.resourceGroups: %w", name, err)}
	}
	for gi, g := range groups {
		gm, ok := g.(map[string]any)
		if !ok {
			errs = append(errs, fmt.Errorf("clusterqueue %s: resourceGroups[%d] is not an object", name, gi))
			continue
		}
		flavors, err := slice(gm, "flavors")
		if err != nil {
			errs = append(errs, fmt.Errorf("clusterqueue %s: resourceGroups[%d].flavors: %w", name, gi, err))
			continue
		}
		for fi, f := range flavors {
			q, ferrs := flavorQuotas(name, fmt.Sprintf("resourceGroups[%d].flavors[%d]", gi, fi), f)
			out = append(out, q...)
			errs = append(errs, ferrs...)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Flavor != out[j].Flavor {
			return out[i].Flavor < out[j].Flavor
		}
		return out[i].Resource < out[j].Resource
	})
	return out, errs
}

func flavorQuotas(cq, path string, f any) ([]Quota, []error) {
	fm, ok := f.(map[string]any)
	if !ok {
		return nil, []error{fmt.Errorf("clusterqueue %s: %s is not an object", cq, path)}
	}
	flavor, _, _ := unstructured.NestedString(fm, "name")
	resources, err := slice(fm, "resources")
	if err != nil {
		return nil, []error{fmt.Errorf("clusterqueue %s: %s.resources: %w", cq, path, err)}
	}
	var out []Quota
	var errs []error
	for ri, r := range resources {
		rm, ok := r.(map[string]any)
		if !ok {
			errs = append(errs, fmt.Errorf("clusterqueue %s: %s.resources[%d] is not an object", cq, path, ri))
			continue
		}
		res, _, _ := unstructured.NestedString(rm, "name")
		if _, _, ok := accounting.ResourceClass(res); !ok {
			continue
		}
		raw, found := rm["nominalQuota"]
		if !found {
			errs = append(errs, fmt.Errorf("clusterqueue %s: %s.resources[%d] (%s) has no nominalQuota", cq, path, ri, res))
			continue
		}
		q, err := quantity(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("clusterqueue %s: %s.resources[%d] (%s) nominalQuota: %w", cq, path, ri, res, err))
			continue
		}
		out = append(out, Quota{ClusterQueue: cq, Flavor: flavor, Resource: res, Value: q})
	}
	return out, errs
}

// slice reads a list field without copying it (a copy would fail on
// values that are not JSON's); absent is an empty list.
func slice(obj map[string]any, path ...string) ([]any, error) {
	v, found, err := unstructured.NestedFieldNoCopy(obj, path...)
	if err != nil || !found || v == nil {
		return nil, err
	}
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want a list, found %T", v)
	}
	return l, nil
}

// quantity parses a Kubernetes quantity as JSON carries it: a string
// ("8", "500m") or a number.
func quantity(v any) (float64, error) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case int64, int32, int, float64:
		s = fmt.Sprint(x)
	default:
		return 0, fmt.Errorf("want a quantity, found %T", v)
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	return q.AsApproximateFloat64(), nil
}
