package kube

import (
	"maps"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func res(kv ...any) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i].(string))] = resource.MustParse(kv[i+1].(string))
	}
	return l
}

func ctr(name string, limits, requests corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: name, Resources: corev1.ResourceRequirements{Limits: limits, Requests: requests}}
}

func TestRequests(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	sidecar := func(c corev1.Container) corev1.Container { c.RestartPolicy = &always; return c }
	cases := []struct {
		name string
		spec corev1.PodSpec
		want map[string]int64
	}{
		{"no accelerator", corev1.PodSpec{Containers: []corev1.Container{ctr("a", res("cpu", "2", "memory", "1Gi"), nil)}}, nil},
		{
			"app containers add up; limits stand for requests",
			corev1.PodSpec{Containers: []corev1.Container{
				ctr("a", res("nvidia.com/gpu", "2"), nil),
				ctr("b", res("nvidia.com/gpu", "1"), res("nvidia.com/gpu", "1")),
				ctr("c", nil, res("nvidia.com/mig-1g.10gb", "1")),
			}},
			map[string]int64{"nvidia.com/gpu": 3, "nvidia.com/mig-1g.10gb": 1},
		},
		{
			"resources gpuledger does not account are left out",
			corev1.PodSpec{Containers: []corev1.Container{ctr("a", res("amd.com/gpu", "1", "example.com/foo", "3", "cpu", "1", "xilinx.com/fpga-xilinx_u55c", "1"), nil)}},
			map[string]int64{"xilinx.com/fpga-xilinx_u55c": 1},
		},
		{
			"a larger init container sets the pod's request",
			corev1.PodSpec{
				InitContainers: []corev1.Container{ctr("warmup", res("nvidia.com/gpu", "4"), nil), ctr("fetch", nil, nil)},
				Containers:     []corev1.Container{ctr("a", res("nvidia.com/gpu", "1"), nil), ctr("b", res("nvidia.com/gpu", "1"), nil)},
			},
			map[string]int64{"nvidia.com/gpu": 4},
		},
		{
			"a smaller init container does not",
			corev1.PodSpec{
				InitContainers: []corev1.Container{ctr("warmup", res("nvidia.com/gpu", "1"), nil)},
				Containers:     []corev1.Container{ctr("a", res("nvidia.com/gpu", "2"), nil)},
			},
			map[string]int64{"nvidia.com/gpu": 2},
		},
		{
			"init-only request",
			corev1.PodSpec{
				InitContainers: []corev1.Container{ctr("convert", res("nvidia.com/gpu", "1"), nil)},
				Containers:     []corev1.Container{ctr("a", nil, nil)},
			},
			map[string]int64{"nvidia.com/gpu": 1},
		},
		{
			"sidecars add to the app containers and to later init containers",
			corev1.PodSpec{
				InitContainers: []corev1.Container{
					sidecar(ctr("proxy", res("nvidia.com/gpu", "1"), nil)),
					ctr("warmup", res("nvidia.com/gpu", "2"), nil),
				},
				Containers: []corev1.Container{ctr("a", res("nvidia.com/gpu", "1"), nil)},
			},
			map[string]int64{"nvidia.com/gpu": 3},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Requests(&c.spec); !maps.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestContainerTimes(t *testing.T) {
	ts := func(d time.Duration) time.Time { return t0.Add(d) }
	run := func(start time.Duration) corev1.ContainerState {
		return corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(start)}}
	}
	term := func(start, end time.Duration) corev1.ContainerState {
		return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{StartedAt: at(start), FinishedAt: at(end), ExitCode: 1}}
	}
	waiting := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	status := func(name string, restarts int32, state, last corev1.ContainerState) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: name, RestartCount: restarts, State: state, LastTerminationState: last}
	}
	none := corev1.ContainerState{}
	cases := []struct {
		name      string
		phase     corev1.PodPhase
		deleted   bool
		prev      map[string]ContainerTimes
		init      []corev1.ContainerStatus
		app       []corev1.ContainerStatus
		want      map[string]ContainerTimes
		start     time.Time
		end       time.Time
		deletedAt time.Time
	}{
		{
			name: "running", phase: corev1.PodRunning,
			app:   []corev1.ContainerStatus{status("main", 0, run(time.Minute), none)},
			want:  map[string]ContainerTimes{"main": {Started: ts(time.Minute)}},
			start: ts(time.Minute),
		},
		{
			name: "not started yet", phase: corev1.PodPending,
			app:  []corev1.ContainerStatus{status("main", 0, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}, none)},
			want: map[string]ContainerTimes{"main": {}},
		},
		{
			name: "exited but the pod lives: not finished (it may restart)", phase: corev1.PodRunning,
			app:   []corev1.ContainerStatus{status("main", 0, term(time.Minute, time.Hour), none)},
			want:  map[string]ContainerTimes{"main": {Started: ts(time.Minute)}},
			start: ts(time.Minute),
		},
		{
			name: "succeeded", phase: corev1.PodSucceeded,
			app:   []corev1.ContainerStatus{status("main", 0, term(time.Minute, time.Hour), none)},
			want:  map[string]ContainerTimes{"main": {Started: ts(time.Minute), Finished: ts(time.Hour)}},
			start: ts(time.Minute), end: ts(time.Hour),
		},
		{
			name: "restarted once: the first start is the last termination's", phase: corev1.PodRunning,
			app:   []corev1.ContainerStatus{status("main", 1, run(2*time.Hour), term(time.Minute, time.Hour))},
			want:  map[string]ContainerTimes{"main": {Started: ts(time.Minute), Restarts: 1}},
			start: ts(time.Minute),
		},
		{
			name: "restarts seen before keep the first start", phase: corev1.PodRunning,
			prev:  map[string]ContainerTimes{"main": {Started: ts(time.Minute), Restarts: 1}},
			app:   []corev1.ContainerStatus{status("main", 3, run(5*time.Hour), term(4*time.Hour, 5*time.Hour-time.Minute))},
			want:  map[string]ContainerTimes{"main": {Started: ts(time.Minute), Restarts: 3}},
			start: ts(time.Minute),
		},
		{
			name: "first seen after lost restarts: the pod's start stands for the first", phase: corev1.PodRunning,
			app:   []corev1.ContainerStatus{status("main", 3, run(5*time.Hour), term(4*time.Hour, 5*time.Hour-time.Minute))},
			want:  map[string]ContainerTimes{"main": {Started: ts(0), Restarts: 3}},
			start: ts(0),
		},
		{
			name: "failed while waiting to restart: the last run's finish", phase: corev1.PodFailed,
			prev:  map[string]ContainerTimes{"main": {Started: ts(time.Minute), Restarts: 1}},
			app:   []corev1.ContainerStatus{status("main", 2, waiting, term(3*time.Hour, 4*time.Hour))},
			want:  map[string]ContainerTimes{"main": {Started: ts(time.Minute), Finished: ts(4 * time.Hour), Restarts: 2}},
			start: ts(time.Minute), end: ts(4 * time.Hour),
		},
		{
			name: "init containers hold the pod's devices from their start", phase: corev1.PodSucceeded,
			init: []corev1.ContainerStatus{status("warmup", 0, term(time.Minute, 10*time.Minute), none)},
			app:  []corev1.ContainerStatus{status("main", 0, term(11*time.Minute, time.Hour), none)},
			want: map[string]ContainerTimes{
				"warmup": {Started: ts(time.Minute), Finished: ts(10 * time.Minute)},
				"main":   {Started: ts(11 * time.Minute), Finished: ts(time.Hour)},
			},
			start: ts(time.Minute), end: ts(time.Hour),
		},
		{
			name: "between init and app containers the pod has not ended", phase: corev1.PodPending,
			init:  []corev1.ContainerStatus{status("warmup", 0, term(time.Minute, 10*time.Minute), none)},
			app:   []corev1.ContainerStatus{status("main", 0, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}, none)},
			want:  map[string]ContainerTimes{"warmup": {Started: ts(time.Minute)}, "main": {}},
			start: ts(time.Minute),
		},
		{
			name: "deleted while running: the end is the deletion", phase: corev1.PodRunning, deleted: true,
			app:   []corev1.ContainerStatus{status("main", 0, run(time.Minute), none)},
			want:  map[string]ContainerTimes{"main": {Started: ts(time.Minute)}},
			start: ts(time.Minute), end: ts(3 * time.Hour), deletedAt: ts(3 * time.Hour),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPod("p", "ns", "gpu-a")
			p.Status.Phase = c.phase
			st := at(0)
			p.Status.StartTime = &st
			p.Status.InitContainerStatuses, p.Status.ContainerStatuses = c.init, c.app
			got := containerTimes(c.prev, p, c.deleted || terminal(p))
			if !maps.Equal(got, c.want) {
				t.Errorf("times: got %v, want %v", got, c.want)
			}
			view := Pod{Containers: got, Deleted: c.deletedAt}
			if !view.Start().Equal(c.start) || !view.End().Equal(c.end) {
				t.Errorf("allocation [%s, %s), want [%s, %s)", view.Start(), view.End(), c.start, c.end)
			}
		})
	}
}

func TestNodeInfo(t *testing.T) {
	cases := []struct {
		name string
		n    *corev1.Node
		want NodeInfo
	}{
		{"real node", node("gpu-a", map[string]string{KeySite: "INFN-CNAF", LabelGPUProduct: "NVIDIA A30"}, nil), NodeInfo{}},
		{"virtual node with a site label", virtualNode("vk-cnaf", "INFN-CNAF"), NodeInfo{Virtual: true, Site: "INFN-CNAF", GPUModel: "NVIDIA A100-PCIE-40GB"}},
		{
			"site and model from annotations",
			node("vk-leonardo", map[string]string{LabelVirtualNode: VirtualKubelet}, map[string]string{KeySite: "CINECA-Leonardo", KeyGPUModel: "NVIDIA A100-SXM4-64GB"}),
			NodeInfo{Virtual: true, Site: "CINECA-Leonardo", GPUModel: "NVIDIA A100-SXM4-64GB"},
		},
		{
			"no site: the node's name; model from GPU feature discovery",
			node("vk-recas", map[string]string{LabelVirtualNode: VirtualKubelet, LabelGPUProduct: "Tesla-V100"}, nil),
			NodeInfo{Virtual: true, Site: "vk-recas", GPUModel: "Tesla-V100"},
		},
		{"another virtual-kubelet type is not InterLink's", node("vk-x", map[string]string{LabelVirtualNode: "other"}, nil), NodeInfo{}},
	}
	for _, c := range cases {
		if got := nodeInfo(c.n); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}
