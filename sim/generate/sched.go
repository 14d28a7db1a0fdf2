package generate

import (
	"container/heap"
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// jobClass is what a job is and where it runs.
type jobClass uint8

const (
	jobBatch    jobClass = iota // Kueue pod on whole or fractional local GPUs
	jobOffload                  // Kueue pod offloaded to a remote site
	jobNotebook                 // JupyterHub server on a MIG slice, T4 replica or RTX 5000
	jobFPGA                     // Kueue pod on an FPGA card
)

// job is one pod from its arrival to its end. Times are whole seconds from
// the simulation origin.
type job struct {
	id       int
	class    jobClass
	group    *unitGroup // notebooks and FPGA jobs
	gpus     int        // whole GPUs (batch) or requested GPUs (offload)
	milli    int64      // fraction of one GPU; 0 for whole GPUs
	lifetime int64
	arrive   int64
	start    int64 // -1 while waiting
	profile  scenario.Profile

	node     int   // node index in hardware.nodes
	held     []int // batch GPU indexes, or the one unit index
	slot     int   // replica number of a fractional pod
	reserved int   // node drained for this job, or -1

	project int    // index into tenants.projects; -1 for notebooks
	user    string // the user attribution should find
	viaSA   bool   // the user is given by the service account only
}

func (j *job) end() int64 { return j.start + j.lifetime }

// weightMilli is the milli-GPU the job holds: its fraction, or its GPUs.
func (j *job) weightMilli() int64 {
	switch {
	case j.class == jobNotebook:
		return j.group.weight
	case j.class == jobFPGA:
		return 0 // FPGA seconds are not GPU-seconds
	case j.milli > 0:
		return j.milli
	}
	return int64(j.gpus) * accounting.MilliPerGPU
}

const (
	// warmup is how long before the window the simulation starts, so that
	// the window opens on a cluster in its steady state: the longest batch
	// lifetime.
	warmup = 7 * 24 * time.Hour

	// reserveAfter is how long a multi-GPU job waits before a node is
	// drained for it (no other pod may start there until it does).
	reserveAfter = 15 * 60

	// offloadShare is the arrival rate of offloaded jobs against local
	// batch jobs.
	offloadShare = 0.10

	// diurnalAmplitude modulates notebook arrivals over the day, with the
	// peak at 15:00 Central European Time.
	diurnalAmplitude = 0.4
	diurnalPeakUTC   = 14

	// Shares of Kueue pods whose user only the service account gives, and
	// of those with no user at all (attribution says "unknown").
	serviceAccountShare = 0.03
	unknownUserShare    = 0.01
)

// endHeap orders running jobs by end, then by ID.
type endHeap []*job

func (h endHeap) Len() int { return len(h) }
func (h endHeap) Less(a, b int) bool {
	if h[a].end() != h[b].end() {
		return h[a].end() < h[b].end()
	}
	return h[a].id < h[b].id
}
func (h endHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *endHeap) Push(x any)   { *h = append(*h, x.(*job)) }
func (h *endHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return j
}

// simulator admits jobs onto the hardware as Kueue and the kube-scheduler
// would: a job that finds no room waits, first in first out per pool, but a
// waiting job does not stop later ones that fit (best-effort FIFO).
type simulator struct {
	hw               *hardware
	ten              *tenants
	r                *rng // placement and attribution draws
	winStart, winEnd int64

	running     endHeap
	batchQ      []*job
	reserved    int // nodes drained for a waiting job
	batchDirty  bool
	dirtyGroups []*unitGroup
	started     []*job // in start order
}

// stream is a Poisson arrival process of one kind of job.
type stream struct {
	name    string
	rate    float64 // mean arrivals per second
	diurnal bool
	draw    func(r *rng, j *job)
}

// arrivals draws the jobs of every stream from the origin to the end of the
// window, in arrival order.
func arrivals(seed uint64, streams []stream, originUnix, horizon int64) []*job {
	var jobs []*job
	for _, st := range streams {
		if st.rate <= 0 {
			continue
		}
		r := newRNG(seed, "arrivals "+st.name)
		peak := st.rate
		if st.diurnal {
			peak *= 1 + diurnalAmplitude
		}
		for t := r.exp(peak); t < float64(horizon); t += r.exp(peak) {
			at := int64(t)
			if st.diurnal {
				hour := float64((originUnix+at)%86400) / 3600
				f := (1 + diurnalAmplitude*math.Cos(2*math.Pi*(hour-diurnalPeakUTC)/24)) / (1 + diurnalAmplitude)
				if r.float() >= f {
					continue
				}
			}
			j := &job{arrive: at, start: -1, reserved: -1, project: -1}
			st.draw(r, j)
			jobs = append(jobs, j)
		}
	}
	sortJobs(jobs)
	for i, j := range jobs {
		j.id = i
	}
	return jobs
}

// sortJobs orders jobs by arrival, keeping stream order for ties.
func sortJobs(jobs []*job) {
	// A stable merge of the per-stream sequences, each already in order.
	tmp := make([]*job, len(jobs))
	var mergeSort func(lo, hi int)
	mergeSort = func(lo, hi int) {
		if hi-lo < 2 {
			return
		}
		mid := (lo + hi) / 2
		mergeSort(lo, mid)
		mergeSort(mid, hi)
		i, k, o := lo, mid, lo
		for i < mid && k < hi {
			if jobs[k].arrive < jobs[i].arrive {
				tmp[o] = jobs[k]
				k++
			} else {
				tmp[o] = jobs[i]
				i++
			}
			o++
		}
		o += copy(tmp[o:], jobs[i:mid])
		copy(tmp[o:], jobs[k:hi])
		copy(jobs[lo:hi], tmp[lo:hi])
	}
	mergeSort(0, len(jobs))
}

// run plays the jobs through the cluster until the end of the window.
func (s *simulator) run(jobs []*job) {
	for _, j := range jobs {
		s.advance(j.arrive)
		s.arrive(j, j.arrive)
	}
	s.advance(s.winEnd - 1) // a job admitted at the window's end is outside it
}

// advance ends every job that ends by t and admits waiting jobs into the
// room they leave.
func (s *simulator) advance(t int64) {
	for len(s.running) > 0 && s.running[0].end() <= t {
		e := s.running[0].end()
		for len(s.running) > 0 && s.running[0].end() == e {
			s.release(heap.Pop(&s.running).(*job))
		}
		s.admitWaiting(e)
	}
}

func (s *simulator) arrive(j *job, t int64) {
	switch j.class {
	case jobOffload:
		j.node = s.hw.sites[s.r.pick(s.hw.siteWeights)]
		s.start(j, t)
	case jobBatch:
		if !s.placeBatch(j, t) {
			s.batchQ = append(s.batchQ, j)
		}
	default:
		g := j.group
		if len(g.queue) == 0 && len(g.free) > 0 {
			s.placeUnit(j, t)
			return
		}
		g.queue = append(g.queue, j)
	}
}

func (s *simulator) release(j *job) {
	switch j.class {
	case jobBatch:
		for _, gi := range j.held {
			g := &s.hw.gpus[gi]
			if j.milli > 0 {
				g.held -= j.milli
				g.slots &^= 1 << j.slot
				continue
			}
			g.held = 0
			s.hw.bnodes[g.node].freeWhole++
		}
		s.batchDirty = true
	case jobNotebook, jobFPGA:
		g := j.group
		g.free = append(g.free, j.held[0])
		if len(g.queue) > 0 {
			s.dirtyGroups = append(s.dirtyGroups, g)
		}
	}
}

func (s *simulator) admitWaiting(t int64) {
	for _, g := range s.dirtyGroups {
		for len(g.queue) > 0 && len(g.free) > 0 {
			j := g.queue[0]
			g.queue[0] = nil
			g.queue = g.queue[1:]
			s.placeUnit(j, t)
		}
	}
	s.dirtyGroups = s.dirtyGroups[:0]
	if s.batchDirty {
		s.batchDirty = false
		s.scanBatch(t)
	}
}

// placeUnit gives a waiting or arriving job a free unit of its group, drawn
// at random so that use spreads over the devices.
func (s *simulator) placeUnit(j *job, t int64) {
	g := j.group
	k := s.r.intn(len(g.free))
	u := g.free[k]
	g.free[k] = g.free[len(g.free)-1]
	g.free = g.free[:len(g.free)-1]
	j.held = []int{u}
	j.node = g.units[u].node
	s.start(j, t)
}

// scanBatch admits the waiting batch jobs that fit, in arrival order. A
// shape that failed once in a scan fails for every later job of that shape
// or larger, so it is not tried again.
func (s *simulator) scanBatch(t int64) {
	if len(s.batchQ) == 0 {
		return
	}
	failWhole, failMilli := math.MaxInt, int64(math.MaxInt64)
	rest := s.batchQ[:0]
	for _, j := range s.batchQ {
		blocked := j.reserved < 0 && (j.milli == 0 && j.gpus >= failWhole || j.milli > 0 && j.milli >= failMilli)
		if !blocked {
			if s.placeBatch(j, t) {
				continue
			}
			if j.reserved < 0 {
				if j.milli > 0 {
					failMilli = min(failMilli, j.milli)
				} else {
					failWhole = min(failWhole, j.gpus)
				}
			}
		}
		if j.gpus > 1 && j.reserved < 0 && t-j.arrive >= reserveAfter && s.reserved < s.maxReserved() {
			s.reserve(j, t)
		}
		rest = append(rest, j)
	}
	clear(s.batchQ[len(rest):])
	s.batchQ = rest
}

// usable reports whether job j may use batch node n.
func (s *simulator) usable(j *job, n int) bool {
	r := s.hw.bnodes[n].reserved
	return r < 0 || r == j.id
}

// placeBatch places a batch job, best fit: whole GPUs on the whole node
// with the fewest free GPUs that has enough (its drained node first);
// fractions on the fullest shared GPU they fit on, else on the first empty
// one.
func (s *simulator) placeBatch(j *job, t int64) bool {
	hw := s.hw
	if j.milli > 0 {
		best, empty := -1, -1
		for _, gi := range hw.shared {
			g := &hw.gpus[gi]
			switch {
			case g.held == 0:
				if empty < 0 {
					empty = gi
				}
			case g.held+j.milli <= accounting.MilliPerGPU && bits.OnesCount32(g.slots) < sharedReplicas:
				if best < 0 || g.held > hw.gpus[best].held {
					best = gi
				}
			}
		}
		if best < 0 {
			best = empty
		}
		if best < 0 {
			return false
		}
		g := &hw.gpus[best]
		g.held += j.milli
		j.slot = bits.TrailingZeros32(^g.slots)
		g.slots |= 1 << j.slot
		j.held = []int{best}
		j.node = g.node
	} else {
		n := s.bestNode(j, j.gpus)
		if n < 0 {
			return false
		}
		j.held = s.freeGPUs(n, j.gpus)
		for _, gi := range j.held {
			hw.gpus[gi].held = accounting.MilliPerGPU
			hw.gpus[gi].until = t + j.lifetime
		}
		hw.bnodes[n].freeWhole -= j.gpus
		j.node = n
		if j.reserved >= 0 {
			hw.bnodes[j.reserved].reserved = -1
			j.reserved = -1
			s.reserved--
		}
	}
	s.start(j, t)
	return true
}

// bestNode returns the usable node with the fewest free GPUs among those
// with at least n, preferring the node drained for j; -1 when none.
func (s *simulator) bestNode(j *job, n int) int {
	if j.reserved >= 0 && s.hw.bnodes[j.reserved].freeWhole >= n {
		return j.reserved
	}
	best := -1
	for i := range s.hw.bnodes {
		bn := &s.hw.bnodes[i]
		if bn.freeWhole < n || !s.usable(j, i) {
			continue
		}
		if best < 0 || bn.freeWhole < s.hw.bnodes[best].freeWhole {
			best = i
		}
	}
	return best
}

// freeGPUs returns the first n free GPUs of node n.
func (s *simulator) freeGPUs(node, n int) []int {
	out := make([]int, 0, n)
	for _, gi := range s.hw.bnodes[node].gpus {
		if s.hw.gpus[gi].held == 0 {
			out = append(out, gi)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// maxReserved is how many nodes may be drained at once: one per ten
// whole-GPU nodes, at least one, so that draining never idles much of the
// pool.
func (s *simulator) maxReserved() int {
	n := 0
	for _, bn := range s.hw.bnodes {
		if len(bn.gpus) > 0 {
			n++
		}
	}
	return max(1, n/10)
}

// reserve drains a node for a multi-GPU job that has waited long: among the
// undrained nodes big enough, the one where j.gpus GPUs will be free
// soonest, as a scheduler that knows the jobs' run-time limits would
// choose.
func (s *simulator) reserve(j *job, t int64) {
	best, bestAt := -1, int64(0)
	ends := make([]int64, 0, 8)
	for i := range s.hw.bnodes {
		bn := &s.hw.bnodes[i]
		if len(bn.gpus) < j.gpus || bn.reserved >= 0 {
			continue
		}
		ends = ends[:0]
		for _, gi := range bn.gpus {
			g := &s.hw.gpus[gi]
			if g.held == 0 {
				ends = append(ends, t)
			} else {
				ends = append(ends, g.until)
			}
		}
		slices.Sort(ends)
		if at := ends[j.gpus-1]; best < 0 || at < bestAt {
			best, bestAt = i, at
		}
	}
	if best >= 0 {
		s.hw.bnodes[best].reserved = j.id
		j.reserved = best
		s.reserved++
	}
}

// start admits a job at t and decides who it belongs to.
func (s *simulator) start(j *job, t int64) {
	j.start = t
	heap.Push(&s.running, j)
	s.started = append(s.started, j)
	switch j.class {
	case jobNotebook:
		j.user = s.ten.hubUser(s.r)
		return
	case jobFPGA:
		j.project = s.ten.fpgaProject(s.r)
	default:
		inside := min(j.end(), s.winEnd) - max(j.start, s.winStart)
		j.project = s.ten.pick(s.r, float64(j.weightMilli()*max(0, inside)))
	}
	switch u := s.r.float(); {
	case u < unknownUserShare:
		j.user = "unknown"
	case u < unknownUserShare+serviceAccountShare:
		j.user, j.viaSA = s.ten.projects[j.project].name+"-pipeline", true
	default:
		j.user = s.ten.user(s.r, j.project)
	}
}
