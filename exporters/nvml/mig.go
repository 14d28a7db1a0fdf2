package nvml

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/exporters/metrics"
	"github.com/gpuledger/gpuledger/exporters/node"
)

// memEighthsTotal is the unit of a MIG memory share: NVIDIA sizes and
// names profiles in eighths of the GPU's memory (A30's quarters are whole
// pairs of eighths).
const memEighthsTotal = 8

const gib = 1 << 30

// migShape is what NVML says about a MIG device's GPU and compute
// instances.
type migShape struct {
	giSlices int    // compute slices of the GPU instance
	ciSlices int    // compute slices of the compute instance (≤ giSlices)
	memMiB   uint64 // memory of the GPU instance
	// giProfile is the NVML_GPU_INSTANCE_PROFILE_* index of the GPU
	// instance (for the +me/+gfx suffix), -1 when unknown.
	giProfile int
}

// giProfiles is a GPU's GPU-instance profile table.
type giProfiles struct {
	byID map[uint32]giProfile
	// computeTotal is the GPU's compute slices: the slice count of its
	// largest profile (7 on A100/H100/H200, 4 on A30).
	computeTotal int
}

type giProfile struct {
	index int // NVML_GPU_INSTANCE_PROFILE_* constant
	info  nvml.GpuInstanceProfileInfo
}

type ciTableKey struct {
	uuid      string
	giProfile uint32
}

// profileCache keeps the profile tables, which do not change while the
// driver is loaded. Only the polling goroutine uses it.
type profileCache struct {
	gi map[string]*giProfiles           // by GPU UUID
	ci map[ciTableKey]map[uint32]uint32 // CI profile ID → slice count
}

func newProfileCache() *profileCache {
	return &profileCache{gi: map[string]*giProfiles{}, ci: map[ciTableKey]map[uint32]uint32{}}
}

// gpuInstanceProfiles returns the GPU's profile table (nil when NVML has
// none), reading it on first use. NVML's profile IDs (19 for 1g.10gb on an
// A100-80GB) differ from the NVML_GPU_INSTANCE_PROFILE_* indices it is
// queried by, so the table is keyed by ID.
func (pc *profileCache) gpuInstanceProfiles(p *gpuPoll, dev nvml.Device) *giProfiles {
	if t, ok := pc.gi[p.ref.uuid]; ok {
		return t
	}
	t := &giProfiles{byID: map[uint32]giProfile{}}
	complete := true
	for idx := range nvml.GPU_INSTANCE_PROFILE_COUNT {
		info, ret := dev.GetGpuInstanceProfileInfo(idx)
		switch ret {
		case nvml.SUCCESS:
			t.byID[info.Id] = giProfile{index: idx, info: info}
			t.computeTotal = max(t.computeTotal, int(info.SliceCount))
		case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_INVALID_ARGUMENT, nvml.ERROR_NOT_FOUND:
			// not a profile of this GPU
		default:
			complete = false
			p.ok("nvmlDeviceGetGpuInstanceProfileInfo", ret)
		}
	}
	if len(t.byID) == 0 {
		t = nil
	}
	if complete {
		pc.gi[p.ref.uuid] = t
	}
	return t
}

// ciSlices returns the compute slices of compute instance ci of gi, or 0
// when NVML cannot say.
func (pc *profileCache) ciSlices(p *gpuPoll, gi nvml.GpuInstance, giProfileID uint32, ci int) int {
	h, ret := gi.GetComputeInstanceById(ci)
	if !p.optional("nvmlGpuInstanceGetComputeInstanceById", ret) {
		return 0
	}
	info, ret := h.GetInfo()
	if !p.ok("nvmlComputeInstanceGetInfo", ret) {
		return 0
	}
	key := ciTableKey{uuid: p.ref.uuid, giProfile: giProfileID}
	table, ok := pc.ci[key]
	if !ok {
		table = map[uint32]uint32{}
		for idx := range nvml.COMPUTE_INSTANCE_PROFILE_COUNT {
			pi, ret := gi.GetComputeInstanceProfileInfo(idx, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
			if ret == nvml.SUCCESS {
				table[pi.Id] = pi.SliceCount
			}
		}
		if len(table) > 0 {
			pc.ci[key] = table
		}
	}
	return int(table[info.ProfileId])
}

// optional is ok for calls that have a fallback: lacking permission
// (GPU-instance handles need a privileged process) is logged once, not
// counted.
func (p *gpuPoll) optional(call string, ret nvml.Return) bool {
	if ret == nvml.ERROR_NO_PERMISSION {
		p.c.errs.logOnce(p.ref, call, ret, "NVML call not permitted; using a fallback")
		return false
	}
	return p.ok(call, ret)
}

// migSeries is one MIG device as read in a poll.
type migSeries struct {
	uuid    string
	gi, ci  int
	profile string
	weight  int64 // milli-GPU; 0 when unknown
}

// pollMIG reads the MIG devices of a MIG-enabled GPU: their series, their
// inventory devices and activity. It reports whether the layout was read
// in full.
func (p *gpuPoll) pollMIG(parent nvml.Device, model string, memTotal uint64, gpm bool) bool {
	n, ret := parent.GetMaxMigDeviceCount()
	if !p.ok("nvmlDeviceGetMaxMigDeviceCount", ret) {
		return false
	}
	par := p.migParent(parent, model, memTotal)
	sampled := map[int]gpmValue{} // GPM samples a GPU instance once a poll
	complete := true
	for i := range n {
		mig, ret := parent.GetMigDeviceHandleByIndex(i)
		if ret == nvml.ERROR_NOT_FOUND || ret == nvml.ERROR_INVALID_ARGUMENT {
			continue // an empty slot
		}
		if !p.ok("nvmlDeviceGetMigDeviceHandleByIndex", ret) {
			complete = false
			continue
		}
		m, ok := p.migIdentity(parent, mig, model, par)
		if !ok {
			complete = false
			continue
		}
		labels := append(slices.Clip(p.labels), m.uuid, strconv.Itoa(m.gi), strconv.Itoa(m.ci), m.profile)
		p.addMIG(mig, m, model, labels)
		if gpm {
			p.addMIGActivity(parent, m, labels, sampled)
		}
	}
	return complete
}

// migParent reads what the weights of a GPU's MIG devices need of it.
func (p *gpuPoll) migParent(parent nvml.Device, model string, memTotal uint64) migParent {
	par := migParent{profiles: p.c.profiles.gpuInstanceProfiles(p, parent), memTotal: memTotal}
	if par.profiles != nil {
		par.computeTotal = par.profiles.computeTotal
	} else if geo, ok := accounting.GeometryOf(model); ok {
		par.computeTotal = geo.ComputeSlices
	}
	return par
}

// addMIG appends a MIG device's identity, weight and memory series and
// its inventory device; one of unknown weight is not published.
func (p *gpuPoll) addMIG(mig nvml.Device, m migSeries, model string, labels []string) {
	p.add(metrics.MIGInfo, prometheus.GaugeValue, 1, labels...)
	if m.weight > 0 {
		p.add(metrics.MIGWeight, prometheus.GaugeValue, float64(m.weight)/accounting.MilliPerGPU, labels...)
		p.devices = append(p.devices, node.Device{
			ID: m.uuid, Class: accounting.ClassMIG, GPUUUID: p.ref.uuid, GPU: p.ref.index,
			Model: model, Profile: m.profile, GPUInstanceID: m.gi, ComputeInstanceID: m.ci,
			WeightMilli: m.weight,
		})
	} else {
		p.c.errs.logOnce(p.ref, "weight of "+m.uuid, nvml.ERROR_NOT_FOUND,
			"MIG instance weight unknown; not published to the inventory")
	}
	if mem, ret := mig.GetMemoryInfo(); p.ok("nvmlDeviceGetMemoryInfo(MIG)", ret) {
		p.add(metrics.MIGMemoryTotal, prometheus.GaugeValue, float64(mem.Total), labels...)
		p.add(metrics.MIGMemoryUsed, prometheus.GaugeValue, float64(mem.Used), labels...)
	}
}

// gpmValue is a GPM reading; ok is false when there is none.
type gpmValue struct {
	v  float64
	ok bool
}

// addMIGActivity appends a MIG device's GPM activity, sampling its GPU
// instance once a poll (its compute instances share the value).
func (p *gpuPoll) addMIGActivity(parent nvml.Device, m migSeries, labels []string, sampled map[int]gpmValue) {
	a, done := sampled[m.gi]
	if !done {
		gi := m.gi
		a.v, a.ok = p.c.gpm.activity(p, gpmKey{uuid: p.ref.uuid, gi: gi}, func(s nvml.GpmSample) nvml.Return {
			return parent.GpmMigSampleGet(gi, s)
		})
		sampled[gi] = a
	}
	if a.ok {
		p.add(metrics.MIGActivity, prometheus.GaugeValue, a.v, labels...)
		p.activity[m.uuid] = a.v
	}
}

// migParent is what the weight of a MIG device needs of its GPU.
type migParent struct {
	profiles     *giProfiles // nil when NVML has no profile table
	computeTotal int         // compute slices; 0 when unknown
	memTotal     uint64      // bytes; 0 when unknown
}

// migIdentity reads a MIG device's UUID, instance IDs, profile and weight.
func (p *gpuPoll) migIdentity(parent, mig nvml.Device, model string, par migParent) (migSeries, bool) {
	var m migSeries
	var ret nvml.Return
	if m.uuid, ret = mig.GetUUID(); !p.ok("nvmlDeviceGetUUID(MIG)", ret) {
		return m, false
	}
	if m.gi, ret = mig.GetGpuInstanceId(); !p.ok("nvmlDeviceGetGpuInstanceId", ret) {
		return m, false
	}
	if m.ci, ret = mig.GetComputeInstanceId(); !p.ok("nvmlDeviceGetComputeInstanceId", ret) {
		return m, false
	}
	if shape, ok := p.migShape(parent, mig, par.profiles, m.gi, m.ci); ok {
		if name, w, ok := shapeProfile(shape, par.computeTotal, par.memTotal); ok {
			m.profile, m.weight = name, w
			return m, true
		}
	}
	// No profile info: the profile from the device name, the weight from
	// the static table of the model.
	if name, ret := mig.GetName(); p.ok("nvmlDeviceGetName(MIG)", ret) {
		m.profile = profileFromName(name)
	}
	if m.profile != "" {
		if w, err := accounting.MIGWeight(model, m.profile); err == nil {
			m.weight = w
		}
	}
	return m, true
}

// migShape reads the slice counts and memory of a MIG device: from its GPU
// instance's profile info, else from the device's attributes.
func (p *gpuPoll) migShape(parent, mig nvml.Device, t *giProfiles, giID, ciID int) (migShape, bool) {
	if t != nil {
		if gi, ret := parent.GetGpuInstanceById(giID); p.optional("nvmlDeviceGetGpuInstanceById", ret) {
			if info, ret := gi.GetInfo(); p.ok("nvmlGpuInstanceGetInfo", ret) {
				if prof, found := t.byID[info.ProfileId]; found {
					s := migShape{
						giSlices:  int(prof.info.SliceCount),
						memMiB:    prof.info.MemorySizeMB,
						giProfile: prof.index,
					}
					s.ciSlices = p.c.profiles.ciSlices(p, gi, info.ProfileId, ciID)
					return s, true
				}
			}
		}
	}
	attrs, ret := mig.GetAttributes()
	if !p.optional("nvmlDeviceGetAttributes(MIG)", ret) || attrs.GpuInstanceSliceCount == 0 {
		return migShape{}, false
	}
	return migShape{
		giSlices:  int(attrs.GpuInstanceSliceCount),
		ciSlices:  int(attrs.ComputeInstanceSliceCount),
		memMiB:    attrs.MemorySizeMB,
		giProfile: -1,
	}, true
}

// shapeProfile names a MIG device's profile the way NVIDIA's device plugin
// does ("1g.10gb", "1g.10gb+me", "1c.3g.40gb") and computes its weight:
// max(compute share, memory share) of the parent, the memory share in
// eighths, a compute instance weighing its share of its GPU instance.
// computeTotal is the parent's compute slices, memTotal its memory in
// bytes; ok is false when either is unknown.
func shapeProfile(s migShape, computeTotal int, memTotal uint64) (name string, weight int64, ok bool) {
	if s.giSlices <= 0 || computeTotal <= 0 || s.giSlices > computeTotal || memTotal == 0 || s.memMiB == 0 {
		return "", 0, false
	}
	eighths := memEighths(s.memMiB, memTotal)
	g, c := s.giSlices, s.ciSlices
	if c <= 0 || c > g {
		c = g
	}
	name = fmt.Sprintf("%dg.%dgb%s", g, nominalGB(eighths, memTotal), profileSuffix(s.giProfile))
	if c < g {
		name = fmt.Sprintf("%dc.%s", c, name)
	}
	// max(g/T, m/8) · c/g, rounded once.
	weight = accounting.WeightFromSlices(g*c, computeTotal*g, eighths*c, memEighthsTotal*g)
	return name, weight, true
}

// memEighths is a GPU instance's memory in eighths of the GPU's memory,
// rounded to the nearest (a profile's usable memory is a little under or
// over its nominal share), at least 1 and at most 8.
func memEighths(memMiB, memTotal uint64) int {
	mem := memMiB << 20
	e := int((2*memEighthsTotal*mem + memTotal) / (2 * memTotal))
	return min(max(e, 1), memEighthsTotal)
}

// nominalGB is the memory figure of a profile name: its eighths of the
// GPU's memory in whole GiB rounded up (80 on an A100-80GB, 141 on an
// H200), rounded half up: 1/8 of 141 is "18gb", 4/8 "71gb".
func nominalGB(eighths int, memTotal uint64) uint64 {
	totalGB := (memTotal + gib - 1) / gib
	return (2*uint64(eighths)*totalGB + memEighthsTotal) / (2 * memEighthsTotal)
}

// profileSuffix is the name suffix of a GPU-instance profile variant.
func profileSuffix(idx int) string {
	switch idx {
	case nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1, nvml.GPU_INSTANCE_PROFILE_2_SLICE_REV1:
		return "+me"
	case nvml.GPU_INSTANCE_PROFILE_1_SLICE_GFX, nvml.GPU_INSTANCE_PROFILE_2_SLICE_GFX,
		nvml.GPU_INSTANCE_PROFILE_3_SLICE_GFX, nvml.GPU_INSTANCE_PROFILE_4_SLICE_GFX:
		return "+gfx"
	case nvml.GPU_INSTANCE_PROFILE_1_SLICE_NO_ME, nvml.GPU_INSTANCE_PROFILE_2_SLICE_NO_ME:
		return "-me"
	case nvml.GPU_INSTANCE_PROFILE_1_SLICE_ALL_ME, nvml.GPU_INSTANCE_PROFILE_2_SLICE_ALL_ME:
		return "+me.all"
	}
	return ""
}

// profileFromName extracts the profile from a MIG device's NVML name
// ("NVIDIA A100-SXM4-80GB MIG 1g.10gb" → "1g.10gb"); "" when the name
// carries none.
func profileFromName(name string) string {
	i := strings.LastIndex(name, "MIG ")
	if i < 0 {
		return ""
	}
	p := strings.TrimSpace(name[i+len("MIG "):])
	if p == "" || strings.ContainsAny(p, " \t") {
		return ""
	}
	if _, err := accounting.ParseProfile(p); err != nil {
		return ""
	}
	return p
}
