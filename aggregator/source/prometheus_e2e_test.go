package source_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/aggregator/source"
	"github.com/gpuledger/gpuledger/aggregator/source/backfill"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters"
	"github.com/gpuledger/gpuledger/exporters/sim"
	"github.com/gpuledger/gpuledger/sim/clock"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// binary finds a Prometheus binary: at /usr/bin (the Debian packages), else
// on the PATH. Without it the test fails in CI and is skipped elsewhere.
func binary(t *testing.T, name string) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/" + name); err == nil {
		return "/usr/bin/" + name
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found at /usr/bin/%s or on the PATH: install the Debian package prometheus", name, name)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startPrometheus backfills the history of s into a new TSDB and serves it
// with a real Prometheus until the test ends; it returns the base URL.
func startPrometheus(t *testing.T, s *scenario.Scenario) string {
	t.Helper()
	prom, promtool := binary(t, "prometheus"), binary(t, "promtool")
	dir := t.TempDir()
	om := filepath.Join(dir, "history.om")
	f, err := os.Create(om)
	if err != nil {
		t.Fatal(err)
	}
	fams := append(source.Families(), source.FamilyUp)
	st, err := backfill.Write(context.Background(), f, s, backfill.Options{Families: fams, TempDir: dir})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("history: %d samples, %.1f MB", st.Samples, float64(st.Bytes)/1e6)
	data := filepath.Join(dir, "data")
	out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", om, data).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool tsdb create-blocks-from openmetrics: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 15s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logs := &lockedBuffer{}
	cmd := exec.Command(prom, "--config.file="+cfg, "--storage.tsdb.path="+data, "--web.listen-address="+addr,
		"--storage.tsdb.retention.time=10y", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("prometheus exited: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 15 s\n%s", logs.String())
		}
	}
}

// TestPrometheusEndToEnd backfills small.yaml into a real Prometheus and
// reads it back through the Prometheus source: every allocation must come
// back with its exact start, end, weight and device count, every scrape at
// its instant, and the scenario's faults as failed scrapes.
func TestPrometheusEndToEnd(t *testing.T) {
	s, err := scenario.Load("../../testdata/scenarios/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	base := startPrometheus(t, s)
	p, err := source.NewPrometheus(source.PrometheusOptions{URL: base, Cluster: s.Cluster, Job: backfill.DefaultJob,
		Backoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	scrapes, err := p.Fetch(context.Background(), s.Start, s.End.Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fetched %d scrapes in %s", len(scrapes), time.Since(begin))

	// Every node at every instant of the grid, in time order.
	interval := s.ScrapeInterval.D()
	instants := int(s.End.Sub(s.Start)/interval) + 1
	if len(scrapes) != instants*len(s.Nodes) {
		t.Errorf("%d scrapes, want %d instants × %d nodes", len(scrapes), instants, len(s.Nodes))
	}
	failed := map[string]int{}
	for i, sc := range scrapes {
		if (sc.Time-s.Start.UnixMilli())%interval.Milliseconds() != 0 || (i > 0 && sc.Time < scrapes[i-1].Time) {
			t.Fatalf("scrape %d of %s at %d: off the grid or out of order", i, sc.Target, sc.Time)
		}
		if !sc.OK {
			failed[sc.Target]++
		}
	}
	// The faults of small.yaml: a 30 s exporter restart of a100-mig-01
	// (two instants) and a 5 min scrape gap of t4-01 (twenty).
	if want := map[string]int{"a100-mig-01": 2, "t4-01": 20}; fmt.Sprint(failed) != fmt.Sprint(want) {
		t.Errorf("failed scrapes %v, want %v", failed, want)
	}

	// Every allocation with its exact figures.
	type seen struct {
		start, weight, devices map[int64]bool
		end                    int64
	}
	got := map[observe.AllocKey]*seen{}
	for _, sc := range scrapes {
		for _, a := range sc.Allocs {
			g := got[a.AllocKey]
			if g == nil {
				g = &seen{start: map[int64]bool{}, weight: map[int64]bool{}, devices: map[int64]bool{}}
				got[a.AllocKey] = g
			}
			g.start[a.Start], g.weight[a.WeightMilli], g.devices[a.Devices] = true, true, true
			if a.End != 0 {
				g.end = a.End
			}
		}
	}
	if len(got) != len(allocs) {
		t.Errorf("%d allocations seen, want %d", len(got), len(allocs))
	}
	for i := range allocs {
		a := &allocs[i]
		k := observe.AllocKey{Node: a.Node, Device: a.DeviceID, PodUID: a.Pod.UID, Resource: a.Resource}
		g := got[k]
		if g == nil {
			t.Errorf("allocation %s/%s on %s (%s) never seen", a.Pod.Namespace, a.Pod.Name, a.Node, a.Resource)
			continue
		}
		var end int64 // seen only when it falls within the scenario
		if !a.Open() && !a.End.After(s.End) {
			end = a.End.Unix()
		}
		if len(g.start) != 1 || !g.start[a.Start.Unix()] || len(g.weight) != 1 || !g.weight[a.WeightMilli] ||
			len(g.devices) != 1 || !g.devices[a.Devices] || g.end != end {
			t.Errorf("allocation %s/%s on %s: starts %v weights %v devices %v end %d; want %d, %d, %d, %d",
				a.Pod.Namespace, a.Pod.Name, a.Node, g.start, g.weight, g.devices, g.end,
				a.Start.Unix(), a.WeightMilli, a.Devices, end)
		}
	}

	// Prometheus gives the very scrapes the exporters serve directly.
	byKey := map[string]observe.Scrape{}
	for _, sc := range scrapes {
		byKey[fmt.Sprint(sc.Target, sc.Time)] = sc
	}
	for _, n := range s.Nodes {
		src, err := sim.New(s, allocs, n.Name, clock.Fixed(s.Start), sim.Options{})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := exporters.NewSimNode(src, exporters.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for at := s.Start; !at.After(s.End); at = at.Add(5 * time.Minute) {
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/metrics?at=%d", at.Unix()), nil))
			want := observe.Scrape{Target: n.Name, Time: at.UnixMilli()}
			if rec.Code == http.StatusOK {
				if want, err = source.ParseText(n.Name, rec.Body, at); err != nil {
					t.Fatal(err)
				}
			}
			if got := byKey[fmt.Sprint(n.Name, at.UnixMilli())]; !reflect.DeepEqual(got, want) {
				t.Errorf("%s at %s:\nthrough Prometheus %+v\n            direct %+v", n.Name, at.UTC().Format(time.RFC3339), got, want)
			}
		}
	}
}
