package aggregator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// fakeRec closes one window per 300 s of observed time.
type fakeRec struct {
	next int64
	seen []observe.Scrape
}

func (r *fakeRec) Observe(s observe.Scrape) { r.seen = append(r.seen, s) }

func (r *fakeRec) Close(upTo int64) []observe.Window {
	var out []observe.Window
	for r.next+300 <= upTo {
		out = append(out, observe.Window{From: r.next, To: r.next + 300})
		r.next += 300
	}
	return out
}

// fakeLedger fails while down.
type fakeLedger struct {
	down    bool
	fatal   bool
	applied []int64
}

var errDown = errors.New("connection refused")

func (l *fakeLedger) ApplyWindow(_ context.Context, w observe.Window) error {
	if l.fatal {
		return errors.New("constraint violated")
	}
	if l.down {
		return errDown
	}
	l.applied = append(l.applied, w.From)
	return nil
}

// fakeScraper reports one target at a time the test sets.
type fakeScraper struct{ t int64 }

func (s *fakeScraper) ScrapeAll(context.Context) []observe.Scrape {
	return []observe.Scrape{{Target: "n1", Time: s.t * 1000, OK: true}, {Target: "n2", OK: false}}
}

func TestLoopQueuesWhileLedgerIsDown(t *testing.T) {
	reg := prometheus.NewRegistry()
	rec, led, sc := &fakeRec{next: 0}, &fakeLedger{}, &fakeScraper{}
	l, err := New(Config{Window: 5 * time.Minute, Lag: 30 * time.Second, MaxBackoff: time.Millisecond,
		Transient: func(err error) bool { return errors.Is(err, errDown) }, Registerer: reg}, rec, led, sc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	step := func(at int64) {
		t.Helper()
		sc.t = at
		if err := l.Step(ctx); err != nil {
			t.Fatalf("step at %d: %v", at, err)
		}
	}
	step(310) // 310 - 30 lag = 280: nothing closed yet
	if len(led.applied) != 0 {
		t.Fatalf("closed a window before its end plus the lag: %v", led.applied)
	}
	step(330) // window [0, 300) closes
	led.down = true
	step(640)                        // [300, 600) closes but the ledger is down
	time.Sleep(2 * time.Millisecond) // past the backoff: the next step tries again, and fails again
	step(940)                        // [600, 900) queued too; scraping goes on
	if got := l.Pending(); got != 2 {
		t.Fatalf("pending %d windows while the ledger is down, want 2", got)
	}
	if n := len(rec.seen); n != 8 {
		t.Fatalf("observed %d scrapes, want 8: scraping must go on during an outage", n)
	}
	led.down = false
	time.Sleep(2 * time.Millisecond) // past the backoff
	step(950)
	if want := []int64{0, 300, 600}; len(led.applied) != 3 || led.applied[1] != 300 || led.applied[2] != 600 {
		t.Fatalf("applied %v, want %v in order", led.applied, want)
	}
	if got := testutil.ToFloat64(l.m.writeErrors); got < 2 {
		t.Errorf("write errors counted %v, want ≥ 2", got)
	}
	if got := testutil.ToFloat64(l.m.watermark); got != 900 {
		t.Errorf("watermark %v, want 900", got)
	}
	if got := testutil.ToFloat64(l.m.scrapes.WithLabelValues("failed")); got != 5 {
		t.Errorf("failed scrapes %v, want 5", got)
	}
}

func TestLoopUntil(t *testing.T) {
	rec, led, sc := &fakeRec{}, &fakeLedger{}, &fakeScraper{t: 600}
	l, err := New(Config{Window: 5 * time.Minute, Lag: time.Minute, Until: 600}, rec, led, sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Step(context.Background()); !errors.Is(err, ErrDone) {
		t.Fatalf("step at the end: %v, want ErrDone", err)
	}
	if len(led.applied) != 2 {
		t.Fatalf("applied %v, want both windows despite the lag", led.applied)
	}
	if err := l.Run(context.Background()); err != nil {
		t.Fatalf("Run after the end: %v", err)
	}
}

func TestLoopFatalError(t *testing.T) {
	rec, led, sc := &fakeRec{}, &fakeLedger{fatal: true}, &fakeScraper{t: 400}
	l, err := New(Config{Window: 5 * time.Minute, Transient: func(error) bool { return false }}, rec, led, sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Step(context.Background()); err == nil {
		t.Fatal("a permanent ledger error must stop the loop")
	}
}

func TestNewRejectsBadWindows(t *testing.T) {
	for _, w := range []time.Duration{0, 7 * time.Minute, 1500 * time.Millisecond} {
		if _, err := New(Config{Window: w}, &fakeRec{}, &fakeLedger{}, &fakeScraper{}); err == nil {
			t.Errorf("window %s accepted", w)
		}
	}
}
