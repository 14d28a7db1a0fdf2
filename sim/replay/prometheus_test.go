package replay

import (
	"context"
	"os/exec"
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
