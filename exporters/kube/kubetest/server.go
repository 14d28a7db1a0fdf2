// Package kubetest serves the reads of a Kubernetes API server over HTTP
// for tests: lists and watches (watch lists included) of the core v1 pods,
// namespaces and nodes and of any resource the test declares (Kueue's
// queues), field selectors, discovery of the declared group versions, and
// /version. Objects travel as JSON, as they do from a real API server, so
// that a test reaches the exporter's own REST client (kube.Clients), which
// client-go's fake clientsets bypass.
package kubetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
)

// Core v1 resources, served from the start.
var (
	Pods       = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	Namespaces = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	Nodes      = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
)

// resource is a served resource and its objects.
type resource struct {
	kind       string
	namespaced bool
	objs       map[string]map[string]any // by namespace/name, as JSON maps
}

// event is a change, kept for the watches that start behind it.
type event struct {
	gvr schema.GroupVersionResource
	typ watch.EventType
	obj map[string]any
	rv  int64
}

// Server is a fake API server. Its methods are safe for concurrent use.
type Server struct {
	srv  *httptest.Server
	done chan struct{}

	mu        sync.Mutex
	rv        int64
	resources map[schema.GroupVersionResource]*resource
	events    []event
	changed   chan struct{} // closed and replaced on every change
	requests  map[string]int
}

// Start serves the core v1 pods, namespaces and nodes, with objs (core v1
// objects) in them, on a loopback port.
func Start(objs ...runtime.Object) (*Server, error) {
	s := &Server{done: make(chan struct{}), resources: map[schema.GroupVersionResource]*resource{},
		changed: make(chan struct{}), requests: map[string]int{}}
	s.Serve(Pods, "Pod", true)
	s.Serve(Namespaces, "Namespace", false)
	s.Serve(Nodes, "Node", false)
	for _, o := range objs {
		if err := s.Add(o); err != nil {
			return nil, err
		}
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	return s, nil
}

// URL is the server's base URL.
func (s *Server) URL() string { return s.srv.URL }

// Close ends the watches and stops serving.
func (s *Server) Close() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	s.srv.Close()
}

// Kubeconfig writes a kubeconfig file for the server into dir and returns
// its path.
func (s *Server) Kubeconfig(dir string) (string, error) {
	path := filepath.Join(dir, "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: %q}}]
users: [{name: test, user: {token: test}}]
contexts: [{name: fake, context: {cluster: fake, user: test}}]
current-context: fake
`, s.URL())
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// Serve declares a resource of kind (a Kueue LocalQueue: kueue.x-k8s.io
// v1beta1 localqueues, LocalQueue, namespaced); discovery then lists it.
func (s *Server) Serve(gvr schema.GroupVersionResource, kind string, namespaced bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resources[gvr] == nil {
		s.resources[gvr] = &resource{kind: kind, namespaced: namespaced, objs: map[string]map[string]any{}}
	}
}

// Requests returns how many requests of a kind the server answered:
// "list pods", "watch pods", "discovery", "version"…
func (s *Server) Requests(what string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[what]
}

// gvrOf finds the served resource of an object from its kind.
func (s *Server) gvrOf(gvk schema.GroupVersionKind) (schema.GroupVersionResource, *resource, bool) {
	for gvr, r := range s.resources {
		if gvr.GroupVersion() == gvk.GroupVersion() && r.kind == gvk.Kind {
			return gvr, r, true
		}
	}
	return schema.GroupVersionResource{}, nil, false
}

// Add stores an object (a core v1 object, or an unstructured one of a
// declared resource) and sends ADDED to the watches.
func (s *Server) Add(obj runtime.Object) error { return s.change(watch.Added, obj) }

// Update replaces an object and sends MODIFIED.
func (s *Server) Update(obj runtime.Object) error { return s.change(watch.Modified, obj) }

// Delete removes an object and sends DELETED.
func (s *Server) Delete(obj runtime.Object) error { return s.change(watch.Deleted, obj) }

func (s *Server) change(typ watch.EventType, obj runtime.Object) error {
	m, gvk, err := toMap(obj)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	gvr, r, ok := s.gvrOf(gvk)
	if !ok {
		return fmt.Errorf("kubetest: %s is not served", gvk)
	}
	u := unstructured.Unstructured{Object: m}
	key := u.GetNamespace() + "/" + u.GetName()
	_, exists := r.objs[key]
	switch {
	case typ == watch.Added && exists:
		return fmt.Errorf("kubetest: %s %s exists", gvk.Kind, key)
	case typ != watch.Added && !exists:
		return fmt.Errorf("kubetest: %s %s does not exist", gvk.Kind, key)
	}
	s.rv++
	u.SetResourceVersion(strconv.FormatInt(s.rv, 10))
	u.SetAPIVersion(gvk.GroupVersion().String())
	u.SetKind(gvk.Kind)
	if typ == watch.Deleted {
		delete(r.objs, key)
	} else {
		r.objs[key] = m
	}
	s.events = append(s.events, event{gvr: gvr, typ: typ, obj: m, rv: s.rv})
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// core knows the kinds of typed core v1 objects, which carry none.
var core = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// toMap turns an object into its JSON map, and says its kind.
func toMap(obj runtime.Object) (map[string]any, schema.GroupVersionKind, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u.DeepCopy().Object, u.GroupVersionKind(), nil
	}
	gvks, _, err := core.ObjectKinds(obj)
	if err != nil {
		return nil, schema.GroupVersionKind{}, fmt.Errorf("kubetest: %w", err)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj.DeepCopyObject())
	return m, gvks[0], err
}

// handle routes /api/v1/…, /apis/GROUP/VERSION[/…] and /version.
func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		s.status(w, apierrors.NewMethodNotSupported(schema.GroupResource{}, r.Method))
		return
	}
	path := strings.Trim(r.URL.Path, "/")
	if path == "version" {
		s.count("version")
		writeJSON(w, map[string]string{"major": "1", "minor": "35", "gitVersion": "v1.35.0", "platform": "linux/amd64"})
		return
	}
	parts := strings.Split(path, "/")
	var gv schema.GroupVersion
	switch {
	case len(parts) >= 2 && parts[0] == "api" && parts[1] == "v1":
		gv, parts = schema.GroupVersion{Version: "v1"}, parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		gv, parts = schema.GroupVersion{Group: parts[1], Version: parts[2]}, parts[3:]
	default:
		s.status(w, apierrors.NewNotFound(schema.GroupResource{}, path))
		return
	}
	if len(parts) == 0 {
		s.discovery(w, gv)
		return
	}
	ns := ""
	if len(parts) == 3 && parts[0] == "namespaces" {
		ns, parts = parts[1], parts[2:]
	}
	if len(parts) != 1 {
		s.status(w, apierrors.NewNotFound(schema.GroupResource{}, path))
		return
	}
	gvr := gv.WithResource(parts[0])
	s.mu.Lock()
	res := s.resources[gvr]
	s.mu.Unlock()
	if res == nil {
		s.status(w, apierrors.NewNotFound(gvr.GroupResource(), ""))
		return
	}
	sel, err := fields.ParseSelector(r.URL.Query().Get("fieldSelector"))
	if err != nil {
		s.status(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	match := func(m map[string]any) bool {
		u := unstructured.Unstructured{Object: m}
		if ns != "" && u.GetNamespace() != ns {
			return false
		}
		set := fields.Set{}
		for _, req := range sel.Requirements() {
			v, _, _ := unstructured.NestedString(m, strings.Split(req.Field, ".")...)
			set[req.Field] = v
		}
		return sel.Matches(set)
	}
	if q := r.URL.Query(); q.Get("watch") == "true" || q.Get("watch") == "1" {
		s.watch(w, r, gvr, res, match)
		return
	}
	s.list(w, gvr, res, match)
}

func (s *Server) count(what string) {
	s.mu.Lock()
	s.requests[what]++
	s.mu.Unlock()
}

func (s *Server) discovery(w http.ResponseWriter, gv schema.GroupVersion) {
	s.count("discovery")
	list := metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
	s.mu.Lock()
	for gvr, r := range s.resources {
		if gvr.GroupVersion() == gv {
			list.APIResources = append(list.APIResources, metav1.APIResource{Name: gvr.Resource, Namespaced: r.namespaced,
				Kind: r.kind, Verbs: metav1.Verbs{"get", "list", "watch"}})
		}
	}
	s.mu.Unlock()
	if len(list.APIResources) == 0 {
		s.status(w, apierrors.NewNotFound(schema.GroupResource{}, gv.String()))
		return
	}
	sort.Slice(list.APIResources, func(a, b int) bool { return list.APIResources[a].Name < list.APIResources[b].Name })
	writeJSON(w, list)
}

// items returns the objects that match, sorted by key, and the current
// resource version; s.mu is held.
func (s *Server) items(res *resource, match func(map[string]any) bool) []map[string]any {
	keys := make([]string, 0, len(res.objs))
	for k := range res.objs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []map[string]any
	for _, k := range keys {
		if match(res.objs[k]) {
			out = append(out, res.objs[k])
		}
	}
	return out
}

func (s *Server) list(w http.ResponseWriter, gvr schema.GroupVersionResource, res *resource, match func(map[string]any) bool) {
	s.mu.Lock()
	s.requests["list "+gvr.Resource]++
	items := s.items(res, match)
	rv := s.rv
	s.mu.Unlock()
	if items == nil {
		items = []map[string]any{}
	}
	writeJSON(w, map[string]any{
		"apiVersion": gvr.GroupVersion().String(), "kind": res.kind + "List",
		"metadata": map[string]any{"resourceVersion": strconv.FormatInt(rv, 10)},
		"items":    items,
	})
}

// watch streams the events after the requested resource version; with
// sendInitialEvents, the matching objects first, then the bookmark that
// ends them.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, gvr schema.GroupVersionResource, res *resource, match func(map[string]any) bool) {
	q := r.URL.Query()
	s.mu.Lock()
	s.requests["watch "+gvr.Resource]++
	from := s.rv
	var initial []map[string]any
	initialEvents := q.Get("sendInitialEvents") == "true"
	if initialEvents {
		initial = s.items(res, match)
	} else if v := q.Get("resourceVersion"); v != "" && v != "0" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.mu.Unlock()
			s.status(w, apierrors.NewBadRequest("bad resourceVersion "+v))
			return
		}
		from = n
	}
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	send := func(typ watch.EventType, obj map[string]any) bool {
		if err := enc.Encode(map[string]any{"type": typ, "object": obj}); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	for _, o := range initial {
		if !send(watch.Added, o) {
			return
		}
	}
	if initialEvents {
		bookmark := map[string]any{"apiVersion": gvr.GroupVersion().String(), "kind": res.kind, "metadata": map[string]any{
			"resourceVersion": strconv.FormatInt(from, 10),
			"annotations":     map[string]any{metav1.InitialEventsAnnotationKey: "true"},
		}}
		if !send(watch.Bookmark, bookmark) {
			return
		}
	}
	ctx := r.Context()
	for {
		s.mu.Lock()
		var pending []event
		for _, e := range s.events {
			if e.rv > from && e.gvr == gvr && match(e.obj) {
				pending = append(pending, e)
			}
		}
		if n := len(s.events); n > 0 {
			from = max(from, s.events[n-1].rv)
		}
		changed := s.changed
		s.mu.Unlock()
		for _, e := range pending {
			if !send(e.typ, e.obj) {
				return
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
	}
}

// status answers an API error as a Status object.
func (s *Server) status(w http.ResponseWriter, err *apierrors.StatusError) {
	st := err.Status()
	st.Kind, st.APIVersion = "Status", "v1"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(st.Code))
	_ = json.NewEncoder(w).Encode(st)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
