package generate

import (
	"math"

	"github.com/gpuledger/gpuledger/sim/scenario"
)

// knot is one point of a quantile function: the value at probability u.
type knot struct{ u, v float64 }

// quantiles is a quantile function given by knots, interpolated linearly in
// log space between them (a piecewise log-uniform distribution). The first
// knot has u = 0 and the last u = 1; values are positive and non-decreasing.
type quantiles []knot

// at returns the quantile at probability u in [0, 1].
func (q quantiles) at(u float64) float64 {
	for i := 1; i < len(q); i++ {
		if u <= q[i].u {
			a, b := q[i-1], q[i]
			f := (u - a.u) / (b.u - a.u)
			return math.Exp(math.Log(a.v) + f*(math.Log(b.v)-math.Log(a.v)))
		}
	}
	return q[len(q)-1].v
}

// mean is the exact mean of the continuous distribution: on a segment
// where the value grows log-linearly from a to b the mean is
// (b-a)/ln(b/a).
func (q quantiles) mean() float64 {
	var m float64
	for i := 1; i < len(q); i++ {
		a, b := q[i-1], q[i]
		w := b.u - a.u
		if a.v == b.v {
			m += w * a.v
			continue
		}
		m += w * (b.v - a.v) / math.Log(b.v/a.v)
	}
	return m
}

// seconds draws a value rounded to whole seconds, at least one.
func (q quantiles) seconds(r *rng) int64 {
	return max(1, int64(math.Round(q.at(r.float()))))
}

// batchLifetime is the lifetime (scheduled to deletion) of the GPU pods of
// the Alibaba GPU v2023 trace. The knots at q10, q50, q90 and q99 are the
// published statistics (67 s, 655 s, 7,380 s, 145,258 s); q01, q05, q25,
// q75 and q95 were measured on the same public file so that the shape
// between them is right too. Below q01 the values fall to 4 s, the
// shortest pod of the trace. Above q99 the trace holds long-running
// services that last until its end (months); a batch platform limits a
// job's run time, so the tail stops at seven days.
var batchLifetime = quantiles{
	{0, 4}, {0.01, 20}, {0.05, 48}, {0.10, 67}, {0.25, 183}, {0.50, 655},
	{0.75, 2303}, {0.90, 7380}, {0.95, 16994}, {0.99, 145258}, {1, 7 * 86400},
}

// notebookLifetime is how long a JupyterHub server lives: hours, culled
// after a working day or two at most.
var notebookLifetime = quantiles{
	{0, 600}, {0.10, 1800}, {0.50, 3 * 3600}, {0.90, 8 * 3600}, {0.99, 24 * 3600}, {1, 72 * 3600},
}

// fpgaLifetime is how long an FPGA kernel run holds its card.
var fpgaLifetime = quantiles{
	{0, 60}, {0.10, 300}, {0.50, 1800}, {0.90, 4 * 3600}, {1, 24 * 3600},
}

// oneGPUShare is the share of GPU pods that take one GPU (or a fraction).
const oneGPUShare = 0.988

// gpuCounts is the number of GPUs of a GPU pod in the Alibaba v2023 trace.
var gpuCounts = []struct {
	n int
	p float64
}{{1, oneGPUShare}, {2, 0.0025}, {4, 0.0025}, {8, 0.007}}

// fractionalShare is the share of one-GPU pods that take a fraction of a GPU.
const fractionalShare = 0.42

// milliValues are the common gpu_milli values of fractional pods, weighted
// by how many pods of the public trace asked for each.
var milliValues = []struct {
	milli  int64
	weight float64
}{{810, 1078}, {470, 750}, {320, 328}, {650, 253}, {230, 140}, {460, 128}, {590, 75}}

// milliOtherWeight is the weight of the other values (10.6 % of fractional
// pods), drawn uniformly from the multiples of 10 in [50, 800] that are not
// common values.
const milliOtherWeight = 326

var milliOthers = func() []int64 {
	common := map[int64]bool{}
	for _, m := range milliValues {
		common[m.milli] = true
	}
	var out []int64
	for m := int64(50); m <= 800; m += 10 {
		if !common[m] {
			out = append(out, m)
		}
	}
	return out
}()

var milliWeights = func() []float64 {
	w := make([]float64, 0, len(milliValues)+1)
	for _, m := range milliValues {
		w = append(w, m.weight)
	}
	return append(w, milliOtherWeight)
}()

// drawMilli draws the gpu_milli of a fractional pod.
func drawMilli(r *rng) int64 {
	i := r.pick(milliWeights)
	if i < len(milliValues) {
		return milliValues[i].milli
	}
	return milliOthers[r.intn(len(milliOthers))]
}

// meanMilli is the mean gpu_milli of a fractional pod.
func meanMilli() float64 {
	var sum, total float64
	for _, m := range milliValues {
		sum += float64(m.milli) * m.weight
		total += m.weight
	}
	var others float64
	for _, m := range milliOthers {
		others += float64(m)
	}
	sum += milliOtherWeight * others / float64(len(milliOthers))
	return sum / (total + milliOtherWeight)
}

// capGPUs returns the GPU count a job of n GPUs asks for on a cluster whose
// largest node offers maxGPUs whole GPUs to batch pods: n, or the largest
// power of two that fits.
func capGPUs(n, maxGPUs int) int {
	for n > maxGPUs && n > 1 {
		n /= 2
	}
	return n
}

// wholeShare is the share of batch jobs that take whole GPUs.
const wholeShare = 1 - fractionalShare*oneGPUShare

// drawWhole draws the GPU count of a job that takes whole GPUs, on a
// cluster whose largest whole-GPU node has maxGPUs.
func drawWhole(r *rng, maxGPUs int) int {
	u := r.float() * wholeShare
	for _, c := range gpuCounts {
		p := c.p
		if c.n == 1 {
			p *= 1 - fractionalShare
		}
		if u < p {
			return capGPUs(c.n, maxGPUs)
		}
		u -= p
	}
	return capGPUs(gpuCounts[len(gpuCounts)-1].n, maxGPUs)
}

// drawAny draws the GPU count of any GPU job, fractions rounded up to one
// GPU (offloaded jobs request whole GPUs).
func drawAny(r *rng) int {
	u := r.float()
	for _, c := range gpuCounts {
		if u < c.p {
			return c.n
		}
		u -= c.p
	}
	return gpuCounts[len(gpuCounts)-1].n
}

// meanWholeMilli is the mean milli-GPU of a job that takes whole GPUs.
func meanWholeMilli(maxGPUs int) float64 {
	var m float64
	for _, c := range gpuCounts {
		p := c.p
		if c.n == 1 {
			p *= 1 - fractionalShare
		}
		m += p * float64(capGPUs(c.n, maxGPUs)) * 1000
	}
	return m / wholeShare
}

// fractionalDemandShare is the fractional pods' share of the milli-GPU
// batch jobs hold (their lifetimes follow the same distribution).
func fractionalDemandShare() float64 {
	frac := (1 - wholeShare) * meanMilli()
	return frac / (frac + wholeShare*meanWholeMilli(8))
}

// profileMix is a distribution of activity profiles: kinds with weights and
// the range their mean activity is drawn from.
type profileMix []struct {
	kind   string
	weight float64
	lo, hi float64
}

var (
	batchProfiles = profileMix{
		{scenario.ProfileConstant, 45, 0.55, 0.95},
		{scenario.ProfileBursty, 30, 0.10, 0.50},
		{scenario.ProfileDiurnal, 10, 0.30, 0.70},
		{scenario.ProfileIdle, 15, 0, 0},
	}
	notebookProfiles = profileMix{
		{scenario.ProfileIdle, 40, 0, 0},
		{scenario.ProfileBursty, 45, 0.05, 0.30},
		{scenario.ProfileDiurnal, 10, 0.10, 0.35},
		{scenario.ProfileConstant, 5, 0.30, 0.70},
	}
	fpgaProfiles = profileMix{
		{scenario.ProfileConstant, 60, 0.40, 0.90},
		{scenario.ProfileBursty, 30, 0.10, 0.50},
		{scenario.ProfileIdle, 10, 0, 0},
	}
	offloadProfiles = profileMix{
		{scenario.ProfileConstant, 80, 0.60, 0.95},
		{scenario.ProfileBursty, 20, 0.20, 0.60},
	}
)

// draw draws a profile; means are rounded to hundredths.
func (m profileMix) draw(r *rng) scenario.Profile {
	w := make([]float64, len(m))
	for i, p := range m {
		w[i] = p.weight
	}
	p := m[r.pick(w)]
	if p.kind == scenario.ProfileIdle {
		return scenario.Profile{Kind: p.kind}
	}
	mean := math.Round(r.between(p.lo, p.hi)*100) / 100
	return scenario.Profile{Kind: p.kind, Mean: mean}
}
