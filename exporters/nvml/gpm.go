package nvml

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// gpmSymbols are the GPM functions of the driver (R520 and newer). go-nvml
// calls them directly, so on an older driver they must not be called.
var gpmSymbols = []string{"nvmlGpmQueryDeviceSupport", "nvmlGpmSampleAlloc", "nvmlGpmSampleFree",
	"nvmlGpmSampleGet", "nvmlGpmMigSampleGet", "nvmlGpmMetricsGet"}

// gpmKey names a sampled unit: a whole GPU (gi −1) or one of its GPU
// instances.
type gpmKey struct {
	uuid string
	gi   int
}

// gpmState holds a unit's last sample and the buffer for the next.
type gpmState struct {
	prev, cur nvml.GpmSample
	havePrev  bool
}

// gpmSampler measures graphics-engine activity with GPU performance
// monitoring: a sample per unit per poll, the activity between a unit's
// last two samples, so over exactly one poll interval. Only the polling
// goroutine uses it.
type gpmSampler struct {
	lib     nvml.Interface
	errs    *callErrors
	checked bool // the driver's GPM symbols were looked up
	present bool // and found
	support map[string]bool
	states  map[gpmKey]*gpmState
	seen    map[gpmKey]bool
}

func newGPMSampler(lib nvml.Interface, errs *callErrors) *gpmSampler {
	return &gpmSampler{lib: lib, errs: errs, support: map[string]bool{},
		states: map[gpmKey]*gpmState{}, seen: map[gpmKey]bool{}}
}

// driverHasGPM reports whether the loaded driver exports the GPM API.
func (g *gpmSampler) driverHasGPM() bool {
	if g.checked {
		return g.present
	}
	g.checked = true
	ext := g.lib.Extensions()
	if ext == nil {
		return false
	}
	for _, s := range gpmSymbols {
		if ext.LookupSymbol(s) != nil {
			return false
		}
	}
	g.present = true
	return true
}

// supported reports whether GpmQueryDeviceSupport says the GPU supports
// GPM (Hopper and newer). The answer is kept once NVML gave one.
func (g *gpmSampler) supported(p *gpuPoll, dev nvml.Device) bool {
	if s, ok := g.support[p.ref.uuid]; ok {
		return s
	}
	if !g.driverHasGPM() {
		return false
	}
	s, ret := dev.GpmQueryDeviceSupport()
	switch ret {
	case nvml.SUCCESS:
		g.support[p.ref.uuid] = s.IsSupportedDevice != 0
	case nvml.ERROR_NOT_SUPPORTED:
		g.support[p.ref.uuid] = false
	default:
		p.ok("nvmlGpmQueryDeviceSupport", ret)
		return false
	}
	return g.support[p.ref.uuid]
}

// activity takes a sample of the unit with get and returns its graphics
// activity (0–1) since the previous one; ok is false on the unit's first
// sample and when NVML fails.
func (g *gpmSampler) activity(p *gpuPoll, k gpmKey, get func(nvml.GpmSample) nvml.Return) (v float64, ok bool) {
	g.seen[k] = true
	st := g.states[k]
	if st == nil {
		st = &gpmState{}
		var ret nvml.Return
		if st.prev, ret = g.lib.GpmSampleAlloc(); !p.ok("nvmlGpmSampleAlloc", ret) {
			return 0, false
		}
		if st.cur, ret = g.lib.GpmSampleAlloc(); !p.ok("nvmlGpmSampleAlloc", ret) {
			st.prev.Free()
			return 0, false
		}
		g.states[k] = st
	}
	if !p.ok("nvmlGpmSampleGet", get(st.cur)) {
		st.havePrev = false
		return 0, false
	}
	if st.havePrev {
		v, ok = g.graphicsUtil(p, st.prev, st.cur)
	}
	st.prev, st.cur, st.havePrev = st.cur, st.prev, true
	return v, ok
}

// graphicsUtil computes GPM_METRIC_GRAPHICS_UTIL (a percentage) between
// two samples, as a ratio.
func (g *gpmSampler) graphicsUtil(p *gpuPoll, s1, s2 nvml.GpmSample) (float64, bool) {
	mg := nvml.GpmMetricsGetType{NumMetrics: 1, Sample1: s1, Sample2: s2}
	mg.Metrics[0].MetricId = uint32(nvml.GPM_METRIC_GRAPHICS_UTIL)
	if !p.ok("nvmlGpmMetricsGet", g.lib.GpmMetricsGet(&mg)) {
		return 0, false
	}
	if r := nvml.Return(mg.Metrics[0].NvmlReturn); !p.ok("nvmlGpmMetricsGet(GRAPHICS_UTIL)", r) {
		return 0, false
	}
	return clamp01(mg.Metrics[0].Value / perPercent), true
}

// sweep frees the samples of units not seen since the last sweep (a GPU
// instance destroyed, a GPU gone).
func (g *gpmSampler) sweep() {
	for k, st := range g.states {
		if !g.seen[k] {
			st.free()
			delete(g.states, k)
		}
	}
	clear(g.seen)
}

// freeAll frees every sample.
func (g *gpmSampler) freeAll() {
	for k, st := range g.states {
		st.free()
		delete(g.states, k)
	}
}

func (st *gpmState) free() {
	st.prev.Free()
	st.cur.Free()
}
