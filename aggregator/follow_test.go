package aggregator

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/intervals"
	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// historySource serves the scrapes of two exporters, every 60 s from t0
// to end: allocations starting and ending at odd seconds, an exporter's
// failed scrapes, activity changing over time. It fails the reads whose
// range starts at failAt, failures times.
type historySource struct {
	t0, end  int64 // Unix seconds
	failAt   time.Time
	failures int
	reads    int
}

func (h *historySource) scrape(target string, ts int64) observe.Scrape {
	s := observe.Scrape{Target: target, Time: ts * 1000, OK: !(target == "n2" && ts%1800 < 120)}
	for i := range int64(6) {
		start := h.t0 + i*1234 + 7
		end := start + 2500 + i*911
		if ts < start || ts > end+600 { // ended allocations stay exported for 10 minutes
			continue
		}
		a := observe.Alloc{
			AllocKey: observe.AllocKey{Node: target, Device: fmt.Sprintf("GPU-%s-%d", target, i), PodUID: fmt.Sprintf("uid-%d", i), Resource: "nvidia.com/gpu"},
			Attrs:    observe.Attrs{Class: "gpu", Model: "A100", Namespace: "ns", Pod: fmt.Sprintf("pod-%d", i), User: "u", Project: fmt.Sprintf("p%d", i%2)},
			Start:    start, WeightMilli: 1000, Devices: 1, ActivityMilli: (ts / 60 * 37 % 1000),
		}
		if ts >= end {
			a.End, a.ActivityMilli = end, -1
		}
		s.Allocs = append(s.Allocs, a)
	}
	return s
}

func (h *historySource) Fetch(_ context.Context, from, to time.Time) ([]observe.Scrape, error) {
	h.reads++
	if h.failures > 0 && from.Equal(h.failAt) {
		h.failures--
		return nil, errors.New("query timed out")
	}
	var out []observe.Scrape
	for ts := h.t0; ts < h.end; ts += 60 {
		if ts >= from.Unix() && ts < to.Unix() {
			out = append(out, h.scrape("n1", ts), h.scrape("n2", ts))
		}
	}
	return out, nil
}

// windowLedger keeps every window it is given.
type windowLedger struct{ windows []observe.Window }

func (l *windowLedger) ApplyWindow(_ context.Context, w observe.Window) error {
	l.windows = append(l.windows, w)
	return nil
}

func newFollowLoop(t *testing.T, until int64) (*Loop, *windowLedger) {
	t.Helper()
	rec, err := intervals.New(intervals.Config{Cluster: "c", Window: 5 * time.Minute, ScrapeInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	led := &windowLedger{}
	l, err := New(Config{Window: 5 * time.Minute, Lag: 5 * time.Minute, Until: until}, rec, led, noScrapes{})
	if err != nil {
		t.Fatal(err)
	}
	return l, led
}

type noScrapes struct{}

func (noScrapes) ScrapeAll(context.Context) []observe.Scrape { return nil }

// TestFollowEqualsBackfill follows a source as a virtual clock passes,
// two minutes behind it, closing each window five minutes (the lag) after
// its end, with a read that fails twice on the way: what the ledger keeps
// is what one backfill of the whole range gives — even where an exporter's
// failed scrapes hide an allocation's end until after its window ended.
func TestFollowEqualsBackfill(t *testing.T) {
	t0 := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	end := t0.Add(6 * time.Hour)
	src := &historySource{t0: t0.Unix(), end: end.Unix() + 60}

	back, backLedger := newFollowLoop(t, 0)
	if err := back.Backfill(context.Background(), src, t0, end, end.Sub(t0)); err != nil {
		t.Fatal(err)
	}

	src.failAt, src.failures = t0.Add(2*time.Hour+35*time.Minute), 2
	follow, followLedger := newFollowLoop(t, end.Unix())
	now := t0.Add(-time.Minute)
	sleeps := 0
	err := follow.Follow(context.Background(), src, t0, FollowOptions{
		Chunk: time.Hour, Delay: 2 * time.Minute,
		Now: func() time.Time { return now },
		Sleep: func(_ context.Context, d time.Duration) bool {
			sleeps++
			now = now.Add(d)
			return true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if src.failures != 0 {
		t.Errorf("%d failures left: the failing read was not tried again", src.failures)
	}
	if len(backLedger.windows) != 72 {
		t.Fatalf("the backfill wrote %d windows, want 72 (6 h of 5 min)", len(backLedger.windows))
	}
	// The ledger keeps, per allocation, the interval as the last window
	// gave it, and adds the windows' usage: those must be the same. (A
	// window's copy of an interval may differ: the backfill closes an
	// hour's windows having read the whole hour, Follow each window as it
	// is due, before the scrapes after it.)
	fw, bw := summarize(followLedger.windows), summarize(backLedger.windows)
	if !reflect.DeepEqual(fw.bounds, bw.bounds) {
		t.Errorf("windows: follow %v, backfill %v", fw.bounds, bw.bounds)
	}
	for k, b := range bw.intervals {
		if f := fw.intervals[k]; f != b {
			t.Errorf("interval %v:\nfollow   %+v\nbackfill %+v", k, f, b)
		}
	}
	for k, b := range bw.usage {
		if f := fw.usage[k]; f != b {
			t.Errorf("usage of %v: follow %v, backfill %v", k, f, b)
		}
	}
	if len(fw.intervals) != 12 || len(fw.usage) != 12 {
		t.Errorf("%d intervals and %d usage keys, want 12 (6 allocations on 2 exporters)", len(fw.intervals), len(fw.usage))
	}
	// One wake-up per window (and one per failed read's retry), none busy.
	if sleeps < 72 || sleeps > 80 {
		t.Errorf("%d waits for 72 windows", sleeps)
	}
	if got := followLedger.windows[len(followLedger.windows)-1].To; got != end.Unix() {
		t.Errorf("the last window ends at %d, want %d", got, end.Unix())
	}
}

// ledgerView is what a ledger keeps of windows: their bounds, the last
// version of each interval, and the sum of each allocation's usage.
type ledgerView struct {
	bounds    [][2]int64
	intervals map[observe.AllocKey]observe.Interval
	usage     map[observe.AllocKey][2]int64
}

func summarize(ws []observe.Window) ledgerView {
	v := ledgerView{intervals: map[observe.AllocKey]observe.Interval{}, usage: map[observe.AllocKey][2]int64{}}
	for _, w := range ws {
		v.bounds = append(v.bounds, [2]int64{w.From, w.To})
		for _, in := range w.Intervals {
			v.intervals[in.AllocKey] = in
		}
		for _, u := range w.Usage {
			x := v.usage[u.AllocKey]
			v.usage[u.AllocKey] = [2]int64{x[0] + u.UsedMilliGPUSeconds, x[1] + u.IdleMilliGPUSeconds}
		}
	}
	return v
}

// TestFollowStopsWithContext: without Until, Follow runs until its context
// ends, and a wait cut short ends it.
func TestFollowStopsWithContext(t *testing.T) {
	t0 := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	src := &historySource{t0: t0.Unix(), end: t0.Add(time.Hour).Unix()}
	l, led := newFollowLoop(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	now := t0.Add(30 * time.Minute)
	err := l.Follow(ctx, src, t0, FollowOptions{Delay: time.Minute,
		Now: func() time.Time { return now },
		Sleep: func(context.Context, time.Duration) bool {
			cancel()
			return false
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Read up to 30 minutes minus the delay (29); closed up to 5 minutes
	// (the lag) before that, aligned down: 20 minutes, 4 windows.
	if len(led.windows) != 4 {
		t.Errorf("%d windows before the context ended, want 4", len(led.windows))
	}
	// With Until and a source that holds nothing, it ends once it has read
	// past Until.
	empty := &historySource{t0: t0.Unix(), end: t0.Unix()}
	l2, led2 := newFollowLoop(t, t0.Add(time.Hour).Unix())
	now = t0.Add(3 * time.Hour)
	if err := l2.Follow(context.Background(), empty, t0, FollowOptions{Now: func() time.Time { return now },
		Sleep: func(context.Context, time.Duration) bool { t.Fatal("waited with everything read"); return false }}); err != nil {
		t.Fatal(err)
	}
	if len(led2.windows) != 0 {
		t.Errorf("%d windows from an empty source", len(led2.windows))
	}
	if err := l.Follow(context.Background(), src, t0, FollowOptions{Delay: -time.Second}); err == nil {
		t.Error("a negative delay was accepted")
	}
}
