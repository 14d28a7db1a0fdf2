package sim

// This file is the simulator's device model: how busy a pod keeps its
// devices, and what power, memory, temperature and clocks follow from that.
// It is pure (no clock, no I/O, no Prometheus) so that the ground truth of
// the ledger ("used" GPU-seconds, energy) can reuse it and agree with the
// simulated exporters to the last microjoule. docs/metrics.md describes it.

import (
	"hash/fnv"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/gpuledger/gpuledger/sim/scenario"
)

// Activity returns how busy pod p keeps its devices at t, in [0, 1], in
// whole thousandths: ActivityMilli / 1000.
func Activity(p *scenario.Pod, t time.Time) float64 {
	return float64(ActivityMilli(p, t)) / 1000
}

// ActivityMilli returns how busy pod p keeps its devices at t, in
// thousandths (0 to 1000). It is 0 outside [p.Start, p.End). Within the
// pod's life it is constant over each Unix minute (Unix time / 60) and drawn
// from a hash of the pod UID and that minute, shaped by the pod's profile:
//
//   - constant (and no kind): Mean ± 0.05;
//   - bursty: a minute is busy with probability Mean (activity 0.85–1),
//     otherwise idle (activity below 0.02);
//   - idle: below 0.01;
//   - diurnal: Mean × (1 + 0.8·cos(2π(h − 14)/24)) ± 5 %, h the UTC hour of
//     the day, so busiest at 14:00 UTC and averaging Mean over a day where
//     the curve is not capped.
//
// The result depends only on the pod and the minute, never on when or how
// often it is asked, and is an integer so that the ledger's "used"
// GPU-seconds (activity × weight × time) are exact.
func ActivityMilli(p *scenario.Pod, t time.Time) int64 {
	if p == nil || t.Before(p.Start) || (p.End != nil && !t.Before(*p.End)) {
		return 0
	}
	return profileMilli(p.UID, p.Profile, minuteOf(t.UnixMilli()))
}

// profileMilli is ActivityMilli without the pod's life bounds. The explicit
// float64 conversions forbid fused multiply-adds, so every architecture
// computes the same value.
func profileMilli(uid string, prof scenario.Profile, minute int64) int64 {
	mean := clamp01(prof.Mean)
	seed := seedOf(uid)
	u1 := unit(mix(seed, minute, 1))
	u2 := unit(mix(seed, minute, 2))
	var a float64
	switch prof.Kind {
	case scenario.ProfileIdle:
		a = float64(0.01 * u2)
	case scenario.ProfileBursty:
		if u1 < mean {
			a = 0.85 + float64(0.15*u2)
		} else {
			a = float64(0.02 * u2)
		}
	case scenario.ProfileDiurnal:
		hour := float64(floorMod(minute, 24*60)) / 60
		curve := 1 + float64(0.8*math.Cos(float64(2*math.Pi*(hour-14))/24))
		a = float64(float64(mean*curve) * (1 + float64(0.1*(u1-0.5))))
	default: // constant, or no profile
		a = mean + float64(0.1*(u1-0.5))
	}
	return int64(math.Round(float64(clamp01(a) * 1000)))
}

// minuteOf returns the Unix minute holding the millisecond instant ms.
func minuteOf(ms int64) int64 { return floorDiv(ms, 60_000) }

// seedOf hashes a pod UID (FNV-1a, stable across Go versions).
func seedOf(uid string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(uid))
	return h.Sum64()
}

// mix combines a seed, a minute and a stream number with the splitmix64
// finaliser.
func mix(seed uint64, minute int64, stream uint64) uint64 {
	z := seed ^ (uint64(minute) * 0x9e3779b97f4a7c15) ^ (stream * 0xbf58476d1ce4e5b9)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

func clamp01(v float64) float64 {
	switch {
	case v < 0 || math.IsNaN(v):
		return 0
	case v > 1:
		return 1
	}
	return v
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// GiB is 2^30 bytes.
const GiB = int64(1) << 30

// MiB is 2^20 bytes.
const MiB = int64(1) << 20

// GPUSpec is what the model needs to know of a GPU model.
type GPUSpec struct {
	IdleWatts, MaxWatts float64 // board power idle and at full utilisation
	MemoryBytes         int64   // frame buffer
	IdleClockHz         float64 // SM clock when idle
	MaxClockHz          float64 // SM clock when busy
}

// gpuSpecs are matched in order against the upper-cased model name.
var gpuSpecs = []struct {
	match []string // all must occur
	spec  GPUSpec
}{
	{[]string{"H200"}, GPUSpec{70, 700, 141 * GiB, 345e6, 1980e6}},
	{[]string{"H100"}, GPUSpec{70, 700, 80 * GiB, 345e6, 1980e6}},
	{[]string{"A100", "80GB"}, GPUSpec{60, 400, 80 * GiB, 210e6, 1410e6}},
	{[]string{"A100"}, GPUSpec{60, 400, 40 * GiB, 210e6, 1410e6}},
	{[]string{"A30"}, GPUSpec{30, 165, 24 * GiB, 210e6, 1440e6}},
	{[]string{"T4"}, GPUSpec{10, 70, 16 * GiB, 300e6, 1590e6}},
	{[]string{"RTX", "5000"}, GPUSpec{15, 230, 16 * GiB, 300e6, 1815e6}},
}

// DefaultGPUSpec is used for models the table does not know.
var DefaultGPUSpec = GPUSpec{IdleWatts: 50, MaxWatts: 300, MemoryBytes: 16 * GiB, IdleClockHz: 300e6, MaxClockHz: 1500e6}

// SpecOf returns the spec of a GPU model ("NVIDIA A100-SXM4-80GB", "Tesla T4", …).
func SpecOf(model string) GPUSpec {
	m := strings.ToUpper(model)
outer:
	for _, s := range gpuSpecs {
		for _, w := range s.match {
			if !strings.Contains(m, w) {
				continue outer
			}
		}
		return s.spec
	}
	return DefaultGPUSpec
}

// PowerMilliwatts is a GPU's board power at utilisation uMicro (millionths,
// capped at one million): idle + (max − idle) × u, in whole milliwatts.
func (s GPUSpec) PowerMilliwatts(uMicro int64) int64 {
	return linear(milli(s.IdleWatts), milli(s.MaxWatts), uMicro)
}

// TemperatureCelsius is the GPU core temperature at utilisation uMicro, in
// whole degrees as NVML reports it: 30 °C idle to 82 °C at full load.
func (s GPUSpec) TemperatureCelsius(uMicro int64) int64 { return linear(30, 82, uMicro) }

// SMClockHz is the SM clock: the idle clock when nothing runs, the maximum
// boost clock otherwise.
func (s GPUSpec) SMClockHz(uMicro int64) float64 {
	if uMicro <= 0 {
		return s.IdleClockHz
	}
	return s.MaxClockHz
}

// MemoryUsed is the memory a holder with activity aMilli uses of total
// bytes: nothing when the device is free, otherwise 10 % of it plus up to
// 80 % more with activity, rounded down to whole MiB.
func MemoryUsed(total int64, held bool, aMilli int64) int64 {
	if !held || total <= 0 {
		return 0
	}
	a := min(max(aMilli, 0), 1000)
	return total / MiB * (100_000 + 800*a) / 1_000_000 * MiB
}

// milli converts watts to whole milliwatts.
func milli(w float64) int64 { return int64(math.Round(w * 1000)) }

// linear is lo + (hi − lo) × u for u in millionths (clamped to [0, 10⁶]),
// rounded half up.
func linear(lo, hi, uMicro int64) int64 {
	u := min(max(uMicro, 0), 1_000_000)
	return lo + ((hi-lo)*u+500_000)/1_000_000
}

// Hold is one allocation as the device model sees it: a pod holding a share
// (WeightMilli of 1000) of a device over [Start, End) (End zero: open).
type Hold struct {
	Pod         *scenario.Pod
	WeightMilli int64
	Start, End  time.Time
}

// HoldsOf turns allocations into holds, sorted by start.
func HoldsOf(allocs []scenario.Allocation) []Hold {
	hs := make([]Hold, 0, len(allocs))
	for i := range allocs {
		a := &allocs[i]
		hs = append(hs, Hold{Pod: a.Pod, WeightMilli: a.WeightMilli, Start: a.Start, End: a.End})
	}
	sort.SliceStable(hs, func(i, j int) bool { return hs[i].Start.Before(hs[j].Start) })
	return hs
}

// Utilization is the utilisation of a device at t: UtilizationMicro / 10⁶.
func Utilization(holds []Hold, t time.Time) float64 {
	return float64(UtilizationMicro(holds, t)) / 1e6
}

// UtilizationMicro is the utilisation of a device at t in millionths:
// Σ activity (thousandths) × weight (milli-GPU) over the holds active at t,
// capped at one million. A whole GPU's is its pod's activity; a shared GPU's
// the weighted sum of its sharers'; a MIG-enabled GPU's the weighted sum of
// its instances' (NVML has no such figure; the model uses it for power).
func UtilizationMicro(holds []Hold, t time.Time) int64 {
	ms := t.UnixMilli()
	var u int64
	for i := range holds {
		h := &holds[i]
		if h.activeAt(ms) {
			u += profileMilli(h.Pod.UID, h.Pod.Profile, minuteOf(ms)) * h.WeightMilli
		}
	}
	return min(u, 1_000_000)
}

func (h *Hold) startMs() int64 { return h.Start.UnixMilli() }

// endMs is the end in milliseconds, MaxInt64 when open.
func (h *Hold) endMs() int64 {
	if h.End.IsZero() {
		return math.MaxInt64
	}
	return h.End.UnixMilli()
}

func (h *Hold) activeAt(ms int64) bool { return h.startMs() <= ms && ms < h.endMs() }

// EnergyMicrojoules integrates the power of a GPU of the given spec, held by
// holds, over [from, to): Σ power (mW) × duration (ms). Power is constant on
// each piece between minute boundaries and hold starts and ends, and the sum
// is in integers, so splitting [from, to) anywhere gives exactly the same
// total (the exporter's counter caches it incrementally). holds must be
// sorted by start. It returns 0 when to is not after from.
func EnergyMicrojoules(spec GPUSpec, holds []Hold, from, to time.Time) int64 {
	return integrate(holds, from.UnixMilli(), to.UnixMilli(), spec.PowerMilliwatts)
}

// FPGASpec is what the model knows of an FPGA card.
type FPGASpec struct {
	IdleWatts, MaxWatts float64
	// ExecutionsPerSecond is how many compute-unit executions a fully busy
	// card completes per second.
	ExecutionsPerSecond int64
}

// FPGASpecOf returns the spec of an FPGA model (Alveo U55C and others).
func FPGASpecOf(model string) FPGASpec {
	m := strings.ToUpper(model)
	switch {
	case strings.Contains(m, "U55C"), strings.Contains(m, "U50"):
		return FPGASpec{IdleWatts: 20, MaxWatts: 150, ExecutionsPerSecond: 100}
	case strings.Contains(m, "U250"), strings.Contains(m, "U280"):
		return FPGASpec{IdleWatts: 30, MaxWatts: 225, ExecutionsPerSecond: 100}
	}
	return FPGASpec{IdleWatts: 20, MaxWatts: 100, ExecutionsPerSecond: 100}
}

// PowerMilliwatts is the card's power at activity aMilli (thousandths).
func (s FPGASpec) PowerMilliwatts(aMilli int64) int64 {
	return linear(milli(s.IdleWatts), milli(s.MaxWatts), aMilli*1000)
}

// Temperatures returns the card's sensors (XRT location IDs, named by
// FPGASensors) at activity aMilli, in whole degrees Celsius.
func (s FPGASpec) Temperatures(aMilli int64) [3]int64 {
	u := aMilli * 1000
	return [3]int64{linear(35, 75, u), linear(33, 63, u), linear(30, 40, u)}
}

// FPGASensors are the names of Temperatures' values, in order.
var FPGASensors = [3]string{"fpga0", "fpga_hbm", "cage_temp_0"}

// ExecutionsMicro integrates compute-unit executions over [from, to) in
// millionths of an execution: activity (thousandths) × duration (ms) ×
// executions per second. Like EnergyMicrojoules it is additive.
func (s FPGASpec) ExecutionsMicro(holds []Hold, from, to time.Time) int64 {
	return integrate(holds, from.UnixMilli(), to.UnixMilli(), func(uMicro int64) int64 {
		return min(max(uMicro, 0), 1_000_000) / 1000 * s.ExecutionsPerSecond
	})
}

// integrate sums rate(utilisation in millionths) × duration (ms) over
// [from, to), the utilisation being piecewise constant between minute
// boundaries and hold boundaries. It sweeps the holds (sorted by start) once, keeping only those
// active, so a month-long range costs one step per minute plus one per hold.
func integrate(holds []Hold, from, to int64, rate func(uMicro int64) int64) int64 {
	if to <= from {
		return 0
	}
	n := sort.Search(len(holds), func(i int) bool { return holds[i].startMs() >= to })
	holds = holds[:n]
	next := 0 // the first hold not yet considered
	var active []*Hold
	var total int64
	for t := from; t < to; {
		for next < len(holds) && holds[next].startMs() <= t {
			if holds[next].endMs() > t {
				active = append(active, &holds[next])
			}
			next++
		}
		kept := active[:0]
		for _, h := range active {
			if h.endMs() > t {
				kept = append(kept, h)
			}
		}
		active = kept
		minute := minuteOf(t)
		end := min(to, (minute+1)*60_000)
		if next < len(holds) {
			end = min(end, holds[next].startMs())
		}
		var u int64
		for _, h := range active {
			end = min(end, h.endMs())
			u += profileMilli(h.Pod.UID, h.Pod.Profile, minute) * h.WeightMilli
		}
		total += rate(min(u, 1_000_000)) * (end - t)
		t = end
	}
	return total
}
