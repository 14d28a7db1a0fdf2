package nvml

import (
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// The fakes: go-nvml's mock server (devices, MIG profile tables, GPU and
// compute instance creation), completed with the telemetry, MIG device
// handles, GPM samples and an event set the collector reads.

const mib = 1 << 20

// a100Profiles is the GPU-instance profile table of an A100-SXM4-80GB as
// `nvidia-smi mig -lgip` shows it: NVML's profile IDs (19 for 1g.10gb),
// which differ from the NVML_GPU_INSTANCE_PROFILE_* indices, and the
// usable memory of each profile.
var a100Profiles = map[int]nvml.GpuInstanceProfileInfo{
	nvml.GPU_INSTANCE_PROFILE_1_SLICE:      {Id: 19, SliceCount: 1, InstanceCount: 7, MultiprocessorCount: 14, CopyEngineCount: 1, MemorySizeMB: 9728},
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1: {Id: 20, SliceCount: 1, InstanceCount: 1, MultiprocessorCount: 14, CopyEngineCount: 1, DecoderCount: 1, JpegCount: 1, OfaCount: 1, MemorySizeMB: 9728},
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2: {Id: 15, SliceCount: 1, InstanceCount: 4, MultiprocessorCount: 14, CopyEngineCount: 1, DecoderCount: 1, MemorySizeMB: 19968},
	nvml.GPU_INSTANCE_PROFILE_2_SLICE:      {Id: 14, SliceCount: 2, InstanceCount: 3, MultiprocessorCount: 28, CopyEngineCount: 2, DecoderCount: 1, MemorySizeMB: 19968},
	nvml.GPU_INSTANCE_PROFILE_3_SLICE:      {Id: 9, SliceCount: 3, InstanceCount: 2, MultiprocessorCount: 42, CopyEngineCount: 3, DecoderCount: 2, MemorySizeMB: 40192},
	nvml.GPU_INSTANCE_PROFILE_4_SLICE:      {Id: 5, SliceCount: 4, InstanceCount: 1, MultiprocessorCount: 56, CopyEngineCount: 4, DecoderCount: 2, MemorySizeMB: 40192},
	nvml.GPU_INSTANCE_PROFILE_7_SLICE:      {Id: 0, SliceCount: 7, InstanceCount: 1, MultiprocessorCount: 98, CopyEngineCount: 7, DecoderCount: 5, JpegCount: 1, OfaCount: 1, MemorySizeMB: 80640},
}

// a100CIProfiles are the compute-instance profiles of the A100's GPU
// instances, keyed by GPU-instance profile ID.
var a100CIProfiles = func() map[int]map[int]nvml.ComputeInstanceProfileInfo {
	ci := func(slices uint32) nvml.ComputeInstanceProfileInfo {
		return nvml.ComputeInstanceProfileInfo{Id: slices - 1, SliceCount: slices, InstanceCount: 7 / slices, MultiprocessorCount: 14 * slices}
	}
	out := map[int]map[int]nvml.ComputeInstanceProfileInfo{}
	for _, p := range a100Profiles {
		t := map[int]nvml.ComputeInstanceProfileInfo{}
		for s := uint32(1); s <= p.SliceCount && s <= 4; s++ {
			t[int(s-1)] = ci(s)
		}
		out[int(p.Id)] = t
	}
	return out
}()

// a100SXM4_80GB is go-nvml's A100-SXM4-80GB with the real profile table.
func a100SXM4_80GB() gpus.Config {
	cfg := gpus.A100_SXM4_80GB
	cfg.MIGProfiles.GpuInstanceProfiles = a100Profiles
	cfg.MIGProfiles.ComputeInstanceProfiles = a100CIProfiles
	return cfg
}

// migSpec is one MIG device of a fake GPU.
type migSpec struct {
	giProfile  int // NVML_GPU_INSTANCE_PROFILE_* index
	giID, ciID int
	ciProfile  int // NVML_COMPUTE_INSTANCE_PROFILE_* index; the CI is the whole GI when it is the GI's size
	memUsedMiB uint64
	gpmPct     float64 // graphics activity of its GPU instance, percent
}

// gpuSpec is a fake GPU's readings.
type gpuSpec struct {
	powerMW            uint32
	energyMJ           uint64
	tempC              uint32
	smMHz, memMHz      uint32
	eccCorr, eccUncorr uint64
	utilPct            uint32
	memUsedMiB         uint64
	gpmPct             float64   // whole-GPU graphics activity, percent
	migs               []migSpec // MIG enabled when non-nil
}

type fakeLib struct {
	*server.Server
	t      *testing.T
	gpus   []*fakeGPU
	events *fakeEvents
	gpm    bool // GpmQueryDeviceSupport says supported

	mu             sync.Mutex
	allocs, frees  int
	inits, shutdns int
	noSymbols      map[string]bool // LookupSymbol fails for these
}

type fakeGPU struct {
	*server.Device
	lib  *fakeLib
	spec gpuSpec
	migs []*fakeMIG
	// fail makes a call (by its NVML method name) return a code.
	fail map[string]nvml.Return
	gpm  map[int]*gpmCounter // by GI, −1 for the whole GPU
}

type fakeMIG struct {
	*mock.Device
	spec migSpec
	uuid string
	name string
	mem  uint64 // bytes
}

// gpmCounter is a unit's cumulative busy and elapsed time, advanced by 10 s
// at each sample.
type gpmCounter struct{ busy, total float64 }

type fakeSample struct {
	mock.GpmSample
	busy, total float64
}

func (g *fakeGPU) ret(call string) nvml.Return {
	if r, ok := g.fail[call]; ok {
		return r
	}
	return nvml.SUCCESS
}

// newFake builds a fake NVML with one GPU per spec. Every UUID is derived
// from tag and the index, so exposition files are stable.
func newFake(t *testing.T, cfg gpus.Config, memTotalMiB uint64, tag string, gpm bool, specs []gpuSpec) *fakeLib {
	t.Helper()
	srv, err := server.New(server.WithGPUs(gpus.Multiple(len(specs), cfg)...),
		server.WithDriverVersion("550.54.15"), server.WithNVMLVersion("12.550.54.15"), server.WithCUDADriverVersion(12040))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLib{Server: srv, t: t, gpm: gpm, events: newFakeEvents(), noSymbols: map[string]bool{}}
	for i, spec := range specs {
		d := srv.Devices[i].(*server.Device)
		d.UUID = fmt.Sprintf("GPU-%s-0000-4000-8000-%012d", tag, i)
		d.MemoryInfo.Total = memTotalMiB * mib
		g := &fakeGPU{Device: d, lib: f, spec: spec, fail: map[string]nvml.Return{}, gpm: map[int]*gpmCounter{}}
		g.setFuncs()
		if spec.migs != nil {
			g.enableMIG(t, tag, i)
		}
		f.gpus = append(f.gpus, g)
	}
	f.setLibFuncs()
	return f
}

func (f *fakeLib) setLibFuncs() {
	f.InitFunc = func() nvml.Return {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.inits++
		return nvml.SUCCESS
	}
	f.ShutdownFunc = func() nvml.Return {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.shutdns++
		return nvml.SUCCESS
	}
	f.LookupSymbolFunc = func(name string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.noSymbols[name] {
			return fmt.Errorf("symbol %s not found", name)
		}
		return nil
	}
	f.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return f.events, nvml.SUCCESS }
	f.GpmSampleAllocFunc = func() (nvml.GpmSample, nvml.Return) {
		f.mu.Lock()
		f.allocs++
		f.mu.Unlock()
		s := &fakeSample{}
		s.FreeFunc = func() nvml.Return {
			f.mu.Lock()
			f.frees++
			f.mu.Unlock()
			return nvml.SUCCESS
		}
		return s, nvml.SUCCESS
	}
	f.GpmMetricsGetFunc = func(mg *nvml.GpmMetricsGetType) nvml.Return {
		s1, ok1 := mg.Sample1.(*fakeSample)
		s2, ok2 := mg.Sample2.(*fakeSample)
		if !ok1 || !ok2 || s2.total <= s1.total {
			return nvml.ERROR_INVALID_ARGUMENT
		}
		for i := range mg.NumMetrics {
			m := &mg.Metrics[i]
			if m.MetricId != uint32(nvml.GPM_METRIC_GRAPHICS_UTIL) {
				m.NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED)
				continue
			}
			m.Value = 100 * (s2.busy - s1.busy) / (s2.total - s1.total)
		}
		return nvml.SUCCESS
	}
}

func (g *fakeGPU) setFuncs() {
	g.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		m := g.MemoryInfo
		m.Used = g.spec.memUsedMiB * mib
		m.Free = m.Total - m.Used
		return m, g.ret("GetMemoryInfo")
	}
	g.GetPowerUsageFunc = func() (uint32, nvml.Return) { return g.spec.powerMW, g.ret("GetPowerUsage") }
	g.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) {
		return g.spec.energyMJ, g.ret("GetTotalEnergyConsumption")
	}
	g.GetTemperatureFunc = func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
		if s != nvml.TEMPERATURE_GPU {
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		return g.spec.tempC, g.ret("GetTemperature")
	}
	g.GetClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) {
		switch c {
		case nvml.CLOCK_SM:
			return g.spec.smMHz, g.ret("GetClockInfo")
		case nvml.CLOCK_MEM:
			return g.spec.memMHz, g.ret("GetClockInfo")
		}
		return 0, nvml.ERROR_INVALID_ARGUMENT
	}
	g.GetTotalEccErrorsFunc = func(t nvml.MemoryErrorType, c nvml.EccCounterType) (uint64, nvml.Return) {
		if c != nvml.VOLATILE_ECC {
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		if t == nvml.MEMORY_ERROR_TYPE_CORRECTED {
			return g.spec.eccCorr, g.ret("GetTotalEccErrors")
		}
		return g.spec.eccUncorr, g.ret("GetTotalEccErrors")
	}
	g.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		if g.MigMode == nvml.DEVICE_MIG_ENABLE {
			return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED // as on a real MIG GPU
		}
		return nvml.Utilization{Gpu: g.spec.utilPct, Memory: g.spec.utilPct / 2}, g.ret("GetUtilizationRates")
	}
	inner := g.GetMigModeFunc
	g.GetMigModeFunc = func() (int, int, nvml.Return) {
		cur, pend, _ := inner()
		return cur, pend, g.ret("GetMigMode")
	}
	innerUUID := g.GetUUIDFunc
	g.GetUUIDFunc = func() (string, nvml.Return) {
		u, _ := innerUUID()
		return u, g.ret("GetUUID")
	}
	g.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) {
		if g.MigMode != nvml.DEVICE_MIG_ENABLE {
			return 0, nvml.ERROR_NOT_SUPPORTED
		}
		return 7, g.ret("GetMaxMigDeviceCount")
	}
	g.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i < 0 || i >= 7 {
			return nil, nvml.ERROR_INVALID_ARGUMENT
		}
		if i >= len(g.migs) {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return g.migs[i], nvml.SUCCESS
	}
	g.GetGpuInstanceByIdFunc = func(id int) (nvml.GpuInstance, nvml.Return) {
		if r := g.ret("GetGpuInstanceById"); r != nvml.SUCCESS {
			return nil, r
		}
		g.RLock()
		defer g.RUnlock()
		for gi := range g.GpuInstances {
			if int(gi.Info.Id) == id {
				return gi, nvml.SUCCESS
			}
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	g.GpmQueryDeviceSupportFunc = func() (nvml.GpmSupport, nvml.Return) {
		s := nvml.GpmSupport{Version: nvml.GPM_SUPPORT_VERSION}
		if g.lib.gpm {
			s.IsSupportedDevice = 1
		}
		return s, g.ret("GpmQueryDeviceSupport")
	}
	g.GpmSampleGetFunc = func(s nvml.GpmSample) nvml.Return { return g.sample(-1, g.spec.gpmPct, s) }
	g.GpmMigSampleGetFunc = func(gi int, s nvml.GpmSample) nvml.Return {
		for _, m := range g.migs {
			if m.spec.giID == gi {
				return g.sample(gi, m.spec.gpmPct, s)
			}
		}
		return nvml.ERROR_NOT_FOUND
	}
	g.RegisterEventsFunc = func(types uint64, set nvml.EventSet) nvml.Return {
		if r := g.ret("RegisterEvents"); r != nvml.SUCCESS {
			return r
		}
		if types&nvml.EventTypeXidCriticalError == 0 || set != g.lib.events {
			return nvml.ERROR_INVALID_ARGUMENT
		}
		g.lib.events.register(g.UUID)
		return nvml.SUCCESS
	}
}

// sample advances a unit's GPM counters by 10 s at pct and copies them
// into the sample.
func (g *fakeGPU) sample(gi int, pct float64, s nvml.GpmSample) nvml.Return {
	if !g.lib.gpm {
		return nvml.ERROR_NOT_SUPPORTED
	}
	if r := g.ret("GpmSampleGet"); r != nvml.SUCCESS {
		return r
	}
	fs, ok := s.(*fakeSample)
	if !ok {
		return nvml.ERROR_INVALID_ARGUMENT
	}
	c := g.gpm[gi]
	if c == nil {
		c = &gpmCounter{}
		g.gpm[gi] = c
	}
	c.total += 10000
	c.busy += pct * 100
	fs.busy, fs.total = c.busy, c.total
	return nvml.SUCCESS
}

// enableMIG turns MIG on and creates the spec's GPU and compute instances
// through the mock server, with the spec's instance IDs.
func (g *fakeGPU) enableMIG(t *testing.T, tag string, gpu int) {
	t.Helper()
	if ret, _ := g.SetMigMode(nvml.DEVICE_MIG_ENABLE); ret != nvml.SUCCESS {
		t.Fatalf("SetMigMode: %v", ret)
	}
	gis := map[int]*server.GpuInstance{}
	for n, ms := range g.spec.migs {
		prof, ret := g.GetGpuInstanceProfileInfo(ms.giProfile)
		if ret != nvml.SUCCESS {
			t.Fatalf("GPU %d: GPU-instance profile %d: %v", gpu, ms.giProfile, ret)
		}
		gi := gis[ms.giID]
		if gi == nil {
			h, ret := g.CreateGpuInstance(&prof)
			if ret != nvml.SUCCESS {
				t.Fatalf("CreateGpuInstance: %v", ret)
			}
			gi = h.(*server.GpuInstance)
			gi.Info.Id = uint32(ms.giID)
			gi.GetComputeInstanceByIdFunc = func(id int) (nvml.ComputeInstance, nvml.Return) {
				gi.RLock()
				defer gi.RUnlock()
				for ci := range gi.ComputeInstances {
					if int(ci.Info.Id) == id {
						return ci, nvml.SUCCESS
					}
				}
				return nil, nvml.ERROR_NOT_FOUND
			}
			gis[ms.giID] = gi
		}
		ciProf, ret := gi.GetComputeInstanceProfileInfo(ms.ciProfile, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
		if ret != nvml.SUCCESS {
			t.Fatalf("GPU %d: compute-instance profile %d of GI profile %d: %v", gpu, ms.ciProfile, prof.Id, ret)
		}
		h, ret := gi.CreateComputeInstance(&ciProf)
		if ret != nvml.SUCCESS {
			t.Fatalf("CreateComputeInstance: %v", ret)
		}
		h.(*server.ComputeInstance).Info.Id = uint32(ms.ciID)
		g.migs = append(g.migs, g.newMIG(tag, gpu, n, ms, prof, ciProf))
	}
}

func (g *fakeGPU) newMIG(tag string, gpu, n int, ms migSpec, prof nvml.GpuInstanceProfileInfo, ciProf nvml.ComputeInstanceProfileInfo) *fakeMIG {
	m := &fakeMIG{
		Device: &mock.Device{},
		spec:   ms,
		uuid:   fmt.Sprintf("MIG-%s-%04d-4000-8000-%012d", tag, gpu, n),
		mem:    prof.MemorySizeMB * mib,
	}
	m.GetUUIDFunc = func() (string, nvml.Return) { return m.uuid, g.ret("GetUUID(MIG)") }
	m.GetGpuInstanceIdFunc = func() (int, nvml.Return) { return ms.giID, nvml.SUCCESS }
	m.GetComputeInstanceIdFunc = func() (int, nvml.Return) { return ms.ciID, nvml.SUCCESS }
	m.IsMigDeviceHandleFunc = func() (bool, nvml.Return) { return true, nvml.SUCCESS }
	m.GetDeviceHandleFromMigDeviceHandleFunc = func() (nvml.Device, nvml.Return) { return g.Device, nvml.SUCCESS }
	m.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		used := ms.memUsedMiB * mib
		return nvml.Memory{Total: m.mem, Used: used, Free: m.mem - used}, g.ret("GetMemoryInfo(MIG)")
	}
	m.GetNameFunc = func() (string, nvml.Return) { return m.name, g.ret("GetName(MIG)") }
	m.GetAttributesFunc = func() (nvml.DeviceAttributes, nvml.Return) {
		return nvml.DeviceAttributes{
			MultiprocessorCount:       ciProf.MultiprocessorCount,
			GpuInstanceSliceCount:     prof.SliceCount,
			ComputeInstanceSliceCount: ciProf.SliceCount,
			MemorySizeMB:              prof.MemorySizeMB,
		}, g.ret("GetAttributes(MIG)")
	}
	return m
}

// fakeEvents is an event set fed by the test. Wait pops queued events;
// with none queued it reports idle (every earlier event was handled, as
// the collector waits again only after handling one) and times out.
type fakeEvents struct {
	mock.EventSet
	mu         sync.Mutex
	queue      []nvml.EventData
	registered map[string]bool
	idle       chan struct{}
	freed      bool
}

func newFakeEvents() *fakeEvents {
	e := &fakeEvents{registered: map[string]bool{}, idle: make(chan struct{}, 1)}
	e.WaitFunc = func(timeoutMS uint32) (nvml.EventData, nvml.Return) {
		e.mu.Lock()
		if len(e.queue) > 0 {
			ev := e.queue[0]
			e.queue = e.queue[1:]
			e.mu.Unlock()
			return ev, nvml.SUCCESS
		}
		e.mu.Unlock()
		select {
		case e.idle <- struct{}{}:
		default:
		}
		time.Sleep(time.Duration(timeoutMS) * time.Millisecond)
		return nvml.EventData{}, nvml.ERROR_TIMEOUT
	}
	e.FreeFunc = func() nvml.Return {
		e.mu.Lock()
		e.freed = true
		e.mu.Unlock()
		return nvml.SUCCESS
	}
	return e
}

func (e *fakeEvents) register(uuid string) {
	e.mu.Lock()
	e.registered[uuid] = true
	e.mu.Unlock()
}

func (e *fakeEvents) push(evs ...nvml.EventData) {
	e.mu.Lock()
	e.queue = append(e.queue, evs...)
	e.mu.Unlock()
}

func (e *fakeEvents) registeredUUIDs() map[string]bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.registered)
}

// xid is a critical XID event of a GPU.
func (f *fakeLib) xid(gpu int, code uint64) nvml.EventData {
	return nvml.EventData{Device: f.gpus[gpu].Device, EventType: nvml.EventTypeXidCriticalError,
		EventData: code, GpuInstanceId: 0xFFFFFFFF, ComputeInstanceId: 0xFFFFFFFF}
}

// The A100 node: eight A100-SXM4-80GB, GPUs 6 and 7 in MIG mode.
func a100Specs() []gpuSpec {
	specs := make([]gpuSpec, 8)
	for i := range specs {
		specs[i] = gpuSpec{
			powerMW: 60000 + uint32(i)*45250, energyMJ: 123456789 + uint64(i)*1000, tempC: 31 + uint32(i)*6,
			smMHz: 1410, memMHz: 1593, eccCorr: uint64(i % 3), eccUncorr: 0,
			utilPct: uint32(i) * 14, memUsedMiB: uint64(i) * 8192,
		}
	}
	specs[0].smMHz = 210 // idle
	// GPU 6: a 3g.40gb and three 1g.10gb (the IDs NVML gives them).
	specs[6].migs = []migSpec{
		{giProfile: nvml.GPU_INSTANCE_PROFILE_3_SLICE, giID: 2, ciID: 0, ciProfile: nvml.COMPUTE_INSTANCE_PROFILE_3_SLICE, memUsedMiB: 20480},
		{giProfile: nvml.GPU_INSTANCE_PROFILE_1_SLICE, giID: 9, ciID: 0, ciProfile: nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE, memUsedMiB: 1024},
		{giProfile: nvml.GPU_INSTANCE_PROFILE_1_SLICE, giID: 10, ciID: 0, ciProfile: nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE},
		{giProfile: nvml.GPU_INSTANCE_PROFILE_1_SLICE, giID: 11, ciID: 0, ciProfile: nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE, memUsedMiB: 9000},
	}
	specs[6].memUsedMiB = 20480 + 1024 + 9000
	// GPU 7: two 3g.40gb.
	specs[7].migs = []migSpec{
		{giProfile: nvml.GPU_INSTANCE_PROFILE_3_SLICE, giID: 1, ciID: 0, ciProfile: nvml.COMPUTE_INSTANCE_PROFILE_3_SLICE, memUsedMiB: 30000},
		{giProfile: nvml.GPU_INSTANCE_PROFILE_3_SLICE, giID: 2, ciID: 0, ciProfile: nvml.COMPUTE_INSTANCE_PROFILE_3_SLICE},
	}
	specs[7].memUsedMiB = 30000
	return specs
}

func newA100(t *testing.T) *fakeLib {
	f := newFake(t, a100SXM4_80GB(), 81920, "a100a100", false, a100Specs())
	for _, g := range f.gpus {
		for _, m := range g.migs {
			m.name = "NVIDIA A100-SXM4-80GB MIG " + map[int]string{
				nvml.GPU_INSTANCE_PROFILE_1_SLICE: "1g.10gb", nvml.GPU_INSTANCE_PROFILE_3_SLICE: "3g.40gb"}[m.spec.giProfile]
		}
	}
	return f
}

// The H200 node: GPU 0 whole, GPU 1 in MIG mode with a 3g.71gb split into
// a 1-slice and a 2-slice compute instance and a 1g.18gb+me; GPM supported.
func newH200(t *testing.T) *fakeLib {
	specs := []gpuSpec{
		{powerMW: 512345, energyMJ: 9876543210, tempC: 58, smMHz: 1980, memMHz: 3201, utilPct: 97, memUsedMiB: 100000, gpmPct: 83},
		{powerMW: 300000, energyMJ: 5000000000, tempC: 44, smMHz: 1980, memMHz: 3201, memUsedMiB: 50000, gpmPct: 40,
			migs: []migSpec{
				{giProfile: nvml.GPU_INSTANCE_PROFILE_3_SLICE, giID: 1, ciID: 0, ciProfile: nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE, memUsedMiB: 30000, gpmPct: 60},
				{giProfile: nvml.GPU_INSTANCE_PROFILE_3_SLICE, giID: 1, ciID: 1, ciProfile: nvml.COMPUTE_INSTANCE_PROFILE_2_SLICE, memUsedMiB: 30000, gpmPct: 60},
				{giProfile: nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1, giID: 13, ciID: 0, ciProfile: nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE, memUsedMiB: 2048, gpmPct: 5},
			}},
	}
	cfg := gpus.H200_SXM5_141GB
	cfg.Name = "NVIDIA H200" // what NVML reports on an H200 SXM
	f := newFake(t, cfg, 143771, "h200h200", true, specs)
	for _, m := range f.gpus[1].migs {
		m.name = "NVIDIA H200 MIG 3g.71gb"
	}
	return f
}
