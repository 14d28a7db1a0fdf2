package nvmltest

import (
	"fmt"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
)

// A100Name is the name NVML gives an A100-SXM4-80GB.
const A100Name = "NVIDIA A100-SXM4-80GB"

// A100Specs is a mixed A100 node: eight A100-SXM4-80GB, GPU 0 idle, GPUs
// 6 and 7 in MIG mode (GPU 6: a 3g.40gb and three 1g.10gb; GPU 7: two
// 3g.40gb, with the GPU-instance IDs NVML gives them).
func A100Specs() []GPUSpec {
	specs := make([]GPUSpec, 8)
	for i := range specs {
		specs[i] = GPUSpec{
			PowerMW: 60000 + uint32(i)*45250, EnergyMJ: 123456789 + uint64(i)*1000, TempC: 31 + uint32(i)*6,
			SMMHz: 1410, MemMHz: 1593, ECCCorr: uint64(i % 3), ECCUncorr: 0,
			UtilPct: uint32(i) * 14, MemUsedMiB: uint64(i) * 8192,
		}
	}
	specs[0].SMMHz = 210 // idle
	specs[6].MIGs = []MIGSpec{
		{GIProfile: nvml.GPU_INSTANCE_PROFILE_3_SLICE, GIID: 2, CIID: 0, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_3_SLICE, MemUsedMiB: 20480},
		{GIProfile: nvml.GPU_INSTANCE_PROFILE_1_SLICE, GIID: 9, CIID: 0, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE, MemUsedMiB: 1024},
		{GIProfile: nvml.GPU_INSTANCE_PROFILE_1_SLICE, GIID: 10, CIID: 0, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE},
		{GIProfile: nvml.GPU_INSTANCE_PROFILE_1_SLICE, GIID: 11, CIID: 0, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE, MemUsedMiB: 9000},
	}
	specs[6].MemUsedMiB = 20480 + 1024 + 9000
	specs[7].MIGs = []MIGSpec{
		{GIProfile: nvml.GPU_INSTANCE_PROFILE_3_SLICE, GIID: 1, CIID: 0, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_3_SLICE, MemUsedMiB: 30000},
		{GIProfile: nvml.GPU_INSTANCE_PROFILE_3_SLICE, GIID: 2, CIID: 0, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_3_SLICE},
	}
	specs[7].MemUsedMiB = 30000
	return specs
}

// A100MIG1g is a node of n A100-SXM4-80GB, each split into seven MIG
// 1g.10gb with GPU-instance IDs 7 to 13 (as NVML numbers them), GPU i
// drawing 100+10·i W.
func A100MIG1g(n int) []GPUSpec {
	specs := make([]GPUSpec, n)
	for i := range specs {
		s := GPUSpec{PowerMW: 100000 + uint32(i)*10000, EnergyMJ: 987654321 + uint64(i)*1000, TempC: 40 + uint32(i),
			SMMHz: 1410, MemMHz: 1593, MIGs: []MIGSpec{}}
		for k := range 7 {
			used := uint64(1024 * (k + 1))
			s.MIGs = append(s.MIGs, MIGSpec{GIProfile: nvml.GPU_INSTANCE_PROFILE_1_SLICE, GIID: 7 + k, CIID: 0,
				CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE, MemUsedMiB: used})
			s.MemUsedMiB += used
		}
		specs[i] = s
	}
	return specs
}

// NewA100 builds a fake A100-SXM4-80GB node from specs, UUIDs tagged tag
// (8 hexadecimal digits). Its MIG devices are named as NVML names them:
// "NVIDIA A100-SXM4-80GB MIG 1g.10gb", "… MIG 1c.3g.40gb" for a compute
// instance smaller than its GPU instance.
func NewA100(tb testing.TB, tag string, specs []GPUSpec) *Lib {
	tb.Helper()
	l := New(tb, A100SXM4_80GB(), 81920, tag, false, specs)
	for _, g := range l.GPUs {
		for _, m := range g.MIGs {
			m.Name = A100Name + " MIG " + migProfileName(m.Spec)
		}
	}
	return l
}

// migProfileName is the A100-80GB profile name of a MIG device.
func migProfileName(ms MIGSpec) string {
	name := a100ProfileNames[ms.GIProfile]
	ciSlices := map[int]uint32{nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE: 1, nvml.COMPUTE_INSTANCE_PROFILE_2_SLICE: 2,
		nvml.COMPUTE_INSTANCE_PROFILE_3_SLICE: 3, nvml.COMPUTE_INSTANCE_PROFILE_4_SLICE: 4}[ms.CIProfile]
	if ciSlices > 0 && ciSlices < A100Profiles[ms.GIProfile].SliceCount {
		name = fmt.Sprintf("%dc.%s", ciSlices, name)
	}
	return name
}

// NewH200 builds a fake H200 node: GPU 0 whole, GPU 1 in MIG mode with a
// 3g.71gb split into a 1-slice and a 2-slice compute instance and a
// 1g.18gb+me; GPM supported.
func NewH200(tb testing.TB) *Lib {
	tb.Helper()
	specs := []GPUSpec{
		{PowerMW: 512345, EnergyMJ: 9876543210, TempC: 58, SMMHz: 1980, MemMHz: 3201, UtilPct: 97, MemUsedMiB: 100000, GPMPct: 83},
		{PowerMW: 300000, EnergyMJ: 5000000000, TempC: 44, SMMHz: 1980, MemMHz: 3201, MemUsedMiB: 50000, GPMPct: 40,
			MIGs: []MIGSpec{
				{GIProfile: nvml.GPU_INSTANCE_PROFILE_3_SLICE, GIID: 1, CIID: 0, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE, MemUsedMiB: 30000, GPMPct: 60},
				{GIProfile: nvml.GPU_INSTANCE_PROFILE_3_SLICE, GIID: 1, CIID: 1, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_2_SLICE, MemUsedMiB: 30000, GPMPct: 60},
				{GIProfile: nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1, GIID: 13, CIID: 0, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE, MemUsedMiB: 2048, GPMPct: 5},
			}},
	}
	cfg := gpus.H200_SXM5_141GB
	cfg.Name = "NVIDIA H200" // what NVML reports on an H200 SXM
	l := New(tb, cfg, 143771, "h200h200", true, specs)
	for _, m := range l.GPUs[1].MIGs {
		m.Name = "NVIDIA H200 MIG 3g.71gb"
	}
	return l
}

// H100Name is the name NVML gives an H100 SXM5 80GB.
const H100Name = "NVIDIA H100 80GB HBM3"

// NewH100 builds a fake H100 SXM5 80GB node: GPU 0 whole, GPU 1 in MIG
// mode split as a 4g.40gb, a 2g.20gb and a 1g.10gb (seven slices, with the
// GPU-instance IDs NVML gives them); GPM supported, as on every Hopper.
func NewH100(tb testing.TB) *Lib {
	tb.Helper()
	specs := []GPUSpec{
		{PowerMW: 650000, EnergyMJ: 4321000000, TempC: 61, SMMHz: 1980, MemMHz: 2619, UtilPct: 88, MemUsedMiB: 70000, GPMPct: 71},
		{PowerMW: 280000, EnergyMJ: 1234000000, TempC: 40, SMMHz: 1980, MemMHz: 2619, MemUsedMiB: 40000, GPMPct: 30,
			MIGs: []MIGSpec{
				{GIProfile: nvml.GPU_INSTANCE_PROFILE_4_SLICE, GIID: 1, CIID: 0, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_4_SLICE, MemUsedMiB: 20000, GPMPct: 50},
				{GIProfile: nvml.GPU_INSTANCE_PROFILE_2_SLICE, GIID: 5, CIID: 0, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_2_SLICE, MemUsedMiB: 15000, GPMPct: 20},
				{GIProfile: nvml.GPU_INSTANCE_PROFILE_1_SLICE, GIID: 13, CIID: 0, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE, MemUsedMiB: 5000, GPMPct: 10},
			}},
	}
	l := New(tb, gpus.H100_SXM5_80GB, 81559, "h100h100", true, specs)
	names := map[int]string{nvml.GPU_INSTANCE_PROFILE_4_SLICE: "4g.40gb", nvml.GPU_INSTANCE_PROFILE_2_SLICE: "2g.20gb",
		nvml.GPU_INSTANCE_PROFILE_1_SLICE: "1g.10gb"}
	for _, m := range l.GPUs[1].MIGs {
		m.Name = H100Name + " MIG " + names[m.Spec.GIProfile]
	}
	return l
}
