package attribution

import "testing"

// fakeLookup is a cluster with namespace labels and Kueue LocalQueues.
type fakeLookup struct {
	ns     map[string]map[string]string
	queues map[string]string // namespace/localqueue → ClusterQueue
}

func (f fakeLookup) NamespaceLabels(ns string) map[string]string { return f.ns[ns] }

func (f fakeLookup) ClusterQueue(ns, lq string) (string, bool) {
	cq, ok := f.queues[ns+"/"+lq]
	return cq, ok
}

var cluster = fakeLookup{
	ns: map[string]map[string]string{
		"hub":    {LabelProject: "jupyterhub"},
		"cms-ml": {LabelProject: "cms"},
		"blank":  {LabelProject: "   "},
	},
	queues: map[string]string{
		"cms-ml/batch": "cms-gpu",
		"ml-infn/gpu":  "ml-infn-gpu",
	},
}

func TestDefaultRules(t *testing.T) {
	cases := []struct {
		name   string
		pod    Pod
		lookup Lookup
		want   Result
	}{
		{
			name: "JupyterHub annotation wins over label and service account",
			pod: Pod{Namespace: "hub", ServiceAccount: "hub-sa",
				Annotations: map[string]string{AnnotationJupyterHubUser: "alice"},
				Labels:      map[string]string{LabelUser: "mallory"}},
			lookup: cluster,
			want:   Result{User: "alice", Project: "jupyterhub"},
		},
		{
			name:   "platform label when there is no annotation",
			pod:    Pod{Namespace: "cms-ml", ServiceAccount: "runner", Labels: map[string]string{LabelUser: "bob"}},
			lookup: cluster,
			want:   Result{User: "bob", Project: "cms"},
		},
		{
			name:   "service account when there is no annotation or label",
			pod:    Pod{Namespace: "ml-infn", ServiceAccount: "trainer"},
			lookup: cluster,
			want:   Result{User: "trainer", Project: "ml-infn"},
		},
		{
			name:   `service account "default" is skipped`,
			pod:    Pod{Namespace: "ml-infn", ServiceAccount: "default"},
			lookup: cluster,
			want:   Result{User: Unknown, Project: "ml-infn"},
		},
		{
			name: "blank annotation falls through to the label",
			pod: Pod{Namespace: "ml-infn", Annotations: map[string]string{AnnotationJupyterHubUser: "  "},
				Labels: map[string]string{LabelUser: " carol "}},
			lookup: cluster,
			want:   Result{User: "carol", Project: "ml-infn"},
		},
		{
			name:   "project from the Kueue ClusterQueue, over the namespace label",
			pod:    Pod{Namespace: "cms-ml", Labels: map[string]string{LabelKueueQueue: "batch", LabelUser: "bob"}},
			lookup: cluster,
			want:   Result{User: "bob", Project: "cms-gpu", Queue: "cms-gpu"},
		},
		{
			name:   "unknown LocalQueue: queue kept as named, project from the namespace label",
			pod:    Pod{Namespace: "cms-ml", Labels: map[string]string{LabelKueueQueue: "express"}},
			lookup: cluster,
			want:   Result{User: Unknown, Project: "cms", Queue: "express"},
		},
		{
			name:   "LocalQueue of another namespace does not match",
			pod:    Pod{Namespace: "hub", Labels: map[string]string{LabelKueueQueue: "batch"}},
			lookup: cluster,
			want:   Result{User: Unknown, Project: "jupyterhub", Queue: "batch"},
		},
		{
			name:   "namespace label",
			pod:    Pod{Namespace: "hub", Annotations: map[string]string{AnnotationJupyterHubUser: "erin"}},
			lookup: cluster,
			want:   Result{User: "erin", Project: "jupyterhub"},
		},
		{
			name:   "blank namespace label falls back to the namespace",
			pod:    Pod{Namespace: "blank", ServiceAccount: "x"},
			lookup: cluster,
			want:   Result{User: "x", Project: "blank"},
		},
		{
			name:   "namespace fallback",
			pod:    Pod{Namespace: "lhcb-batch", Labels: map[string]string{LabelUser: "dave"}},
			lookup: cluster,
			want:   Result{User: "dave", Project: "lhcb-batch"},
		},
		{
			name:   "no lookup: namespace fallback, queue as named",
			pod:    Pod{Namespace: "cms-ml", Labels: map[string]string{LabelKueueQueue: "batch"}},
			lookup: nil,
			want:   Result{User: Unknown, Project: "cms-ml", Queue: "batch"},
		},
		{
			name:   "nothing known",
			pod:    Pod{},
			lookup: cluster,
			want:   Result{User: Unknown, Project: Unknown},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Default().Resolve(c.pod, c.lookup); got != c.want {
				t.Errorf("Resolve = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestCustomRules(t *testing.T) {
	rules := Rules{
		User:    []Source{{From: FromLabel, Key: "team.example/owner"}, {From: "no-such-source"}},
		Project: []Source{{From: FromAnnotation, Key: "team.example/budget"}},
	}
	pod := Pod{Namespace: "x", Labels: map[string]string{"team.example/owner": "olga"},
		Annotations: map[string]string{"team.example/budget": "grant-42"}}
	if got, want := rules.Resolve(pod, cluster), (Result{User: "olga", Project: "grant-42"}); got != want {
		t.Errorf("Resolve = %+v, want %+v", got, want)
	}
	if got := (Rules{}).Resolve(pod, cluster); got.User != Unknown || got.Project != Unknown {
		t.Errorf("empty rules = %+v, want unknown user and project", got)
	}
}
