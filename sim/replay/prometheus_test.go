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
)

// TestPrometheusBackfillExact is the Prometheus path end to end: the
// scenario's exporter history backfilled into a real Prometheus (promtool),
// read back by the real aggregator with --prometheus-url --from --to, into
// the ledger, which must equal the ground truth. The scenario's exporter
// restart and scrape gap are in the history as up = 0.
func TestPrometheusBackfillExact(t *testing.T) {
	s := loadSmall(t)
	prom := promtest.Start(t, s)
	db := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "aggregator",
		"--database-url", db, "--cluster", s.Cluster,
		"--prometheus-url", prom, "--prometheus-job", backfill.DefaultJob, "--prometheus-cluster", s.Cluster,
		"--from", s.Start.Format(time.RFC3339), "--to", s.End.Format(time.RFC3339),
		"--scrape-interval", s.ScrapeInterval.D().String(), "--listen-address", "")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("aggregator backfill: %v\n%s", err, out)
	}
	store, err := ledger.Open(ctx, db, ledger.Options{NoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cmp, err := Compare(ctx, store, s, s.Start, s.End, []string{"project", "user", "resource"})
	if err != nil {
		t.Fatal(err)
	}
	if cmp.Truth == 0 {
		t.Fatal("empty ground truth")
	}
	requireExact(t, cmp)
}

// TestPrometheusFollowExact runs the aggregator following the same
// Prometheus (no --to: as time passes, here long after the scenario) from
// the scenario's start until its end: the ledger equals the ground truth,
// as the backfill's does.
func TestPrometheusFollowExact(t *testing.T) {
	s := loadSmall(t)
	prom := promtest.Start(t, s)
	db := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "aggregator",
		"--database-url", db, "--cluster", s.Cluster,
		"--prometheus-url", prom, "--prometheus-job", backfill.DefaultJob, "--prometheus-cluster", s.Cluster,
		"--from", s.Start.Format(time.RFC3339), "--until", s.End.Format(time.RFC3339), "--prometheus-chunk", "2h",
		"--scrape-interval", s.ScrapeInterval.D().String(), "--listen-address", "")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("aggregator following: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "following the Prometheus source") {
		t.Fatalf("the aggregator did not follow:\n%s", out)
	}
	store, err := ledger.Open(ctx, db, ledger.Options{NoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cmp, err := Compare(ctx, store, s, s.Start, s.End, []string{"project", "user", "resource"})
	if err != nil {
		t.Fatal(err)
	}
	if cmp.Truth == 0 {
		t.Fatal("empty ground truth")
	}
	requireExact(t, cmp)
}
