// Package nvmltest builds fake NVML libraries for tests and benchmarks:
// go-nvml's mock server (devices, MIG profile tables, GPU and compute
// instance creation) completed with the telemetry, MIG device handles, GPM
// samples and XID event set that the exporter's NVML collector reads. A
// Lib implements nvml.Interface and is handed to nvml.New in place of the
// real library.
//
// Every UUID is derived from a tag and the device's index, so expositions
// built on a fake are stable. Readings are the specs' values; tests change
// a GPU's Spec or Fail between polls, not during one.
package nvmltest

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

// MiB is a mebibyte in bytes.
const MiB = 1 << 20

// A100Profiles is the GPU-instance profile table of an A100-SXM4-80GB as
// `nvidia-smi mig -lgip` shows it: NVML's profile IDs (19 for 1g.10gb),
// which differ from the NVML_GPU_INSTANCE_PROFILE_* indices it is keyed
// by, and the usable memory of each profile.
var A100Profiles = map[int]nvml.GpuInstanceProfileInfo{
	nvml.GPU_INSTANCE_PROFILE_1_SLICE:      {Id: 19, SliceCount: 1, InstanceCount: 7, MultiprocessorCount: 14, CopyEngineCount: 1, MemorySizeMB: 9728},
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1: {Id: 20, SliceCount: 1, InstanceCount: 1, MultiprocessorCount: 14, CopyEngineCount: 1, DecoderCount: 1, JpegCount: 1, OfaCount: 1, MemorySizeMB: 9728},
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2: {Id: 15, SliceCount: 1, InstanceCount: 4, MultiprocessorCount: 14, CopyEngineCount: 1, DecoderCount: 1, MemorySizeMB: 19968},
	nvml.GPU_INSTANCE_PROFILE_2_SLICE:      {Id: 14, SliceCount: 2, InstanceCount: 3, MultiprocessorCount: 28, CopyEngineCount: 2, DecoderCount: 1, MemorySizeMB: 19968},
	nvml.GPU_INSTANCE_PROFILE_3_SLICE:      {Id: 9, SliceCount: 3, InstanceCount: 2, MultiprocessorCount: 42, CopyEngineCount: 3, DecoderCount: 2, MemorySizeMB: 40192},
	nvml.GPU_INSTANCE_PROFILE_4_SLICE:      {Id: 5, SliceCount: 4, InstanceCount: 1, MultiprocessorCount: 56, CopyEngineCount: 4, DecoderCount: 2, MemorySizeMB: 40192},
	nvml.GPU_INSTANCE_PROFILE_7_SLICE:      {Id: 0, SliceCount: 7, InstanceCount: 1, MultiprocessorCount: 98, CopyEngineCount: 7, DecoderCount: 5, JpegCount: 1, OfaCount: 1, MemorySizeMB: 80640},
}

// a100ProfileNames are the names of the A100-80GB's GPU-instance
// profiles, by NVML_GPU_INSTANCE_PROFILE_* index.
var a100ProfileNames = map[int]string{
	nvml.GPU_INSTANCE_PROFILE_1_SLICE:      "1g.10gb",
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1: "1g.10gb+me",
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2: "1g.20gb",
	nvml.GPU_INSTANCE_PROFILE_2_SLICE:      "2g.20gb",
	nvml.GPU_INSTANCE_PROFILE_3_SLICE:      "3g.40gb",
	nvml.GPU_INSTANCE_PROFILE_4_SLICE:      "4g.40gb",
	nvml.GPU_INSTANCE_PROFILE_7_SLICE:      "7g.80gb",
}

// a100CIProfiles are the compute-instance profiles of the A100's GPU
// instances, keyed by GPU-instance profile ID.
var a100CIProfiles = func() map[int]map[int]nvml.ComputeInstanceProfileInfo {
	ci := func(slices uint32) nvml.ComputeInstanceProfileInfo {
		return nvml.ComputeInstanceProfileInfo{Id: slices - 1, SliceCount: slices, InstanceCount: 7 / slices, MultiprocessorCount: 14 * slices}
	}
	out := map[int]map[int]nvml.ComputeInstanceProfileInfo{}
	for _, p := range A100Profiles {
		t := map[int]nvml.ComputeInstanceProfileInfo{}
		for s := uint32(1); s <= p.SliceCount && s <= 4; s++ {
			t[int(s-1)] = ci(s)
		}
		out[int(p.Id)] = t
	}
	return out
}()

// A100SXM4_80GB is go-nvml's A100-SXM4-80GB with the real profile table.
func A100SXM4_80GB() gpus.Config {
	cfg := gpus.A100_SXM4_80GB
	cfg.MIGProfiles.GpuInstanceProfiles = A100Profiles
	cfg.MIGProfiles.ComputeInstanceProfiles = a100CIProfiles
	return cfg
}

// MIGSpec is one MIG device of a fake GPU.
type MIGSpec struct {
	GIProfile  int // NVML_GPU_INSTANCE_PROFILE_* index
	GIID, CIID int
	CIProfile  int // NVML_COMPUTE_INSTANCE_PROFILE_* index; the CI is the whole GI when it is the GI's size
	MemUsedMiB uint64
	GPMPct     float64 // graphics activity of its GPU instance, percent
}

// GPUSpec is a fake GPU's readings.
type GPUSpec struct {
	PowerMW            uint32
	EnergyMJ           uint64
	TempC              uint32
	SMMHz, MemMHz      uint32
	ECCCorr, ECCUncorr uint64
	UtilPct            uint32
	MemUsedMiB         uint64
	GPMPct             float64   // whole-GPU graphics activity, percent
	MIGs               []MIGSpec // MIG enabled when non-nil
}

// Stats count the library's lifecycle calls.
type Stats struct {
	Inits, Shutdowns int
	// SampleAllocs and SampleFrees count GPM samples.
	SampleAllocs, SampleFrees int
}

// Lib is a fake NVML library. It implements nvml.Interface.
type Lib struct {
	*server.Server
	// GPUs are the devices, by index.
	GPUs []*GPU
	// Events is the XID event set NVML hands out.
	Events *Events

	gpm       bool // GpmQueryDeviceSupport says supported
	mu        sync.Mutex
	stats     Stats
	noSymbols map[string]bool // LookupSymbol fails for these
}

// GPU is a fake physical GPU.
type GPU struct {
	*server.Device
	// Spec are its readings.
	Spec GPUSpec
	// MIGs are its MIG devices, in handle order.
	MIGs []*MIG
	// Fail makes a call (by its NVML method name, "GetUUID",
	// "GetMemoryInfo(MIG)"…) return a code.
	Fail map[string]nvml.Return

	lib *Lib
	gpm map[int]*gpmCounter // by GI, −1 for the whole GPU
}

// MIG is a fake MIG device handle.
type MIG struct {
	*mock.Device
	Spec MIGSpec
	UUID string
	// Name is what GetName answers (NVML: "<GPU name> MIG <profile>").
	Name string
	mem  uint64 // bytes
}

// gpmCounter is a unit's cumulative busy and elapsed time, advanced by 10 s
// at each sample.
type gpmCounter struct{ busy, total float64 }

type fakeSample struct {
	mock.GpmSample
	busy, total float64
}

func (g *GPU) ret(call string) nvml.Return {
	if r, ok := g.Fail[call]; ok {
		return r
	}
	return nvml.SUCCESS
}

// New builds a fake NVML with one GPU of model cfg per spec. UUIDs are
// GPU-<tag>-0000-4000-8000-<index> and MIG-<tag>-<gpu>-4000-8000-<n>, tag
// being 8 hexadecimal digits. gpm makes the GPUs support GPM.
func New(tb testing.TB, cfg gpus.Config, memTotalMiB uint64, tag string, gpm bool, specs []GPUSpec) *Lib {
	tb.Helper()
	srv, err := server.New(server.WithGPUs(gpus.Multiple(len(specs), cfg)...),
		server.WithDriverVersion("550.54.15"), server.WithNVMLVersion("12.550.54.15"), server.WithCUDADriverVersion(12040))
	if err != nil {
		tb.Fatal(err)
	}
	l := &Lib{Server: srv, gpm: gpm, Events: newEvents(), noSymbols: map[string]bool{}}
	for i, spec := range specs {
		d := srv.Devices[i].(*server.Device)
		d.UUID = fmt.Sprintf("GPU-%s-0000-4000-8000-%012d", tag, i)
		d.MemoryInfo.Total = memTotalMiB * MiB
		g := &GPU{Device: d, lib: l, Spec: spec, Fail: map[string]nvml.Return{}, gpm: map[int]*gpmCounter{}}
		g.setFuncs()
		if spec.MIGs != nil {
			g.enableMIG(tb, tag, i)
		}
		l.GPUs = append(l.GPUs, g)
	}
	l.setLibFuncs()
	return l
}

// Stats returns the lifecycle counts so far.
func (l *Lib) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// HideSymbol makes LookupSymbol fail for name, as on an older driver.
func (l *Lib) HideSymbol(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.noSymbols[name] = true
}

// XID is a critical XID event of a GPU, to Push on Events.
func (l *Lib) XID(gpu int, code uint64) nvml.EventData {
	return nvml.EventData{Device: l.GPUs[gpu].Device, EventType: nvml.EventTypeXidCriticalError,
		EventData: code, GpuInstanceId: 0xFFFFFFFF, ComputeInstanceId: 0xFFFFFFFF}
}

func (l *Lib) setLibFuncs() {
	l.InitFunc = func() nvml.Return {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.stats.Inits++
		return nvml.SUCCESS
	}
	l.ShutdownFunc = func() nvml.Return {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.stats.Shutdowns++
		return nvml.SUCCESS
	}
	l.LookupSymbolFunc = func(name string) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.noSymbols[name] {
			return fmt.Errorf("symbol %s not found", name)
		}
		return nil
	}
	l.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return l.Events, nvml.SUCCESS }
	l.GpmSampleAllocFunc = func() (nvml.GpmSample, nvml.Return) {
		l.mu.Lock()
		l.stats.SampleAllocs++
		l.mu.Unlock()
		s := &fakeSample{}
		s.FreeFunc = func() nvml.Return {
			l.mu.Lock()
			l.stats.SampleFrees++
			l.mu.Unlock()
			return nvml.SUCCESS
		}
		return s, nvml.SUCCESS
	}
	l.GpmMetricsGetFunc = func(mg *nvml.GpmMetricsGetType) nvml.Return {
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

func (g *GPU) setFuncs() {
	g.setReadings()
	g.setMIGFuncs()
	g.setGPMFuncs()
	g.RegisterEventsFunc = func(types uint64, set nvml.EventSet) nvml.Return {
		if r := g.ret("RegisterEvents"); r != nvml.SUCCESS {
			return r
		}
		if types&nvml.EventTypeXidCriticalError == 0 || set != g.lib.Events {
			return nvml.ERROR_INVALID_ARGUMENT
		}
		g.lib.Events.register(g.UUID)
		return nvml.SUCCESS
	}
}

// setReadings answers the telemetry calls from the spec.
func (g *GPU) setReadings() {
	g.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		m := g.MemoryInfo
		m.Used = g.Spec.MemUsedMiB * MiB
		m.Free = m.Total - m.Used
		return m, g.ret("GetMemoryInfo")
	}
	g.GetPowerUsageFunc = func() (uint32, nvml.Return) { return g.Spec.PowerMW, g.ret("GetPowerUsage") }
	g.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) {
		return g.Spec.EnergyMJ, g.ret("GetTotalEnergyConsumption")
	}
	g.GetTemperatureFunc = func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
		if s != nvml.TEMPERATURE_GPU {
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		return g.Spec.TempC, g.ret("GetTemperature")
	}
	g.GetClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) {
		switch c {
		case nvml.CLOCK_SM:
			return g.Spec.SMMHz, g.ret("GetClockInfo")
		case nvml.CLOCK_MEM:
			return g.Spec.MemMHz, g.ret("GetClockInfo")
		}
		return 0, nvml.ERROR_INVALID_ARGUMENT
	}
	g.GetTotalEccErrorsFunc = func(t nvml.MemoryErrorType, c nvml.EccCounterType) (uint64, nvml.Return) {
		if c != nvml.VOLATILE_ECC {
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		if t == nvml.MEMORY_ERROR_TYPE_CORRECTED {
			return g.Spec.ECCCorr, g.ret("GetTotalEccErrors")
		}
		return g.Spec.ECCUncorr, g.ret("GetTotalEccErrors")
	}
	g.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		if g.MigMode == nvml.DEVICE_MIG_ENABLE {
			return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED // as on a real MIG GPU
		}
		return nvml.Utilization{Gpu: g.Spec.UtilPct, Memory: g.Spec.UtilPct / 2}, g.ret("GetUtilizationRates")
	}
	innerUUID := g.GetUUIDFunc
	g.GetUUIDFunc = func() (string, nvml.Return) {
		u, _ := innerUUID()
		return u, g.ret("GetUUID")
	}
}

// setMIGFuncs answers the MIG mode, the MIG device handles and the GPU
// instances by ID.
func (g *GPU) setMIGFuncs() {
	inner := g.GetMigModeFunc
	g.GetMigModeFunc = func() (int, int, nvml.Return) {
		cur, pend, _ := inner()
		return cur, pend, g.ret("GetMigMode")
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
		if i >= len(g.MIGs) {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return g.MIGs[i], nvml.SUCCESS
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
}

// setGPMFuncs answers GPM support and samples.
func (g *GPU) setGPMFuncs() {
	g.GpmQueryDeviceSupportFunc = func() (nvml.GpmSupport, nvml.Return) {
		s := nvml.GpmSupport{Version: nvml.GPM_SUPPORT_VERSION}
		if g.lib.gpm {
			s.IsSupportedDevice = 1
		}
		return s, g.ret("GpmQueryDeviceSupport")
	}
	g.GpmSampleGetFunc = func(s nvml.GpmSample) nvml.Return { return g.sample(-1, g.Spec.GPMPct, s) }
	g.GpmMigSampleGetFunc = func(gi int, s nvml.GpmSample) nvml.Return {
		for _, m := range g.MIGs {
			if m.Spec.GIID == gi {
				return g.sample(gi, m.Spec.GPMPct, s)
			}
		}
		return nvml.ERROR_NOT_FOUND
	}
}

// sample advances a unit's GPM counters by 10 s at pct and copies them
// into the sample.
func (g *GPU) sample(gi int, pct float64, s nvml.GpmSample) nvml.Return {
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
func (g *GPU) enableMIG(tb testing.TB, tag string, gpu int) {
	tb.Helper()
	if ret, _ := g.SetMigMode(nvml.DEVICE_MIG_ENABLE); ret != nvml.SUCCESS {
		tb.Fatalf("SetMigMode: %v", ret)
	}
	gis := map[int]*server.GpuInstance{}
	for n, ms := range g.Spec.MIGs {
		prof, ret := g.GetGpuInstanceProfileInfo(ms.GIProfile)
		if ret != nvml.SUCCESS {
			tb.Fatalf("GPU %d: GPU-instance profile %d: %v", gpu, ms.GIProfile, ret)
		}
		gi := gis[ms.GIID]
		if gi == nil {
			gi = g.newGPUInstance(tb, &prof, ms.GIID)
			gis[ms.GIID] = gi
		}
		ciProf, ret := gi.GetComputeInstanceProfileInfo(ms.CIProfile, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
		if ret != nvml.SUCCESS {
			tb.Fatalf("GPU %d: compute-instance profile %d of GI profile %d: %v", gpu, ms.CIProfile, prof.Id, ret)
		}
		h, ret := gi.CreateComputeInstance(&ciProf)
		if ret != nvml.SUCCESS {
			tb.Fatalf("CreateComputeInstance: %v", ret)
		}
		h.(*server.ComputeInstance).Info.Id = uint32(ms.CIID)
		g.MIGs = append(g.MIGs, g.newMIG(tag, gpu, n, ms, prof, ciProf))
	}
}

func (g *GPU) newGPUInstance(tb testing.TB, prof *nvml.GpuInstanceProfileInfo, id int) *server.GpuInstance {
	tb.Helper()
	h, ret := g.CreateGpuInstance(prof)
	if ret != nvml.SUCCESS {
		tb.Fatalf("CreateGpuInstance: %v", ret)
	}
	gi := h.(*server.GpuInstance)
	gi.Info.Id = uint32(id)
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
	return gi
}

func (g *GPU) newMIG(tag string, gpu, n int, ms MIGSpec, prof nvml.GpuInstanceProfileInfo, ciProf nvml.ComputeInstanceProfileInfo) *MIG {
	m := &MIG{
		Device: &mock.Device{},
		Spec:   ms,
		UUID:   fmt.Sprintf("MIG-%s-%04d-4000-8000-%012d", tag, gpu, n),
		mem:    prof.MemorySizeMB * MiB,
	}
	m.GetUUIDFunc = func() (string, nvml.Return) { return m.UUID, g.ret("GetUUID(MIG)") }
	m.GetGpuInstanceIdFunc = func() (int, nvml.Return) { return ms.GIID, nvml.SUCCESS }
	m.GetComputeInstanceIdFunc = func() (int, nvml.Return) { return ms.CIID, nvml.SUCCESS }
	m.IsMigDeviceHandleFunc = func() (bool, nvml.Return) { return true, nvml.SUCCESS }
	m.GetDeviceHandleFromMigDeviceHandleFunc = func() (nvml.Device, nvml.Return) { return g.Device, nvml.SUCCESS }
	m.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		used := ms.MemUsedMiB * MiB
		return nvml.Memory{Total: m.mem, Used: used, Free: m.mem - used}, g.ret("GetMemoryInfo(MIG)")
	}
	m.GetNameFunc = func() (string, nvml.Return) { return m.Name, g.ret("GetName(MIG)") }
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

// Events is an event set fed by the test. Wait pops queued events; with
// none queued it reports idle (every earlier event was handled, as the
// collector waits again only after handling one) and times out.
type Events struct {
	mock.EventSet
	mu         sync.Mutex
	queue      []nvml.EventData
	registered map[string]bool
	idle       chan struct{}
	freed      bool
}

func newEvents() *Events {
	e := &Events{registered: map[string]bool{}, idle: make(chan struct{}, 1)}
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

func (e *Events) register(uuid string) {
	e.mu.Lock()
	e.registered[uuid] = true
	e.mu.Unlock()
}

// Push queues events for Wait.
func (e *Events) Push(evs ...nvml.EventData) {
	e.mu.Lock()
	e.queue = append(e.queue, evs...)
	e.mu.Unlock()
}

// Idle receives a value when Wait found the queue empty.
func (e *Events) Idle() <-chan struct{} { return e.idle }

// Registered returns the UUIDs of the GPUs registered for XID events.
func (e *Events) Registered() map[string]bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.registered)
}

// Freed reports whether the event set was freed.
func (e *Events) Freed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.freed
}
