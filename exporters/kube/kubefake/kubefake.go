// Package kubefake reads a client-go clientset — in tests, client-go's
// fake — as the kube.API that the exporter's informers read.
//
// It is for tests. The exporter reads the API server through kube's REST
// client and never links the clientset (see kube.API); a binary that
// imports this package links it. It does not import package kube, so that
// kube's own tests can use it.
package kubefake

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// API is a clientset read as a kube.API: its CoreV1 pods (in every
// namespace), namespaces and nodes for lists and watches, its discovery
// client for the rest.
type API struct {
	cs kubernetes.Interface
}

// New returns cs as a kube.API.
func New(cs kubernetes.Interface) *API { return &API{cs: cs} }

type (
	listFunc  func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watchFunc func(context.Context, metav1.ListOptions) (watch.Interface, error)
)

// lister turns a typed List method into a listFunc: a failed list is a nil
// object, not a typed nil pointer.
func lister[L runtime.Object](list func(context.Context, metav1.ListOptions) (L, error)) listFunc {
	return func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		l, err := list(ctx, o)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
}

// ListWatch lists and watches resource ("pods", "namespaces" or "nodes")
// in every namespace; scope, when not nil, narrows the options.
func (a *API) ListWatch(resource string, scope func(*metav1.ListOptions)) (cache.ListerWatcher, error) {
	var list listFunc
	var w watchFunc
	core := a.cs.CoreV1()
	switch resource {
	case "pods":
		c := core.Pods(metav1.NamespaceAll)
		list, w = lister(c.List), c.Watch
	case "namespaces":
		c := core.Namespaces()
		list, w = lister(c.List), c.Watch
	case "nodes":
		c := core.Nodes()
		list, w = lister(c.List), c.Watch
	default:
		return nil, fmt.Errorf("kubefake: no core resource %q", resource)
	}
	if scope == nil {
		scope = func(*metav1.ListOptions) {}
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			scope(&o)
			return list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			scope(&o)
			return w(ctx, o)
		},
	}
	// A fake clientset says it cannot serve watch lists.
	return cache.ToListWatcherWithWatchListSemantics(lw, a.cs), nil
}

// ServerResources returns the resources served under gv.
func (a *API) ServerResources(_ context.Context, gv schema.GroupVersion) (*metav1.APIResourceList, error) {
	return a.cs.Discovery().ServerResourcesForGroupVersion(gv.String())
}

// ServerVersion asks the server for its version; nil when it answers.
func (a *API) ServerVersion(context.Context) error {
	_, err := a.cs.Discovery().ServerVersion()
	return err
}
