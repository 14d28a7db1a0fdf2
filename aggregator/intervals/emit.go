package intervals

import (
	"math"
	"math/bits"
	"slices"
	"strings"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// gpuWindow is one GPU's figures in the window being emitted.
type gpuWindow struct {
	energy  int64 // mJ
	present int64 // ms
	held    int64 // Σ weight × overlap seconds of its holders (milli-GPU-seconds)
}

type holder struct {
	usage int // index in Window.Usage
	gpu   *gpuWindow
	held  int64
}

// emit builds the window [from, to) from the state after every scrape
// before to was applied, and starts the next window.
func (r *Reconstructor) emit(from, to int64) observe.Window {
	w := observe.Window{Cluster: r.cfg.cluster, From: from, To: to}
	toMs := to * 1000

	// GPUs: energy and presence.
	gws := map[string]*gpuWindow{}
	for _, name := range r.names {
		for _, gs := range r.targets[name].gpuList {
			if gs.energy == 0 && gs.presentMs == 0 {
				continue
			}
			class := "gpu"
			if gs.fpga {
				class = "fpga"
			} else {
				w.Energy = append(w.Energy, observe.Energy{Node: gs.node, GPUUUID: gs.uuid, Model: gs.model, EnergyMillijoules: gs.energy})
			}
			if gs.presentMs/1000 > 0 {
				w.Capacity = append(w.Capacity, observe.Capacity{Node: gs.node, Device: gs.uuid, Class: class, Model: gs.model,
					Seconds: gs.presentMs / 1000})
			}
			gw := gws[gs.uuid]
			if gw == nil {
				gw = &gpuWindow{}
				gws[gs.uuid] = gw
			}
			gw.energy += gs.energy
			gw.present += gs.presentMs
			gs.energy, gs.presentMs = 0, 0
		}
	}
	slices.SortFunc(w.Energy, func(a, b observe.Energy) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.GPUUUID, b.GPUUUID)
	})
	slices.SortFunc(w.Capacity, func(a, b observe.Capacity) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.Device, b.Device)
	})

	// Intervals, in key order.
	if len(r.fresh) > 0 {
		slices.SortFunc(r.fresh, func(a, b *ival) int { return keyCompare(a.key, b.key) })
		r.order = mergeByKey(r.order, r.fresh)
		clear(r.fresh)
		r.fresh = r.fresh[:0]
	}
	var holders []holder
	kept := r.order[:0]
	for _, iv := range r.order {
		if iv.dropped {
			continue
		}
		v := iv.viewAt(toMs, r.cfg.staleMs)
		ov := overlap(v, from, to)
		if ov > 0 || !iv.emitted || v != iv.last {
			w.Intervals = append(w.Intervals, iv.interval(v))
		}
		iv.emitted, iv.last = true, v
		used, idle := roundDiv(iv.used, 1_000_000), roundDiv(iv.idle, 1000)
		iv.used, iv.idle = 0, 0
		u := -1
		if used > 0 || idle > 0 {
			w.Usage = append(w.Usage, observe.Usage{AllocKey: iv.key, UsedMilliGPUSeconds: used, IdleMilliGPUSeconds: idle})
			u = len(w.Usage) - 1
		}
		if gw := gws[iv.attrs.GPUUUID]; gw != nil && iv.attrs.GPUUUID != "" && gw.energy > 0 && ov > 0 && iv.weight > 0 {
			if u < 0 {
				w.Usage = append(w.Usage, observe.Usage{AllocKey: iv.key})
				u = len(w.Usage) - 1
			}
			h := iv.weight * ov
			holders = append(holders, holder{usage: u, gpu: gw, held: h})
			gw.held += h
		}
		if v.end > 0 && (!v.exact || iv.vanished()) {
			// Final: an inferred end, or an exact one its exporter no
			// longer shows. Later evidence recreates it.
			iv.dropped = true
			delete(r.ivals, iv.key)
			continue
		}
		kept = append(kept, iv)
	}
	clear(r.order[len(kept):])
	r.order = kept

	// Energy shares: weight × overlap over the GPU's capacity (a whole GPU,
	// 1000 milli-GPU, over the milliseconds it was present, which is
	// numerically milli-GPU-seconds), or over its holders' total when that
	// is larger.
	for _, h := range holders {
		w.Usage[h.usage].EnergyMillijoules = mulDiv(h.gpu.energy, h.held, max(h.gpu.present, h.gpu.held))
	}
	w.Usage = slices.DeleteFunc(w.Usage, func(u observe.Usage) bool {
		return u.UsedMilliGPUSeconds == 0 && u.IdleMilliGPUSeconds == 0 && u.EnergyMillijoules == 0
	})
	return w
}

// overlap is the number of seconds of [from, to) the view covers, an open
// view running to the end of the window.
func overlap(v view, from, to int64) int64 {
	a, b := max(v.start, from), to
	if v.end > 0 {
		b = min(v.end, to)
	}
	return max(b-a, 0)
}

// mergeByKey merges two slices sorted by key.
func mergeByKey(a, b []*ival) []*ival {
	out := make([]*ival, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if keyCompare(a[0].key, b[0].key) <= 0 {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	out = append(out, a...)
	return append(out, b...)
}

// roundDiv is n / d rounded half up, for n ≥ 0 and d > 0.
func roundDiv(n, d int64) int64 { return (n + d/2) / d }

// mulDiv is ⌊a × b / c⌋ for a, b ≥ 0 and c > 0, exact through a 128-bit
// product; it saturates at MaxInt64 and is 0 when c ≤ 0.
func mulDiv(a, b, c int64) int64 {
	if a <= 0 || b <= 0 || c <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi >= uint64(c) {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, uint64(c))
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}
