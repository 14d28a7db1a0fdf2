package deploy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gpuledger/gpuledger/alerts"
	"github.com/gpuledger/gpuledger/api/auth"
	"github.com/gpuledger/gpuledger/attribution"
)

var update = flag.Bool("update", false, "rewrite the generated files (go generate ./deploy)")

// TestGenerated checks that the chart's copies of the alert rules and the
// dashboards, and the plain manifests, are what the generator writes; with
// -update it writes them.
func TestGenerated(t *testing.T) {
	files, stale, err := generated()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		for _, f := range files {
			if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range stale {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	for _, f := range files {
		got, err := os.ReadFile(f.path)
		if err != nil {
			t.Errorf("%v: run go generate ./deploy", err)
			continue
		}
		if !bytes.Equal(got, f.data) {
			t.Errorf("%s drifted from its source (%s): run go generate ./deploy", f.path, firstDiff(got, f.data))
		}
	}
	for _, p := range stale {
		t.Errorf("%s is not in %s: run go generate ./deploy", p, dashboardSourceDir)
	}
}

// firstDiff describes where two texts first differ.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d is %q, want %q", i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(g), len(w))
}

// TestManifestsDecode decodes the committed plain manifests, object by
// object, into the Kubernetes API types.
func TestManifestsDecode(t *testing.T) {
	total := 0
	for _, p := range []string{coreManifest, monitoringManifest} {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeManifest(string(data))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, o := range objs {
			mon := o.kind == "ServiceMonitor" || o.kind == "PrometheusRule"
			if mon != (p == monitoringManifest) {
				t.Errorf("%s: %s %s belongs in the other file", p, o.kind, o.meta.GetName())
			}
		}
		total += len(objs)
	}
	if total < 15 {
		t.Errorf("%d objects in the manifests, want the whole chart (at least 15)", total)
	}
}

// TestDefaultObjects checks what the chart makes with the manifests' values
// and that every object is well formed.
func TestDefaultObjects(t *testing.T) {
	r := renderOverlay(t, "")
	dashboards, err := sourceDashboards()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"DaemonSet": 1, "Deployment": 3, "Service": 3, "ServiceAccount": 3,
		"ClusterRole": 2, "ClusterRoleBinding": 2, "Role": 1, "RoleBinding": 1,
		"ServiceMonitor": 3, "PrometheusRule": 1, "Secret": 0, "ConfigMap": len(dashboards),
	}
	for kind, n := range want {
		if got := r.count(kind); got != n {
			t.Errorf("%d %s objects, want %d", got, kind, n)
		}
	}
	checkWellFormed(t, r, namespace)
}

// checkWellFormed checks what every release must satisfy, whatever its
// values: names, namespaces, references between objects, security.
func checkWellFormed(t *testing.T, r release, ns string) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range r.objs {
		name, key := o.meta.GetName(), o.kind+"/"+o.meta.GetName()
		if seen[key] {
			t.Errorf("%s rendered twice", key)
		}
		seen[key] = true
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			t.Errorf("%s: name: %v", key, errs)
		}
		if o.kind == "Service" {
			if errs := validation.IsDNS1035Label(name); len(errs) > 0 {
				t.Errorf("%s: name: %v", key, errs)
			}
		}
		clusterScoped := o.kind == "ClusterRole" || o.kind == "ClusterRoleBinding"
		if got := o.meta.GetNamespace(); clusterScoped != (got == "") || (!clusterScoped && got != ns) {
			t.Errorf("%s: namespace %q, want %q", key, got, map[bool]string{true: "", false: ns}[clusterScoped])
		}
		for k, v := range o.meta.GetLabels() {
			if errs := validation.IsQualifiedName(k); len(errs) > 0 {
				t.Errorf("%s: label %s: %v", key, k, errs)
			}
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				t.Errorf("%s: label %s=%q: %v", key, k, v, errs)
			}
		}
		if cm, ok := o.obj.(*corev1.ConfigMap); ok {
			for k := range cm.Data {
				if errs := validation.IsConfigMapKey(k); len(errs) > 0 {
					t.Errorf("%s: key %s: %v", key, k, errs)
				}
			}
		}
	}
	for _, w := range r.workloads() {
		checkWorkload(t, r, w)
	}
	checkServices(t, r)
	checkRBAC(t, r)
	checkServiceMonitors(t, r)
}

// checkWorkload checks one pod template: its selector, service account,
// volumes, security and the listen address of its container.
func checkWorkload(t *testing.T, r release, w workload) {
	t.Helper()
	key := w.kind + "/" + w.name
	if !selects(w.selector, w) {
		t.Errorf("%s: selector %v does not match its pods' labels %v", key, w.selector, w.pod.Labels)
	}
	spec := &w.pod.Spec
	if sa := spec.ServiceAccountName; sa != "" {
		if _, ok := r.lookup("ServiceAccount", sa); !ok {
			t.Errorf("%s: service account %s is not rendered", key, sa)
		}
	} else if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: the default service account's token is mounted; only pods that call the API server should have one", key)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Errorf("%s: shares the host's network, PID or IPC namespace", key)
	}
	if sc := spec.SecurityContext; sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod seccomp profile is not RuntimeDefault", key)
	}
	hostPaths := map[string]bool{}
	for _, v := range spec.Volumes {
		switch {
		case v.HostPath != nil:
			hostPaths[v.Name] = true
		case v.ConfigMap != nil:
			if _, ok := r.lookup("ConfigMap", v.ConfigMap.Name); !ok && !strings.Contains(v.Name, "jwks") {
				t.Errorf("%s: volume %s: ConfigMap %s is not rendered", key, v.Name, v.ConfigMap.Name)
			}
		}
	}
	if len(hostPaths) > 0 && w.kind != "DaemonSet" {
		t.Errorf("%s: host paths %v outside the node exporter", key, sorted(hostPaths))
	}
	c := w.container(t)
	for _, m := range c.VolumeMounts {
		if hostPaths[m.Name] && !m.ReadOnly {
			t.Errorf("%s: host path %s mounted writable at %s", key, m.Name, m.MountPath)
		}
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Errorf("%s: container has no securityContext", key)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: root file system is writable", key)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("%s: privilege escalation allowed", key)
	case sc.Privileged != nil && *sc.Privileged:
		t.Errorf("%s: privileged", key)
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("%s: capabilities %+v, want all dropped and none added", key, sc.Capabilities)
	}
	// Only the node exporter runs as root (the pod-resources socket).
	root := w.kind == "DaemonSet"
	psc := spec.SecurityContext
	if root {
		if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != 0 {
			t.Errorf("%s: want runAsUser 0 (the kubelet's pod-resources socket is root's)", key)
		}
	} else if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: want runAsNonRoot with a non-zero user", key)
	}
	// The listen address is served on the container's named port.
	_, flags := mustFlags(t, c)
	listen, ok := flags["listen-address"]
	if !ok {
		t.Errorf("%s: no --listen-address", key)
		return
	}
	if len(c.Ports) != 1 || fmt.Sprintf(":%d", c.Ports[0].ContainerPort) != listen {
		t.Errorf("%s: ports %+v, want one on the --listen-address %s", key, c.Ports, listen)
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p == nil {
			continue
		}
		port := ""
		switch {
		case p.HTTPGet != nil:
			port = p.HTTPGet.Port.String()
		case p.TCPSocket != nil:
			port = p.TCPSocket.Port.String()
		}
		if _, ok := containerPort(c, port); !ok {
			t.Errorf("%s: probe on port %q, not a named port of the container", key, port)
		}
	}
}

// checkServices checks that every Service selects rendered pods and that
// each of its ports reaches a named container port.
func checkServices(t *testing.T, r release) {
	t.Helper()
	for _, o := range r.all("Service") {
		svc := o.obj.(*corev1.Service)
		var targets []workload
		for _, w := range r.workloads() {
			if selects(svc.Spec.Selector, w) {
				targets = append(targets, w)
			}
		}
		if len(targets) == 0 {
			t.Errorf("Service %s selects no rendered pods", svc.Name)
		}
		for _, w := range targets {
			c := w.container(t)
			for _, sp := range svc.Spec.Ports {
				cp, ok := containerPort(c, sp.TargetPort.String())
				if !ok {
					t.Errorf("Service %s port %s: target %s is not a port of %s %s", svc.Name, sp.Name, sp.TargetPort.String(), w.kind, w.name)
					continue
				}
				if cp.ContainerPort != sp.Port {
					t.Errorf("Service %s port %d reaches %s %s on %d: keep them equal", svc.Name, sp.Port, w.kind, w.name, cp.ContainerPort)
				}
			}
		}
	}
}

// The only rules a release may grant: read-only, list and watch.
var allowedVerbs = map[string]bool{"list": true, "watch": true}

// checkRBAC checks that every binding binds a rendered role to a rendered
// service account that a pod uses, and that no rule writes or uses a
// wildcard.
func checkRBAC(t *testing.T, r release) {
	t.Helper()
	used := map[string]bool{}
	for _, w := range r.workloads() {
		used[w.pod.Spec.ServiceAccountName] = true
	}
	var rules []rbacv1.PolicyRule
	for _, o := range r.all("ClusterRole") {
		rules = append(rules, o.obj.(*rbacv1.ClusterRole).Rules...)
	}
	for _, o := range r.all("Role") {
		rules = append(rules, o.obj.(*rbacv1.Role).Rules...)
	}
	for _, rule := range rules {
		for _, v := range rule.Verbs {
			if !allowedVerbs[v] {
				t.Errorf("rule %+v grants %q", rule, v)
			}
		}
		if slices.Contains(rule.Resources, "*") || slices.Contains(rule.APIGroups, "*") || len(rule.NonResourceURLs) > 0 {
			t.Errorf("rule %+v uses a wildcard or non-resource URLs", rule)
		}
	}
	check := func(kind, name string, ref rbacv1.RoleRef, subjects []rbacv1.Subject) {
		if _, ok := r.lookup(ref.Kind, ref.Name); !ok {
			t.Errorf("%s %s: %s %s is not rendered", kind, name, ref.Kind, ref.Name)
		}
		for _, s := range subjects {
			if s.Kind != "ServiceAccount" || !used[s.Name] {
				t.Errorf("%s %s: subject %+v is not a service account of a rendered pod", kind, name, s)
			}
		}
	}
	for _, o := range r.all("ClusterRoleBinding") {
		b := o.obj.(*rbacv1.ClusterRoleBinding)
		check(o.kind, b.Name, b.RoleRef, b.Subjects)
		if b.RoleRef.Kind != "ClusterRole" {
			t.Errorf("ClusterRoleBinding %s binds a %s", b.Name, b.RoleRef.Kind)
		}
	}
	for _, o := range r.all("RoleBinding") {
		b := o.obj.(*rbacv1.RoleBinding)
		check(o.kind, b.Name, b.RoleRef, b.Subjects)
	}
}

// checkServiceMonitors checks that every ServiceMonitor selects a rendered
// Service in its namespace, scrapes a named port of it, and names its job
// after the Service's gpuledger.io/job label.
func checkServiceMonitors(t *testing.T, r release) {
	t.Helper()
	for _, o := range r.all("ServiceMonitor") {
		sm := o.obj.(*serviceMonitor)
		var svcs []*corev1.Service
		for _, so := range r.all("Service") {
			svc := so.obj.(*corev1.Service)
			if subset(sm.Spec.Selector.MatchLabels, svc.Labels) && slices.Contains(sm.Spec.NamespaceSelector.MatchNames, svc.Namespace) {
				svcs = append(svcs, svc)
			}
		}
		if len(svcs) != 1 {
			t.Errorf("ServiceMonitor %s selects %d Services, want 1", sm.Name, len(svcs))
			continue
		}
		svc := svcs[0]
		if sm.Spec.JobLabel == "" || svc.Labels[sm.Spec.JobLabel] == "" {
			t.Errorf("ServiceMonitor %s: job label %q is not a label of Service %s", sm.Name, sm.Spec.JobLabel, svc.Name)
		}
		if len(sm.Spec.Endpoints) != 1 {
			t.Errorf("ServiceMonitor %s: %d endpoints, want 1", sm.Name, len(sm.Spec.Endpoints))
			continue
		}
		ep := sm.Spec.Endpoints[0]
		if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
			t.Errorf("ServiceMonitor %s: port %q is not a port of Service %s", sm.Name, ep.Port, svc.Name)
		}
		if ep.Path != "/metrics" {
			t.Errorf("ServiceMonitor %s: path %q", sm.Name, ep.Path)
		}
		for _, rl := range ep.Relabelings {
			if rl.Action != "replace" || rl.TargetLabel == "" || rl.Replacement == "" {
				t.Errorf("ServiceMonitor %s: relabeling %+v", sm.Name, rl)
			}
		}
	}
}

func subset(sub, set map[string]string) bool {
	if len(sub) == 0 {
		return false
	}
	for k, v := range sub {
		if set[k] != v {
			return false
		}
	}
	return true
}

// TestNodeExporter checks the node exporter's DaemonSet with the default
// values: host mounts, the node name, the NVIDIA runtime variables, its
// flags, the nodes it runs on.
func TestNodeExporter(t *testing.T) {
	r := renderOverlay(t, "")
	w := r.workload("DaemonSet", "gpuledger-exporter")
	c := w.container(t)
	cmd, flags := mustFlags(t, c)
	if cmd != exporterBinary {
		t.Errorf("command %q, want %s", cmd, exporterBinary)
	}
	wantFlags := map[string]string{
		"mode":              "node",
		"node-name":         "$(NODE_NAME)",
		"listen-address":    ":9835",
		"kubelet-socket":    "/var/lib/kubelet/pod-resources/kubelet.sock",
		"dcgm-exporter-url": "http://$(HOST_IP):9400/metrics",
		"fpga-sysfs-root":   "/host/sys",
		"log-level":         "info",
	}
	if !reflect.DeepEqual(flags, wantFlags) {
		t.Errorf("flags %v, want %v", flags, wantFlags)
	}
	for name, field := range map[string]string{"NODE_NAME": "spec.nodeName", "HOST_IP": "status.hostIP"} {
		e, ok := envVar(c, name)
		if !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != field {
			t.Errorf("$%s = %+v, want the downward API's %s", name, e, field)
		}
	}
	for name, want := range map[string]string{"NVIDIA_VISIBLE_DEVICES": "all", "NVIDIA_DRIVER_CAPABILITIES": "utility"} {
		if e, ok := envVar(c, name); !ok || e.Value != want {
			t.Errorf("$%s = %+v, want %q", name, e, want)
		}
	}
	if w.pod.Spec.RuntimeClassName != nil {
		t.Errorf("runtimeClassName %q by default, want none", *w.pod.Spec.RuntimeClassName)
	}

	// Host paths: the pod-resources directory holding the socket the
	// flag names, and /sys under the FPGA root, both read-only.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	wantHost := map[string][2]string{ // volume → host path, mount path
		"pod-resources": {"/var/lib/kubelet/pod-resources", path.Dir(flags["kubelet-socket"])},
		"sys":           {"/sys", flags["fpga-sysfs-root"]},
	}
	hostPaths := 0
	for _, v := range w.pod.Spec.Volumes {
		if v.HostPath == nil {
			continue
		}
		hostPaths++
		want, ok := wantHost[v.Name]
		m := mounts[v.Name]
		switch {
		case !ok:
			t.Errorf("unexpected host path volume %s (%s)", v.Name, v.HostPath.Path)
		case v.HostPath.Path != want[0] || v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathDirectory:
			t.Errorf("volume %s: host path %+v, want directory %s", v.Name, v.HostPath, want[0])
		case m.MountPath != want[1] || !m.ReadOnly:
			t.Errorf("volume %s mounted %+v, want read-only at %s", v.Name, m, want[1])
		}
	}
	if hostPaths != len(wantHost) {
		t.Errorf("%d host path volumes, want %d", hostPaths, len(wantHost))
	}
	if m, ok := mounts["tmp"]; !ok || m.MountPath != "/tmp" {
		t.Errorf("no writable /tmp (xbutil's output) beside the read-only root: %+v", m)
	}

	// Where it runs: GPU and FPGA nodes, never a virtual node.
	terms := w.pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	var keys []string
	for _, term := range terms {
		virtual := false
		for _, e := range term.MatchExpressions {
			if e.Key == "virtual-node.interlink/type" && e.Operator == corev1.NodeSelectorOpNotIn && slices.Equal(e.Values, []string{"virtual-kubelet"}) {
				virtual = true
			} else {
				keys = append(keys, e.Key)
			}
		}
		if !virtual {
			t.Errorf("term %+v admits InterLink virtual nodes", term)
		}
	}
	if want := []string{"nvidia.com/gpu.present", "feature.node.kubernetes.io/pci-10ee.present"}; !slices.Equal(keys, want) {
		t.Errorf("node terms on %v, want %v", keys, want)
	}
	if !slices.ContainsFunc(w.pod.Spec.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Key == "nvidia.com/gpu" && tol.Operator == corev1.TolerationOpExists && tol.Effect == ""
	}) {
		t.Errorf("tolerations %+v do not tolerate the nvidia.com/gpu taint", w.pod.Spec.Tolerations)
	}
}

// TestClusterExporter checks the cluster-mode exporter: one replica, its
// flags, and an affinity that keeps it off the node exporters' nodes.
func TestClusterExporter(t *testing.T) {
	tests := []struct {
		name, overlay string
		want          []corev1.NodeSelectorRequirement // besides the virtual-node exclusion
	}{
		{"default", "", []corev1.NodeSelectorRequirement{
			{Key: "nvidia.com/gpu.present", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"true"}},
			{Key: "feature.node.kubernetes.io/pci-10ee.present", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"true"}},
		}},
		{"exists", `
exporter:
  node:
    nodeSelectorTerms:
      - matchExpressions: [{key: gpuledger.io/accelerator, operator: Exists}]
`, []corev1.NodeSelectorRequirement{
			{Key: "gpuledger.io/accelerator", Operator: corev1.NodeSelectorOpDoesNotExist},
		}},
		{"node exporter off", "exporter: {node: {enabled: false}}", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := renderOverlay(t, tt.overlay)
			d := r.get("Deployment", "gpuledger-exporter-cluster").(*appsv1.Deployment)
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				t.Errorf("replicas %v, strategy %s: want exactly one replica, recreated", d.Spec.Replicas, d.Spec.Strategy.Type)
			}
			c := workload{pod: &d.Spec.Template}.container(t)
			cmd, flags := mustFlags(t, c)
			want := map[string]string{"mode": "cluster", "listen-address": ":9835", "log-level": "info"}
			if cmd != exporterBinary || !reflect.DeepEqual(flags, want) {
				t.Errorf("%s %v, want %s %v", cmd, flags, exporterBinary, want)
			}
			terms := d.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
			wantTerm := append(tt.want, corev1.NodeSelectorRequirement{
				Key: "virtual-node.interlink/type", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"virtual-kubelet"}})
			if len(terms) != 1 || !reflect.DeepEqual(terms[0].MatchExpressions, wantTerm) {
				t.Errorf("affinity %+v, want one term %+v", terms, wantTerm)
			}
			checkWellFormed(t, r, namespace)
		})
	}
}

// TestExporterService checks that the aggregator finds every exporter,
// node and cluster mode, through one Service and the port it names.
func TestExporterService(t *testing.T) {
	for _, tt := range []struct {
		name, overlay string
		exporters     []string
	}{
		{"both", "", []string{"DaemonSet/gpuledger-exporter", "Deployment/gpuledger-exporter-cluster"}},
		{"cluster mode off", "exporter: {cluster: {enabled: false}}", []string{"DaemonSet/gpuledger-exporter"}},
		{"node mode off", "exporter: {node: {enabled: false}}", []string{"Deployment/gpuledger-exporter-cluster"}},
		{"other port", "exporter: {port: 9999}", []string{"DaemonSet/gpuledger-exporter", "Deployment/gpuledger-exporter-cluster"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := renderOverlay(t, tt.overlay)
			agg := r.workload("Deployment", "gpuledger-aggregator")
			_, flags := mustFlags(t, agg.container(t))
			svc := r.get("Service", flags["kubernetes-service"]).(*corev1.Service)
			if svc.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Errorf("exporter Service %s is not headless", svc.Name)
			}
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != flags["kubernetes-port"] {
				t.Errorf("exporter Service ports %+v, want the one --kubernetes-port names (%s)", svc.Spec.Ports, flags["kubernetes-port"])
			}
			var got []string
			for _, w := range r.workloads() {
				if selects(svc.Spec.Selector, w) {
					got = append(got, w.kind+"/"+w.name)
				}
			}
			if !slices.Equal(got, tt.exporters) {
				t.Errorf("Service %s selects %v, want %v", svc.Name, got, tt.exporters)
			}
			checkWellFormed(t, r, namespace)
		})
	}
}

// TestAggregator checks the aggregator: its flags, the database URL from
// the Secret, and its one RBAC rule.
func TestAggregator(t *testing.T) {
	r := renderOverlay(t, "")
	w := r.workload("Deployment", "gpuledger-aggregator")
	c := w.container(t)
	cmd, flags := mustFlags(t, c)
	want := map[string]string{
		"cluster": "my-cluster", "kubernetes-service": "gpuledger-exporter", "kubernetes-port": "metrics",
		"listen-address": ":9836", "log-level": "info",
	}
	if cmd != "gpuledger aggregator" || !reflect.DeepEqual(flags, want) {
		t.Errorf("%s %v, want gpuledger aggregator %v", cmd, flags, want)
	}
	checkDatabaseEnv(t, c, "gpuledger-database", "DATABASE_URL")
	role := r.get("Role", "gpuledger-aggregator").(*rbacv1.Role)
	wantRules := []rbacv1.PolicyRule{{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list"}}}
	if !reflect.DeepEqual(role.Rules, wantRules) {
		t.Errorf("aggregator rules %+v, want %+v", role.Rules, wantRules)
	}
	b := r.get("RoleBinding", "gpuledger-aggregator").(*rbacv1.RoleBinding)
	if len(b.Subjects) != 1 || b.Subjects[0].Name != w.pod.Spec.ServiceAccountName || b.Subjects[0].Namespace != namespace {
		t.Errorf("RoleBinding subjects %+v, want the aggregator's service account", b.Subjects)
	}

	// Following a Prometheus instead: the series of this cluster, under
	// the exporters' job; the exporters may then require credentials.
	r = renderOverlay(t, `
aggregator: {source: prometheus, prometheus: {url: "http://prometheus-operated.monitoring:9090", delay: 2m}}
exporter: {node: {webConfigSecret: tls}}
`)
	_, flags = mustFlags(t, r.workload("Deployment", "gpuledger-aggregator").container(t))
	want = map[string]string{
		"cluster": "my-cluster", "prometheus-url": "http://prometheus-operated.monitoring:9090",
		"prometheus-job": "gpuledger-exporter", "prometheus-cluster": "my-cluster", "prometheus-delay": "2m",
		"listen-address": ":9836", "log-level": "info",
	}
	if !reflect.DeepEqual(flags, want) {
		t.Errorf("prometheus source: %v, want %v", flags, want)
	}
}

func checkDatabaseEnv(t *testing.T, c *corev1.Container, secret, key string) {
	t.Helper()
	e, ok := envVar(c, "DATABASE_URL")
	if !ok || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
		e.ValueFrom.SecretKeyRef.Name != secret || e.ValueFrom.SecretKeyRef.Key != key {
		t.Errorf("container %s: $DATABASE_URL = %+v, want Secret %s key %s", c.Name, e, secret, key)
	}
	for _, a := range c.Args {
		if strings.Contains(a, "database-url") {
			t.Errorf("container %s: %s: the URL belongs in the Secret, not the command line", c.Name, a)
		}
	}
}

// TestAPI checks the API's OIDC flags and that it has no API token.
func TestAPI(t *testing.T) {
	r := renderOverlay(t, "")
	w := r.workload("Deployment", "gpuledger-api")
	c := w.container(t)
	cmd, flags := mustFlags(t, c)
	want := map[string]string{
		"listen-address": ":8080", "oidc-issuer": "https://iam.example.org/", "oidc-audience": "gpuledger", "log-level": "info",
	}
	if cmd != "gpuledger api" || !reflect.DeepEqual(flags, want) {
		t.Errorf("%s %v, want gpuledger api %v", cmd, flags, want)
	}
	checkDatabaseEnv(t, c, "gpuledger-database", "DATABASE_URL")
	if w.pod.Spec.ServiceAccountName != "" {
		t.Errorf("the API has service account %s; it needs none", w.pod.Spec.ServiceAccountName)
	}
}

// TestRBAC checks the exporters' cluster roles exactly: list and watch of
// what their informers read, and Kueue's ClusterQueues in cluster mode only.
func TestRBAC(t *testing.T) {
	r := renderOverlay(t, "")
	read := []string{"list", "watch"}
	core := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods", "namespaces", "nodes"}, Verbs: read}
	for name, kueue := range map[string][]string{
		"gpuledger-exporter":         {"localqueues"},
		"gpuledger-exporter-cluster": {"localqueues", "clusterqueues"},
	} {
		role := r.get("ClusterRole", name).(*rbacv1.ClusterRole)
		want := []rbacv1.PolicyRule{core, {APIGroups: []string{"kueue.x-k8s.io"}, Resources: kueue, Verbs: read}}
		if !reflect.DeepEqual(role.Rules, want) {
			t.Errorf("ClusterRole %s rules %+v, want %+v", name, role.Rules, want)
		}
		b := r.get("ClusterRoleBinding", name).(*rbacv1.ClusterRoleBinding)
		if b.RoleRef.Name != name || len(b.Subjects) != 1 || b.Subjects[0].Name != name || b.Subjects[0].Namespace != namespace {
			t.Errorf("ClusterRoleBinding %s: %+v %+v", name, b.RoleRef, b.Subjects)
		}
	}
	off := renderOverlay(t, "rbac: {create: false}")
	for _, kind := range []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} {
		if n := off.count(kind); n != 0 {
			t.Errorf("rbac.create false: %d %s objects", n, kind)
		}
	}
}

// TestServiceMonitorJobs checks that the jobs the ServiceMonitors give the
// exporters and the aggregator are the ones the alert rules select,
// whatever the release is called.
func TestServiceMonitorJobs(t *testing.T) {
	rules, err := alerts.Load()
	if err != nil {
		t.Fatal(err)
	}
	jobRe := regexp.MustCompile(`job=~"([^"]+)"`)
	var matchers []*regexp.Regexp
	for _, a := range rules.Alerts() {
		for _, m := range jobRe.FindAllStringSubmatch(a.Expr, -1) {
			matchers = append(matchers, regexp.MustCompile("^(?:"+m[1]+")$"))
		}
	}
	if len(matchers) < 2 {
		t.Fatalf("found %d job matchers in the alert rules, want the exporter's and the aggregator's", len(matchers))
	}
	for _, rel := range []string{"gpuledger", "accounting", "prod-gpuledger"} {
		r := renderRelease(t, testChart(t, nil), rel, baseValues(t))
		jobs := map[string]bool{}
		for _, o := range r.all("ServiceMonitor") {
			sm := o.obj.(*serviceMonitor)
			for _, so := range r.all("Service") {
				svc := so.obj.(*corev1.Service)
				if subset(sm.Spec.Selector.MatchLabels, svc.Labels) {
					jobs[svc.Labels[sm.Spec.JobLabel]] = true
				}
			}
		}
		for _, m := range matchers {
			if !slices.ContainsFunc(sorted(jobs), m.MatchString) {
				t.Errorf("release %s: no ServiceMonitor job (%v) matches the alert rules' job=~%q", rel, sorted(jobs), m)
			}
		}
		exp := r.get("ServiceMonitor", mustName(t, r, "DaemonSet")).(*serviceMonitor)
		if !exp.Spec.Endpoints[0].HonorLabels {
			t.Errorf("release %s: the exporters' ServiceMonitor must honour their pod, namespace and node labels", rel)
		}
		checkWellFormed(t, r, namespace)
	}
}

func mustName(t *testing.T, r release, kind string) string {
	t.Helper()
	objs := r.all(kind)
	if len(objs) != 1 {
		t.Fatalf("%d %s objects, want 1", len(objs), kind)
	}
	return objs[0].meta.GetName()
}

// TestPrometheusRule checks that the PrometheusRule holds exactly the
// rules of alerts/gpuledger-rules.yaml, templates included.
func TestPrometheusRule(t *testing.T) {
	want, err := alerts.Load()
	if err != nil {
		t.Fatal(err)
	}
	r := renderOverlay(t, "prometheusRule: {labels: {release: kube-prometheus-stack}}")
	pr := r.get("PrometheusRule", "gpuledger").(*prometheusRule)
	got, err := alerts.Parse(pr.Spec)
	if err != nil {
		t.Fatalf("PrometheusRule spec: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Error("the PrometheusRule's rules differ from alerts/gpuledger-rules.yaml")
	}
	if pr.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("labels %v lack prometheusRule.labels", pr.Labels)
	}
	if !strings.Contains(string(pr.Spec), "{{ $labels.") {
		t.Error("the rules' annotation templates did not survive rendering")
	}
}

// TestDashboards checks the dashboard ConfigMaps: one per JSON file, with
// the sidecar's label and the file's bytes, whatever the JSON looks like.
func TestDashboards(t *testing.T) {
	fixtures := map[string]string{
		"dashboards/Project_Usage.json": "{\n  \"uid\": \"gpuledger-project\",\n  \"title\": \"{{ not a template }}\"\n}\n",
		"dashboards/compact.json":       `{"uid":"c","title":"one line, no newline","expr":"rate(x[5m]) > 0"}`,
		"dashboards/indented.json":      "  {\"uid\": \"i\"}\n\n",
	}
	ch := testChart(t, func(ch *chart.Chart) {
		ch.Files = slices.DeleteFunc(ch.Files, func(f *chart.File) bool { return strings.HasPrefix(f.Name, "dashboards/") })
		for name, data := range fixtures {
			ch.Files = append(ch.Files, &chart.File{Name: name, Data: []byte(data)})
		}
		ch.Files = append(ch.Files, &chart.File{Name: "dashboards/README.md", Data: []byte("not a dashboard")})
	})
	r := renderRelease(t, ch, releaseName, values(t, "dashboards: {annotations: {grafana_folder: GPU accounting}}"))
	wantNames := map[string]string{
		"gpuledger-dashboard-project-usage": "Project_Usage.json",
		"gpuledger-dashboard-compact":       "compact.json",
		"gpuledger-dashboard-indented":      "indented.json",
	}
	if n := r.count("ConfigMap"); n != len(wantNames) {
		t.Errorf("%d ConfigMaps, want %d: %s", n, len(wantNames), r.names())
	}
	for name, file := range wantNames {
		cm := r.get("ConfigMap", name).(*corev1.ConfigMap)
		if cm.Labels["grafana_dashboard"] != "1" || cm.Annotations["grafana_folder"] != "GPU accounting" {
			t.Errorf("%s: labels %v, annotations %v", name, cm.Labels, cm.Annotations)
		}
		if got, want := cm.Data[file], fixtures["dashboards/"+file]; got != want || len(cm.Data) != 1 {
			t.Errorf("%s: data %q, want %q", name, got, want)
		}
	}
	checkWellFormed(t, r, namespace)

	// The real dashboards, byte for byte.
	source, err := sourceDashboards()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, f := range source {
		want[path.Base(f.path)] = string(f.data)
	}
	got := map[string]string{}
	for _, o := range renderOverlay(t, "").all("ConfigMap") {
		for file, data := range o.obj.(*corev1.ConfigMap).Data {
			got[file] = data
			if !json.Valid([]byte(data)) {
				t.Errorf("ConfigMap %s: %s is not JSON", o.meta.GetName(), file)
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the dashboard ConfigMaps hold %d files, not exactly the %d of %s", len(got), len(want), dashboardSourceDir)
	}
	if n := renderOverlay(t, "dashboards: {enabled: false}").count("ConfigMap"); n != 0 {
		t.Errorf("dashboards.enabled false: %d ConfigMaps", n)
	}
}

// TestVariants renders the chart with values operators change and checks
// what each changes, and that the release stays well formed.
func TestVariants(t *testing.T) {
	tests := []struct {
		name, overlay string
		check         func(t *testing.T, r release)
	}{
		{"ServiceMonitors off", "serviceMonitor: {enabled: false}", func(t *testing.T, r release) {
			if n := r.count("ServiceMonitor"); n != 0 {
				t.Errorf("%d ServiceMonitors", n)
			}
			if r.count("PrometheusRule") != 1 {
				t.Error("the PrometheusRule went with the ServiceMonitors")
			}
		}},
		{"ServiceMonitor settings", "serviceMonitor: {labels: {release: kps}, interval: 30s, scrapeTimeout: 10s}", func(t *testing.T, r release) {
			for _, o := range r.all("ServiceMonitor") {
				sm := o.obj.(*serviceMonitor)
				if ep := sm.Spec.Endpoints[0]; sm.Labels["release"] != "kps" || ep.Interval != "30s" || ep.ScrapeTimeout != "10s" {
					t.Errorf("%s: labels %v, endpoint %+v", sm.Name, sm.Labels, ep)
				}
			}
		}},
		{"cluster label", "", func(t *testing.T, r release) {
			for _, o := range r.all("ServiceMonitor") {
				sm := o.obj.(*serviceMonitor)
				rl := sm.Spec.Endpoints[0].Relabelings
				if len(rl) != 1 || rl[0].TargetLabel != "cluster" || rl[0].Replacement != "my-cluster" {
					t.Errorf("%s: relabelings %+v, want cluster=my-cluster on every series", sm.Name, rl)
				}
			}
		}},
		{"no cluster label", "serviceMonitor: {clusterLabel: ''}", func(t *testing.T, r release) {
			for _, o := range r.all("ServiceMonitor") {
				if rl := o.obj.(*serviceMonitor).Spec.Endpoints[0].Relabelings; len(rl) != 0 {
					t.Errorf("%s: relabelings %+v", o.meta.GetName(), rl)
				}
			}
		}},
		{"read-only API database role", "database: {url: 'postgres://writer@db/gpuledger'}\napi: {database: {existingSecret: ledger-reader, secretKey: url}}", func(t *testing.T, r release) {
			checkDatabaseEnv(t, r.workload("Deployment", "gpuledger-aggregator").container(t), "gpuledger-database", "DATABASE_URL")
			checkDatabaseEnv(t, r.workload("Deployment", "gpuledger-api").container(t), "ledger-reader", "url")
			if r.count("Secret") != 1 {
				t.Errorf("%d Secrets, want the aggregator's", r.count("Secret"))
			}
		}},
		{"PrometheusRule off", "prometheusRule: {enabled: false}", func(t *testing.T, r release) {
			if n := r.count("PrometheusRule"); n != 0 {
				t.Errorf("%d PrometheusRules", n)
			}
		}},
		{"cluster mode off", "exporter: {cluster: {enabled: false}}", func(t *testing.T, r release) {
			for _, kind := range []string{"Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} {
				if _, ok := r.lookup(kind, "gpuledger-exporter-cluster"); ok {
					t.Errorf("%s gpuledger-exporter-cluster rendered", kind)
				}
			}
			if r.count("Deployment") != 2 || r.count("DaemonSet") != 1 {
				t.Errorf("objects: %s", r.names())
			}
		}},
		{"existing secret", "database: {existingSecret: ledger-db, secretKey: url}", func(t *testing.T, r release) {
			if n := r.count("Secret"); n != 0 {
				t.Errorf("%d Secrets rendered beside an existing one", n)
			}
			for _, name := range []string{"gpuledger-aggregator", "gpuledger-api"} {
				checkDatabaseEnv(t, r.workload("Deployment", name).container(t), "ledger-db", "url")
			}
		}},
		{"database URL", "database: {url: 'postgres://gpuledger:s3cret@db:5432/gpuledger'}", func(t *testing.T, r release) {
			s := r.get("Secret", "gpuledger-database").(*corev1.Secret)
			if s.StringData["DATABASE_URL"] != "postgres://gpuledger:s3cret@db:5432/gpuledger" {
				t.Errorf("Secret data %v", s.StringData)
			}
			for _, name := range []string{"gpuledger-aggregator", "gpuledger-api"} {
				checkDatabaseEnv(t, r.workload("Deployment", name).container(t), "gpuledger-database", "DATABASE_URL")
			}
		}},
		{"API off", "api: {enabled: false, oidc: {issuer: '', audience: ''}}", func(t *testing.T, r release) {
			for _, kind := range []string{"Deployment", "Service", "ServiceMonitor"} {
				if _, ok := r.lookup(kind, "gpuledger-api"); ok {
					t.Errorf("%s gpuledger-api rendered", kind)
				}
			}
		}},
		{"no auth", "api: {noAuth: true, oidc: {issuer: '', audience: ''}}", func(t *testing.T, r release) {
			_, flags := mustFlags(t, r.workload("Deployment", "gpuledger-api").container(t))
			want := map[string]string{"listen-address": ":8080", "no-auth": "", "log-level": "info"}
			if !reflect.DeepEqual(flags, want) {
				t.Errorf("flags %v, want %v", flags, want)
			}
		}},
		{"OIDC details", `
api:
  port: 8443
  oidc: {groupsClaim: groups, userClaim: preferred_username, adminGroup: /ai-infn/admins, jwksConfigMap: iam-keys}
`, func(t *testing.T, r release) {
			w := r.workload("Deployment", "gpuledger-api")
			_, flags := mustFlags(t, w.container(t))
			want := map[string]string{
				"listen-address": ":8443", "oidc-issuer": "https://iam.example.org/", "oidc-audience": "gpuledger",
				"groups-claim": "groups", "user-claim": "preferred_username", "admin-group": "/ai-infn/admins",
				"jwks-file": "/etc/gpuledger/jwks/jwks.json", "log-level": "info",
			}
			if !reflect.DeepEqual(flags, want) {
				t.Errorf("flags %v, want %v", flags, want)
			}
			if !slices.ContainsFunc(w.pod.Spec.Volumes, func(v corev1.Volume) bool {
				return v.ConfigMap != nil && v.ConfigMap.Name == "iam-keys"
			}) {
				t.Error("the JWKS ConfigMap is not mounted")
			}
		}},
		{"project managers", `
api:
  projectManagers:
    lhcb-ml: /ai-infn/lhcb-ml/managers
    cygno: [/cygno/admins, /ai-infn/admins]
`, func(t *testing.T, r release) {
			cm := r.get("ConfigMap", "gpuledger-project-managers").(*corev1.ConfigMap)
			file := filepath.Join(t.TempDir(), "project-managers.yaml")
			if err := os.WriteFile(file, []byte(cm.Data["project-managers.yaml"]), 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := auth.LoadManagers(file)
			if err != nil {
				t.Fatalf("the API would refuse the rendered file: %v", err)
			}
			// The API drops the groups' leading slashes.
			want := map[string][]string{"lhcb-ml": {"ai-infn/lhcb-ml/managers"}, "cygno": {"cygno/admins", "ai-infn/admins"}}
			if !reflect.DeepEqual(m, want) {
				t.Errorf("managers %v, want %v", m, want)
			}
			w := r.workload("Deployment", "gpuledger-api")
			_, flags := mustFlags(t, w.container(t))
			if flags["project-managers"] != "/etc/gpuledger/api/project-managers.yaml" {
				t.Errorf("--project-managers=%q", flags["project-managers"])
			}
			if w.pod.Annotations["checksum/project-managers"] == "" {
				t.Error("no checksum annotation: the API would not restart when the file changes")
			}
		}},
		{"attribution rules", `
attribution:
  rules:
    user:
      - {from: annotation, key: hub.jupyter.org/username}
      - {from: service_account}
    project:
      - {from: namespace_label, key: ai-infn.infn.it/project}
      - {from: namespace}
`, func(t *testing.T, r release) {
			cm := r.get("ConfigMap", "gpuledger-attribution").(*corev1.ConfigMap)
			rules, err := attribution.ParseRules("attribution.yaml", []byte(cm.Data["attribution.yaml"]))
			if err != nil {
				t.Fatalf("the exporters would refuse the rendered rules: %v", err)
			}
			if len(rules.User) != 2 || rules.Project[0].Key != "ai-infn.infn.it/project" {
				t.Errorf("rules %+v", rules)
			}
			for _, w := range []workload{r.workload("DaemonSet", "gpuledger-exporter"), r.workload("Deployment", "gpuledger-exporter-cluster")} {
				c := w.container(t)
				_, flags := mustFlags(t, c)
				mounted := slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
					return m.Name == "attribution" && m.MountPath == path.Dir(flags["attribution-config"]) && m.ReadOnly
				})
				if !mounted || w.pod.Annotations["checksum/attribution"] == "" {
					t.Errorf("%s: --attribution-config=%q, mounted %v, annotations %v", w.name, flags["attribution-config"], mounted, w.pod.Annotations)
				}
			}
		}},
		{"node exporter sources", `
exporter:
  node:
    collectors: [nvml, attribution]
    dcgmExporterURL: ""
    fpga: {sysfsHostPath: "", xbutil: "off"}
    runtimeClassName: nvidia
    nvidiaVisibleDevices: ""
  extraArgs: ["--collector-timeout=5s"]
`, func(t *testing.T, r release) {
			w := r.workload("DaemonSet", "gpuledger-exporter")
			c := w.container(t)
			_, flags := mustFlags(t, c)
			want := map[string]string{
				"mode": "node", "node-name": "$(NODE_NAME)", "listen-address": ":9835",
				"kubelet-socket": "/var/lib/kubelet/pod-resources/kubelet.sock", "fpga-xbutil": "off",
				"collectors": "nvml,attribution", "log-level": "info", "collector-timeout": "5s",
			}
			if !reflect.DeepEqual(flags, want) {
				t.Errorf("flags %v, want %v", flags, want)
			}
			if w.pod.Spec.RuntimeClassName == nil || *w.pod.Spec.RuntimeClassName != "nvidia" {
				t.Error("runtimeClassName nvidia not set")
			}
			if _, ok := envVar(c, "NVIDIA_VISIBLE_DEVICES"); ok {
				t.Error("NVIDIA_VISIBLE_DEVICES set though emptied")
			}
			for _, v := range w.pod.Spec.Volumes {
				if v.Name == "sys" {
					t.Error("/sys mounted without an FPGA sysfs root")
				}
			}
		}},
		{"web config without aggregator", `
aggregator: {enabled: false}
exporter: {node: {webConfigSecret: exporter-tls}}
`, func(t *testing.T, r release) {
			c := r.workload("DaemonSet", "gpuledger-exporter").container(t)
			_, flags := mustFlags(t, c)
			if flags["web.config.file"] != "/etc/gpuledger/web/web-config.yml" {
				t.Errorf("--web.config.file=%q", flags["web.config.file"])
			}
			if c.LivenessProbe.HTTPGet != nil || c.ReadinessProbe.HTTPGet != nil {
				t.Error("plain HTTP probes against an exporter behind TLS or basic auth")
			}
			if _, ok := r.lookup("Role", "gpuledger-aggregator"); ok {
				t.Error("aggregator RBAC without an aggregator")
			}
		}},
		{"ports", "exporter: {port: 9100}\naggregator: {port: 9101}\napi: {port: 9102}", func(t *testing.T, r release) {
			for svc, port := range map[string]int32{"gpuledger-exporter": 9100, "gpuledger-aggregator": 9101, "gpuledger-api": 9102} {
				if p := r.get("Service", svc).(*corev1.Service).Spec.Ports[0].Port; p != port {
					t.Errorf("Service %s on %d, want %d", svc, p, port)
				}
			}
		}},
		{"image digest", "image: {repository: registry.infn.it/ai-infn/gpuledger, digest: 'sha256:" + strings.Repeat("ab", 32) + "'}", func(t *testing.T, r release) {
			for _, w := range r.workloads() {
				if img := w.container(t).Image; img != "registry.infn.it/ai-infn/gpuledger@sha256:"+strings.Repeat("ab", 32) {
					t.Errorf("%s: image %s", w.name, img)
				}
			}
		}},
		{"aggregator standby", "aggregator: {replicas: 2}", func(t *testing.T, r release) {
			d := r.get("Deployment", "gpuledger-aggregator").(*appsv1.Deployment)
			if *d.Spec.Replicas != 2 {
				t.Errorf("replicas %d", *d.Spec.Replicas)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := renderOverlay(t, tt.overlay)
			tt.check(t, r)
			checkWellFormed(t, r, namespace)
		})
	}
}

// TestInvalidValues checks that values the components would refuse, or
// that would deploy something broken, fail the render with a message
// naming the value.
func TestInvalidValues(t *testing.T) {
	tests := []struct {
		name, overlay, want string
	}{
		{"no cluster name", "clusterName: ''", "clusterName is required"},
		{"no issuer", "api: {oidc: {issuer: ''}}", "api.oidc.issuer and api.oidc.audience are required"},
		{"no auth with issuer", "api: {noAuth: true}", "api.noAuth disables authentication"},
		{"web config with aggregator", "exporter: {node: {webConfigSecret: tls}}", "exporter.node.webConfigSecret"},
		{"prometheus source without url", "aggregator: {source: prometheus}", "aggregator.prometheus.url is required"},
		{"unknown aggregator source", "aggregator: {source: thanos}", "source"},
		{"prometheus url not a URL", "aggregator: {source: prometheus, prometheus: {url: 'prometheus:9090'}}", "url"},
		{"two expressions in a term", `
exporter:
  node:
    nodeSelectorTerms:
      - matchExpressions: [{key: a, operator: Exists}, {key: b, operator: Exists}]
`, "set exporter.cluster.affinity"},
		{"NotIn term", `
exporter:
  node:
    nodeSelectorTerms:
      - matchExpressions: [{key: a, operator: NotIn, values: [x]}]
`, "uses operator NotIn"},
		{"misspelt key", "exportr: {port: 1}", "exportr"},
		{"port not a number", "exporter: {port: nine}", "port"},
		{"unknown log level", "logLevel: verbose", "logLevel"},
		{"unknown collector", "exporter: {node: {collectors: [gpu]}}", "collectors"},
		{"bad database URL", "database: {url: 'mysql://db'}", "url"},
		{"plain HTTP issuer", "api: {oidc: {issuer: 'http://iam.example.org/'}}", "issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render(testChart(t, nil), releaseName, values(t, tt.overlay))
			if err == nil {
				t.Fatalf("rendered; want an error mentioning %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestBinaryFlags checks every flag the chart passes against the flags
// cmd/gpuledger defines, read from its source: a renamed flag fails here,
// not in a crash-looping pod.
func TestBinaryFlags(t *testing.T) {
	defined := binaryFlags(t)
	overlays := []string{"", `
attribution: {rules: {user: [{from: service_account}]}}
aggregator: {enabled: false}
exporter:
  node: {collectors: [nvml], fpga: {xbutil: "off"}, webConfigSecret: tls}
  cluster: {collectors: [attribution]}
api:
  projectManagers: {p: g}
  oidc: {groupsClaim: g, userClaim: u, adminGroup: a, jwksConfigMap: k}
`, "api: {noAuth: true, oidc: {issuer: '', audience: ''}}"}
	overlays = append(overlays, "aggregator: {source: prometheus, prometheus: {url: 'http://prometheus:9090'}}")
	used := map[string]map[string]bool{}
	for _, o := range overlays {
		r := renderOverlay(t, o)
		for _, w := range r.workloads() {
			cmd, flags := mustFlags(t, w.container(t))
			if used[cmd] == nil {
				used[cmd] = map[string]bool{}
			}
			for f := range flags {
				used[cmd][f] = true
			}
		}
	}
	want := map[string]bool{exporterBinary: true, suiteBinary + " aggregator": true, suiteBinary + " api": true}
	if !reflect.DeepEqual(sorted(want), sorted(mapKeys(used))) {
		t.Errorf("the chart runs %v, want %v", sorted(mapKeys(used)), sorted(want))
	}
	// The exporter alone and the suite's exporter share their flags.
	if a, b := sorted(defined[exporterBinary]), sorted(defined[suiteBinary+" exporter"]); !reflect.DeepEqual(a, b) || len(a) == 0 {
		t.Errorf("%s defines %v, %s exporter %v", exporterBinary, a, suiteBinary, b)
	}
	for _, cmd := range sorted(want) {
		t.Run(cmd, func(t *testing.T) {
			have, ok := defined[cmd]
			if !ok || len(have) == 0 {
				t.Fatalf("the source defines no command %q with flags", cmd)
			}
			for _, f := range sorted(used[cmd]) {
				if !have[f] {
					t.Errorf("the chart passes --%s to %s, which does not define it (it defines %v)", f, cmd, sorted(have))
				}
			}
		})
	}
}

// TestLint runs helm lint, strict, on the chart with the manifests'
// values: no warning, no error.
func TestLint(t *testing.T) {
	l := action.NewLint()
	l.Strict = true
	l.Namespace = namespace
	res := l.Run([]string{chartDir}, baseValues(t))
	if res.TotalChartsLinted != 1 {
		t.Fatalf("linted %d charts: %v", res.TotalChartsLinted, res.Errors)
	}
	for _, m := range res.Messages {
		if m.Severity > support.InfoSev {
			t.Errorf("helm lint: %s", m)
		}
	}
	for _, err := range res.Errors {
		t.Errorf("helm lint: %v", err)
	}
	// Lint checks the values against the schema too. (It does not see
	// the templates' own checks: in lint mode a template's fail only logs.)
	res = l.Run([]string{chartDir}, values(t, "exportr: {port: 1}"))
	if !slices.ContainsFunc(res.Errors, func(err error) bool { return strings.Contains(err.Error(), "exportr") }) {
		t.Errorf("helm lint of a misspelt value: %v", res.Errors)
	}
}

// TestExamples renders each values file under examples/ and checks the
// release is well formed.
func TestExamples(t *testing.T) {
	paths, err := filepath.Glob("examples/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			vals, err := chartutil.ReadValuesFile(p)
			if err != nil {
				t.Fatal(err)
			}
			r := renderRelease(t, testChart(t, nil), releaseName, vals.AsMap())
			checkWellFormed(t, r, namespace)
			if n := r.count("DaemonSet") + r.count("Deployment"); n != 4 {
				t.Errorf("%d workloads, want the exporters, the aggregator and the API", n)
			}
		})
	}
}
