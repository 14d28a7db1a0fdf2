package intervals

import (
	"math"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// apply applies, in time order, a scrape of t inside the window starting at
// from (Unix seconds): its facts, then the sampling step that ends at it.
func (r *Reconstructor) apply(t *target, s *observe.Scrape, from int64) {
	if t.lastApplied > 0 && (s.Time < t.lastApplied || (s.Time == t.lastApplied && (t.lastAppliedOK || !s.OK))) {
		// A second scrape at the time of one already applied.
		r.stats.Duplicates++
		if s.OK {
			r.mergeFacts(t, s, nil, false)
		}
		return
	}
	if t.lastApplied > 0 {
		t.addGap(s.Time - t.lastApplied)
	}
	t.lastApplied, t.lastAppliedOK = s.Time, s.OK
	if !s.OK {
		return
	}
	cur := t.newSample(s.Time)
	r.mergeFacts(t, s, cur, false)
	t.lastOK = max(t.lastOK, s.Time)
	r.seq++
	for i := range s.GPUs {
		g := &s.GPUs[i]
		if g.UUID == "" {
			r.stats.BadAllocs++
			r.reject("target %s at %d ms: a GPU without a UUID", t.name, s.Time)
			continue
		}
		gs := t.gpu(g)
		if gs.seq == r.seq {
			continue
		}
		gs.seq = r.seq
		cur.gpus = append(cur.gpus, gs)
		r.reading(gs, g.EnergyMillijoules, s.Time)
	}
	for i := range s.FPGAs {
		f := &s.FPGAs[i]
		if f.Device == "" {
			continue
		}
		gs := t.gpu(&observe.GPU{Node: f.Node, UUID: f.Device, Model: f.Model, EnergyMillijoules: -1})
		gs.fpga = true
		if gs.seq == r.seq {
			continue
		}
		gs.seq = r.seq
		cur.gpus = append(cur.gpus, gs)
	}
	if p := t.pred; p != nil {
		r.step(t, p, s.Time, from, nil)
	}
	t.setPred(cur, false, s.Time)
}

// applyLate applies a scrape older than the watermark: its facts, and, for a
// target with no sample of its own yet (new, or after Seed), its readings
// as the start of the first step, of which only the part after the
// watermark counts.
func (r *Reconstructor) applyLate(t *target, s *observe.Scrape) {
	r.stats.Late++
	if s.Time > t.lastApplied {
		if t.lastApplied > 0 {
			t.addGap(s.Time - t.lastApplied)
		}
		t.lastApplied, t.lastAppliedOK = s.Time, s.OK
	}
	if !s.OK {
		return
	}
	t.lastOK = max(t.lastOK, s.Time)
	if !(t.pred == nil || (t.predLate && s.Time > t.pred.t)) {
		r.mergeFacts(t, s, nil, true)
		return
	}
	cur := t.newSample(s.Time)
	r.mergeFacts(t, s, cur, true)
	wm := r.watermark * 1000
	r.seq++
	for i := range s.GPUs {
		g := &s.GPUs[i]
		if g.UUID == "" {
			continue
		}
		gs := t.gpu(g)
		if gs.seq == r.seq {
			continue
		}
		gs.seq = r.seq
		cur.gpus = append(cur.gpus, gs)
		if g.EnergyMillijoules >= 0 {
			gs.has, gs.prevT, gs.prevV, gs.attributed, gs.settleTo = true, s.Time, g.EnergyMillijoules, 0, wm
		}
	}
	t.setPred(cur, true, wm)
}

// badAlloc says what is wrong with an allocation entry; "" when nothing.
func badAlloc(a *observe.Alloc) string {
	switch {
	case checkKey(a.AllocKey) != nil:
		return "no node, pod UID or resource"
	case a.Start <= 0 || a.Start > maxUnixSeconds:
		return "start outside (0, 1e11] s"
	case a.End < 0 || a.End > maxUnixSeconds || (a.End > 0 && a.End < a.Start):
		return "end negative, out of range or before the start"
	case a.WeightMilli < 0 || a.WeightMilli > maxWeightMilli:
		return "weight outside [0, 1e9] milli-GPU"
	case a.Devices < 0:
		return "negative device count"
	case a.ActivityMilli < -1 || a.ActivityMilli > 1000:
		return "activity outside [0, 1000] thousandths (or -1)"
	}
	return ""
}

// mergeFacts merges the allocation entries of s into the intervals and, when
// cur is not nil, records the running allocations' activity in it. A late
// scrape creates intervals only from end series: an allocation it shows
// running may have ended since, and its end, once dropped, is not known
// here any more.
func (r *Reconstructor) mergeFacts(t *target, s *observe.Scrape, cur *sample, late bool) {
	r.seq++
	hint := t.hint
	next := t.hintBuf[:0]
	j := 0 // where the previous scrape's entries are expected to match
	for i := range s.Allocs {
		a := &s.Allocs[i]
		var iv *ival
		switch {
		case j < len(hint) && hint[j] != nil && !hint[j].dropped && hint[j].key == a.AllocKey:
			iv = hint[j]
			j++
		case j+1 < len(hint) && hint[j+1] != nil && !hint[j+1].dropped && hint[j+1].key == a.AllocKey:
			iv = hint[j+1] // an entry of the previous scrape is gone
			j += 2
		default:
			iv = r.ivals[a.AllocKey] // a new entry, or another order
		}
		if msg := badAlloc(a); msg != "" {
			r.stats.BadAllocs++
			r.reject("target %s at %d ms: allocation %s ignored: %s", t.name, s.Time, keyText(a.AllocKey), msg)
			// Its state at this scrape is unknown, which is not absence.
			if iv != nil && s.Time > iv.lastSeen {
				iv.lastSeen, iv.owner = s.Time, t
			}
			next = append(next, iv)
			continue
		}
		if iv == nil {
			if late && a.End == 0 {
				next = append(next, nil)
				continue
			}
			iv = &ival{key: a.AllocKey, attrs: a.Attrs, weight: a.WeightMilli, devices: a.Devices,
				start: a.Start, owner: t}
			r.ivals[a.AllocKey] = iv
			r.fresh = append(r.fresh, iv)
		} else if iv.seq == r.seq {
			r.stats.BadAllocs++
			r.reject("target %s at %d ms: allocation %s listed twice; the first entry counts", t.name, s.Time, keyText(a.AllocKey))
			next = append(next, nil)
			continue
		}
		iv.seq = r.seq
		if a.Start < iv.start {
			iv.start = a.Start
		}
		if a.End > 0 && (iv.end == 0 || a.End < iv.end) {
			iv.end = a.End
		}
		if s.Time > iv.lastSeen {
			iv.lastSeen, iv.owner = s.Time, t
		}
		if cur != nil && a.End == 0 && a.ActivityMilli >= 0 {
			cur.allocs = append(cur.allocs, sampleAlloc{iv: iv, act: a.ActivityMilli})
		}
		next = append(next, iv)
	}
	// Entries the source could not read: seen, state unknown, so not gone.
	for _, k := range s.Unknown {
		if iv := r.ivals[k]; iv != nil && s.Time > iv.lastSeen {
			iv.lastSeen, iv.owner = s.Time, t
		}
	}
	if late {
		t.hintBuf = next
		return
	}
	t.hint, t.hintBuf = next, hint
}

// reading applies an energy counter reading v (mJ, -1 when absent) of gs at
// ms. The increase since the previous reading, less what was already
// attributed ahead of it, goes to the current window: the window being
// built holds the reading, and parts of the increase that fall in windows
// already closed cannot go back to them.
func (r *Reconstructor) reading(gs *gpuState, v, ms int64) {
	if v < 0 {
		return
	}
	if !gs.has || ms <= gs.prevT {
		gs.has, gs.prevT, gs.prevV, gs.attributed, gs.settleTo = true, ms, v, 0, 0
		return
	}
	d, reset := increase(gs.prevV, v)
	if reset {
		r.stats.Resets++
	}
	span := ms - gs.prevT
	if gs.settleTo > 0 {
		gs.attributed = mulDiv(d, min(max(gs.settleTo-gs.prevT, 0), span), span)
		gs.settleTo = 0
	}
	rem := d - gs.attributed
	gs.energy += max(rem, 0)
	gs.prevT, gs.prevV, gs.attributed = ms, v, max(-rem, 0)
}

// step accounts the sample p from where it was accounted to up to endMs
// (the next sample of the target, or the end of the window being closed),
// within the window that starts at from. next, when not nil, is the target's
// next successful scrape, not applied yet: what it says of each allocation
// (still running, ended, gone) bounds the allocation's share of the step.
func (r *Reconstructor) step(t *target, p *sample, endMs, from int64, next *observe.Scrape) {
	fromMs := from * 1000
	capMs := t.stepCap(&r.cfg)
	if capMs == 0 && next != nil {
		capMs = 2 * (next.Time - p.t) // no interval known yet: the next scrape tells one
	}
	hi := min(endMs, p.t+capMs)
	lo := max(t.actCursor, p.t, fromMs)
	if lo < hi {
		var ends map[observe.AllocKey]int64
		if next != nil {
			ends = nextEnds(next)
		}
		for _, sa := range p.allocs {
			iv := sa.iv
			if iv.dropped {
				continue
			}
			e := iv.endMs()
			if ends != nil && iv.end == 0 {
				ne, ok := ends[iv.key]
				switch {
				case !ok:
					e = iv.inferredEnd() * 1000 // gone at the next scrape
				case ne > 0:
					e = ne * 1000
				default:
					e = math.MaxInt64 // running, or its state unknown
				}
			}
			a, b := max(lo, iv.start*1000), min(hi, e)
			if a >= b {
				continue
			}
			dt := b - a
			iv.used += sa.act * iv.weight * dt
			if sa.act < r.cfg.idle {
				iv.idle += iv.weight * dt
			}
		}
		t.actCursor = hi
	}
	chi := endMs
	if r.cfg.staleMs >= 0 {
		chi = min(chi, p.t+r.cfg.staleMs)
	}
	if clo := max(t.capCursor, p.t, fromMs); clo < chi {
		for _, g := range p.gpus {
			g.presentMs += chi - clo
		}
		t.capCursor = chi
	}
}

// nextEnds maps the allocations of a scrape to their end (0 while running
// or when the entry is malformed).
func nextEnds(s *observe.Scrape) map[observe.AllocKey]int64 {
	m := make(map[observe.AllocKey]int64, len(s.Allocs)+len(s.Unknown))
	for _, k := range s.Unknown {
		m[k] = 0
	}
	for i := range s.Allocs {
		a := &s.Allocs[i]
		if _, dup := m[a.AllocKey]; dup {
			continue
		}
		if badAlloc(a) != "" {
			m[a.AllocKey] = 0
			continue
		}
		m[a.AllocKey] = a.End
	}
	return m
}

// finishSteps accounts, when the window [from, to) closes, what t's latest
// sample says up to to, and the share up to to of the energy its GPUs used
// until the next reading when that reading has already been observed.
func (r *Reconstructor) finishSteps(t *target, from, to int64) {
	var next *observe.Scrape
	for i := t.head; i < len(t.pending); i++ {
		if t.pending[i].OK {
			next = &t.pending[i]
			break
		}
	}
	toMs := to * 1000
	if p := t.pred; p != nil && p.t < toMs {
		r.step(t, p, toMs, from, next)
	}
	if next == nil {
		return
	}
	for i := range next.GPUs {
		g := &next.GPUs[i]
		gs := t.gpus[g.UUID]
		if gs == nil || !gs.has || g.EnergyMillijoules < 0 || gs.prevT >= toMs || next.Time <= gs.prevT {
			continue
		}
		d, _ := increase(gs.prevV, g.EnergyMillijoules)
		span := next.Time - gs.prevT
		if gs.settleTo > 0 {
			gs.attributed = mulDiv(d, min(max(gs.settleTo-gs.prevT, 0), span), span)
			gs.settleTo = 0
		}
		share := mulDiv(d, toMs-gs.prevT, span)
		if add := share - gs.attributed; add > 0 {
			gs.energy += add
			gs.attributed = share
		}
	}
}
