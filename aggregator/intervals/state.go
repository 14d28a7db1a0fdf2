package intervals

import (
	"math"
	"slices"
	"strings"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// view is what the ledger is told of an interval: its bounds and whether
// the end is exact.
type view struct {
	start, end int64 // Unix seconds; end 0 while open
	exact      bool
}

// ival is one allocation being reconstructed. Its facts only ever move one
// way (start down, exact end down, last-seen up), so applying a scrape twice
// or out of order gives the same facts.
type ival struct {
	key      observe.AllocKey
	attrs    observe.Attrs
	weight   int64
	devices  int64
	start    int64   // s: smallest start reported
	end      int64   // s: smallest exact end reported; 0 when none
	lastSeen int64   // ms: latest scrape that showed it (running or ended)
	owner    *target // the target of that scrape
	seq      uint64  // the scrape that last touched it, to spot repeats within one scrape

	emitted bool // the ledger has been told of it
	last    view // what it was told
	dropped bool // no longer held: final and no longer exported

	// The current window's sampled usage, before rounding: Σ activity
	// (thousandths) × weight (milli-GPU) × milliseconds, and Σ weight ×
	// milliseconds of the idle samples.
	used, idle int64
}

// inferredEnd is the end an allocation gets when it vanishes without an end
// series: its last-seen scrape, floored to the second (never before its
// start).
func (iv *ival) inferredEnd() int64 { return max(iv.lastSeen/1000, iv.start) }

// vanished reports whether a successful scrape of its target newer than its
// last sighting did not show it.
func (iv *ival) vanished() bool { return iv.owner.lastOK > iv.lastSeen }

// endMs is the end known now, in milliseconds; MaxInt64 while open.
func (iv *ival) endMs() int64 {
	switch {
	case iv.end > 0:
		return iv.end * 1000
	case iv.vanished():
		return iv.inferredEnd() * 1000
	}
	return math.MaxInt64
}

// viewAt is the interval as known when the window ending at toMs closes.
func (iv *ival) viewAt(toMs, staleMs int64) view {
	v := view{start: iv.start}
	switch {
	case iv.end > 0:
		v.end, v.exact = iv.end, true
	case iv.vanished() || (staleMs >= 0 && toMs-iv.lastSeen > staleMs):
		v.end = iv.inferredEnd()
	}
	return v
}

func (iv *ival) interval(v view) observe.Interval {
	return observe.Interval{AllocKey: iv.key, Attrs: iv.attrs, Start: v.start, End: v.end, EndExact: v.exact,
		LastSeen: iv.lastSeen, WeightMilli: iv.weight, Devices: iv.devices}
}

// target is one exporter: its buffered scrapes and sampling state.
type target struct {
	name     string
	pending  []observe.Scrape // pending[head:] not applied yet
	head     int
	unsorted bool

	lastOK        int64 // ms: latest successful scrape applied, late ones included
	lastApplied   int64 // ms: latest scrape attempt applied (for the interval estimate)
	lastAppliedOK bool  // whether that attempt succeeded
	gaps          [8]int64
	ngaps         int

	// pred is the latest sample: each of its values holds from its time to
	// the next sample's (capped). Activity and presence are accounted up to
	// actCursor and capCursor.
	pred, spare          *sample
	predLate             bool
	actCursor, capCursor int64
	hint, hintBuf        []*ival // the intervals of the last scrape's entries, by position

	gpus    map[string]*gpuState
	gpuList []*gpuState // sorted by UUID
}

// sample is what one successful scrape says of activity and devices.
type sample struct {
	t      int64 // ms
	allocs []sampleAlloc
	gpus   []*gpuState
}

type sampleAlloc struct {
	iv  *ival
	act int64 // thousandths
}

func (t *target) newSample(at int64) *sample {
	s := t.spare
	if s == nil {
		s = &sample{}
	}
	t.spare = nil
	s.t, s.allocs, s.gpus = at, s.allocs[:0], s.gpus[:0]
	return s
}

func (t *target) setPred(s *sample, late bool, cursor int64) {
	if t.pred != nil {
		t.spare = t.pred
	}
	t.pred, t.predLate = s, late
	t.actCursor, t.capCursor = cursor, cursor
}

// addGap records the time between two scrape attempts.
func (t *target) addGap(d int64) {
	if d <= 0 {
		return
	}
	t.gaps[t.ngaps%len(t.gaps)] = d
	t.ngaps++
}

// stepCap is how long one activity sample may hold: twice the scrape
// interval, configured or estimated; 0 while unknown.
func (t *target) stepCap(cfg *normalized) int64 {
	if cfg.intervalMs > 0 {
		return 2 * cfg.intervalMs
	}
	n := min(t.ngaps, len(t.gaps))
	if n == 0 {
		return 0
	}
	return 2 * slices.Min(t.gaps[:n])
}

// gpu returns the state of the GPU g of this target, creating it.
func (t *target) gpu(g *observe.GPU) *gpuState {
	gs := t.gpus[g.UUID]
	if gs == nil {
		gs = &gpuState{node: g.Node, uuid: g.UUID}
		if gs.node == "" {
			gs.node = t.name
		}
		t.gpus[g.UUID] = gs
		i, _ := slices.BinarySearchFunc(t.gpuList, g.UUID, func(a *gpuState, u string) int { return strings.Compare(a.uuid, u) })
		t.gpuList = slices.Insert(t.gpuList, i, gs)
	}
	if g.Model != "" {
		gs.model = g.Model
	}
	return gs
}

// compact drops the applied scrapes from the buffer.
func (t *target) compact() {
	switch {
	case t.head == len(t.pending):
		t.pending, t.head = t.pending[:0], 0
	case t.head > len(t.pending)/2:
		n := copy(t.pending, t.pending[t.head:])
		clear(t.pending[n:])
		t.pending, t.head = t.pending[:n], 0
	}
}

// gpuState is one physical GPU: its energy counter and the current window's
// energy and presence.
type gpuState struct {
	node, uuid, model string
	seq               uint64

	has          bool  // prevT and prevV hold a reading
	prevT, prevV int64 // ms, mJ: the last counter reading applied
	// attributed is the part of the increase after prevT already given to
	// windows (ahead of the counter, from the next reading when it was
	// known at a window's close), or owed by an over-attribution.
	attributed int64
	// settleTo, when positive, says that the energy from prevT to settleTo
	// was accounted before a restart: that share of the next increase is
	// skipped.
	settleTo int64

	energy    int64 // mJ given to the current window
	presentMs int64 // ms present in the current window
	fpga      bool  // an FPGA card: presence only, no energy
}

// increase is the counter increase from prev to v: a decrease is a reset,
// after which the counter counted v from zero.
func increase(prev, v int64) (int64, bool) {
	if v < prev {
		return v, true
	}
	return v - prev, false
}
