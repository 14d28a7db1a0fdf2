package replay

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/aggregator/source/backfill"
	"github.com/gpuledger/gpuledger/internal/pgtest"
	"github.com/gpuledger/gpuledger/internal/promtest"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// TestPrometheusBackfillExact is the Prometheus path end to end: the
// scenario's exporter history backfilled into a real Prometheus (promtool),
// read back by the real aggregator with --prometheus-url --from --to, into
// the ledger, which must equal the ground truth. The scenario's exporter
// restart and scrape gap are in the history as up = 0.
func TestPrometheusBackfillExact(t *testing.T) {
	s, prom, db, ctx := promSetup(t)
	cmd := exec.CommandContext(ctx, binary, promAggregatorArgs(s, db, prom,
		"--from", s.Start.Format(time.RFC3339), "--to", s.End.Format(time.RFC3339))...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("aggregator backfill: %v\n%s", err, out)
	}
	requireExact(t, compareLedger(ctx, t, db, s))
}

// promSetup loads the small scenario, serves its exporter history from a
// real Prometheus and gives a fresh database and a 3-minute context.
func promSetup(t *testing.T) (*scenario.Scenario, string, string, context.Context) {
	t.Helper()
	s := loadSmall(t)
	prom := promtest.Start(t, s)
	db := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return s, prom, db, ctx
}

// promAggregatorArgs are the arguments of `gpuledger aggregator` reading
// the scenario's history from prom into db, then extra.
func promAggregatorArgs(s *scenario.Scenario, db, prom string, extra ...string) []string {
	return append([]string{"aggregator", "--database-url", db, "--cluster", s.Cluster,
		"--prometheus-url", prom, "--prometheus-job", backfill.DefaultJob, "--prometheus-cluster", s.Cluster,
		"--scrape-interval", s.ScrapeInterval.D().String(), "--listen-address", ""}, extra...)
}

// TestPrometheusFollowExact runs the aggregator following the same
// Prometheus (no --to: as time passes, here long after the scenario) from
// the scenario's start until its end: the ledger equals the ground truth,
// as the backfill's does.
func TestPrometheusFollowExact(t *testing.T) {
	s, prom, db, ctx := promSetup(t)
	cmd := exec.CommandContext(ctx, binary, promAggregatorArgs(s, db, prom,
		"--from", s.Start.Format(time.RFC3339), "--until", s.End.Format(time.RFC3339), "--prometheus-chunk", "2h")...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("aggregator following: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "following the Prometheus source") {
		t.Fatalf("the aggregator did not follow:\n%s", out)
	}
	requireExact(t, compareLedger(ctx, t, db, s))
}

// TestPrometheusBackfillKilledAndRerun kills the aggregator in the middle
// of a Prometheus backfill (SIGKILL, once part of the range is written),
// then runs the same backfill again, as an operator would: the second run
// resumes from the ledger's watermark and open intervals, the scrapes it
// reads again before the watermark count once, and the ledger equals the
// ground truth.
func TestPrometheusBackfillKilledAndRerun(t *testing.T) {
	s, prom, db, ctx := promSetup(t)
	args := promAggregatorArgs(s, db, prom,
		"--from", s.Start.Format(time.RFC3339), "--to", s.End.Format(time.RFC3339), "--prometheus-chunk", "15m")

	store, err := ledger.Open(ctx, db, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	first := exec.CommandContext(ctx, binary, args...)
	var log strings.Builder
	first.Stdout, first.Stderr = &log, &log
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = first.Wait(); close(exited) }()
	half := s.Start.Add(s.End.Sub(s.Start) / 2)
	var wm time.Time
	for {
		w, ok, err := store.Watermark(ctx, s.Cluster)
		if err != nil {
			t.Fatal(err)
		}
		if ok && !w.Before(half) {
			wm = w
			break
		}
		select {
		case <-exited:
			t.Fatalf("the first run ended before half the range was written:\n%s", log.String())
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	if !wm.Before(s.End) {
		t.Fatalf("the first run wrote everything (watermark %s) before it was killed: nothing to resume", wm)
	}
	t.Logf("killed at watermark %s", wm.Format(time.RFC3339))

	if out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput(); err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	requireExact(t, compareLedger(ctx, t, db, s))
}
