// Package intervals reconstructs allocation intervals, per-window usage,
// energy and capacity from exporter scrapes. It is pure: no I/O, no clock,
// no goroutines. docs/ledger.md states its rules and guarantees; in short:
//
//   - Facts are merged, never overwritten: an allocation's start is the
//     smallest start any scrape reported, its exact end the smallest end
//     series seen, its last-seen time the latest scrape that showed it. An
//     allocation without an end series ends, inferred, at its last-seen
//     scrape (floored to the second) once a later successful scrape of its
//     exporter no longer shows it, or once nothing has shown it for
//     Config.StaleAfter. Later evidence wins: an exact end replaces an
//     inferred one, a newer scrape showing the allocation running reopens it.
//   - Scrapes are buffered per target and applied in time order when windows
//     close, so duplicates and out-of-order delivery within the caller's lag
//     change nothing. A scrape older than the last closed window is late: its
//     facts (starts, exact ends) are merged, its samples are not.
//   - Close(upTo) emits every window [From, To) ending by upTo, each built from
//     the scrapes before its To (plus, to finish the sampling step that
//     straddles To, the next scrape of each target when it has already been
//     observed).
//
// A Reconstructor is not safe for concurrent use.
package intervals

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// Defaults of Config.
const (
	DefaultWindow             = 5 * time.Minute
	DefaultIdleThresholdMilli = 50
	DefaultStaleAfter         = time.Hour
)

// Bounds of the values a scrape may carry. They keep every product of the
// arithmetic below 2^63.
const (
	maxWeightMilli = 1_000_000_000 // a million GPUs in one allocation
	maxUnixSeconds = 100_000_000_000
)

// ErrConfig is wrapped by configuration errors; ErrSeed by Seed's errors.
var (
	ErrConfig = errors.New("invalid interval reconstruction configuration")
	ErrSeed   = errors.New("cannot seed the interval reconstruction")
)

// Config tunes a Reconstructor. The zero value of each field selects its
// default.
type Config struct {
	// Cluster names the cluster in every Window.
	Cluster string
	// Window is the length of a ledger window: whole seconds, dividing an
	// hour (default 5m). Windows are aligned to the Unix epoch, hence to the
	// hour.
	Window time.Duration
	// IdleThresholdMilli: an activity sample below it (thousandths) counts
	// as idle (default 50, i.e. 5 %). Between 1 and 1000.
	IdleThresholdMilli int64
	// ScrapeInterval is the targets' scrape interval. A sample's activity
	// covers at most 2 × ScrapeInterval. Zero estimates it per target as the
	// smallest gap between its last eight scrape attempts.
	ScrapeInterval time.Duration
	// StaleAfter closes, with an inferred end at its last-seen scrape, an
	// open allocation that no scrape has shown for this long (default 1h;
	// negative: never). It also bounds how long a device counts as present
	// after its last successful scrape. Set it at least to the exporters'
	// ended-allocation retention: a silence shorter than the retention loses
	// nothing, and a closed allocation that shows up again is reopened.
	StaleAfter time.Duration
}

// normalized is a validated Config in the units the code uses.
type normalized struct {
	cluster    string
	win        int64 // s
	winMs      int64
	idle       int64 // thousandths
	intervalMs int64 // 0: estimate
	staleMs    int64 // -1: never
}

// Validate checks a configuration; errors wrap ErrConfig.
func (c Config) Validate() error {
	_, err := c.normalize()
	return err
}

func (c Config) normalize() (normalized, error) {
	n := normalized{cluster: c.Cluster}
	w := c.Window
	if w == 0 {
		w = DefaultWindow
	}
	if w < time.Second || w%time.Second != 0 || time.Hour%w != 0 {
		return n, fmt.Errorf("%w: window %s must be whole seconds and divide an hour", ErrConfig, w)
	}
	n.win, n.winMs = int64(w/time.Second), w.Milliseconds()
	n.idle = c.IdleThresholdMilli
	if n.idle == 0 {
		n.idle = DefaultIdleThresholdMilli
	}
	if n.idle < 1 || n.idle > 1000 {
		return n, fmt.Errorf("%w: idle threshold %d outside [1, 1000] thousandths", ErrConfig, c.IdleThresholdMilli)
	}
	if c.ScrapeInterval < 0 || (c.ScrapeInterval > 0 && c.ScrapeInterval < time.Millisecond) {
		return n, fmt.Errorf("%w: scrape interval %s is negative or below a millisecond", ErrConfig, c.ScrapeInterval)
	}
	n.intervalMs = c.ScrapeInterval.Milliseconds()
	switch {
	case c.StaleAfter == 0:
		n.staleMs = DefaultStaleAfter.Milliseconds()
	case c.StaleAfter < 0:
		n.staleMs = -1
	case c.StaleAfter < time.Second:
		return n, fmt.Errorf("%w: stale-after %s is below a second", ErrConfig, c.StaleAfter)
	default:
		n.staleMs = c.StaleAfter.Milliseconds()
	}
	return n, nil
}

// Stats counts what a Reconstructor received and holds.
type Stats struct {
	Scrapes    int64 // scrapes observed, failed ones included
	Failed     int64 // scrapes with OK false
	Rejected   int64 // scrapes refused whole (no target, no time)
	Late       int64 // scrapes older than the last closed window: facts only
	Duplicates int64 // scrapes of a target at a time already applied: facts only
	BadAllocs  int64 // allocation entries ignored as malformed or repeated within a scrape
	Resets     int64 // energy counter decreases treated as resets
	Open       int   // intervals held (open, or ended and still exported)
	Pending    int   // scrapes waiting for their window to close
	// LastRejection describes the last scrape or allocation entry refused.
	LastRejection string
}

// Reconstructor turns scrapes into closed windows.
type Reconstructor struct {
	cfg       normalized
	started   bool
	watermark int64 // s: every window before it is emitted
	seq       uint64

	ivals map[observe.AllocKey]*ival
	order []*ival // sorted by key, as of the last emission
	fresh []*ival // created since the last emission

	targets map[string]*target
	names   []string // sorted target names

	stats Stats
}

// New returns a Reconstructor for a valid configuration.
func New(cfg Config) (*Reconstructor, error) {
	n, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	return &Reconstructor{cfg: n, ivals: map[observe.AllocKey]*ival{}, targets: map[string]*target{}}, nil
}

// Watermark returns the end (Unix seconds) of the last window emitted, or of
// the seed; 0 before either.
func (r *Reconstructor) Watermark() int64 {
	if !r.started {
		return 0
	}
	return r.watermark
}

// Stats returns the counters.
func (r *Reconstructor) Stats() Stats {
	s := r.stats
	s.Open = len(r.ivals)
	s.Pending = 0
	for _, t := range r.targets {
		s.Pending += len(t.pending) - t.head
	}
	return s
}

func (r *Reconstructor) reject(format string, args ...any) {
	r.stats.LastRejection = fmt.Sprintf(format, args...)
}

// Observe takes one scrape of any target, in any order. The scrape is kept
// (with its slices, which the caller must not modify afterwards) until the
// window containing it closes. A scrape without a target or a positive time
// is refused (Stats.Rejected) and says nothing, like a failed one.
func (r *Reconstructor) Observe(s observe.Scrape) {
	r.stats.Scrapes++
	if s.Target == "" || s.Time <= 0 || s.Time > maxUnixSeconds*1000 {
		r.stats.Rejected++
		r.reject("scrape of target %q at %d ms refused: no target or a time outside (0, %d] ms", s.Target, s.Time, int64(maxUnixSeconds*1000))
		return
	}
	if !s.OK {
		r.stats.Failed++
	}
	t := r.target(s.Target)
	if n := len(t.pending); n > t.head && t.pending[n-1].Time > s.Time {
		t.unsorted = true
	}
	t.pending = append(t.pending, s)
}

// Seed prepares a new Reconstructor to continue after a restart: watermark
// is the end of the last window the ledger applied (Unix seconds, aligned),
// open the intervals the ledger holds open (End 0) with their LastSeen. It
// must come before any Observe. Scrapes older than the watermark are then
// late (facts only), except that the latest of them for each target serves
// as the sample the target's first step starts from, so that a source that
// re-delivers the scrapes just before the watermark gives the windows a run
// without restart would have given.
func (r *Reconstructor) Seed(watermark int64, open []observe.Interval) error {
	if r.started || r.stats.Scrapes > 0 {
		return fmt.Errorf("%w: seed before observing or closing anything", ErrSeed)
	}
	if watermark <= 0 || watermark > maxUnixSeconds || watermark%r.cfg.win != 0 {
		return fmt.Errorf("%w: watermark %d is not a positive multiple of the %d s window", ErrSeed, watermark, r.cfg.win)
	}
	seen := make(map[observe.AllocKey]bool, len(open))
	for i := range open {
		in := &open[i]
		if err := checkKey(in.AllocKey); err != nil {
			return fmt.Errorf("%w: interval %d: %w", ErrSeed, i, err)
		}
		switch {
		case seen[in.AllocKey]:
			return fmt.Errorf("%w: interval %d: %s given twice", ErrSeed, i, keyText(in.AllocKey))
		case in.End != 0:
			return fmt.Errorf("%w: interval %d: %s is not open (end %d)", ErrSeed, i, keyText(in.AllocKey), in.End)
		case in.Start <= 0 || in.Start > watermark:
			return fmt.Errorf("%w: interval %d: %s starts at %d, outside (0, watermark %d]", ErrSeed, i, keyText(in.AllocKey), in.Start, watermark)
		case in.LastSeen < in.Start*1000 || in.LastSeen > watermark*1000:
			return fmt.Errorf("%w: interval %d: %s last seen at %d ms, before its start or after the watermark", ErrSeed, i, keyText(in.AllocKey), in.LastSeen)
		case in.WeightMilli < 0 || in.WeightMilli > maxWeightMilli || in.Devices < 0:
			return fmt.Errorf("%w: interval %d: %s has weight %d, devices %d", ErrSeed, i, keyText(in.AllocKey), in.WeightMilli, in.Devices)
		}
		seen[in.AllocKey] = true
	}
	for i := range open {
		in := &open[i]
		owner := in.Node
		iv := &ival{key: in.AllocKey, attrs: in.Attrs, weight: in.WeightMilli, devices: in.Devices,
			start: in.Start, lastSeen: in.LastSeen, owner: r.target(owner)}
		iv.last = view{start: in.Start}
		iv.emitted = true
		r.ivals[iv.key] = iv
		r.fresh = append(r.fresh, iv)
	}
	r.started, r.watermark = true, watermark
	return nil
}

// Close emits, in order, every window [From, To) with To ≤ upTo (Unix
// seconds, floored to the window) not emitted yet. The first window is the
// one holding the earliest scrape observed (or the seed's watermark).
// Windows with no data are emitted too, empty or holding the intervals still
// open.
func (r *Reconstructor) Close(upTo int64) []observe.Window {
	if upTo <= 0 {
		return nil
	}
	upTo = upTo / r.cfg.win * r.cfg.win
	if !r.started {
		first := int64(math.MaxInt64)
		for _, t := range r.targets {
			if t.head < len(t.pending) {
				first = min(first, slices.MinFunc(t.pending[t.head:], byTime).Time)
			}
		}
		if first == math.MaxInt64 || first >= upTo*1000 {
			return nil
		}
		r.started, r.watermark = true, first/1000/r.cfg.win*r.cfg.win
	}
	if upTo <= r.watermark {
		return nil
	}
	for _, name := range r.names {
		t := r.targets[name]
		if t.unsorted {
			slices.SortStableFunc(t.pending[t.head:], byTime)
			t.unsorted = false
		}
		// Late scrapes: facts only.
		for t.head < len(t.pending) && t.pending[t.head].Time < r.watermark*1000 {
			r.applyLate(t, &t.pending[t.head])
			t.pending[t.head] = observe.Scrape{}
			t.head++
		}
	}
	var out []observe.Window
	for from := r.watermark; from < upTo; from += r.cfg.win {
		to := from + r.cfg.win
		for _, name := range r.names {
			t := r.targets[name]
			// A scrape taken exactly at the window's end still belongs
			// to it: what it shows (a start or an end inside the window)
			// happened in the window, and its samples cover only later
			// time. Without it the last window of a range (a backfill, a
			// replay's --until) would miss what its last scrape saw.
			for t.head < len(t.pending) && t.pending[t.head].Time <= to*1000 {
				r.apply(t, &t.pending[t.head], from)
				t.pending[t.head] = observe.Scrape{}
				t.head++
			}
		}
		for _, name := range r.names {
			r.finishSteps(r.targets[name], from, to)
		}
		out = append(out, r.emit(from, to))
		r.watermark = to
	}
	for _, t := range r.targets {
		t.compact()
	}
	return out
}

func byTime(a, b observe.Scrape) int {
	switch {
	case a.Time < b.Time:
		return -1
	case a.Time > b.Time:
		return 1
	}
	return 0
}

// target returns the state of the named target, creating it.
func (r *Reconstructor) target(name string) *target {
	t := r.targets[name]
	if t == nil {
		t = &target{name: name, gpus: map[string]*gpuState{}}
		r.targets[name] = t
		i, _ := slices.BinarySearch(r.names, name)
		r.names = slices.Insert(r.names, i, name)
	}
	return t
}

func checkKey(k observe.AllocKey) error {
	if k.Node == "" || k.PodUID == "" || k.Resource == "" {
		return fmt.Errorf("allocation key %s lacks a node, pod UID or resource", keyText(k))
	}
	return nil
}

func keyText(k observe.AllocKey) string {
	return fmt.Sprintf("{node=%q, device=%q, pod_uid=%q, resource=%q}", k.Node, k.Device, k.PodUID, k.Resource)
}

func keyCompare(a, b observe.AllocKey) int {
	switch {
	case a.Node != b.Node:
		return strings.Compare(a.Node, b.Node)
	case a.Device != b.Device:
		return strings.Compare(a.Device, b.Device)
	case a.PodUID != b.PodUID:
		return strings.Compare(a.PodUID, b.PodUID)
	}
	return strings.Compare(a.Resource, b.Resource)
}
