package exporters

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/exporters/server"
	"github.com/gpuledger/gpuledger/exporters/sim"
	"github.com/gpuledger/gpuledger/sim/clock"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// p1Instant is the scrape instant of benchmark P1: 29 days into the
// scenario, so the node has a month of ended allocations behind it.
var p1Instant = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// p1Scenario is the node of benchmark P1 (docs/performance.md): one
// A100-80GB node with 8 GPUs × 7 MIG 1g.10gb slices and 4 Alveo U55C, 29
// days of back-to-back 6-hour pods on every device, and at p1Instant 64
// pods in the exposition: 60 running (one per slice and card) and 4 that
// ended 40 minutes earlier.
func p1Scenario(tb testing.TB) *scenario.Scenario {
	tb.Helper()
	start := p1Instant.Add(-29 * 24 * time.Hour)
	s := &scenario.Scenario{
		Cluster: "p1", Start: start, End: p1Instant.Add(24 * time.Hour),
		ScrapeInterval: scenario.Duration(15 * time.Second),
		Namespaces:     []scenario.Namespace{{Name: "hub", Labels: map[string]string{attribution.LabelProject: "jupyterhub"}}, {Name: "batch"}},
		Queues:         []scenario.Queue{{Namespace: "batch", Name: "gpu", ClusterQueue: "cq-gpu"}},
		ClusterQueues:  []scenario.ClusterQueue{{Name: "cq-gpu"}},
	}
	node := scenario.Node{Name: "p1-a100"}
	type device struct{ resource, id string }
	var devices []device
	for g := range 8 {
		gpu := scenario.GPU{Index: g, UUID: fmt.Sprintf("GPU-%08x-0000-4000-8000-%012x", g, g), Model: "NVIDIA A100-SXM4-80GB"}
		for k := range 7 {
			m := scenario.MIGInstance{Profile: "1g.10gb", GI: 7 + k, CI: 0, UUID: fmt.Sprintf("MIG-%08x-%04x-4000-8000-%012x", g, k, g*7+k)}
			gpu.MIG = append(gpu.MIG, m)
			devices = append(devices, device{"nvidia.com/mig-1g.10gb", m.UUID})
		}
		node.GPUs = append(node.GPUs, gpu)
	}
	for f := range 4 {
		pci := fmt.Sprintf("0000:%02x:00.1", 0x3b+f)
		node.FPGAs = append(node.FPGAs, scenario.FPGA{PCI: pci, Model: "Alveo U55C", Shell: "xilinx_u55c_gen3x16_xdma_base_3"})
		devices = append(devices, device{"amd.com/xilinx_u55c_gen3x16_xdma_base_3-0", pci})
	}
	s.Nodes = []scenario.Node{node}
	kinds := []string{scenario.ProfileConstant, scenario.ProfileBursty, scenario.ProfileIdle, scenario.ProfileDiurnal}
	n := 0
	addPod := func(d device, from time.Time, to *time.Time) {
		p := scenario.Pod{
			Name: fmt.Sprintf("job-%05d", n), UID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), Node: node.Name,
			Devices: []scenario.DeviceRef{{Resource: d.resource, ID: d.id}}, Start: from, End: to,
			Profile: scenario.Profile{Kind: kinds[n%len(kinds)], Mean: 0.2 + 0.1*float64(n%7)},
		}
		if n%2 == 0 {
			p.Namespace = "hub"
			p.Annotations = map[string]string{attribution.AnnotationJupyterHubUser: fmt.Sprintf("user%02d", n%40)}
		} else {
			p.Namespace = "batch"
			p.Labels = map[string]string{attribution.LabelKueueQueue: "gpu", attribution.LabelUser: fmt.Sprintf("user%02d", n%40)}
		}
		s.Pods = append(s.Pods, p)
		n++
	}
	historyEnd := p1Instant.Add(-12 * time.Hour)
	for i, d := range devices {
		for t := start; t.Before(historyEnd); t = t.Add(6 * time.Hour) {
			end := t.Add(6 * time.Hour)
			if end.After(historyEnd) {
				end = historyEnd
			}
			addPod(d, t, &end)
		}
		if i < 4 { // ended 40 minutes before the instant, then a new pod
			ended := p1Instant.Add(-40 * time.Minute)
			addPod(d, historyEnd, &ended)
			addPod(d, p1Instant.Add(-30*time.Minute), nil)
			continue
		}
		addPod(d, historyEnd, nil)
	}
	if err := scenario.Validate(s); err != nil {
		tb.Fatal(err)
	}
	return s
}

func p1Source(tb testing.TB, clk clock.Clock) *sim.Source {
	tb.Helper()
	s := p1Scenario(tb)
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		tb.Fatal(err)
	}
	src, err := sim.New(s, allocs, "p1-a100", clk, sim.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return src
}

// TestP1Fixture checks the benchmark's node: what it serves at p1Instant,
// and that a scrape allocates per series, not per label (no attribution or
// label building on the scrape path).
func TestP1Fixture(t *testing.T) {
	src := p1Source(t, clock.Fixed(p1Instant))
	if got := len(p1Scenario(t).Pods); got < 6000 {
		t.Errorf("P1 history has %d pods, want thousands", got)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collector.NewExporter(map[string]collector.Collector{"sim": src}, 0, nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	pods := map[string]bool{}
	for _, mf := range mfs {
		count[mf.GetName()] = len(mf.Metric)
		if mf.GetName() != "gpuledger_allocation_start_time_seconds" {
			continue
		}
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if lp.GetName() == "pod" {
					pods[lp.GetValue()] = true
				}
			}
		}
	}
	want := map[string]int{
		"gpuledger_allocation_start_time_seconds": 64,
		"gpuledger_allocation_end_time_seconds":   4,
		"gpuledger_allocation_activity_ratio":     60,
		"gpuledger_mig_instance_info":             56,
		"gpuledger_gpu_info":                      8,
		"gpuledger_fpga_info":                     4,
	}
	for name, n := range want {
		if count[name] != n {
			t.Errorf("%s: %d series, want %d", name, count[name], n)
		}
	}
	if len(pods) != 64 {
		t.Errorf("%d pods in the exposition, want 64", len(pods))
	}
	series := 0
	for name, n := range count {
		if strings.HasPrefix(name, "gpuledger_exporter_collector_") {
			continue
		}
		series += n
	}
	t.Logf("P1: %d pods in the scenario, %d series per scrape", len(p1Scenario(t).Pods), series)
	drain := make(chan prometheus.Metric, 4096)
	allocs := testing.AllocsPerRun(20, func() {
		if err := src.Update(drain); err != nil {
			t.Fatal(err)
		}
		for len(drain) > 0 {
			<-drain
		}
	})
	// One allocation per series plus a few per device; building label
	// pairs would cost 15 or more per allocation series.
	if limit := float64(series + 64); allocs > limit {
		t.Errorf("a scrape of %d series makes %.0f allocations, want at most %.0f", series, allocs, limit)
	}
}

// BenchmarkP1Scrape scrapes the P1 node through the real HTTP handler, the
// simulated clock advancing 100 ms per scrape, and reports latency
// percentiles, allocations per scrape and the process RSS, with the same
// handler serving only the Go collector as the baseline measured in the
// same run.
func BenchmarkP1Scrape(b *testing.B) {
	clk := clock.NewManual(p1Instant)
	srv, err := NewSimNode(p1Source(b, clk), Options{})
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	base, err := server.New(server.Options{Gatherer: reg})
	if err != nil {
		b.Fatal(err)
	}
	scrape := func(h http.Handler) (time.Duration, int) {
		w := &countingWriter{header: http.Header{}}
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		begin := time.Now()
		h.ServeHTTP(w, req)
		d := time.Since(begin)
		if w.code != http.StatusOK {
			b.Fatalf("scrape: status %d", w.code)
		}
		return d, w.n
	}
	sim, basel := srv.Handler(), base.Handler()
	for range 50 { // warm the energy caches and the pools
		scrape(sim)
		scrape(basel)
	}
	baseLat := make([]time.Duration, 0, 2000)
	for range cap(baseLat) {
		d, _ := scrape(basel)
		baseLat = append(baseLat, d)
	}

	lat := make([]time.Duration, 0, b.N)
	bytes := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clk.Advance(100 * time.Millisecond)
		d, n := scrape(sim)
		lat = append(lat, d)
		bytes = n
	}
	b.StopTimer()
	p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99)
	bp50, bp99 := percentile(baseLat, 0.50), percentile(baseLat, 0.99)
	b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(percentile(lat, 0.90).Nanoseconds()), "p90-ns")
	b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(bp50.Nanoseconds()), "baseline-p50-ns")
	b.ReportMetric(float64(bp99.Nanoseconds()), "baseline-p99-ns")
	b.ReportMetric(float64(p50)/float64(bp50), "p50/baseline")
	b.ReportMetric(float64(p99)/float64(bp99), "p99/baseline")
	b.ReportMetric(float64(bytes), "bytes/scrape")
	if rss, ok := rssMiB(); ok {
		b.ReportMetric(rss, "rss-MiB")
	}
}

func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// rssMiB reads the resident set size of this process (Linux).
func rssMiB() (float64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err == nil
		}
	}
	return 0, false
}

// countingWriter is an http.ResponseWriter that only counts the bytes, so
// that the benchmark measures the handler, not a client's buffer.
type countingWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *countingWriter) Header() http.Header { return w.header }

func (w *countingWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}

// BenchmarkP1ReplayHour replays one simulated hour of the P1 node at a
// 15-second scrape interval through the source directly (no registry, no
// HTTP), as an in-process replay would: the cost of the simulation itself.
func BenchmarkP1ReplayHour(b *testing.B) {
	src := p1Source(b, clock.Fixed(p1Instant))
	ch := make(chan prometheus.Metric, 4096)
	from := p1Instant
	b.ReportAllocs()
	for b.Loop() {
		for step := range 240 {
			c, err := src.At(from.Add(time.Duration(step) * 15 * time.Second))
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Update(ch); err != nil {
				b.Fatal(err)
			}
			for len(ch) > 0 {
				<-ch
			}
		}
		from = from.Add(time.Hour)
		if from.After(p1Instant.Add(20 * time.Hour)) {
			from = p1Instant
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*240), "ns/scrape")
}
