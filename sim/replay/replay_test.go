package replay

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/internal/pgtest"
	"github.com/gpuledger/gpuledger/sim/generate"
	"github.com/gpuledger/gpuledger/sim/scenario"
	"github.com/gpuledger/gpuledger/sim/trace"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gpuledger-replay-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "gpuledger")
	build := exec.Command("go", "build", "-o", binary, "github.com/gpuledger/gpuledger/cmd/gpuledger")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build gpuledger:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func loadSmall(t *testing.T) *scenario.Scenario {
	t.Helper()
	s, err := scenario.Load("../../testdata/scenarios/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// replayAndCompare replays s into a fresh database and compares the ledger
// with the ground truth by project, user and resource.
func replayAndCompare(t *testing.T, s *scenario.Scenario, opts Options, dbOut ...*string) (*Summary, *Comparison) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	opts.Scenario, opts.DatabaseURL, opts.Binary, opts.WorkDir = s, pgtest.New(t), binary, t.TempDir()
	for _, p := range dbOut {
		*p = opts.DatabaseURL
	}
	if opts.StepTimeout == 0 {
		opts.StepTimeout = time.Minute
	}
	sum, err := Run(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return sum, compareLedger(ctx, t, opts.DatabaseURL, s)
}

// compareLedger compares the ledger at db with the ground truth of s by
// project, user and resource.
func compareLedger(ctx context.Context, t *testing.T, db string, s *scenario.Scenario) *Comparison {
	t.Helper()
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
		t.Fatal("the ground truth is empty: the test proves nothing")
	}
	return cmp
}

func requireExact(t *testing.T, cmp *Comparison) {
	t.Helper()
	if cmp.Exact() {
		return
	}
	for _, r := range cmp.Rows {
		if r.Truth != r.Ledger {
			t.Errorf("%v: ledger %d milli-GPU-s, truth %d (diff %d)", r.Keys, r.Ledger, r.Truth, r.Ledger-r.Truth)
		}
	}
	if cmp.TruthFPGA != cmp.LedgerF {
		t.Errorf("FPGA seconds: ledger %d, truth %d", cmp.LedgerF, cmp.TruthFPGA)
	}
}

// TestReplaySmallExact replays the hand-written scenario with its four
// faults (an exporter restart, a scrape gap, an aggregator crash, a database
// outage): none of them ends an allocation, so the ledger must be exact.
func TestReplaySmallExact(t *testing.T) {
	s := loadSmall(t)
	var db string
	sum, cmp := replayAndCompare(t, s, Options{}, &db)
	requireExact(t, cmp)
	// Capacity rows: the four GPUs and the FPGA card, present all six
	// hours. Capacity is sampled presence: the scrape gap, the exporter
	// restart and the aggregator crash each lose some of it, never add.
	ctx := context.Background()
	store, err := ledger.Open(ctx, db, ledger.Options{NoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for class, want := range map[string]int64{"fpga": 6 * 3600, "gpu": 4 * 6 * 3600} {
		var got int64
		if err := store.Pool().QueryRow(ctx, `SELECT coalesce(sum(device_seconds), 0)::bigint FROM capacity_hourly
			WHERE cluster = $1 AND class = $2`, s.Cluster, class).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got > want || got < want*98/100 {
			t.Errorf("%s capacity %d device-seconds, want within 2 %% below %d", class, got, want)
		}
	}
	if sum.Crashes != 1 || sum.Outages != 1 || sum.ScrapeGaps != 1 || sum.Restarts != 1 {
		t.Errorf("faults played %+v, want one of each", sum)
	}
	if want := int(s.End.Sub(s.Start)/s.ScrapeInterval.D()) + 1; sum.Steps != want {
		t.Errorf("%d steps, want %d", sum.Steps, want)
	}
}

// TestReplayKilledAtRandomPoints SIGKILLs the aggregator at many random
// instants, some with a downtime, and with a standby aggregator started
// beside it that must wait on the writer lock and take over: nothing may be
// lost or counted twice.
func TestReplayKilledAtRandomPoints(t *testing.T) {
	for _, standby := range []bool{false, true} {
		t.Run(fmt.Sprintf("standby=%v", standby), func(t *testing.T) {
			s := loadSmall(t)
			rng := rand.New(rand.NewPCG(7, map[bool]uint64{false: 1, true: 2}[standby]))
			span := int64(s.End.Sub(s.Start) / time.Second)
			for range 10 {
				at := s.Start.Add(time.Duration(rng.Int64N(span)) * time.Second)
				down := time.Duration(rng.IntN(3)) * time.Minute // 0, 1 or 2 minutes: well inside the retention
				s.Faults = append(s.Faults, scenario.Fault{Kind: scenario.FaultAggregatorCrash, At: at, Duration: scenario.Duration(down)})
			}
			if err := scenario.Validate(s); err != nil {
				t.Fatal(err)
			}
			sum, cmp := replayAndCompare(t, s, Options{Standby: standby})
			requireExact(t, cmp)
			if sum.Crashes != 11 {
				t.Errorf("%d crashes played, want 11", sum.Crashes)
			}
		})
	}
}

// TestReplayGeneratedWithFaults replays a generated cluster with one fault
// of each kind. Exporter restarts may lose the end of an allocation that
// ended while the exporter was down; the ledger must never count more than
// the truth, and lose at most the documented bound.
func TestReplayGeneratedWithFaults(t *testing.T) {
	cfg := generate.DefaultConfig()
	cfg.Nodes, cfg.Duration, cfg.Seed, cfg.Faults = 3, 4*time.Hour, 5, true
	s, err := generate.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, cmp := replayAndCompare(t, s, Options{})
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	bound := lossBound(s, allocs)
	for _, r := range cmp.Rows {
		if r.Ledger > r.Truth {
			t.Errorf("%v: the ledger counts %d milli-GPU-s more than the truth", r.Keys, r.Ledger-r.Truth)
		}
	}
	if loss := cmp.Truth - cmp.Ledger; loss < 0 || loss > bound {
		t.Errorf("lost %d milli-GPU-s, bound %d", loss, bound)
	}
	t.Logf("truth %d, ledger %d, loss %d, bound %d milli-GPU-s", cmp.Truth, cmp.Ledger, cmp.Truth-cmp.Ledger, bound)
}

// lossBound is docs/ledger.md's bound: an allocation of a node whose
// exporter restarts may lose, if it ends between the last scrape before the
// restart and the restart's end, at most one scrape interval plus the
// downtime.
func lossBound(s *scenario.Scenario, allocs []scenario.Allocation) int64 {
	iv := s.ScrapeInterval.D()
	var bound int64
	for _, f := range s.Faults {
		if f.Kind != scenario.FaultExporterRestart {
			continue
		}
		from, to := f.At.Add(-iv), f.At.Add(f.Duration.D())
		for i := range allocs {
			a := &allocs[i]
			if (f.Node == "" || a.Node == f.Node) && !a.Open() && !a.End.Before(from) && a.End.Before(to) {
				bound += a.WeightMilli * int64((iv+f.Duration.D())/time.Second)
			}
		}
	}
	return bound
}

// TestReplayTraceDay is the acceptance test: a 24-hour window of
// the real Alibaba trace through the real pipeline equals the ground truth.
func TestReplayTraceDay(t *testing.T) {
	dir := os.Getenv("TRACE_DIR")
	if dir == "" {
		dir = "../../../shared/data"
	}
	podsFile := filepath.Join(dir, trace.AlibabaPodsFile)
	if _, err := os.Stat(podsFile); err != nil {
		t.Skipf("public traces not found at %s (set TRACE_DIR): %v", dir, err)
	}
	pods, err := trace.LoadAlibabaPods(podsFile)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := trace.LoadAlibabaNodes(filepath.Join(dir, trace.AlibabaNodesFile))
	if err != nil {
		t.Fatal(err)
	}
	orgs, err := trace.LoadOrgs(filepath.Join(dir, trace.OrgsFile))
	if err != nil {
		t.Fatal(err)
	}
	s, err := trace.Alibaba(pods, nodes, orgs, trace.Options{
		Epoch: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), From: 148 * 24 * time.Hour, Duration: 24 * time.Hour,
		Seed: 1, ScrapeInterval: 5 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	sum, cmp := replayAndCompare(t, s, Options{})
	requireExact(t, cmp)
	t.Logf("%d pods on %d nodes, %d steps, %d scrapes in %s", len(s.Pods), sum.Nodes, sum.Steps, sum.Scrapes, sum.Wall)
	if !strings.HasPrefix(s.Cluster, "alibaba") {
		t.Errorf("cluster %q", s.Cluster)
	}
}

// TestProgress checks the progress a replay prints: on a terminal a bar
// redrawn in place with the faults played so far, elsewhere one line per
// simulated hour.
func TestProgress(t *testing.T) {
	s := loadSmall(t) // 6 hours
	var term bytes.Buffer
	progress(Options{Progress: &term, Terminal: true}, s, s.Start.Add(3*time.Hour), &Summary{Crashes: 1, Outages: 2})
	want := "\r[###############...............]  50.0%  2026-11-02T11:00:00Z  crashes 1  db outages 2"
	if term.String() != want {
		t.Errorf("terminal: %q, want %q", term.String(), want)
	}
	var lines bytes.Buffer
	opts := Options{Progress: &lines}
	progress(opts, s, s.Start.Add(90*time.Minute), &Summary{})
	progress(opts, s, s.Start.Add(2*time.Hour), &Summary{})
	if got := lines.String(); got != "replay: 2026-11-02T10:00:00Z (33%)\n" {
		t.Errorf("lines: %q", got)
	}
	progress(Options{}, s, s.Start, &Summary{}) // no writer: nothing, no panic
}
