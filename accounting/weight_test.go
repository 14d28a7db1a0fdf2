package accounting

import (
	"errors"
	"testing"
)

func TestMIGWeight(t *testing.T) {
	cases := []struct {
		model, profile string
		want           int64
		err            bool
	}{
		{"NVIDIA A100-SXM4-80GB", "1g.10gb", 143, false},
		{"NVIDIA A100-SXM4-80GB", "1g.10gb+me", 143, false},
		{"NVIDIA A100-SXM4-80GB", "1g.20gb", 250, false},
		{"NVIDIA A100-SXM4-80GB", "2g.20gb", 286, false},
		{"NVIDIA A100-SXM4-80GB", "3g.40gb", 500, false},
		{"NVIDIA A100-SXM4-80GB", "4g.40gb", 571, false},
		{"NVIDIA A100-SXM4-80GB", "7g.80gb", 1000, false},
		{"A100-80GB", "1c.3g.40gb", 167, false},
		// c/g of a GPU instance is rounded once: 3/4 × 4/7 = 3/7 = 428.57… → 429.
		{"A100-80GB", "3c.4g.40gb", 429, false},
		{"A100-80GB", "2c.4g.40gb", 286, false},
		{"NVIDIA A30", "1c.2g.12gb", 250, false},
		{"NVIDIA A100 80GB PCIe", "3g.40gb", 500, false},
		{"NVIDIA H100 NVL", "3g.47gb", 500, false},
		{"NVIDIA H100 NVL", "1g.12gb", 143, false},
		{"NVIDIA A100-PCIE-40GB", "1g.5gb", 143, false},
		{"NVIDIA A100-PCIE-40GB", "3g.20gb", 500, false},
		{"NVIDIA A100-PCIE-40GB", "7g.40gb", 1000, false},
		{"NVIDIA A30", "1g.6gb", 250, false},
		{"NVIDIA A30", "2g.12gb", 500, false},
		{"NVIDIA A30", "4g.24gb", 1000, false},
		{"NVIDIA A30", "1g.6gb+me", 250, false},
		{"NVIDIA H100 80GB HBM3", "1g.10gb", 143, false},
		{"NVIDIA H100 80GB HBM3", "1g.20gb", 250, false},
		{"NVIDIA H200", "1g.18gb", 143, false},
		{"NVIDIA H200", "1g.35gb", 250, false},
		{"NVIDIA H200", "3g.71gb", 500, false},
		{"NVIDIA H200", "7g.141gb", 1000, false},
		// The same profile name weighs differently on another model.
		{"NVIDIA A100-PCIE-40GB", "1g.10gb", 250, false},
		{"NVIDIA A30", "7g.80gb", 0, true},
		{"Tesla T4", "1g.10gb", 0, true},
		// Workstation GPUs whose names contain a MIG model's name.
		{"NVIDIA RTX A1000", "1g.5gb", 0, true},
		{"NVIDIA RTX A3000 Laptop GPU", "1g.6gb", 0, true},
		{"NVIDIA A10", "1g.6gb", 0, true},
		{"NVIDIA A100-SXM4-80GB", "1g.100gb", 0, true},
		{"NVIDIA A100-SXM4-80GB", "bogus", 0, true},
		{"NVIDIA A100-SXM4-80GB", "4c.3g.40gb", 0, true},
	}
	for _, c := range cases {
		got, err := MIGWeight(c.model, c.profile)
		if c.err {
			if err == nil || !errors.Is(err, ErrUnknownProfile) {
				t.Errorf("MIGWeight(%q, %q) = %d, %v; want ErrUnknownProfile", c.model, c.profile, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("MIGWeight(%q, %q) = %d, %v; want %d", c.model, c.profile, got, err, c.want)
		}
	}
}

func TestFractionWeight(t *testing.T) {
	cases := []struct {
		milli    int64
		replicas int
		want     int64
		err      bool
	}{
		{470, 0, 470, false},
		{1000, 0, 1000, false},
		{0, 4, 250, false},
		{0, 3, 333, false},
		{0, 0, 1000, false},
		{1001, 0, 0, true},
		{-5, 0, 0, true},
	}
	for _, c := range cases {
		got, err := FractionWeight(c.milli, c.replicas)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("FractionWeight(%d, %d) = %d, %v; want %d (err %v)", c.milli, c.replicas, got, err, c.want, c.err)
		}
	}
}

func TestResourceClass(t *testing.T) {
	cases := []struct {
		res     string
		class   Class
		profile string
		ok      bool
	}{
		{"nvidia.com/gpu", ClassGPU, "", true},
		{"nvidia.com/gpu.shared", ClassShared, "", true},
		{"nvidia.com/mig-1g.10gb", ClassMIG, "1g.10gb", true},
		{"nvidia.com/mig-", "", "", false},
		{"amd.com/xilinx_u55c_gen3x16_xdma_base_3-0", ClassFPGA, "", true},
		{"xilinx.com/fpga-xilinx_u55c_gen3x16_xdma_base_3-0", ClassFPGA, "", true},
		{"cpu", "", "", false},
		{"amd.com/gpu", "", "", false},
		{"amd.com/", "", "", false},
		{"xilinx.com/", "", "", false},
	}
	for _, c := range cases {
		class, profile, ok := ResourceClass(c.res)
		if class != c.class || profile != c.profile || ok != c.ok {
			t.Errorf("ResourceClass(%q) = %q, %q, %v", c.res, class, profile, ok)
		}
	}
}

func TestDeviceIDForms(t *testing.T) {
	if b, n, ok := SplitReplica("GPU-abc::3"); !ok || b != "GPU-abc" || n != 3 {
		t.Errorf("SplitReplica = %q %d %v", b, n, ok)
	}
	if _, _, ok := SplitReplica("GPU-abc"); ok {
		t.Error("SplitReplica accepted an ID without replica")
	}
	if _, _, ok := SplitReplica("GPU-abc::x"); ok {
		t.Error("SplitReplica accepted a non-numeric replica")
	}
	p, gi, ci, ok := ParseLegacyMIG("MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/7/0")
	if !ok || p != "GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f" || gi != 7 || ci != 0 {
		t.Errorf("ParseLegacyMIG = %q %d %d %v", p, gi, ci, ok)
	}
	for _, bad := range []string{"MIG-5c89852c", "MIG-GPU-x/1", "MIG-GPU-x/a/0", "MIG-GPU-/1/0"} {
		if _, _, _, ok := ParseLegacyMIG(bad); ok {
			t.Errorf("ParseLegacyMIG(%q) accepted", bad)
		}
	}
}

func TestWeightFromSlices(t *testing.T) {
	cases := []struct {
		c, ct, m, mt int
		want         int64
	}{
		{1, 7, 1, 8, 143},
		{3, 7, 4, 8, 500},
		{2, 4, 2, 4, 500},
		{7, 7, 8, 8, 1000},
		{1, 0, 1, 8, 0}, // no geometry: no weight, no panic
		{1, 7, 1, 0, 0},
	}
	for _, c := range cases {
		if got := WeightFromSlices(c.c, c.ct, c.m, c.mt); got != c.want {
			t.Errorf("WeightFromSlices(%d, %d, %d, %d) = %d, want %d", c.c, c.ct, c.m, c.mt, got, c.want)
		}
	}
}

func TestFamily(t *testing.T) {
	cases := map[string]string{
		"NVIDIA A100-SXM4-80GB": "A100-80GB",
		"NVIDIA A100-PCIE-40GB": "A100-40GB",
		"NVIDIA A100 80GB PCIe": "A100-80GB",
		"A100-80GB":             "A100-80GB",
		"NVIDIA A30":            "A30",
		"NVIDIA H100 80GB HBM3": "H100-80GB",
		"NVIDIA H100 NVL":       "H100-94GB",
		"NVIDIA H200":           "H200-141GB",
		"H200-141GB":            "H200-141GB",
		"Tesla T4":              "",
		"NVIDIA RTX A1000":      "",
		"NVIDIA RTX A3000":      "",
		"NVIDIA A10":            "",
		"":                      "",
	}
	for model, want := range cases {
		if got := Family(model); got != want {
			t.Errorf("Family(%q) = %q, want %q", model, got, want)
		}
	}
}
