// Package attribution decides who an allocation belongs to: the user, the
// project and the queue, from a pod's metadata, its namespace's labels and
// the Kueue queues. Rules are data, evaluated in order, first match wins;
// what no rule decides is "unknown", never dropped. The package does no I/O:
// the exporter's informers and the simulator both feed it through Lookup.
package attribution

import "strings"

// Unknown is the value of a user or project no rule could decide.
const Unknown = "unknown"

// Well-known keys.
const (
	AnnotationJupyterHubUser = "hub.jupyter.org/username"
	LabelKueueQueue          = "kueue.x-k8s.io/queue-name"
	LabelUser                = "gpuledger.io/user"
	LabelProject             = "gpuledger.io/project"
)

// Pod is the metadata attribution reads.
type Pod struct {
	Name, Namespace, UID, ServiceAccount string
	Labels, Annotations                  map[string]string
}

// Lookup answers the cluster-level questions rules may ask.
type Lookup interface {
	// NamespaceLabels returns the labels of a namespace (nil when unknown).
	NamespaceLabels(namespace string) map[string]string
	// ClusterQueue maps a Kueue LocalQueue to its ClusterQueue.
	ClusterQueue(namespace, localQueue string) (string, bool)
}

// Source kinds a rule can read.
const (
	FromAnnotation     = "annotation"      // Key: annotation name
	FromLabel          = "label"           // Key: label name
	FromNamespaceLabel = "namespace_label" // Key: label name on the pod's namespace
	FromServiceAccount = "service_account" // the pod's service account, unless "default"
	FromClusterQueue   = "cluster_queue"   // ClusterQueue of the pod's Kueue LocalQueue
	FromNamespace      = "namespace"       // the pod's namespace
)

// Source is one rule: where a value is read from.
type Source struct {
	From string `yaml:"from" json:"from"`
	Key  string `yaml:"key,omitempty" json:"key,omitempty"`
}

// Rules are the ordered sources for user and project.
type Rules struct {
	User    []Source `yaml:"user" json:"user"`
	Project []Source `yaml:"project" json:"project"`
}

// Default returns the rules of a platform like AI_INFN: the JupyterHub user
// annotation, then a platform label, then the service account; the project
// from the Kueue ClusterQueue, then a namespace label, then the namespace.
func Default() Rules {
	return Rules{
		User: []Source{
			{From: FromAnnotation, Key: AnnotationJupyterHubUser},
			{From: FromLabel, Key: LabelUser},
			{From: FromServiceAccount},
		},
		Project: []Source{
			{From: FromClusterQueue},
			{From: FromNamespaceLabel, Key: LabelProject},
			{From: FromNamespace},
		},
	}
}

// Result is an attribution.
type Result struct {
	User, Project, Queue string
}

// Resolve applies the rules to a pod.
func (r Rules) Resolve(p Pod, l Lookup) Result {
	res := Result{User: Unknown, Project: Unknown}
	if lq := p.Labels[LabelKueueQueue]; lq != "" {
		res.Queue = lq
		if l != nil {
			if cq, ok := l.ClusterQueue(p.Namespace, lq); ok {
				res.Queue = cq
			}
		}
	}
	if v := first(r.User, p, l); v != "" {
		res.User = v
	}
	if v := first(r.Project, p, l); v != "" {
		res.Project = v
	}
	return res
}

func first(srcs []Source, p Pod, l Lookup) string {
	for _, s := range srcs {
		if v := strings.TrimSpace(read(s, p, l)); v != "" {
			return v
		}
	}
	return ""
}

func read(s Source, p Pod, l Lookup) string {
	switch s.From {
	case FromAnnotation:
		return p.Annotations[s.Key]
	case FromLabel:
		return p.Labels[s.Key]
	case FromNamespaceLabel:
		if l == nil {
			return ""
		}
		return l.NamespaceLabels(p.Namespace)[s.Key]
	case FromServiceAccount:
		if p.ServiceAccount == "default" {
			return ""
		}
		return p.ServiceAccount
	case FromClusterQueue:
		lq := p.Labels[LabelKueueQueue]
		if lq == "" || l == nil {
			return ""
		}
		cq, _ := l.ClusterQueue(p.Namespace, lq)
		return cq
	case FromNamespace:
		return p.Namespace
	}
	return ""
}
