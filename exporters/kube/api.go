package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
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

// clientsetAPI reads a client-go clientset (kubernetes.Interface, such as
// client-go's fake) as an API: its CoreV1() client's Pods(""),
// Namespaces() and Nodes() for lists and watches, its Discovery() client
// for the rest. It calls them through reflection, by constant method
// names, so that this package does not import the clientset (see API).
type clientsetAPI struct {
	cs         any
	core, disc reflect.Value
}

// asClientset adapts c when it has the clientset's CoreV1 and Discovery
// methods.
func asClientset(c any) (*clientsetAPI, error) {
	v := reflect.ValueOf(c)
	core, disc := v.MethodByName("CoreV1"), v.MethodByName("Discovery")
	if !core.IsValid() || !disc.IsValid() || core.Type().NumIn() != 0 || disc.Type().NumIn() != 0 ||
		core.Type().NumOut() != 1 || disc.Type().NumOut() != 1 {
		return nil, fmt.Errorf("kube: Client %T is neither an API nor a clientset", c)
	}
	a := &clientsetAPI{cs: c, core: core.Call(nil)[0], disc: disc.Call(nil)[0]}
	if a.core.IsNil() || a.disc.IsNil() {
		return nil, fmt.Errorf("kube: Client %T has no core or discovery client", c)
	}
	return a, nil
}

// results turns a method's (value, error) results into Go values.
func results(out []reflect.Value) (any, error) {
	if len(out) != 2 {
		return nil, fmt.Errorf("kube: clientset method returned %d values, want 2", len(out))
	}
	var err error
	if e := out[1]; !e.IsNil() {
		err, _ = e.Interface().(error)
	}
	if v := out[0]; (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
		return nil, err
	}
	return out[0].Interface(), err
}

func (a *clientsetAPI) ListWatch(resource string, scope func(*metav1.ListOptions)) (cache.ListerWatcher, error) {
	var r reflect.Value
	switch resource {
	case "pods":
		r = a.core.MethodByName("Pods").Call([]reflect.Value{reflect.ValueOf(metav1.NamespaceAll)})[0]
	case "namespaces":
		r = a.core.MethodByName("Namespaces").Call(nil)[0]
	case "nodes":
		r = a.core.MethodByName("Nodes").Call(nil)[0]
	default:
		return nil, fmt.Errorf("kube: no core resource %q", resource)
	}
	list, watchM := r.MethodByName("List"), r.MethodByName("Watch")
	if !list.IsValid() || !watchM.IsValid() {
		return nil, fmt.Errorf("kube: the clientset's %s client cannot list and watch", resource)
	}
	if scope == nil {
		scope = func(*metav1.ListOptions) {}
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			scope(&o)
			v, err := results(list.Call([]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(o)}))
			obj, _ := v.(runtime.Object)
			if obj == nil && err == nil {
				err = fmt.Errorf("kube: listing %s returned %T", resource, v)
			}
			return obj, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			scope(&o)
			v, err := results(watchM.Call([]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(o)}))
			w, _ := v.(watch.Interface)
			if w == nil && err == nil {
				err = fmt.Errorf("kube: watching %s returned %T", resource, v)
			}
			return w, err
		},
	}
	// A fake clientset says it cannot serve watch lists.
	return cache.ToListWatcherWithWatchListSemantics(lw, a.cs), nil
}

func (a *clientsetAPI) ServerResources(ctx context.Context, gv schema.GroupVersion) (*metav1.APIResourceList, error) {
	m := a.disc.MethodByName("ServerResourcesForGroupVersion")
	if !m.IsValid() {
		return nil, errors.New("kube: the clientset's discovery client has no ServerResourcesForGroupVersion")
	}
	v, err := results(m.Call([]reflect.Value{reflect.ValueOf(gv.String())}))
	if err != nil {
		return nil, err
	}
	list, ok := v.(*metav1.APIResourceList)
	if !ok {
		return nil, fmt.Errorf("kube: discovery returned %T", v)
	}
	return list, nil
}

func (a *clientsetAPI) ServerVersion(context.Context) error {
	m := a.disc.MethodByName("ServerVersion")
	if !m.IsValid() {
		return errors.New("kube: the clientset's discovery client has no ServerVersion")
	}
	_, err := results(m.Call(nil))
	return err
}
