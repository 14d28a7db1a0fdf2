package kube

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/attribution"
)

// Requests returns a pod's accelerator requests by extended-resource name,
// counting only the resources gpuledger accounts (accounting.ResourceClass).
// App containers add up; init containers count as Kubernetes counts them
// for scheduling: a regular init container runs alone (beside the sidecars
// started before it), so the pod needs the larger of that and the app
// containers plus every sidecar (an init container with restartPolicy
// Always). A container's request is its limit when it sets no request, as
// the API server defaults it for extended resources. Nil when the pod
// requests no accelerator.
func Requests(spec *corev1.PodSpec) map[string]int64 {
	var out map[string]int64
	add := func(dst map[string]int64, c *corev1.Container) map[string]int64 {
		for name, n := range accelerators(c) {
			if dst == nil {
				dst = map[string]int64{}
			}
			dst[name] += n
		}
		return dst
	}
	for k := range spec.Containers {
		out = add(out, &spec.Containers[k])
	}
	var sidecars, initMax map[string]int64
	for k := range spec.InitContainers {
		c := &spec.InitContainers[k]
		var need map[string]int64
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			out = add(out, c)
			sidecars = add(sidecars, c)
			need = sidecars
		} else {
			need = add(nil, c)
			for name, n := range sidecars {
				if need == nil {
					need = map[string]int64{}
				}
				need[name] += n
			}
		}
		for name, n := range need {
			if initMax == nil {
				initMax = map[string]int64{}
			}
			initMax[name] = max(initMax[name], n)
		}
	}
	for name, n := range initMax {
		if n > out[name] {
			if out == nil {
				out = map[string]int64{}
			}
			out[name] = n
		}
	}
	return out
}

// accelerators returns one container's accounted requests.
func accelerators(c *corev1.Container) map[string]int64 {
	var out map[string]int64
	read := func(list corev1.ResourceList, override bool) {
		for name, q := range list {
			if _, _, ok := accounting.ResourceClass(string(name)); !ok {
				continue
			}
			if _, set := out[string(name)]; set && !override {
				continue
			}
			if n := q.Value(); n > 0 {
				if out == nil {
					out = map[string]int64{}
				}
				out[string(name)] = n
			}
		}
	}
	read(c.Resources.Limits, false)
	read(c.Resources.Requests, true)
	return out
}

// terminal reports whether a pod's containers will not run again.
func terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// containerTimes merges a pod's container statuses (init containers
// included: they hold the pod's devices too) into what was known of its
// containers before.
//
// A container's start is the earliest start ever seen: state.running or
// state.terminated startedAt, or lastState.terminated.startedAt after a
// restart. The status keeps only the current and the previous run, so a
// container first seen after two or more restarts (one or more while it
// waits to restart) has lost its first start; then the pod's
// status.startTime, when the kubelet took the pod, stands for it.
//
// A container's finish is set only once it will not run again: when the
// pod is terminal (Succeeded, Failed) or deleted (done). It is then the
// finish of its last run (state.terminated, or lastState.terminated while
// it waited to restart). While the pod lives, a container that exited is
// not finished: the kubelet may restart it and the pod keeps its devices.
func containerTimes(prev map[string]ContainerTimes, p *corev1.Pod, done bool) map[string]ContainerTimes {
	n := len(p.Status.InitContainerStatuses) + len(p.Status.ContainerStatuses)
	if n == 0 && len(prev) == 0 {
		return nil
	}
	out := make(map[string]ContainerTimes, max(n, len(prev)))
	for name, ct := range prev {
		out[name] = ct
	}
	var podStart time.Time
	if p.Status.StartTime != nil {
		podStart = p.Status.StartTime.Time
	}
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for k := range list {
			cs := &list[k]
			old, seen := prev[cs.Name]
			out[cs.Name] = statusTimes(old, seen, cs, podStart, done)
		}
	}
	return out
}

// statusTimes is containerTimes for one container.
func statusTimes(old ContainerTimes, seen bool, cs *corev1.ContainerStatus, podStart time.Time, done bool) ContainerTimes {
	ct := ContainerTimes{Started: old.Started, Finished: old.Finished, Restarts: cs.RestartCount}
	var finish time.Time
	known := 0 // runs the status shows
	if r := cs.State.Running; r != nil && !r.StartedAt.IsZero() {
		ct.Started = earliest(ct.Started, r.StartedAt.Time)
		known++
	}
	if t := cs.State.Terminated; t != nil && !t.StartedAt.IsZero() {
		ct.Started = earliest(ct.Started, t.StartedAt.Time)
		finish = t.FinishedAt.Time
		known++
	}
	if lt := cs.LastTerminationState.Terminated; lt != nil && !lt.StartedAt.IsZero() {
		ct.Started = earliest(ct.Started, lt.StartedAt.Time)
		if finish.IsZero() {
			finish = lt.FinishedAt.Time
		}
		known++
	}
	if !seen && known > 0 && int(cs.RestartCount)+1 > known && !podStart.IsZero() {
		ct.Started = earliest(ct.Started, podStart)
	}
	if done && !ct.Started.IsZero() && !finish.IsZero() && ct.Finished.IsZero() {
		ct.Finished = finish
	}
	return ct
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// attributionPod is the metadata the rules read.
func attributionPod(p *corev1.Pod) attribution.Pod {
	return attribution.Pod{Name: p.Name, Namespace: p.Namespace, UID: string(p.UID),
		ServiceAccount: p.Spec.ServiceAccountName, Labels: p.Labels, Annotations: p.Annotations}
}
