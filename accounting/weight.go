package accounting

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MilliPerGPU is the weight of one whole GPU.
const MilliPerGPU = 1000

// Class is the resource class of an allocation, one of the ledger's keys.
type Class string

// Resource classes.
const (
	ClassGPU     Class = "gpu"     // a whole physical GPU
	ClassMIG     Class = "mig"     // a MIG instance of a physical GPU
	ClassShared  Class = "shared"  // a fraction of a GPU (time-slicing, gpu_milli)
	ClassFPGA    Class = "fpga"    // an FPGA card
	ClassOffload Class = "offload" // GPUs requested on a virtual node (InterLink)
)

// Valid reports whether c is one of the known classes.
func (c Class) Valid() bool {
	switch c {
	case ClassGPU, ClassMIG, ClassShared, ClassFPGA, ClassOffload:
		return true
	}
	return false
}

// ErrUnknownProfile is returned when a MIG profile is not known for a model.
var ErrUnknownProfile = errors.New("unknown MIG profile")

// Geometry is how a GPU model is divided by MIG: the number of compute
// slices and memory slices of the whole GPU and the size of one memory slice.
type Geometry struct {
	Family         string // canonical family, e.g. "A100-80GB"
	ComputeSlices  int    // 7 on A100/H100/H200, 4 on A30
	MemorySlices   int    // 8 on A100/H100/H200, 4 on A30
	MemorySliceGiB int    // nominal size of one memory slice in the profile names
}

// geometries are the MIG-capable families. The memory slice size is the unit
// NVIDIA uses in profile names (1g.10gb on an A100-80GB is one slice).
var geometries = []Geometry{
	{Family: "A100-40GB", ComputeSlices: 7, MemorySlices: 8, MemorySliceGiB: 5},
	{Family: "A100-80GB", ComputeSlices: 7, MemorySlices: 8, MemorySliceGiB: 10},
	{Family: "A30", ComputeSlices: 4, MemorySlices: 4, MemorySliceGiB: 6},
	{Family: "H100-80GB", ComputeSlices: 7, MemorySlices: 8, MemorySliceGiB: 10},
	{Family: "H100-94GB", ComputeSlices: 7, MemorySlices: 8, MemorySliceGiB: 12},
	{Family: "H200-141GB", ComputeSlices: 7, MemorySlices: 8, MemorySliceGiB: 18},
}

// Family maps a GPU model name, as NVML reports it ("NVIDIA A100-SXM4-80GB",
// "NVIDIA A30", "NVIDIA H200") or in the short form used by scenarios
// ("A100-80GB"), to its MIG family. It returns "" for models without MIG.
// Names are matched word by word, so "NVIDIA RTX A1000" is not an A100 and
// "NVIDIA RTX A3000" is not an A30.
func Family(model string) string {
	words := strings.FieldsFunc(strings.ToUpper(model), func(r rune) bool {
		return (r < 'A' || r > 'Z') && (r < '0' || r > '9')
	})
	has := func(w string) bool { return slices.Contains(words, w) }
	switch {
	case has("GH200") || has("H200"):
		return "H200-141GB"
	case has("H100") && (has("94GB") || has("NVL")):
		return "H100-94GB"
	case has("H100"):
		return "H100-80GB"
	case has("A100") && has("80GB"):
		return "A100-80GB"
	case has("A100"):
		return "A100-40GB"
	case has("A30"):
		return "A30"
	}
	return ""
}

// GeometryOf returns the MIG geometry of a model.
func GeometryOf(model string) (Geometry, bool) {
	f := Family(model)
	for _, g := range geometries {
		if g.Family == f {
			return g, true
		}
	}
	return Geometry{}, false
}

// Profile is a parsed MIG profile name such as "3g.40gb", "1g.10gb+me" or
// the compute-instance form "1c.3g.40gb".
type Profile struct {
	Name            string
	ComputeSlices   int // g of the GPU instance
	ComputeInstance int // c of a compute-instance profile, 0 when the profile is a whole GPU instance
	MemoryGiB       int
}

// ParseProfile parses a MIG profile name.
func ParseProfile(name string) (Profile, error) {
	p := Profile{Name: name}
	s := strings.ToLower(name)
	if i := strings.IndexByte(s, '+'); i >= 0 { // +me, +gfx, +me.all
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) == 3 {
		c, ok := strings.CutSuffix(parts[0], "c")
		n, err := strconv.Atoi(c)
		if !ok || err != nil || n <= 0 {
			return p, fmt.Errorf("MIG profile %q: bad compute-instance part %q", name, parts[0])
		}
		p.ComputeInstance = n
		parts = parts[1:]
	}
	if len(parts) != 2 {
		return p, fmt.Errorf("MIG profile %q: want <n>g.<m>gb", name)
	}
	g, ok := strings.CutSuffix(parts[0], "g")
	n, err := strconv.Atoi(g)
	if !ok || err != nil || n <= 0 {
		return p, fmt.Errorf("MIG profile %q: bad slice part %q", name, parts[0])
	}
	mem, ok := strings.CutSuffix(parts[1], "gb")
	m, err := strconv.Atoi(mem)
	if !ok || err != nil || m <= 0 {
		return p, fmt.Errorf("MIG profile %q: bad memory part %q", name, parts[1])
	}
	if p.ComputeInstance > n {
		return p, fmt.Errorf("MIG profile %q: compute instance larger than its GPU instance", name)
	}
	p.ComputeSlices, p.MemoryGiB = n, m
	return p, nil
}

// MIGWeight returns the weight in milli-GPU of a MIG profile on a model:
// max(compute share, memory share) of the parent GPU, rounded half up to a
// whole milli-GPU. A compute-instance profile ("1c.3g.40gb") weighs its
// share c/g of its GPU instance.
func MIGWeight(model, profile string) (int64, error) {
	geo, ok := GeometryOf(model)
	if !ok {
		return 0, fmt.Errorf("%w: model %q has no MIG geometry", ErrUnknownProfile, model)
	}
	p, err := ParseProfile(profile)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnknownProfile, err)
	}
	if p.ComputeSlices > geo.ComputeSlices {
		return 0, fmt.Errorf("%w: %s has %d compute slices, profile %q wants %d",
			ErrUnknownProfile, geo.Family, geo.ComputeSlices, profile, p.ComputeSlices)
	}
	memSlices := (p.MemoryGiB + geo.MemorySliceGiB - 1) / geo.MemorySliceGiB
	if memSlices > geo.MemorySlices {
		return 0, fmt.Errorf("%w: %s has %d GiB per memory slice, profile %q needs %d of %d slices",
			ErrUnknownProfile, geo.Family, geo.MemorySliceGiB, profile, memSlices, geo.MemorySlices)
	}
	num, den := maxShare(p.ComputeSlices, geo.ComputeSlices, memSlices, geo.MemorySlices)
	if p.ComputeInstance > 0 {
		// c/g of the GPU instance, rounded once from the exact fraction.
		num *= int64(p.ComputeInstance)
		den *= int64(p.ComputeSlices)
	}
	return divRound(num*MilliPerGPU, den), nil
}

// WeightFromSlices computes a MIG weight from the slice counts NVML reports
// in a GPU instance profile (SliceCount, and the memory size turned into
// memory slices) against the totals of the parent GPU.
// Totals that are not positive give 0.
func WeightFromSlices(compute, computeTotal, memory, memoryTotal int) int64 {
	if computeTotal <= 0 || memoryTotal <= 0 || compute < 0 || memory < 0 {
		return 0
	}
	num, den := maxShare(compute, computeTotal, memory, memoryTotal)
	return divRound(num*MilliPerGPU, den)
}

// maxShare returns max(compute/computeTotal, memory/memoryTotal) as a
// fraction, compared without floats; totals are positive.
func maxShare(compute, computeTotal, memory, memoryTotal int) (num, den int64) {
	cn, cd := int64(compute), int64(computeTotal)
	mn, md := int64(memory), int64(memoryTotal)
	if mn*cd > cn*md {
		return mn, md
	}
	return cn, cd
}

// FractionWeight returns the weight of a fractional share given in
// milli-GPU (gpu_milli) or as 1/replicas of a time-sliced GPU.
func FractionWeight(milli int64, replicas int) (int64, error) {
	switch {
	case milli > 0 && milli <= MilliPerGPU:
		return milli, nil
	case milli != 0:
		return 0, fmt.Errorf("fraction %d milli-GPU out of range (1..1000)", milli)
	case replicas > 0:
		return divRound(MilliPerGPU, int64(replicas)), nil
	}
	return MilliPerGPU, nil
}

// divRound divides rounding half up; n, d > 0.
func divRound(n, d int64) int64 { return (2*n + d) / (2 * d) }
