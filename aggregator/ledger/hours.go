package ledger

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/aggregator/observe"
)

const hourSeconds = 3600

// floorHour is the start of the UTC hour holding Unix second t (t ≥ 0).
func floorHour(t int64) int64 { return t - t%hourSeconds }

// hourSet is a set of hour starts, Unix seconds.
type hourSet map[int64]struct{}

// addRange adds the hours that [a, b) overlaps.
func (s hourSet) addRange(a, b int64) {
	for h := floorHour(max(a, 0)); h < b; h += hourSeconds {
		s[h] = struct{}{}
	}
}

// sorted returns the hours in order.
func (s hourSet) sorted() []int64 {
	out := make([]int64, 0, len(s))
	for h := range s {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// hourRuns turns sorted hour starts into disjoint runs of consecutive
// hours [lo[i], hi[i]).
func hourRuns(hours []int64) (lo, hi []int64) {
	for _, h := range hours {
		if n := len(hi); n > 0 && hi[n-1] == h {
			hi[n-1] = h + hourSeconds
			continue
		}
		lo, hi = append(lo, h), append(hi, h+hourSeconds)
	}
	return lo, hi
}

// dayAndMonthRuns returns the UTC days and months holding the sorted hours
// as runs [lo, hi) of consecutive days and of consecutive months.
func dayAndMonthRuns(hours []int64) (dayLo, dayHi, monthLo, monthHi []time.Time) {
	for _, h := range hours {
		d := utcDay(time.Unix(h, 0))
		switch n := len(dayHi); {
		case n > 0 && d.Before(dayHi[n-1]):
		case n > 0 && d.Equal(dayHi[n-1]):
			dayHi[n-1] = d.AddDate(0, 0, 1)
		default:
			dayLo, dayHi = append(dayLo, d), append(dayHi, d.AddDate(0, 0, 1))
		}
		m := utcMonth(d)
		switch n := len(monthHi); {
		case n > 0 && m.Before(monthHi[n-1]):
		case n > 0 && m.Equal(monthHi[n-1]):
			monthHi[n-1] = m.AddDate(0, 1, 0)
		default:
			monthLo, monthHi = append(monthLo, m), append(monthHi, m.AddDate(0, 1, 0))
		}
	}
	return dayLo, dayHi, monthLo, monthHi
}

// effectiveEnd is where an interval stops counting: its end, or the
// watermark while it is open.
func effectiveEnd(end, watermark int64) int64 {
	if end != 0 {
		return end
	}
	return watermark
}

// change is what the upsert of one interval did: its old extent (when it
// existed) and its new one.
type change struct {
	existed          bool
	keyChanged       bool // a column of the ledger key, the weight or the device count changed
	oldStart, oldEnd int64
	newStart, newEnd int64 // ends 0 while open
	oldWM, newWM     int64
}

// affected adds to s the hours whose rows the change alters: for a new
// interval its extent; for one whose start or ledger key changed both its
// old and new extents; for one whose end alone changed the hours between
// the old and the new end.
func (c change) affected(s hourSet) {
	newEnd := effectiveEnd(c.newEnd, c.newWM)
	if !c.existed {
		s.addRange(c.newStart, newEnd)
		return
	}
	oldEnd := effectiveEnd(c.oldEnd, c.oldWM)
	if c.keyChanged || c.oldStart != c.newStart {
		s.addRange(c.oldStart, oldEnd)
		s.addRange(c.newStart, newEnd)
		return
	}
	s.addRange(min(oldEnd, newEnd), max(oldEnd, newEnd))
}

// utcDay and utcMonth are the starts of the UTC day and month of t.
func utcDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func utcMonth(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// validateWindow checks a Window before anything is written.
func validateWindow(w *observe.Window) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w [%d, %d): %s", ErrBadWindow, w.From, w.To, fmt.Sprintf(format, args...))
	}
	if err := checkText("cluster", w.Cluster); err != nil || w.Cluster == "" {
		return bad("cluster %q: want a non-empty UTF-8 name", w.Cluster)
	}
	if w.From <= 0 || w.To <= w.From {
		return bad("want 0 < from < to")
	}
	if len(w.Usage)+len(w.Energy)+len(w.Capacity) > 0 && floorHour(w.From) != floorHour(w.To-1) {
		return bad("a window with usage, energy or capacity must lie within one UTC hour")
	}
	keys := make(map[observe.AllocKey]bool, len(w.Intervals))
	for i := range w.Intervals {
		iv := &w.Intervals[i]
		if keys[iv.AllocKey] {
			return bad("interval %s given twice", keyString(iv.AllocKey))
		}
		keys[iv.AllocKey] = true
		switch {
		case !accounting.Class(iv.Class).Valid():
			return bad("interval %s: unknown class %q", keyString(iv.AllocKey), iv.Class)
		case iv.Start <= 0:
			return bad("interval %s: start %d", keyString(iv.AllocKey), iv.Start)
		case iv.End != 0 && iv.End < iv.Start:
			return bad("interval %s: end %d before start %d", keyString(iv.AllocKey), iv.End, iv.Start)
		case iv.WeightMilli < 0 || iv.Devices < 0 || iv.LastSeen < 0:
			return bad("interval %s: negative weight, device count or last-seen time", keyString(iv.AllocKey))
		}
		for _, f := range []struct{ name, v string }{
			{"node", iv.Node}, {"device", iv.Device}, {"pod_uid", iv.PodUID}, {"resource", iv.Resource},
			{"gpu_uuid", iv.GPUUUID}, {"model", iv.Model}, {"profile", iv.Profile}, {"namespace", iv.Namespace},
			{"pod", iv.Pod}, {"user", iv.User}, {"project", iv.Project}, {"queue", iv.Queue}, {"site", iv.Site},
		} {
			if err := checkText(f.name, f.v); err != nil {
				return bad("interval %s: %v", keyString(iv.AllocKey), err)
			}
		}
	}
	seen := make(map[observe.AllocKey]bool, len(w.Usage))
	for _, u := range w.Usage {
		switch {
		case !keys[u.AllocKey]:
			return bad("usage of %s, which is not among the window's intervals", keyString(u.AllocKey))
		case seen[u.AllocKey]:
			return bad("usage of %s given twice", keyString(u.AllocKey))
		case u.UsedMilliGPUSeconds < 0 || u.IdleMilliGPUSeconds < 0 || u.EnergyMillijoules < 0:
			return bad("usage of %s: negative value", keyString(u.AllocKey))
		}
		seen[u.AllocKey] = true
	}
	gpus := make(map[[2]string]bool, len(w.Energy))
	for _, e := range w.Energy {
		k := [2]string{e.Node, e.GPUUUID}
		if gpus[k] {
			return bad("energy of GPU %s/%s given twice", e.Node, e.GPUUUID)
		}
		gpus[k] = true
		if e.EnergyMillijoules < 0 {
			return bad("energy of GPU %s/%s: negative", e.Node, e.GPUUUID)
		}
		if err := firstTextError(e.Node, e.GPUUUID, e.Model); err != nil {
			return bad("energy of GPU %s/%s: %v", e.Node, e.GPUUUID, err)
		}
	}
	devs := make(map[[2]string]bool, len(w.Capacity))
	for _, c := range w.Capacity {
		k := [2]string{c.Node, c.Device}
		switch {
		case devs[k]:
			return bad("capacity of %s/%s given twice", c.Node, c.Device)
		case c.Class != string(accounting.ClassGPU) && c.Class != string(accounting.ClassFPGA):
			return bad("capacity of %s/%s: class %q, want gpu or fpga", c.Node, c.Device, c.Class)
		case c.Seconds < 0 || c.Seconds > w.To-w.From:
			return bad("capacity of %s/%s: %d seconds in a window of %d", c.Node, c.Device, c.Seconds, w.To-w.From)
		}
		devs[k] = true
		if err := firstTextError(c.Node, c.Device, c.Model); err != nil {
			return bad("capacity of %s/%s: %v", c.Node, c.Device, err)
		}
	}
	return nil
}

// checkText rejects what a PostgreSQL text column cannot hold.
func checkText(name, v string) error {
	if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%s %q: not UTF-8 text", name, v)
	}
	return nil
}

func firstTextError(vs ...string) error {
	for _, v := range vs {
		if err := checkText("value", v); err != nil {
			return err
		}
	}
	return nil
}

func keyString(k observe.AllocKey) string {
	return fmt.Sprintf("node=%s device=%s pod_uid=%s resource=%s", k.Node, k.Device, k.PodUID, k.Resource)
}
