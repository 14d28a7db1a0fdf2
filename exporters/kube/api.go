package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// API is what the informers read of the Kubernetes API server: lists and
// watches of the core v1 pods, namespaces and nodes, the resources of an
// API group version (to find Kueue), and the server's version (the probe
// of an unreachable server). Clients returns the real one.
//
// The exporter reads the API server through a REST client whose scheme
// knows core v1 only, not through client-go's clientset: importing the
// clientset (or its typed clients, or its discovery client) registers
// every built-in API group at start and links their code, which made the
// exporter's binary twice as large (71 MiB against 36) and its resident
// memory at rest 21 MiB larger (docs/performance.md, P1 on the real code
// path).
type API interface {
	// ListWatch lists and watches a core v1 resource of CoreResources in
	// every namespace; scope, when not nil, narrows the list options
	// (field selectors).
	ListWatch(resource string, scope func(*metav1.ListOptions)) (cache.ListerWatcher, error)
	// ServerResources returns the resources served under gv; an error
	// satisfying apierrors.IsNotFound when gv is not served.
	ServerResources(ctx context.Context, gv schema.GroupVersion) (*metav1.APIResourceList, error)
	// ServerVersion asks the server for its version; nil when it answers.
	ServerVersion(ctx context.Context) error
}

// coreResource is a core v1 resource the informers watch.
type coreResource struct {
	obj  runtime.Object // the informer's object type
	list func() runtime.Object
}

// coreResources are the resources API.ListWatch serves.
var coreResources = map[string]coreResource{
	"pods":       {&corev1.Pod{}, func() runtime.Object { return &corev1.PodList{} }},
	"namespaces": {&corev1.Namespace{}, func() runtime.Object { return &corev1.NamespaceList{} }},
	"nodes":      {&corev1.Node{}, func() runtime.Object { return &corev1.NodeList{} }},
}

// restAPI is the API over HTTP: one REST client for /api/v1 whose scheme
// knows core v1 (and meta v1) only.
type restAPI struct {
	rc     *rest.RESTClient
	params runtime.ParameterCodec
}

// newRESTAPI builds the API from a REST configuration.
func newRESTAPI(cfg *rest.Config) (*restAPI, error) {
	sch := runtime.NewScheme()
	if err := corev1.AddToScheme(sch); err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	c.APIPath = "/api"
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(sch, serializer.NewCodecFactory(sch)).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, err
	}
	return &restAPI{rc: rc, params: runtime.NewParameterCodec(sch)}, nil
}

// timeout is a request's time limit from its options, as client-go's
// typed clients set it (zero: none).
func timeout(o *metav1.ListOptions) time.Duration {
	if o.TimeoutSeconds != nil {
		return time.Duration(*o.TimeoutSeconds) * time.Second
	}
	return 0
}

func (a *restAPI) ListWatch(resource string, scope func(*metav1.ListOptions)) (cache.ListerWatcher, error) {
	r, ok := coreResources[resource]
	if !ok {
		return nil, fmt.Errorf("kube: no core resource %q", resource)
	}
	if scope == nil {
		scope = func(*metav1.ListOptions) {}
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			scope(&o)
			out := r.list()
			err := a.rc.Get().Resource(resource).VersionedParams(&o, a.params).Timeout(timeout(&o)).Do(ctx).Into(out)
			return out, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			scope(&o)
			o.Watch = true
			return a.rc.Get().Resource(resource).VersionedParams(&o, a.params).Timeout(timeout(&o)).Watch(ctx)
		},
	}, nil
}

func (a *restAPI) ServerResources(ctx context.Context, gv schema.GroupVersion) (*metav1.APIResourceList, error) {
	body, err := a.rc.Get().AbsPath("/apis", gv.Group, gv.Version).Do(ctx).Raw()
	if err != nil {
		return nil, err
	}
	var list metav1.APIResourceList
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("kube: discovery of %s: %w", gv, err)
	}
	return &list, nil
}

func (a *restAPI) ServerVersion(ctx context.Context) error {
	_, err := a.rc.Get().AbsPath("/version").Do(ctx).Raw()
	return err
}
