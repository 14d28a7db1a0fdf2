package aggregator

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// qscrape is a successful scrape of the cluster exporter at second sec
// serving quotas.
func qscrape(sec int64, quotas ...observe.Quota) observe.Scrape {
	return observe.Scrape{Target: "cluster", Time: sec * 1000, OK: true, Quotas: quotas}
}

// cq is the quota of queue for resource in flavor.
func cq(queue, flavor, resource string, milli int64) observe.Quota {
	return observe.Quota{ClusterQueue: queue, Flavor: flavor, Resource: resource, NominalMilli: milli}
}

func qq(queue, resource string, milli, sec int64) observe.QueueQuota {
	return observe.QueueQuota{Queue: queue, Resource: resource, Project: queue, NominalMilli: milli, At: sec * 1000}
}

func TestQuotaTracker(t *testing.T) {
	const gpu, mig = "nvidia.com/gpu", "nvidia.com/mig-1g.10gb"
	cases := []struct {
		name    string
		scrapes []observe.Scrape
		upTo    int64 // seconds
		want    []observe.QueueQuota
	}{
		{name: "first values, flavors summed", upTo: 300,
			scrapes: []observe.Scrape{qscrape(10, cq("cms", "a100", gpu, 8000), cq("cms", "t4", gpu, 2000), cq("atlas", "a100", mig, 7000))},
			want:    []observe.QueueQuota{qq("atlas", mig, 7000, 10), qq("cms", gpu, 10000, 10)}},
		{name: "unchanged values: the first scrape dates them", upTo: 300,
			scrapes: []observe.Scrape{qscrape(10, cq("cms", "a100", gpu, 8000)), qscrape(40, cq("cms", "a100", gpu, 8000))},
			want:    []observe.QueueQuota{qq("cms", gpu, 8000, 10)}},
		{name: "a change dated by the first scrape showing it", upTo: 300,
			scrapes: []observe.Scrape{qscrape(10, cq("cms", "a100", gpu, 8000)), qscrape(40, cq("cms", "a100", gpu, 4000)),
				qscrape(70, cq("cms", "a100", gpu, 4000))},
			want: []observe.QueueQuota{qq("cms", gpu, 8000, 10), qq("cms", gpu, 4000, 40)}},
		{name: "a quota no longer served is 0", upTo: 300,
			scrapes: []observe.Scrape{qscrape(10, cq("cms", "a100", gpu, 8000), cq("hub", "t4", gpu, 1000)), qscrape(40, cq("hub", "t4", gpu, 1000)),
				qscrape(70, cq("hub", "t4", gpu, 1000))},
			want: []observe.QueueQuota{qq("cms", gpu, 8000, 10), qq("hub", gpu, 1000, 10), qq("cms", gpu, 0, 40)}},
		{name: "scrapes without quotas and failed scrapes say nothing", upTo: 300,
			scrapes: []observe.Scrape{qscrape(10, cq("cms", "a100", gpu, 8000)), qscrape(40),
				{Target: "cluster", Time: 70_000}, {Target: "gpu-01", Time: 80_000, OK: true}},
			want: []observe.QueueQuota{qq("cms", gpu, 8000, 10)}},
		{name: "out of order within the lag", upTo: 300,
			scrapes: []observe.Scrape{qscrape(40, cq("cms", "a100", gpu, 4000)), qscrape(10, cq("cms", "a100", gpu, 8000))},
			want:    []observe.QueueQuota{qq("cms", gpu, 8000, 10), qq("cms", gpu, 4000, 40)}},
		{name: "later scrapes wait for their window", upTo: 300,
			scrapes: []observe.Scrape{qscrape(10, cq("cms", "a100", gpu, 8000)), qscrape(300, cq("cms", "a100", gpu, 6000)),
				qscrape(301, cq("cms", "a100", gpu, 4000))},
			want: []observe.QueueQuota{qq("cms", gpu, 8000, 10), qq("cms", gpu, 6000, 300)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tr quotaTracker
			for _, s := range c.scrapes {
				tr.observe(s)
			}
			got := tr.upTo(c.upTo * 1000)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("changes\n got %+v\nwant %+v", got, c.want)
			}
			tr.recorded(len(got))
			if again := tr.upTo(c.upTo * 1000); len(again) != 0 {
				t.Errorf("changes returned twice: %+v", again)
			}
		})
	}

	// A late scrape, older than the values applied, changes nothing.
	var tr quotaTracker
	tr.observe(qscrape(100, cq("cms", "a100", gpu, 8000)))
	tr.recorded(len(tr.upTo(300_000)))
	tr.observe(qscrape(50, cq("cms", "a100", gpu, 1000)))
	if got := tr.upTo(600_000); len(got) != 0 {
		t.Errorf("a late scrape changed the history: %+v", got)
	}
}

// quotaLedger is a fakeLedger that records quotas, failing while
// quotasDown.
type quotaLedger struct {
	fakeLedger
	quotasDown bool
	calls      int
	quotas     []observe.QueueQuota
	clusters   []string
}

var errQuotaDown = errors.New("quota table unavailable")

func (l *quotaLedger) RecordQuotas(_ context.Context, cluster string, qs []observe.QueueQuota) error {
	l.calls++
	if l.quotasDown {
		return errQuotaDown
	}
	l.clusters = append(l.clusters, cluster)
	l.quotas = append(l.quotas, qs...)
	return nil
}

// quotaScraper serves the cluster exporter's quotas at the time the test
// sets.
type quotaScraper struct {
	t     int64
	milli int64
}

func (s *quotaScraper) ScrapeAll(context.Context) []observe.Scrape {
	return []observe.Scrape{qscrape(s.t, cq("cms", "a100", "nvidia.com/gpu", s.milli))}
}

type clusterRec struct{ fakeRec }

func (r *clusterRec) Close(upTo int64) []observe.Window {
	ws := r.fakeRec.Close(upTo)
	for i := range ws {
		ws[i].Cluster = "ai-infn"
	}
	return ws
}

func TestLoopRecordsQuotas(t *testing.T) {
	rec, led, sc := &clusterRec{}, &quotaLedger{}, &quotaScraper{milli: 8000}
	l, err := New(Config{Window: 5 * time.Minute, Transient: func(err error) bool { return errors.Is(err, errQuotaDown) }},
		rec, led, sc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	step := func(at, milli int64) {
		t.Helper()
		sc.t, sc.milli = at, milli
		if err := l.Step(ctx); err != nil {
			t.Fatalf("step at %d: %v", at, err)
		}
	}
	step(10, 8000)
	if led.calls != 0 {
		t.Fatalf("quotas recorded before their window was written: %+v", led.quotas)
	}
	step(200, 8000)
	step(250, 6000)
	step(310, 6000) // [0, 300) written, then its quotas
	want := []observe.QueueQuota{qq("cms", "nvidia.com/gpu", 8000, 10), qq("cms", "nvidia.com/gpu", 6000, 250)}
	if !reflect.DeepEqual(led.quotas, want) || len(led.clusters) != 1 || led.clusters[0] != "ai-infn" {
		t.Fatalf("recorded %+v in %v, want %+v in ai-infn", led.quotas, led.clusters, want)
	}

	// The quota table fails: the window is written all the same, the
	// failure counted, and the change recorded after the next window.
	led.quotasDown = true
	step(400, 4000)
	step(610, 4000) // [300, 600) written; its quota change fails
	if len(led.applied) != 2 || testutil.ToFloat64(l.m.quotaErrors) != 1 || l.Pending() != 0 {
		t.Fatalf("applied %v, quota errors %v, pending %d: want 2 windows, 1 error, none pending",
			led.applied, testutil.ToFloat64(l.m.quotaErrors), l.Pending())
	}
	led.quotasDown = false
	step(910, 4000) // [600, 900) written; the change kept is recorded now
	want = append(want, qq("cms", "nvidia.com/gpu", 4000, 400))
	if !reflect.DeepEqual(led.quotas, want) {
		t.Fatalf("recorded %+v, want %+v", led.quotas, want)
	}
	if got := testutil.ToFloat64(l.m.quotaChanges); got != 3 {
		t.Errorf("quota changes counted %v, want 3", got)
	}

	// A permanent failure drops the changes and the loop goes on.
	l.cfg.Transient = func(error) bool { return false }
	led.quotasDown = true
	step(1000, 2000)
	step(1210, 2000)
	led.quotasDown = false
	step(1510, 2000)
	if len(led.applied) != 5 || !reflect.DeepEqual(led.quotas, want) {
		t.Errorf("applied %v, recorded %+v; want 5 windows and the dropped change not recorded", led.applied, led.quotas)
	}
}

// A ledger without quotas (no RecordQuotas) is written as before.
func TestLoopWithoutQuotaRecorder(t *testing.T) {
	rec, led, sc := &clusterRec{}, &fakeLedger{}, &quotaScraper{t: 610, milli: 8000}
	l, err := New(Config{Window: 5 * time.Minute}, rec, led, sc)
	if err != nil {
		t.Fatal(err)
	}
	if l.quotas != nil {
		t.Fatal("a ledger without RecordQuotas taken for a quota recorder")
	}
	if err := l.Step(context.Background()); err != nil || len(led.applied) != 2 {
		t.Fatalf("step: %v, applied %v", err, led.applied)
	}
	if len(l.qt.obs) != 0 {
		t.Errorf("quotas buffered for a ledger that keeps none: %+v", l.qt.obs)
	}
}

// rangeSource returns fixed scrapes, whatever the range.
type rangeSource []observe.Scrape

func (r rangeSource) Fetch(_ context.Context, from, to time.Time) ([]observe.Scrape, error) {
	var out []observe.Scrape
	for _, s := range r {
		if s.Time >= from.UnixMilli() && s.Time < to.UnixMilli() {
			out = append(out, s)
		}
	}
	return out, nil
}

// A backfill records the quotas of the range it reads.
func TestBackfillRecordsQuotas(t *testing.T) {
	rec, led := &clusterRec{}, &quotaLedger{}
	l, err := New(Config{Window: 5 * time.Minute}, rec, led, &quotaScraper{})
	if err != nil {
		t.Fatal(err)
	}
	src := rangeSource{qscrape(60, cq("cms", "a100", "nvidia.com/gpu", 8000)), qscrape(420, cq("cms", "a100", "nvidia.com/gpu", 2000)),
		qscrape(600, cq("cms", "a100", "nvidia.com/gpu", 2000))}
	if err := l.Backfill(context.Background(), src, time.Unix(0, 0), time.Unix(600, 0), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	want := []observe.QueueQuota{qq("cms", "nvidia.com/gpu", 8000, 60), qq("cms", "nvidia.com/gpu", 2000, 420)}
	if !reflect.DeepEqual(led.quotas, want) || len(led.applied) != 2 {
		t.Errorf("recorded %+v after %v, want %+v after 2 windows", led.quotas, led.applied, want)
	}
}
