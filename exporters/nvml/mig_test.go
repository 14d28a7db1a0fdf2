package nvml

import (
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/gpuledger/gpuledger/accounting"
)

// Profile names and weights from profile info, for every MIG-capable model,
// with the memory sizes NVML reports (a little under the nominal share),
// checked against the static table of accounting.MIGWeight.
func TestShapeProfile(t *testing.T) {
	const (
		a100_40 = 40960 * mib
		a100_80 = 81920 * mib
		a30     = 24576 * mib
		h100    = 81559 * mib
		h100nvl = 95830 * mib
		h200    = 143771 * mib
	)
	cases := []struct {
		model        string
		memTotal     uint64
		computeTotal int
		shape        migShape
		want         string
		weight       int64
	}{
		{"NVIDIA A100-SXM4-40GB", a100_40, 7, migShape{1, 1, 4864, nvml.GPU_INSTANCE_PROFILE_1_SLICE}, "1g.5gb", 143},
		{"NVIDIA A100-SXM4-40GB", a100_40, 7, migShape{1, 1, 9856, nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2}, "1g.10gb", 250},
		{"NVIDIA A100-SXM4-40GB", a100_40, 7, migShape{2, 2, 9856, nvml.GPU_INSTANCE_PROFILE_2_SLICE}, "2g.10gb", 286},
		{"NVIDIA A100-SXM4-40GB", a100_40, 7, migShape{3, 3, 19968, nvml.GPU_INSTANCE_PROFILE_3_SLICE}, "3g.20gb", 500},
		{"NVIDIA A100-SXM4-40GB", a100_40, 7, migShape{4, 4, 19968, nvml.GPU_INSTANCE_PROFILE_4_SLICE}, "4g.20gb", 571},
		{"NVIDIA A100-SXM4-40GB", a100_40, 7, migShape{7, 7, 40192, nvml.GPU_INSTANCE_PROFILE_7_SLICE}, "7g.40gb", 1000},
		{"NVIDIA A100-SXM4-80GB", a100_80, 7, migShape{1, 1, 9728, nvml.GPU_INSTANCE_PROFILE_1_SLICE}, "1g.10gb", 143},
		{"NVIDIA A100-SXM4-80GB", a100_80, 7, migShape{1, 1, 9728, nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1}, "1g.10gb+me", 143},
		{"NVIDIA A100-SXM4-80GB", a100_80, 7, migShape{1, 1, 19968, nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2}, "1g.20gb", 250},
		{"NVIDIA A100-SXM4-80GB", a100_80, 7, migShape{2, 2, 19968, nvml.GPU_INSTANCE_PROFILE_2_SLICE}, "2g.20gb", 286},
		{"NVIDIA A100-SXM4-80GB", a100_80, 7, migShape{3, 3, 40192, nvml.GPU_INSTANCE_PROFILE_3_SLICE}, "3g.40gb", 500},
		{"NVIDIA A100-SXM4-80GB", a100_80, 7, migShape{3, 1, 40192, nvml.GPU_INSTANCE_PROFILE_3_SLICE}, "1c.3g.40gb", 167},
		{"NVIDIA A100-SXM4-80GB", a100_80, 7, migShape{4, 4, 40192, nvml.GPU_INSTANCE_PROFILE_4_SLICE}, "4g.40gb", 571},
		{"NVIDIA A100-SXM4-80GB", a100_80, 7, migShape{7, 7, 80640, nvml.GPU_INSTANCE_PROFILE_7_SLICE}, "7g.80gb", 1000},
		{"NVIDIA A30", a30, 4, migShape{1, 1, 5952, nvml.GPU_INSTANCE_PROFILE_1_SLICE}, "1g.6gb", 250},
		{"NVIDIA A30", a30, 4, migShape{2, 2, 12160, nvml.GPU_INSTANCE_PROFILE_2_SLICE}, "2g.12gb", 500},
		{"NVIDIA A30", a30, 4, migShape{4, 4, 24320, nvml.GPU_INSTANCE_PROFILE_4_SLICE}, "4g.24gb", 1000},
		{"NVIDIA H100 80GB HBM3", h100, 7, migShape{1, 1, 9984, nvml.GPU_INSTANCE_PROFILE_1_SLICE}, "1g.10gb", 143},
		{"NVIDIA H100 80GB HBM3", h100, 7, migShape{3, 3, 40448, nvml.GPU_INSTANCE_PROFILE_3_SLICE}, "3g.40gb", 500},
		{"NVIDIA H100 NVL", h100nvl, 7, migShape{1, 1, 11008, nvml.GPU_INSTANCE_PROFILE_1_SLICE}, "1g.12gb", 143},
		{"NVIDIA H100 NVL", h100nvl, 7, migShape{3, 3, 46848, nvml.GPU_INSTANCE_PROFILE_3_SLICE}, "3g.47gb", 500},
		{"NVIDIA H200", h200, 7, migShape{1, 1, 16384, nvml.GPU_INSTANCE_PROFILE_1_SLICE}, "1g.18gb", 143},
		{"NVIDIA H200", h200, 7, migShape{1, 1, 33792, nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2}, "1g.35gb", 250},
		{"NVIDIA H200", h200, 7, migShape{3, 3, 69632, nvml.GPU_INSTANCE_PROFILE_3_SLICE}, "3g.71gb", 500},
		{"NVIDIA H200", h200, 7, migShape{7, 7, 140288, nvml.GPU_INSTANCE_PROFILE_7_SLICE}, "7g.141gb", 1000},
		{"NVIDIA H200", h200, 7, migShape{2, 2, 33792, nvml.GPU_INSTANCE_PROFILE_2_SLICE_GFX}, "2g.35gb+gfx", 286},
		{"NVIDIA H200", h200, 7, migShape{1, 1, 16384, nvml.GPU_INSTANCE_PROFILE_1_SLICE_NO_ME}, "1g.18gb-me", 143},
		{"NVIDIA H200", h200, 7, migShape{1, 1, 16384, nvml.GPU_INSTANCE_PROFILE_1_SLICE_ALL_ME}, "1g.18gb+me.all", 143},
		{"NVIDIA H200", h200, 7, migShape{1, 1, 16384, -1}, "1g.18gb", 143}, // from attributes
	}
	for _, tc := range cases {
		name, w, ok := shapeProfile(tc.shape, tc.computeTotal, tc.memTotal)
		if !ok || name != tc.want || w != tc.weight {
			t.Errorf("%s %+v = %q, %d, %v; want %q, %d", tc.model, tc.shape, name, w, ok, tc.want, tc.weight)
			continue
		}
		if p := profileFromName("X MIG " + name); p == "" {
			continue // a variant ParseProfile does not read ("-me")
		}
		if static, err := accounting.MIGWeight(tc.model, name); err != nil || static != w {
			t.Errorf("%s %s: profile info gives %d, accounting.MIGWeight %d (%v)", tc.model, name, w, static, err)
		}
	}
}

func TestShapeProfileUnknown(t *testing.T) {
	for _, tc := range []struct {
		shape        migShape
		computeTotal int
		memTotal     uint64
	}{
		{migShape{1, 1, 9728, 0}, 0, 81920 * mib}, // no compute total
		{migShape{1, 1, 9728, 0}, 7, 0},           // no memory total
		{migShape{0, 0, 9728, 0}, 7, 81920 * mib}, // no slices
		{migShape{8, 8, 9728, 0}, 7, 81920 * mib}, // more slices than the GPU
		{migShape{1, 1, 0, 0}, 7, 81920 * mib},    // no memory
	} {
		if name, w, ok := shapeProfile(tc.shape, tc.computeTotal, tc.memTotal); ok {
			t.Errorf("shapeProfile(%+v, %d, %d) = %q, %d; want not ok", tc.shape, tc.computeTotal, tc.memTotal, name, w)
		}
	}
	// Memory beyond the GPU's is capped at the whole GPU.
	if e := memEighths(200000, 81920*mib); e != 8 {
		t.Errorf("memEighths over the total = %d, want 8", e)
	}
	if e := memEighths(1, 81920*mib); e != 1 {
		t.Errorf("memEighths of 1 MiB = %d, want 1", e)
	}
}

func TestProfileFromName(t *testing.T) {
	for name, want := range map[string]string{
		"NVIDIA A100-SXM4-80GB MIG 1g.10gb":    "1g.10gb",
		"NVIDIA A100-SXM4-40GB MIG 1c.3g.20gb": "1c.3g.20gb",
		"NVIDIA H200 MIG 1g.18gb+me":           "1g.18gb+me",
		"NVIDIA A100-SXM4-80GB":                "",
		"NVIDIA A100 MIG ":                     "",
		"MIG 3g":                               "",
		"MIG 1g.10gb extra":                    "",
		"":                                     "",
	} {
		if got := profileFromName(name); got != want {
			t.Errorf("profileFromName(%q) = %q, want %q", name, got, want)
		}
	}
}

// FuzzProfileFromName: any device name gives a parseable profile or none,
// never a panic.
func FuzzProfileFromName(f *testing.F) {
	for _, s := range []string{"NVIDIA A100-SXM4-80GB MIG 1g.10gb", "MIG 1c.3g.40gb", "MIG MIG 7g.80gb+me.all", "MIG 99999999999999999999g.1gb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p := profileFromName(name)
		if p == "" {
			return
		}
		if _, err := accounting.ParseProfile(p); err != nil {
			t.Errorf("profileFromName(%q) = %q, which does not parse: %v", name, p, err)
		}
	})
}
