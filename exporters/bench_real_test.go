package exporters

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/alloc"
	"github.com/gpuledger/gpuledger/exporters/kube"
	"github.com/gpuledger/gpuledger/exporters/kube/kubefake"
	"github.com/gpuledger/gpuledger/exporters/kubelet"
	"github.com/gpuledger/gpuledger/exporters/node"
	"github.com/gpuledger/gpuledger/exporters/nvml"
	"github.com/gpuledger/gpuledger/exporters/nvml/nvmltest"
	"github.com/gpuledger/gpuledger/exporters/server"
)

// p1RealTag tags the UUIDs of the P1 node's fake GPUs.
const p1RealTag = "a100be1c"

// p1RealNode is the node of benchmark P1 on the real code path
// (docs/performance.md): 8 × A100-SXM4-80GB, each split into 7 MIG
// 1g.10gb (56 slices), and 64 pods holding them: 56 running, one per
// slice, and 8 that ended 40 minutes ago on the first 8 slices, which the
// kubelet still lists. Even pods are JupyterHub notebooks in hub, odd ones
// Kueue jobs in batch.
func p1RealNode(tb testing.TB) *realNode {
	tb.Helper()
	const nodeName = "p1-a100"
	lib := nvmltest.NewA100(tb, p1RealTag, nvmltest.A100MIG1g(8))
	now := time.Now().Truncate(time.Second)
	var pods []realPod
	add := func(slice int, start, end time.Time) {
		n := len(pods)
		name := fmt.Sprintf("job-%05d", n)
		id := lib.GPUs[slice/7].MIGs[slice%7].UUID
		p := realPod{name: name, resource: "nvidia.com/mig-1g.10gb", ids: []string{id}}
		user := fmt.Sprintf("user%02d", n%40)
		if n%2 == 0 {
			p.namespace = "hub"
			p.obj = apiPod(p.namespace, name, nodeName, p.resource, 1, start, end, withAnnotation(attribution.AnnotationJupyterHubUser, user))
		} else {
			p.namespace = "batch"
			p.obj = apiPod(p.namespace, name, nodeName, p.resource, 1, start, end,
				withLabels(attribution.LabelKueueQueue, "gpu", attribution.LabelUser, user))
		}
		pods = append(pods, p)
	}
	for s := range 56 {
		add(s, now.Add(-time.Hour-time.Duration(s)*time.Minute), time.Time{})
	}
	for s := range 8 {
		add(s, now.Add(-7*time.Hour), now.Add(-40*time.Minute))
	}
	return newRealNode(tb, nodeName, lib, pods)
}

// handlerBody scrapes a handler and returns the body.
func handlerBody(tb testing.TB, h http.Handler) string {
	tb.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		tb.Fatalf("scrape: status %d", rec.Code)
	}
	return rec.Body.String()
}

// waitHandler scrapes h until done holds; the bound only keeps a broken
// benchmark from hanging.
func waitHandler(tb testing.TB, h http.Handler, what string, done func(string) bool) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for body := handlerBody(tb, h); !done(body); body = handlerBody(tb, h) {
		if time.Now().After(deadline) {
			tb.Fatalf("never happened: %s; last exposition:\n%s", what, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapInUse is the heap in use after a collection, in bytes.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// procStatusMiB reads a kB field of a /proc/PID/status file (Linux):
// RssAnon is the process's own resident memory, RssFile the pages of its
// executable and libraries, VmHWM the peak of their sum.
func procStatusMiB(status, field string) (float64, bool) {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err == nil
		}
	}
	return 0, false
}

// load1 is the one-minute load average (Linux).
func load1() (float64, bool) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return v, err == nil
}

// joinCost measures the allocation collector's join on the P1 node, built
// as NewNode builds it (NVML inventory, kubelet client, informers) beside
// the exporter under test: the median of a cold join (alloc.New, which
// builds every allocation and its labels, as an exporter mapping on each
// scrape would) and of a steady Reconcile (what each kubelet poll and each
// tick of the collector costs).
func joinCost(b *testing.B, rn *realNode) (cold, steady time.Duration) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	name := rn.opts.Node
	inv := node.NewInventory()
	nc, err := nvml.New(nvmltest.NewA100(b, p1RealTag, nvmltest.A100MIG1g(8)), nvml.Options{Node: name, Inventory: inv})
	if err != nil {
		b.Fatal(err)
	}
	if err := nc.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	kl, err := kubelet.New(kubelet.Options{Socket: rn.opts.KubeletSocket})
	if err != nil {
		b.Fatal(err)
	}
	defer kl.Close()
	if err := kl.Poll(ctx); err != nil {
		b.Fatal(err)
	}
	inf, err := kube.NewInformers(kube.Config{Node: name, Client: kubefake.New(rn.cs), Dynamic: rn.dyn})
	if err != nil {
		b.Fatal(err)
	}
	inf.Start(ctx)
	if !inf.WaitForSync(ctx) {
		b.Fatal("informers did not sync")
	}
	var colds, steadies []time.Duration
	var ac *alloc.Collector
	for range 200 {
		begin := time.Now()
		ac, err = alloc.New(kl, inf, inv, alloc.Options{Node: name})
		colds = append(colds, time.Since(begin))
		if err != nil {
			b.Fatal(err)
		}
	}
	if n := len(ac.Allocations()); n != 64 {
		b.Fatalf("the join found %d allocations, want 64", n)
	}
	for range 2000 {
		begin := time.Now()
		ac.Reconcile()
		steadies = append(steadies, time.Since(begin))
	}
	return percentile(colds, 0.5), percentile(steadies, 0.5)
}

// BenchmarkP1RealNode scrapes the P1 node through the real exporter
// (NewNode: NVML from go-nvml's mock, the kubelet over its unix socket,
// informers over a fake clientset, default intervals, so the kubelet
// polls and the join run in the background as in service) and its real
// HTTP handler. It reports latency percentiles, CPU time and allocations
// per scrape, the process RSS and live heap, the cost of the allocation
// join (cold and steady), and the same server serving only the Go
// collector as the baseline, measured in the same run.
func BenchmarkP1RealNode(b *testing.B) {
	heap0 := heapInUse()
	rn := p1RealNode(b)
	n, err := NewNode(rn.opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := n.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	h := n.Server().Handler()
	waitHandler(b, h, "informers synced", func(body string) bool {
		return strings.Contains(body, `gpuledger_attribution_available{node="p1-a100",source="apiserver"} 1`)
	})
	rn.listPods()
	waitHandler(b, h, "64 allocations", func(body string) bool {
		return strings.Count(body, "\ngpuledger_allocation_start_time_seconds{") == 64 &&
			strings.Count(body, "\ngpuledger_allocation_end_time_seconds{") == 8
	})
	body := handlerBody(b, h)
	series := 0
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "gpuledger_") && !strings.HasPrefix(line, "gpuledger_exporter_collector_") {
			series++
		}
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
	basel := base.Handler()
	for range 50 { // warm the pools
		scrape(h)
		scrape(basel)
	}
	footprint := int64(heapInUse()) - int64(heap0)
	cold, steady := joinCost(b, rn)

	baseLat := make([]time.Duration, 0, 2000)
	cpu0 := cpuTime(b)
	for range cap(baseLat) {
		d, _ := scrape(basel)
		baseLat = append(baseLat, d)
	}
	baseCPU := (cpuTime(b) - cpu0) / time.Duration(len(baseLat))

	lat := make([]time.Duration, 0, 4096)
	bytes := 0
	b.ReportAllocs()
	cpu0 = cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		d, n := scrape(h)
		lat = append(lat, d)
		bytes = n
	}
	b.StopTimer()
	cpu := (cpuTime(b) - cpu0) / time.Duration(len(lat))

	p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99)
	bp50, bp99 := percentile(baseLat, 0.50), percentile(baseLat, 0.99)
	b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(percentile(lat, 0.90).Nanoseconds()), "p90-ns")
	b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(bp50.Nanoseconds()), "baseline-p50-ns")
	b.ReportMetric(float64(bp99.Nanoseconds()), "baseline-p99-ns")
	b.ReportMetric(float64(p99)/float64(bp99), "p99/baseline")
	b.ReportMetric(float64(cpu.Nanoseconds()), "cpu-ns/scrape")
	b.ReportMetric(float64(baseCPU.Nanoseconds()), "baseline-cpu-ns/scrape")
	b.ReportMetric(float64(steady.Nanoseconds()), "reconcile-ns")
	b.ReportMetric(float64(cold.Nanoseconds()), "join-cold-ns")
	b.ReportMetric(float64((p50 + cold).Nanoseconds()), "scrape+join-p50-ns")
	b.ReportMetric(float64(bytes), "bytes/scrape")
	b.ReportMetric(float64(series), "series/scrape")
	b.ReportMetric(float64(footprint)/(1<<20), "heap-node-MiB")
	b.ReportMetric(float64(heapInUse())/(1<<20), "heap-MiB")
	if rss, ok := rssMiB(); ok {
		b.ReportMetric(rss, "rss-MiB")
	}
	if anon, ok := procStatusMiB("/proc/self/status", "RssAnon"); ok {
		b.ReportMetric(anon, "rss-anon-MiB")
	}
	if l, ok := load1(); ok {
		b.ReportMetric(l, "load1")
	}
}
