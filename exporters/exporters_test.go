package exporters

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/server"
	"github.com/gpuledger/gpuledger/exporters/sim"
	"github.com/gpuledger/gpuledger/sim/clock"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func smallNode(t *testing.T, node string, clk clock.Clock) *sim.Source {
	t.Helper()
	s, err := scenario.Load("../testdata/scenarios/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	src, err := sim.New(s, allocs, node, clk, sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func get(t *testing.T, h http.Handler, url string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	return rec.Code, rec.Body.String()
}

func TestSimNodeHTTP(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 11, 2, 11, 2, 0, 0, time.UTC))
	srv, err := NewSimNode(smallNode(t, "t4-01", clk), Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	cases := []struct {
		name     string
		clock    string // moves the clock first, when set
		url      string
		code     int
		contains string
	}{
		{"gap at the clock", "", "/metrics", 503, "scrape_gap"},
		{"after the gap", "2026-11-02T11:05:00Z", "/metrics", 200, "gpuledger_exporter_time_seconds 1.7936175e+09"},
		{"at in the gap", "", "/metrics?at=2026-11-02T11:00:00Z", 503, "scrape_gap of node t4-01"},
		{"at RFC 3339", "", "/metrics?at=2026-11-02T09:45:00Z", 200, `gpuledger_allocation_end_time_seconds{class="fpga"`},
		{"at Unix seconds", "", "/metrics?at=1793609100", 200, "gpuledger_exporter_time_seconds 1.7936091e+09"},
		{"at before the scenario", "", "/metrics?at=2026-11-02T07:00:00Z", 400, "outside"},
		{"at after the scenario", "", "/metrics?at=2026-11-03T00:00:00Z", 400, "outside"},
		{"at garbage", "", "/metrics?at=tomorrow", 400, "bad at parameter"},
		{"at empty", "", "/metrics?at=", 400, "empty at parameter"},
		{"clock past the end", "2026-11-02T15:00:00Z", "/metrics", 503, "outside"},
		{"healthz", "", "/healthz", 200, "ok"},
		{"readyz", "", "/readyz", 200, "ready"},
		{"landing page", "", "/", 200, "t4-01"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.clock != "" {
				at, _ := time.Parse(time.RFC3339, c.clock)
				clk.Set(at)
			}
			code, body := get(t, h, c.url)
			if code != c.code || !strings.Contains(body, c.contains) {
				t.Errorf("GET %s = %d %.300q; want %d containing %q", c.url, code, body, c.code, c.contains)
			}
		})
	}
}

func TestSimNodeExposition(t *testing.T) {
	srv, err := NewSimNode(smallNode(t, "a100-mig-01", clock.Fixed(time.Time{})), Options{ProcessMetrics: true})
	if err != nil {
		t.Fatal(err)
	}
	code, body := get(t, srv.Handler(), "/metrics?at=2026-11-02T11:07:00Z")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	for _, name := range []string{"gpuledger_build_info", "gpuledger_exporter_collector_success", "go_goroutines",
		"process_cpu_seconds_total", "gpuledger_allocation_end_time_seconds", "gpuledger_mig_instance_weight_ratio"} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("family %s not served", name)
		}
	}
	ok := mfs["gpuledger_exporter_collector_success"]
	if ok == nil || ok.Metric[0].GetGauge().GetValue() != 1 {
		t.Errorf("sim collector did not succeed: %v", ok)
	}
}

func TestCollectors(t *testing.T) {
	src := smallNode(t, "t4-01", clock.Fixed(time.Time{}))
	r := Collectors(Sources{Sim: src})
	if got := strings.Join(r.Defaults(), ","); got != "sim" {
		t.Errorf("defaults with a sim source: %q", got)
	}
	if got := Collectors(Sources{}).Defaults(); len(got) != 0 {
		t.Errorf("defaults without sources: %v", got)
	}
	if _, err := Collectors(Sources{}).Build([]string{"sim"}, discard()); err == nil {
		t.Error("sim collector built without a sim source")
	}
	if _, err := NewSimNode(src, Options{Collectors: []string{"nvml"}}); err == nil || !strings.Contains(err.Error(), "known: sim") {
		t.Errorf("unknown collector: %v", err)
	}
	if _, err := NewSimNode(nil, Options{}); err == nil {
		t.Error("nil source accepted")
	}
}

// Serving several simulated nodes on loopback, as the demo does.
func TestServeManyNodes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := clock.Fixed(time.Date(2026, 11, 2, 10, 30, 0, 0, time.UTC))
	done := make(chan error, 2)
	var addrs []string
	for _, node := range []string{"a30-01", "vk-cnaf"} {
		srv, err := NewSimNode(smallNode(t, node, clk), Options{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := server.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		go func() { done <- srv.Serve(ctx, l) }()
	}
	for i, want := range []string{`pod="lhcb-reco-1"`, `site="INFN-CNAF"`} {
		resp, err := http.Get("http://" + addrs[i] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, body without %s", addrs[i], resp.StatusCode, want)
		}
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	}
}
