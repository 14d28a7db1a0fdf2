package scenario

import (
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/attribution"
)

func defaultRules() attribution.Rules { return attribution.Default() }

func TestAllocationsSmall(t *testing.T) {
	s, err := Load(smallPath)
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := s.Allocations(defaultRules())
	if err != nil {
		t.Fatal(err)
	}
	at := func(h, m, sec int) time.Time { return time.Date(2026, 11, 2, h, m, sec, 0, time.UTC) }
	type want struct {
		pod, resource string
		class         accounting.Class
		weight, devs  int64
		gpuIndex      int
		gi, ci        int
		user, project string
		queue, site   string
		start, end    time.Time // end zero: open
	}
	const a100 = "GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f"
	// Sorted by start, then node, pod UID and device ID.
	wants := []want{
		// 07:30 MIG 1g.10gb on an A100-80GB: max(1/7, 1/8) = 142.857… → 143.
		{"jupyter-alice", "nvidia.com/mig-1g.10gb", accounting.ClassMIG, 143, 1, 0, 9, 0, "alice", "jupyterhub", "", "", at(7, 30, 0), time.Time{}},
		// 08:00 A30 slices: 2g.12gb = max(2/4, 2/4) = 500, 1g.6gb = 1/4 = 250.
		{"lhcb-reco-1", "nvidia.com/mig-2g.12gb", accounting.ClassMIG, 500, 1, 0, 1, 0, "dave", "lhcb-batch", "", "", at(8, 0, 0), at(10, 0, 0)},
		{"lhcb-reco-1", "nvidia.com/mig-1g.6gb", accounting.ClassMIG, 250, 1, 0, 5, 0, "dave", "lhcb-batch", "", "", at(8, 0, 0), at(10, 0, 0)},
		{"cms-train-7f9c", "nvidia.com/gpu", accounting.ClassGPU, 1000, 1, 1, -1, -1, "bob", "cms-gpu", "cms-gpu", "", at(8, 20, 0), at(11, 5, 30)},
		// FPGA: a card weighs 1000 but is accounted as FPGA time.
		{"fpga-hls-3", "amd.com/xilinx_u55c_gen3x16_xdma_base_3-0", accounting.ClassFPGA, 1000, 1, -1, -1, -1, "grace", "ml-infn", "", "", at(8, 30, 0), at(9, 30, 0)},
		// Legacy MIG-GPU-<uuid>/2/0 is the 3g.40gb: max(3/7, 4/8) = 500.
		{"ml-infn-ft-0", "nvidia.com/mig-3g.40gb", accounting.ClassMIG, 500, 1, 0, 2, 0, "trainer", "ml-infn-gpu", "ml-infn-gpu", "", at(9, 0, 0), at(12, 30, 0)},
		// T4 time-sliced in 4 replicas: 1000/4 = 250 each.
		{"jupyter-erin", "nvidia.com/gpu.shared", accounting.ClassShared, 250, 1, 0, -1, -1, "erin", "jupyterhub", "", "", at(9, 15, 0), at(13, 45, 0)},
		{"jupyter-frank", "nvidia.com/gpu.shared", accounting.ClassShared, 250, 1, 0, -1, -1, "frank", "jupyterhub", "", "", at(10, 0, 0), time.Time{}},
		// Offload of 2 GPUs to INFN-CNAF: 2 × 1000.
		{"offload-sim-42", "nvidia.com/gpu", accounting.ClassOffload, 2000, 2, -1, -1, -1, "heidi", "ml-infn-gpu", "ml-infn-gpu", "INFN-CNAF", at(10, 0, 0), at(12, 0, 0)},
		{"cms-train-8a01", "nvidia.com/gpu", accounting.ClassGPU, 1000, 1, 1, -1, -1, "carol", "cms-gpu", "cms-gpu", "", at(11, 10, 0), at(16, 0, 0)},
	}
	if len(allocs) != len(wants) {
		t.Fatalf("got %d allocations, want %d", len(allocs), len(wants))
	}
	for i, w := range wants {
		a := allocs[i]
		got := want{a.Pod.Name, a.Resource, a.Class, a.WeightMilli, a.Devices, a.GPUIndex, a.GI, a.CI,
			a.User, a.Project, a.Queue, a.Site, a.Start, a.End}
		if got != w {
			t.Errorf("allocation %d:\n got %+v\nwant %+v", i, got, w)
		}
		if a.Open() != w.end.IsZero() {
			t.Errorf("allocation %d: Open() = %v", i, a.Open())
		}
	}
	legacy := allocs[5]
	if legacy.GPUUUID != a100 || legacy.DeviceID != "MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/2/0" || legacy.Model != "NVIDIA A100-SXM4-80GB" {
		t.Errorf("legacy MIG allocation: GPU %q, device %q, model %q", legacy.GPUUUID, legacy.DeviceID, legacy.Model)
	}
	if allocs[8].Model != "NVIDIA A100-PCIE-40GB" || allocs[8].DeviceID != "" {
		t.Errorf("offload model %q, device %q", allocs[8].Model, allocs[8].DeviceID)
	}
	frank := allocs[7]
	for _, c := range []struct {
		t    time.Time
		want bool
	}{{at(9, 59, 59), false}, {at(10, 0, 0), true}, {at(23, 0, 0), true}} {
		if frank.ActiveAt(c.t) != c.want {
			t.Errorf("open allocation ActiveAt(%v) = %v", c.t, !c.want)
		}
	}
	if allocs[3].ActiveAt(at(11, 5, 30)) {
		t.Error("an allocation is active at its end")
	}
}

func TestAllocationsSingleStrategy(t *testing.T) {
	// The "single" MIG strategy hands MIG devices out as nvidia.com/gpu.
	const gpus = `      - index: 0
        uuid: GPU-aaaaaaaa-0000-0000-0000-000000000000
        model: NVIDIA A30
        mig:
          - {profile: 2g.12gb, gi: 1, ci: 0, uuid: MIG-aaaaaaaa-0000-0000-0000-000000000001}
          - {profile: 2g.12gb, gi: 2, ci: 0, uuid: MIG-aaaaaaaa-0000-0000-0000-000000000002}
`
	const pods = `  - name: p1
    namespace: ns
    uid: u1
    node: n1
    devices:
      - {resource: nvidia.com/gpu, id: MIG-aaaaaaaa-0000-0000-0000-000000000002}
    start: 2026-01-01T00:10:00Z
`
	s, err := Parse("mini.yaml", []byte(miniScenario(gpus, pods)))
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := s.Allocations(defaultRules())
	if err != nil {
		t.Fatal(err)
	}
	a := allocs[0]
	if len(allocs) != 1 || a.Class != accounting.ClassMIG || a.Profile != "2g.12gb" || a.WeightMilli != 500 ||
		a.Resource != "nvidia.com/gpu" || a.GI != 2 || a.User != "unknown" || a.Project != "ns" {
		t.Errorf("single-strategy allocation = %+v", a)
	}
}
