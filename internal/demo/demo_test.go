package demo

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/internal/pgtest"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// syncBuffer is a bytes.Buffer safe for the demo goroutine and the test.
type syncBuffer struct {
	ch  chan struct{}
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.ch <- struct{}{}
	defer func() { <-b.ch }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.ch <- struct{}{}
	defer func() { <-b.ch }()
	return b.buf.String()
}

// TestGeneratedDemo runs the demo on a generated cluster, scrapes every
// exporter it started, and checks the ground truth it wrote against the
// scenario it wrote.
func TestGeneratedDemo(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	narration := &syncBuffer{ch: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Out: out, Generated: true, Nodes: 4, Window: 2 * time.Hour, Speed: 600, NoLedger: true}, narration)
	}()

	targetsFile := filepath.Join(out, "targets.json")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(narration.String(), "Serving until Ctrl-C") {
		select {
		case err := <-done:
			t.Fatalf("demo ended early: %v\n%s", err, narration.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo not serving after 30 s:\n%s", narration.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	raw, err := os.ReadFile(targetsFile)
	if err != nil {
		t.Fatal(err)
	}
	var groups []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(raw, &groups); err != nil {
		t.Fatalf("targets.json: %v", err)
	}
	s, err := scenario.Load(filepath.Join(out, "scenario.yaml"))
	if err != nil {
		t.Fatalf("the demo wrote an invalid scenario: %v", err)
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]bool{}
	for _, a := range allocs {
		nodes[a.Node] = true
	}
	if len(groups) != len(nodes) {
		t.Errorf("demo serves %d exporters, the scenario has allocations on %d nodes", len(groups), len(nodes))
	}
	for _, g := range groups {
		resp, err := http.Get("http://" + g.Targets[0] + "/metrics")
		if err != nil {
			t.Fatalf("scrape %s: %v", g.Labels["node"], err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			continue // inside a simulated fault
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `node="`+g.Labels["node"]+`"`) {
			t.Errorf("exporter of %s: status %d, its series do not name the node", g.Labels["node"], resp.StatusCode)
		}
	}
	if !strings.Contains(narration.String(), "generated AI_INFN-like cluster") {
		t.Errorf("the demo does not say it used a generated cluster:\n%s", narration.String())
	}

	// The by-project truth sums to the scenario's allocations, computed here
	// independently.
	var want int64
	for _, a := range allocs {
		if a.Class == "fpga" {
			continue
		}
		start, end := max(a.Start.Unix(), s.Start.Unix()), s.End.Unix()
		if !a.Open() {
			end = min(a.End.Unix(), end)
		}
		if end > start {
			want += a.WeightMilli * (end - start)
		}
	}
	f, err := os.Open(filepath.Join(out, "truth-by-project.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := -1
	for i, h := range rows[0] {
		if h == "allocated_milli_gpu_seconds" {
			col = i
		}
	}
	if col < 0 {
		t.Fatalf("truth CSV has no allocated_milli_gpu_seconds column: %v", rows[0])
	}
	var got int64
	for _, r := range rows[1:] {
		n, err := strconv.ParseInt(r[col], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	if got != want || want == 0 {
		t.Errorf("truth total %d milli-GPU-s, want %d", got, want)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demo did not stop after cancel")
	}
}

func TestTraceDemoFallsBack(t *testing.T) {
	var buf bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // serve nothing: just choose, write and check
	err := Run(ctx, Options{Out: t.TempDir(), TraceDir: t.TempDir(), Nodes: 2, Window: time.Hour, NoLedger: true}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "the public traces are not at") {
		t.Errorf("without traces the demo must say it generated a cluster and why:\n%s", buf.String())
	}
}

// TestTraceDemo uses the public trace when it is beside the checkout (CI has
// it).
func TestTraceDemo(t *testing.T) {
	dir := os.Getenv("TRACE_DIR")
	if dir == "" {
		dir = "../../../shared/data"
	}
	if _, err := os.Stat(filepath.Join(dir, "alibaba-gpu-v2023", "openb_pod_list_default.csv")); err != nil {
		t.Skipf("public traces not found at %s (set TRACE_DIR): %v", dir, err)
	}
	var buf bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := t.TempDir()
	if err := Run(ctx, Options{Out: out, TraceDir: dir, Window: time.Hour, NoLedger: true}, &buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "window of the public Alibaba GPU v2023 trace") {
		t.Errorf("the demo does not say it used the trace:\n%s", buf.String())
	}
	if _, err := scenario.Load(filepath.Join(out, "scenario.yaml")); err != nil {
		t.Errorf("trace demo scenario: %v", err)
	}
}

// TestDemoLedger runs the demo's replay into a database of its own and
// checks that it reports the ledger equal to the ground truth.
func TestDemoLedger(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "gpuledger")
	build := exec.Command("go", "build", "-o", bin, "github.com/gpuledger/gpuledger/cmd/gpuledger")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	buf := &syncBuffer{ch: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Stop serving as soon as the ledger part is done.
		for !strings.Contains(buf.String(), "Exporters:") {
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
	}()
	out := t.TempDir()
	err := Run(ctx, Options{Out: out, Generated: true, Nodes: 3, Window: 2 * time.Hour, Binary: bin,
		DatabaseURL: pgtest.New(t)}, buf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "equals the ground truth") {
		t.Errorf("the demo's ledger is not reported exact:\n%s", buf.String())
	}
	if _, err := os.Stat(filepath.Join(out, "ledger-by-project-user-resource.csv")); err != nil {
		t.Errorf("ledger report not written: %v", err)
	}
}
