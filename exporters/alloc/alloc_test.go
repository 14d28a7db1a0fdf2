package alloc_test

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/alloc"
	"github.com/gpuledger/gpuledger/exporters/kube"
	"github.com/gpuledger/gpuledger/exporters/kubelet/kubelettest"
	"github.com/gpuledger/gpuledger/exporters/metrics"
)

var (
	bob   = attribution.Result{User: "bob", Project: "cms-gpu", Queue: "cms-gpu"}
	alice = attribution.Result{User: "alice", Project: "jupyterhub"}
)

func TestWholeGPU(t *testing.T) {
	h := newHarness(t, alloc.Options{Interval: 5 * time.Second})
	start := t0.Add(-10 * time.Minute)
	h.pods.set(running("uid-1", "cms-ml", "cms-train", start, bob))
	h.srv.Set(kubelettest.Assignment{Namespace: "cms-ml", Pod: "cms-train", Container: "main", Resource: "nvidia.com/gpu", IDs: []string{gpu1}})
	h.inv.SetActivity("dcgm", t0, map[string]float64{gpu1: 0.42})
	h.mustStep(time.Second)

	ss := collect(t, h.c)
	want := map[string]string{"node": nodeName, "resource": "nvidia.com/gpu", "class": "gpu", "device": gpu1,
		"gpu_uuid": gpu1, "gpu": "1", "model": a100, "profile": "", "namespace": "cms-ml", "pod": "cms-train",
		"pod_uid": "uid-1", "user": "bob", "project": "cms-gpu", "queue": "cms-gpu", "site": ""}
	got := find(ss, famStart, nil)
	if len(got) != 1 {
		t.Fatalf("start series %v", got)
	}
	if len(got[0].labels) != len(metrics.AllocationLabels) {
		t.Errorf("labels %v, want exactly %v", got[0].labels, metrics.AllocationLabels)
	}
	for k, v := range want {
		if got[0].labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, got[0].labels[k], v)
		}
	}
	if v := got[0].value; v != unix(start) {
		t.Errorf("start %v, want %v", v, unix(start))
	}
	if v := value(t, ss, famWeight, want); v != 1 {
		t.Errorf("weight %v, want 1", v)
	}
	if v := value(t, ss, famDevices, want); v != 1 {
		t.Errorf("devices %v, want 1", v)
	}
	if v := value(t, ss, famActivity, want); v != 0.42 {
		t.Errorf("activity %v, want 0.42", v)
	}
	absent(t, ss, famEnd, nil)
	if v := value(t, ss, famAvail, map[string]string{"source": "kubelet"}); v != 1 {
		t.Errorf("kubelet availability %v", v)
	}
	if v := value(t, ss, famAvail, map[string]string{"source": "apiserver"}); v != 1 {
		t.Errorf("apiserver availability %v", v)
	}
	if v := value(t, ss, famUnres, map[string]string{"node": nodeName}); v != 0 {
		t.Errorf("unresolved %v", v)
	}

	// Activity older than two intervals is not reported.
	h.mustStep(10 * time.Second)
	ss = collect(t, h.c)
	absent(t, ss, famActivity, nil)
	if v := value(t, ss, famStart, want); v != unix(start) {
		t.Errorf("start moved to %v", v)
	}
}

func TestMIG(t *testing.T) {
	h := newHarness(t, alloc.Options{})
	h.pods.set(running("uid-a", "hub", "jupyter-alice", t0.Add(-time.Hour), alice))
	h.pods.set(running("uid-t", "ml-infn", "ml-infn-ft-0", t0.Add(-2*time.Hour), attribution.Result{User: "trainer", Project: "ml"}))
	h.pods.set(running("uid-s", "ml-infn", "single", t0.Add(-3*time.Hour), attribution.Result{User: "trainer", Project: "ml"}))
	legacy := "MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/2/0"
	h.srv.Set(
		kubelettest.Assignment{Namespace: "hub", Pod: "jupyter-alice", Container: "nb", Resource: "nvidia.com/mig-1g.10gb", IDs: []string{mig1g}},
		kubelettest.Assignment{Namespace: "ml-infn", Pod: "ml-infn-ft-0", Container: "main", Resource: "nvidia.com/mig-3g.40gb", IDs: []string{legacy}},
		// The single strategy: a MIG device as nvidia.com/gpu.
		kubelettest.Assignment{Namespace: "ml-infn", Pod: "single", Container: "main", Resource: "nvidia.com/gpu", IDs: []string{mig1g}},
	)
	h.inv.SetActivity("dcgm", t0, map[string]float64{mig1g: 0.25, mig3g: 0.75})
	h.mustStep(0)
	ss := collect(t, h.c)

	w1, _ := accounting.MIGWeight(a100, "1g.10gb")
	w3, _ := accounting.MIGWeight(a100, "3g.40gb")
	cases := []struct {
		uid, device, resource, profile string
		weight, activity               float64
	}{
		{"uid-a", mig1g, "nvidia.com/mig-1g.10gb", "1g.10gb", float64(w1) / 1000, 0.25},
		{"uid-t", legacy, "nvidia.com/mig-3g.40gb", "3g.40gb", float64(w3) / 1000, 0.75},
		{"uid-s", mig1g, "nvidia.com/gpu", "1g.10gb", float64(w1) / 1000, 0.25},
	}
	for _, c := range cases {
		m := map[string]string{"pod_uid": c.uid, "device": c.device, "resource": c.resource, "class": "mig",
			"profile": c.profile, "gpu_uuid": gpu0, "gpu": "0", "model": a100}
		if v := value(t, ss, famWeight, m); v != c.weight {
			t.Errorf("%s weight %v, want %v", c.device, v, c.weight)
		}
		if v := value(t, ss, famActivity, m); v != c.activity {
			t.Errorf("%s activity %v, want %v", c.device, v, c.activity)
		}
	}
	if w3 != 500 || w1 != 143 {
		t.Errorf("MIG weights %d, %d; want 500 (4 of 8 memory slices), 143 on an A100-80GB", w3, w1)
	}
}

func TestTimeSlicedReplicas(t *testing.T) {
	cases := []struct {
		name        string
		allocatable bool
		defaults    int
		want        float64
	}{
		{"advertised by the kubelet", true, 0, 0.25},
		{"advertised wins over the default", true, 2, 0.25},
		{"default replicas", false, 2, 0.5},
		{"unknown: the whole GPU", false, 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, alloc.Options{DefaultReplicas: c.defaults})
			if !c.allocatable {
				h.srv.SetAllocatable(nil)
			}
			h.pods.set(running("uid-1", "lab", "a", t0.Add(-time.Minute), alice))
			h.pods.set(running("uid-2", "lab", "b", t0.Add(-2*time.Minute), bob))
			h.srv.Set(
				kubelettest.Assignment{Namespace: "lab", Pod: "a", Container: "c", Resource: "nvidia.com/gpu.shared", IDs: []string{gpu2 + "::0"}},
				kubelettest.Assignment{Namespace: "lab", Pod: "b", Container: "c", Resource: "nvidia.com/gpu.shared", IDs: []string{gpu2 + "::3"}},
			)
			h.inv.SetActivity("dcgm", t0, map[string]float64{gpu2: 0.6})
			h.mustStep(0)
			ss := collect(t, h.c)
			for _, id := range []string{gpu2 + "::0", gpu2 + "::3"} {
				m := map[string]string{"device": id, "class": "shared", "gpu_uuid": gpu2, "gpu": "2", "model": t4}
				if v := value(t, ss, famWeight, m); v != c.want {
					t.Errorf("%s weight %v, want %v", id, v, c.want)
				}
				// A share reports its GPU's activity.
				if v := value(t, ss, famActivity, m); v != 0.6 {
					t.Errorf("%s activity %v, want 0.6", id, v)
				}
			}
		})
	}
}

func TestFPGA(t *testing.T) {
	h := newHarness(t, alloc.Options{})
	h.pods.set(running("uid-f", "fpga-lab", "hls", t0.Add(-time.Hour), attribution.Result{User: attribution.Unknown, Project: "fpga"}))
	h.srv.Set(kubelettest.Assignment{Namespace: "fpga-lab", Pod: "hls", Container: "main", Resource: resFPG, IDs: []string{fpga0}})
	h.mustStep(0)
	ss := collect(t, h.c)
	m := map[string]string{"device": fpga0, "class": "fpga", "resource": resFPG, "gpu": "", "gpu_uuid": "", "model": u55c,
		"profile": "", "user": "unknown", "project": "fpga"}
	if v := value(t, ss, famWeight, m); v != 1 {
		t.Errorf("weight %v", v)
	}
	if v := value(t, ss, famStart, m); v != unix(t0.Add(-time.Hour)) {
		t.Errorf("start %v", v)
	}
	absent(t, ss, famActivity, nil) // nothing measured it
}

func TestPodEnds(t *testing.T) {
	h := newHarness(t, alloc.Options{Retention: time.Hour})
	start := t0.Add(-30 * time.Minute)
	p := running("uid-1", "cms-ml", "cms-train", start, bob)
	h.pods.set(p)
	h.srv.Set(kubelettest.Assignment{Namespace: "cms-ml", Pod: "cms-train", Container: "main", Resource: "nvidia.com/gpu", IDs: []string{gpu1}})
	h.inv.SetActivity("dcgm", t0, map[string]float64{gpu1: 0.9})
	h.mustStep(0)

	// The container finishes; the kubelet still lists the pod for a while.
	end := t0.Add(3*time.Second + 250*time.Millisecond)
	p.Containers = map[string]kube.ContainerTimes{"main": {Started: start, Finished: end}}
	p.Phase = "Succeeded"
	h.pods.set(p)
	h.mustStep(5 * time.Second)
	m := map[string]string{"pod_uid": "uid-1", "device": gpu1}
	ss := collect(t, h.c)
	if v := value(t, ss, famEnd, m); v != unix(end) {
		t.Errorf("end %v, want exactly %v", v, unix(end))
	}
	if v := value(t, ss, famStart, m); v != unix(start) {
		t.Errorf("start %v", v)
	}
	value(t, ss, famWeight, m)
	value(t, ss, famDevices, m)
	absent(t, ss, famActivity, nil)
	if as := h.c.Allocations(); len(as) != 1 || as[0].EndInferred || !as[0].End.Equal(end) {
		t.Errorf("allocations %+v", as)
	}

	// Gone from the kubelet and, later, from the API server: the exact end stays.
	h.srv.Set()
	h.mustStep(5 * time.Second)
	h.pods.remove("uid-1")
	h.mustStep(5 * time.Second)
	if v := value(t, collect(t, h.c), famEnd, m); v != unix(end) {
		t.Errorf("end changed to %v", v)
	}

	// Within the retention it stays; at end + retention it is gone.
	h.advance(end.Add(time.Hour - time.Millisecond).Sub(h.clock()))
	h.c.Reconcile()
	value(t, collect(t, h.c), famEnd, m)
	h.advance(time.Millisecond)
	h.c.Reconcile()
	ss = collect(t, h.c)
	absent(t, ss, famStart, nil)
	absent(t, ss, famEnd, nil)
	if as := h.c.Allocations(); len(as) != 0 {
		t.Errorf("allocations past the retention: %+v", as)
	}
}

func TestEndedPodListedAfterRetention(t *testing.T) {
	// An exporter that starts after a pod ended: the kubelet still lists
	// it. Within the retention it is exported with its exact times; past
	// it, never again.
	h := newHarness(t, alloc.Options{Retention: time.Hour})
	p := running("uid-old", "cms-ml", "old", t0.Add(-3*time.Hour), bob)
	p.Containers["main"] = kube.ContainerTimes{Started: t0.Add(-3 * time.Hour), Finished: t0.Add(-2 * time.Hour)}
	q := running("uid-recent", "cms-ml", "recent", t0.Add(-3*time.Hour), bob)
	q.Containers["main"] = kube.ContainerTimes{Started: t0.Add(-3 * time.Hour), Finished: t0.Add(-time.Minute)}
	h.pods.set(p)
	h.pods.set(q)
	h.srv.Set(
		kubelettest.Assignment{Namespace: "cms-ml", Pod: "old", Container: "main", Resource: "nvidia.com/gpu", IDs: []string{gpu1}},
		kubelettest.Assignment{Namespace: "cms-ml", Pod: "recent", Container: "main", Resource: "nvidia.com/gpu.shared", IDs: []string{gpu2 + "::1"}},
	)
	h.mustStep(0)
	ss := collect(t, h.c)
	absent(t, ss, famStart, map[string]string{"pod_uid": "uid-old"})
	if v := value(t, ss, famEnd, map[string]string{"pod_uid": "uid-recent"}); v != unix(t0.Add(-time.Minute)) {
		t.Errorf("end %v", v)
	}
	h.mustStep(time.Hour)
	if ss := collect(t, h.c); len(find(ss, famStart, nil)) != 0 {
		t.Errorf("expired allocations came back: %v", find(ss, famStart, nil))
	}
}

func TestPendingPod(t *testing.T) {
	h := newHarness(t, alloc.Options{})
	// Pending, not scheduled: the kubelet does not list it.
	h.pods.set(kube.Pod{UID: "uid-p", Name: "queued", Namespace: "batch", Phase: "Pending",
		Requests: map[string]int64{"nvidia.com/gpu": 1}})
	// Admitted, devices assigned, image still pulling: not started.
	h.pods.set(kube.Pod{UID: "uid-c", Name: "creating", Namespace: "batch", Node: nodeName, Phase: "Pending",
		Requests: map[string]int64{"nvidia.com/gpu": 1}, Containers: map[string]kube.ContainerTimes{"main": {}}})
	h.srv.Set(kubelettest.Assignment{Namespace: "batch", Pod: "creating", Container: "main", Resource: "nvidia.com/gpu", IDs: []string{gpu1}})
	h.mustStep(0)
	ss := collect(t, h.c)
	absent(t, ss, famStart, nil)
	if v := value(t, ss, famUnres, nil); v != 0 {
		t.Errorf("unresolved %v: a pod not started is not a resolution problem", v)
	}

	// The container starts: the allocation begins at its exact start.
	started := t0.Add(2 * time.Second)
	h.pods.set(kube.Pod{UID: "uid-c", Name: "creating", Namespace: "batch", Node: nodeName, Phase: "Running",
		Attribution: bob, Containers: map[string]kube.ContainerTimes{"main": {Started: started}}})
	h.mustStep(5 * time.Second)
	ss = collect(t, h.c)
	if v := value(t, ss, famStart, map[string]string{"pod_uid": "uid-c"}); v != unix(started) {
		t.Errorf("start %v, want %v", v, unix(started))
	}
	absent(t, ss, famStart, map[string]string{"pod_uid": "uid-p"})
}

func TestPodDeletedWithoutEnd(t *testing.T) {
	h := newHarness(t, alloc.Options{})
	start := t0.Add(-time.Hour)
	h.pods.set(running("uid-1", "hub", "jupyter-alice", start, alice))
	h.srv.Set(kubelettest.Assignment{Namespace: "hub", Pod: "jupyter-alice", Container: "nb", Resource: "nvidia.com/mig-1g.10gb", IDs: []string{mig1g}})
	h.mustStep(0)

	// Gone from both, the API server never having reported an end (an
	// informer that missed the deletion).
	h.pods.remove("uid-1")
	h.srv.Set()
	h.mustStep(5 * time.Second)
	gone := h.clock()
	h.mustStep(5 * time.Second)
	m := map[string]string{"pod_uid": "uid-1"}
	ss := collect(t, h.c)
	if v := value(t, ss, famEnd, m); v != unix(gone) {
		t.Errorf("end %v, want the first answer without it, %v", v, unix(gone))
	}
	absent(t, ss, famActivity, nil)
	as := h.c.Allocations()
	if len(as) != 1 || !as[0].EndInferred || as[0].StartInferred {
		t.Errorf("allocations %+v, want one with an inferred end", as)
	}

	// The API server tells the exact end later: an earlier exact end wins.
	exact := t0.Add(2 * time.Second)
	p := running("uid-1", "hub", "jupyter-alice", start, alice)
	p.Containers = map[string]kube.ContainerTimes{"nb": {Started: start, Finished: exact}}
	h.pods.set(p)
	h.mustStep(5 * time.Second)
	if v := value(t, collect(t, h.c), famEnd, m); v != unix(exact) {
		t.Errorf("end %v, want the exact %v", v, unix(exact))
	}
	if as := h.c.Allocations(); as[0].EndInferred {
		t.Errorf("end still flagged inferred: %+v", as[0])
	}
}

func TestDeletedPodEndsAtDeletion(t *testing.T) {
	h := newHarness(t, alloc.Options{})
	start := t0.Add(-time.Hour)
	p := running("uid-1", "hub", "jupyter-alice", start, alice)
	h.pods.set(p)
	h.srv.Set(kubelettest.Assignment{Namespace: "hub", Pod: "jupyter-alice", Container: "nb", Resource: "nvidia.com/gpu", IDs: []string{gpu1}})
	h.mustStep(0)
	// Deleted (force) while its container ran; the kubelet still lists it.
	p.Deleted = t0.Add(4 * time.Second)
	h.pods.set(p)
	h.mustStep(5 * time.Second)
	if v := value(t, collect(t, h.c), famEnd, map[string]string{"pod_uid": "uid-1"}); v != unix(p.Deleted) {
		t.Errorf("end %v, want the deletion %v", v, unix(p.Deleted))
	}
}

func TestKubeletDown(t *testing.T) {
	h := newHarness(t, alloc.Options{})
	start := t0.Add(-time.Hour)
	h.pods.set(running("uid-1", "cms-ml", "cms-train", start, bob))
	h.srv.Set(kubelettest.Assignment{Namespace: "cms-ml", Pod: "cms-train", Container: "main", Resource: "nvidia.com/gpu", IDs: []string{gpu1}})
	h.mustStep(0)

	h.srv.Stop()
	for range 3 {
		if err := h.step(5 * time.Second); err == nil {
			t.Fatal("poll of a stopped kubelet succeeded")
		}
	}
	ss := collect(t, h.c)
	if v := value(t, ss, famAvail, map[string]string{"source": "kubelet"}); v != 0 {
		t.Errorf("kubelet availability %v while down", v)
	}
	if v := value(t, ss, famAvail, map[string]string{"source": "apiserver"}); v != 1 {
		t.Errorf("apiserver availability %v", v)
	}
	m := map[string]string{"pod_uid": "uid-1", "device": gpu1}
	if v := value(t, ss, famStart, m); v != unix(start) {
		t.Errorf("allocation lost or changed while the kubelet is down: start %v", v)
	}
	absent(t, ss, famEnd, nil)

	if err := h.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	h.mustStep(5 * time.Second)
	ss = collect(t, h.c)
	if v := value(t, ss, famAvail, map[string]string{"source": "kubelet"}); v != 1 {
		t.Errorf("kubelet availability %v once back", v)
	}
	value(t, ss, famStart, m)
	absent(t, ss, famEnd, nil)
}

func TestKubeletNeverAnswered(t *testing.T) {
	h := newHarness(t, alloc.Options{})
	h.srv.Stop()
	if err := h.step(0); err == nil {
		t.Fatal("poll succeeded")
	}
	ss := collect(t, h.c)
	if v := value(t, ss, famAvail, map[string]string{"source": "kubelet"}); v != 0 {
		t.Errorf("kubelet availability %v", v)
	}
	absent(t, ss, famStart, nil)
}

func TestAPIServerUnavailable(t *testing.T) {
	h := newHarness(t, alloc.Options{})
	h.pods.setSynced(false)
	h.srv.Set(kubelettest.Assignment{Namespace: "cms-ml", Pod: "new", Container: "main", Resource: "nvidia.com/gpu", IDs: []string{gpu1}})
	h.mustStep(0)
	firstSeen := h.clock()
	ss := collect(t, h.c)
	if v := value(t, ss, famAvail, map[string]string{"source": "apiserver"}); v != 0 {
		t.Errorf("apiserver availability %v", v)
	}
	if v := value(t, ss, famUnres, nil); v != 1 {
		t.Errorf("unresolved %v, want 1 (pod unknown)", v)
	}
	absent(t, ss, famStart, nil)

	// The informers sync; the pod runs but its container times are not
	// known: the start is the first sight, flagged.
	h.pods.setSynced(true)
	h.pods.set(kube.Pod{UID: "uid-n", Name: "new", Namespace: "cms-ml", Node: nodeName, Phase: "Running", Attribution: bob})
	h.mustStep(5 * time.Second)
	ss = collect(t, h.c)
	m := map[string]string{"pod_uid": "uid-n"}
	if v := value(t, ss, famStart, m); v != unix(firstSeen) {
		t.Errorf("start %v, want the first sight %v", v, unix(firstSeen))
	}
	if v := value(t, ss, famUnres, nil); v != 0 {
		t.Errorf("unresolved %v", v)
	}
	if as := h.c.Allocations(); len(as) != 1 || !as[0].StartInferred {
		t.Errorf("allocations %+v, want a flagged start", as)
	}

	// The exact start arrives.
	exact := firstSeen.Add(-time.Minute)
	h.pods.set(running("uid-n", "cms-ml", "new", exact, bob))
	h.mustStep(5 * time.Second)
	if v := value(t, collect(t, h.c), famStart, m); v != unix(exact) {
		t.Errorf("start %v, want the exact %v", v, unix(exact))
	}
	if as := h.c.Allocations(); as[0].StartInferred {
		t.Errorf("start still flagged: %+v", as[0])
	}

	// The API server goes away again: the allocation stays, open.
	h.pods.setSynced(false)
	h.mustStep(5 * time.Second)
	ss = collect(t, h.c)
	value(t, ss, famStart, m)
	absent(t, ss, famEnd, nil)
}

func TestUnknownDevice(t *testing.T) {
	h := newHarness(t, alloc.Options{})
	ghost := "GPU-ffffffff-0000-1111-2222-333333333333"
	h.pods.set(running("uid-1", "cms-ml", "x", t0, attribution.Result{}))
	h.srv.Set(
		kubelettest.Assignment{Namespace: "cms-ml", Pod: "x", Container: "main", Resource: "nvidia.com/gpu", IDs: []string{ghost}},
		kubelettest.Assignment{Namespace: "cms-ml", Pod: "x", Container: "main", Resource: "nvidia.com/mig-2g.20gb", IDs: []string{"MIG-abcdef01-2345-6789-abcd-ef0123456789"}},
		kubelettest.Assignment{Namespace: "cms-ml", Pod: "x", Container: "main", Resource: "nvidia.com/gpu", IDs: []string{"not-a-gpu"}},
		kubelettest.Assignment{Namespace: "cms-ml", Pod: "x", Container: "main", Resource: "example.com/nic", IDs: []string{"eth9"}},
	)
	h.mustStep(0)
	ss := collect(t, h.c)
	m := map[string]string{"device": ghost, "class": "gpu", "model": alloc.UnknownModel, "gpu_uuid": ghost, "gpu": "",
		"user": attribution.Unknown, "project": attribution.Unknown}
	if v := value(t, ss, famWeight, m); v != 1 {
		t.Errorf("weight %v", v)
	}
	// An unknown MIG device weighs its compute share of a 7-slice GPU.
	mm := map[string]string{"class": "mig", "profile": "2g.20gb", "model": alloc.UnknownModel, "gpu_uuid": ""}
	if v := value(t, ss, famWeight, mm); math.Abs(v-0.286) > 1e-9 {
		t.Errorf("unknown MIG weight %v, want 0.286", v)
	}
	if v := value(t, ss, famUnres, nil); v != 3 {
		t.Errorf("unresolved %v, want 3 (two unknown devices, one malformed ID; the NIC is not accounted)", v)
	}
	if n := len(find(ss, famStart, nil)); n != 2 {
		t.Errorf("%d allocations, want 2", n)
	}
}

func TestDuplicateAcrossContainers(t *testing.T) {
	// An init container's device reused by the app container is one
	// allocation.
	h := newHarness(t, alloc.Options{})
	h.pods.set(running("uid-1", "cms-ml", "x", t0, bob))
	h.srv.Set(
		kubelettest.Assignment{Namespace: "cms-ml", Pod: "x", Container: "init", Resource: "nvidia.com/gpu", IDs: []string{gpu1}},
		kubelettest.Assignment{Namespace: "cms-ml", Pod: "x", Container: "main", Resource: "nvidia.com/gpu", IDs: []string{gpu1}},
	)
	h.mustStep(0)
	if n := len(find(collect(t, h.c), famStart, nil)); n != 1 {
		t.Errorf("%d allocations, want 1", n)
	}
}

func TestRecreatedPodSameName(t *testing.T) {
	// A StatefulSet pod replaced by one of the same name: the old
	// allocation ends at the old pod's end, the new one starts.
	h := newHarness(t, alloc.Options{})
	oldStart := t0.Add(-time.Hour)
	old := running("uid-old", "ml", "ft-0", oldStart, bob)
	h.pods.set(old)
	h.srv.Set(kubelettest.Assignment{Namespace: "ml", Pod: "ft-0", Container: "main", Resource: "nvidia.com/gpu", IDs: []string{gpu1}})
	h.mustStep(0)

	oldEnd := t0.Add(time.Second)
	old.Containers["main"] = kube.ContainerTimes{Started: oldStart, Finished: oldEnd}
	old.Deleted = t0.Add(2 * time.Second)
	h.pods.set(old)
	newStart := t0.Add(4 * time.Second)
	h.pods.set(running("uid-new", "ml", "ft-0", newStart, bob))
	h.mustStep(5 * time.Second)
	ss := collect(t, h.c)
	if v := value(t, ss, famEnd, map[string]string{"pod_uid": "uid-old"}); v != unix(oldEnd) {
		t.Errorf("old end %v, want %v", v, unix(oldEnd))
	}
	if v := value(t, ss, famStart, map[string]string{"pod_uid": "uid-new"}); v != unix(newStart) {
		t.Errorf("new start %v", v)
	}
	absent(t, ss, famEnd, map[string]string{"pod_uid": "uid-new"})
}

func TestStartClose(t *testing.T) {
	h := newHarness(t, alloc.Options{Interval: time.Hour})
	h.pods.set(running("uid-1", "cms-ml", "x", t0, bob))
	h.srv.Set(kubelettest.Assignment{Namespace: "cms-ml", Pod: "x", Container: "main", Resource: "nvidia.com/gpu", IDs: []string{gpu1}})
	if err := h.kl.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	listed := make(chan struct{}, 1)
	h.pods.mu.Lock()
	h.pods.listed = listed
	h.pods.mu.Unlock()
	if err := h.c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Start(t.Context()); err == nil {
		t.Error("second Start succeeded")
	}
	<-listed // a reconciliation began; the next one waits for a kubelet poll

	h.srv.Set(kubelettest.Assignment{Namespace: "cms-ml", Pod: "x", Container: "main", Resource: "nvidia.com/gpu", IDs: []string{gpu1}},
		kubelettest.Assignment{Namespace: "cms-ml", Pod: "x", Container: "main", Resource: "nvidia.com/gpu.shared", IDs: []string{gpu2 + "::2"}})
	if err := h.kl.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-listed // the poll woke the reconciliation
	if err := h.c.Close(); err != nil {
		t.Fatal(err)
	}
	got := h.c.Allocations()
	devices := []string{}
	for _, a := range got {
		devices = append(devices, a.Device)
	}
	slices.Sort(devices)
	if !slices.Equal(devices, []string{gpu1, gpu2 + "::2"}) {
		t.Errorf("allocations after the background reconciliation: %v", devices)
	}
	if err := h.c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	h := newHarness(t, alloc.Options{})
	cases := []struct {
		name string
		f    func() error
	}{
		{"no node", func() error { _, err := alloc.New(h.kl, h.pods, h.inv, alloc.Options{}); return err }},
		{"no kubelet", func() error { _, err := alloc.New(nil, h.pods, h.inv, alloc.Options{Node: "n"}); return err }},
		{"no pods", func() error { _, err := alloc.New(h.kl, nil, h.inv, alloc.Options{Node: "n"}); return err }},
		{"no inventory", func() error { _, err := alloc.New(h.kl, h.pods, nil, alloc.Options{Node: "n"}); return err }},
		{"negative retention", func() error {
			_, err := alloc.New(h.kl, h.pods, h.inv, alloc.Options{Node: "n", Retention: -1})
			return err
		}},
	}
	for _, c := range cases {
		if err := c.f(); err == nil {
			t.Errorf("%s: New succeeded", c.name)
		}
	}
}
