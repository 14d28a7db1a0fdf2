package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// TestRecordQuotas: the history keeps changes only, whatever is given
// again, and QuotaUsage reads what RecordQuotas wrote.
func TestRecordQuotas(t *testing.T) {
	s, _ := newStore(t, Options{})
	ctx := context.Background()
	obs := func(queue, resource string, milli, sec int64) observe.QueueQuota {
		return observe.QueueQuota{Queue: queue, Resource: resource, Project: queue, NominalMilli: milli, At: sec * 1000}
	}
	history := func() []string {
		t.Helper()
		qs, err := s.Quotas(ctx, testCluster)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, q := range qs {
			out = append(out, fmt.Sprintf("%s %s %s from=%d nominal=%d", q.Queue, q.Resource, q.Project,
				(q.From.Unix()-t0)/60, q.NominalMilli))
		}
		return out
	}
	record := func(qs ...observe.QueueQuota) {
		t.Helper()
		if err := s.RecordQuotas(ctx, testCluster, qs); err != nil {
			t.Fatal(err)
		}
	}

	first := []observe.QueueQuota{obs("cms", "nvidia.com/gpu", 2000, at(0, 0)), obs("hub", "nvidia.com/gpu.shared", 16000, at(0, 0))}
	record(first...)
	record(first...) // again, after a failure that did write
	// A restarted aggregator sees the same values later: no new row.
	record(obs("cms", "nvidia.com/gpu", 2000, at(0, 40)), obs("hub", "nvidia.com/gpu.shared", 16000, at(0, 40)))
	sameRows(t, "history after repeats", history(), []string{
		"cms nvidia.com/gpu cms from=0 nominal=2000",
		"hub nvidia.com/gpu.shared hub from=0 nominal=16000",
	})

	// A change, observed at 02:00 plus 1.5 s (floored to the second),
	// then a queue removed (0), then the cms quota back to 2 in a batch
	// that repeats the earlier value.
	record(obs("cms", "nvidia.com/gpu", 1000, at(2, 0)))
	s1500 := obs("cms", "nvidia.com/gpu", 1000, 0)
	s1500.At = at(2, 0)*1000 + 1500
	record(s1500)
	record(obs("hub", "nvidia.com/gpu.shared", 0, at(3, 0)))
	record(obs("cms", "nvidia.com/gpu", 2000, at(0, 0)), obs("cms", "nvidia.com/gpu", 2000, at(4, 0)))
	sameRows(t, "history after changes", history(), []string{
		"cms nvidia.com/gpu cms from=0 nominal=2000",
		"cms nvidia.com/gpu cms from=120 nominal=1000",
		"cms nvidia.com/gpu cms from=240 nominal=2000",
		"hub nvidia.com/gpu.shared hub from=0 nominal=16000",
		"hub nvidia.com/gpu.shared hub from=180 nominal=0",
	})

	// Two values in one second: the later one wins.
	record(obs("atlas", "nvidia.com/gpu", 3000, at(1, 0)), obs("atlas", "nvidia.com/gpu", 5000, at(1, 0)))
	qs, err := s.Quotas(ctx, testCluster)
	if err != nil || len(qs) != 6 || qs[0].Queue != "atlas" || qs[0].NominalMilli != 5000 {
		t.Fatalf("quotas %+v, %v: want atlas at 5000 first", qs, err)
	}

	// What cannot be stored is left out with ErrBadQuota; the rest is stored.
	err = s.RecordQuotas(ctx, testCluster, []observe.QueueQuota{
		obs("", "nvidia.com/gpu", 1000, at(5, 0)),
		obs("cms", "nvidia.com/gpu", -1, at(5, 0)),
		obs("lhcb", "nvidia.com/gpu", 1000, at(5, 0)),
	})
	if !errors.Is(err, ErrBadQuota) || !strings.Contains(err.Error(), "2 left out") {
		t.Errorf("bad quotas: %v, want ErrBadQuota", err)
	}
	if qs, _ := s.Quotas(ctx, testCluster); len(qs) != 7 {
		t.Errorf("%d rows after a batch with bad quotas, want 7 (lhcb stored)", len(qs))
	}
	if err := s.RecordQuotas(ctx, "", []observe.QueueQuota{obs("cms", "nvidia.com/gpu", 1, at(6, 0))}); !errors.Is(err, ErrBadQuota) {
		t.Errorf("no cluster: %v, want ErrBadQuota", err)
	}
	if err := s.RecordQuotas(ctx, testCluster, nil); err != nil {
		t.Errorf("nothing to record: %v", err)
	}

	// The usage of cms: one GPU held over [00:00, 05:00) against 2, 1
	// then 2 GPUs of quota.
	apply(t, s, win(at(0, 0), at(5, 0), iv("a", at(0, 0), at(5, 0))))
	rows, err := s.QuotaUsage(ctx, QuotaQuery{From: time.Unix(at(0, 0), 0), To: time.Unix(at(5, 0), 0),
		Projects: []string{"cms"}, Visible: Visibility{All: true}})
	if err != nil {
		t.Fatal(err)
	}
	// 2 h × 2 + 2 h × 1 + 1 h × 2 GPUs = 8 GPU-hours of quota.
	if len(rows) != 1 || rows[0].NominalMilli != 2000 || rows[0].QuotaMilliSeconds != 8*3600*1000 ||
		rows[0].UsedDeviceSeconds != 5*3600 {
		t.Errorf("quota usage %+v: want nominal 2000, quota 8 GPU-hours, used 5 GPU-hours", rows)
	}
}
