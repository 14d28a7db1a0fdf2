package dcgm

import (
	"bytes"
	"errors"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/exporters/metrics/metricsdoc"
	"github.com/gpuledger/gpuledger/sim/clock"
)

var update = flag.Bool("update", false, "rewrite testdata/collector.golden.prom")

const metricsDoc = "../../docs/metrics.md"

// promCollector serves a collector.Collector to a prometheus registry,
// unchecked, as the exporter's wrapper does.
type promCollector struct {
	c   collector.Collector
	err error
}

func (p *promCollector) Describe(chan<- *prometheus.Desc) {}

func (p *promCollector) Collect(ch chan<- prometheus.Metric) { p.err = p.c.Update(ch) }

func gather(t *testing.T, s *Source) ([]*dto.MetricFamily, error) {
	t.Helper()
	pc := &promCollector{c: s}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(pc)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return mfs, pc.err
}

// value returns the value of the series of family name whose labels
// include want, and how many series matched.
func value(mfs []*dto.MetricFamily, name string, want map[string]string) (float64, int) {
	var v float64
	n := 0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, w := range want {
				if got[k] != w {
					continue series
				}
			}
			n++
			switch {
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			}
		}
	}
	return v, n
}

// polledSource has polled the A100 fixture (its drops) and then the H100
// one, at t0.
func polledSource(t *testing.T) (*Source, *clock.Manual) {
	t.Helper()
	srv, ts := newServer(t, serveFile(t, "a100-exported-labels.txt"))
	clk := clock.NewManual(t0.Add(-10 * time.Second))
	s := newSource(t, ts.URL, h100Inventory(), clk, nil)
	if err := s.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.set(serveFile(t, "h100-mig-node.txt"))
	clk.Set(t0)
	if err := s.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, clk
}

func TestCollectorGolden(t *testing.T) {
	s, _ := polledSource(t)
	mfs, err := gather(t, s)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	golden := filepath.Join("testdata", "collector.golden.prom")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestCollectorGolden -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("exposition differs from %s (rerun with -update if intended):\n%s", golden, buf.String())
	}

	problems, err := testutil.CollectAndLint(&promCollector{c: s})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestGoldenPassesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("/usr/bin/promtool")
	if err != nil {
		t.Skipf("promtool not installed: %v", err)
	}
	body, err := os.ReadFile(filepath.Join("testdata", "collector.golden.prom"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestCollectorSeries(t *testing.T) {
	s, _ := polledSource(t)
	mfs, err := gather(t, s)
	if err != nil {
		t.Fatal(err)
	}
	const node = "gpu-h100-07"
	cases := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gpuledger_dcgm_up", map[string]string{"node": node}, 1},
		{"gpuledger_dcgm_last_success_timestamp_seconds", map[string]string{"node": node}, float64(t0.Unix())},
		// Whole GPU: empty MIG labels.
		{"gpuledger_dcgm_graphics_activity_ratio", map[string]string{"node": node, "gpu": "1", "uuid": h100GPU1,
			"mig_uuid": "", "gpu_instance_id": "", "profile": ""}, 0.8733},
		{"gpuledger_dcgm_sm_activity_ratio", map[string]string{"uuid": h100GPU1}, 0.9011},
		// Resolved MIG instance.
		{"gpuledger_dcgm_tensor_activity_ratio", map[string]string{"gpu": "0", "uuid": h100GPU0,
			"mig_uuid": "MIG-0a3f2e6c-5b1d-5c8e-9f47-3d2a1b0c9e81", "gpu_instance_id": "2", "profile": "3g.40gb"}, 0.623401},
		// Unresolved MIG instance: served, without a MIG UUID.
		{"gpuledger_dcgm_dram_activity_ratio", map[string]string{"uuid": h100GPU0, "mig_uuid": "",
			"gpu_instance_id": "10", "profile": "1g.10gb"}, 0.3},
		// Drops accumulate over polls: the A100 body's (its three MIG
		// instances unknown to the H100 inventory among them), then the
		// H100's one unresolved instance.
		{"gpuledger_dcgm_samples_dropped_total", map[string]string{"node": node, "reason": ReasonNaN}, 3},
		{"gpuledger_dcgm_samples_dropped_total", map[string]string{"reason": ReasonUnresolved}, 3 + 1},
		{"gpuledger_dcgm_samples_dropped_total", map[string]string{"reason": ReasonTooManyDevices}, 0},
	}
	for _, c := range cases {
		v, n := value(mfs, c.name, c.labels)
		if n != 1 || v != c.want {
			t.Errorf("%s%v: %d series, value %v; want one, %v", c.name, c.labels, n, v, c.want)
		}
	}
	// The MIG-mode GPU itself has no profiling series of its own.
	if _, n := value(mfs, "gpuledger_dcgm_graphics_activity_ratio", map[string]string{"uuid": h100GPU0, "gpu_instance_id": ""}); n != 0 {
		t.Errorf("%d graphics series for the MIG-mode GPU itself, want none", n)
	}
	if _, n := value(mfs, "gpuledger_dcgm_graphics_activity_ratio", nil); n != 5 {
		t.Errorf("%d graphics series, want 5 (four MIG instances and GPU 1)", n)
	}
}

func TestCollectorStale(t *testing.T) {
	srv, ts := newServer(t, serveFile(t, "h100-mig-node.txt"))
	clk := clock.NewManual(t0)
	s := newSource(t, ts.URL, h100Inventory(), clk, nil) // interval 10 s
	if err := s.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.set(status(http.StatusServiceUnavailable))
	steps := []struct {
		at         time.Duration // after the good poll
		poll       bool
		wantUp     float64
		wantSeries int // graphics activity series
		wantErr    bool
	}{
		{0, false, 1, 5, false},
		{10 * time.Second, true, 0, 5, false}, // one failed poll: still fresh
		{20 * time.Second, true, 0, 5, false}, // exactly two intervals
		{21 * time.Second, false, 0, 0, true}, // stale
		{30 * time.Second, true, 0, 0, true},
	}
	for _, st := range steps {
		clk.Set(t0.Add(st.at))
		if st.poll {
			_ = s.Poll(t.Context())
		}
		mfs, err := gather(t, s)
		if (err != nil) != st.wantErr {
			t.Errorf("at +%s: Update err = %v, want error %v", st.at, err, st.wantErr)
		}
		up, _ := value(mfs, "gpuledger_dcgm_up", nil)
		_, n := value(mfs, "gpuledger_dcgm_graphics_activity_ratio", nil)
		last, nLast := value(mfs, "gpuledger_dcgm_last_success_timestamp_seconds", nil)
		if up != st.wantUp || n != st.wantSeries || nLast != 1 || last != float64(t0.Unix()) {
			t.Errorf("at +%s: up %v, %d activity series, last success %v; want %v, %d, %d",
				st.at, up, n, last, st.wantUp, st.wantSeries, t0.Unix())
		}
	}
	srv.set(serveFile(t, "h100-mig-node.txt"))
	if err := s.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if mfs, err := gather(t, s); err != nil {
		t.Errorf("after recovery: %v", err)
	} else if up, _ := value(mfs, "gpuledger_dcgm_up", nil); up != 1 {
		t.Errorf("after recovery: up %v", up)
	}
}

func TestCollectorBeforeSuccess(t *testing.T) {
	srv, ts := newServer(t, status(http.StatusInternalServerError))
	s := newSource(t, ts.URL, nil, clock.NewManual(t0), nil)
	mfs, err := gather(t, s)
	if !errors.Is(err, collector.ErrNoData) {
		t.Errorf("before any poll: err = %v, want ErrNoData", err)
	}
	if _, n := value(mfs, "gpuledger_dcgm_up", nil); n != 1 {
		t.Error("no up series before any poll")
	}
	_ = s.Poll(t.Context())
	mfs, err = gather(t, s)
	if err == nil || errors.Is(err, collector.ErrNoData) || !strings.Contains(err.Error(), "500") {
		t.Errorf("after a failed first poll: err = %v, want the poll's failure", err)
	}
	if _, n := value(mfs, "gpuledger_dcgm_last_success_timestamp_seconds", nil); n != 0 {
		t.Error("last success served before any success")
	}
	if _, n := value(mfs, "gpuledger_dcgm_samples_dropped_total", nil); n != len(Reasons()) {
		t.Errorf("%d drop series, want one per reason (%d)", n, len(Reasons()))
	}
	_ = srv
}

// The DCGM rows of docs/metrics.md give each family's served type and
// labels, and every DCGM family documented is served. (The exporters
// package checks names against the code; it can check types and labels
// only of what the simulator serves.)
func TestMetricsDocRows(t *testing.T) {
	s, _ := polledSource(t)
	mfs, err := gather(t, s)
	if err != nil {
		t.Fatal(err)
	}
	metricsdoc.Check(t, metricsDoc, mfs)
	rows, err := metricsdoc.Read(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, mf := range mfs {
		served[mf.GetName()] = true
	}
	for name, row := range rows {
		if strings.HasPrefix(name, "gpuledger_dcgm_") && !served[name] {
			t.Errorf("%s:%d: %s is documented but not served", metricsDoc, row.Line, name)
		}
	}
}
