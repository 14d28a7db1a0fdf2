package dcgm

import "math"

// Field is a DCGM field the source reads. Values are kept in base units:
// ratios from 0 to 1, bytes, watts, joules.
type Field int

// The fields read from a dcgm-exporter body. Every other metric is ignored.
const (
	// GraphicsActive is DCGM_FI_PROF_GR_ENGINE_ACTIVE: the fraction of
	// time the graphics or compute engine was active.
	GraphicsActive Field = iota
	// TensorActive is DCGM_FI_PROF_PIPE_TENSOR_ACTIVE: the fraction of
	// cycles the tensor pipe was active.
	TensorActive
	// DRAMActive is DCGM_FI_PROF_DRAM_ACTIVE: the fraction of cycles the
	// device memory interface was sending or receiving data.
	DRAMActive
	// SMActive is DCGM_FI_PROF_SM_ACTIVE: the fraction of time at least
	// one warp was active on a multiprocessor, averaged over all of them.
	SMActive
	// GPUUtil is DCGM_FI_DEV_GPU_UTIL, a percentage, kept as a ratio.
	GPUUtil
	// FBUsed is DCGM_FI_DEV_FB_USED, in MiB, kept in bytes.
	FBUsed
	// FBFree is DCGM_FI_DEV_FB_FREE, in MiB, kept in bytes.
	FBFree
	// Power is DCGM_FI_DEV_POWER_USAGE, in watts.
	Power
	// Energy is DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, in millijoules
	// since the driver was loaded, kept in joules.
	Energy
	// XID is DCGM_FI_DEV_XID_ERRORS: the value of the last XID error
	// (0 when none), not a count.
	XID

	numFields
)

// fieldSpec says how a field is read: its DCGM name, the factor from
// DCGM's unit to ours, and the largest valid value in our unit (0: no
// upper bound). Every field is non-negative.
type fieldSpec struct {
	name  string
	scale float64
	max   float64
}

const mib = 1 << 20

var fieldSpecs = [numFields]fieldSpec{
	GraphicsActive: {"DCGM_FI_PROF_GR_ENGINE_ACTIVE", 1, 1},
	TensorActive:   {"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", 1, 1},
	DRAMActive:     {"DCGM_FI_PROF_DRAM_ACTIVE", 1, 1},
	SMActive:       {"DCGM_FI_PROF_SM_ACTIVE", 1, 1},
	GPUUtil:        {"DCGM_FI_DEV_GPU_UTIL", 0.01, 1},
	FBUsed:         {"DCGM_FI_DEV_FB_USED", mib, 0},
	FBFree:         {"DCGM_FI_DEV_FB_FREE", mib, 0},
	Power:          {"DCGM_FI_DEV_POWER_USAGE", 1, 0},
	Energy:         {"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 0.001, 0},
	XID:            {"DCGM_FI_DEV_XID_ERRORS", 1, 0},
}

// ratioSlack is how far above 1 a ratio may read and still be taken as 1:
// DCGM derives its ratios from counters sampled at slightly different
// instants, and rounding can overshoot.
const ratioSlack = 0.001

// Fields returns every field the source reads, in order.
func Fields() []Field {
	out := make([]Field, numFields)
	for f := range numFields {
		out[f] = f
	}
	return out
}

// String returns the field's DCGM metric name.
func (f Field) String() string {
	if f < 0 || f >= numFields {
		return "unknown"
	}
	return fieldSpecs[f].name
}

// convert turns a raw DCGM value into the field's unit. ok is false, with
// the drop reason, when the value is not finite or out of range.
func (f Field) convert(raw float64) (v float64, reason string, ok bool) {
	if math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 0, ReasonNaN, false
	}
	spec := fieldSpecs[f]
	v = raw * spec.scale
	switch {
	case v < 0:
		return 0, ReasonOutOfRange, false
	case v == 0:
		return 0, "", true // and not -0
	}
	if spec.max > 0 && v > spec.max {
		if v > spec.max*(1+ratioSlack) {
			return 0, ReasonOutOfRange, false
		}
		v = spec.max
	}
	if math.IsInf(v, 0) { // a huge finite value scaled past float64
		return 0, ReasonOutOfRange, false
	}
	return v, "", true
}
