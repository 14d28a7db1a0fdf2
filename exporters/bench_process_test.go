package exporters

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/exporters/kube"
	"github.com/gpuledger/gpuledger/exporters/kube/kubetest"
)

// BenchmarkP1RealProcess runs the deployed exporter as its own process
// on the P1 node's pods and measures what the node pays for it: the
// resident memory (peak, anonymous, file-backed), the process's CPU time
// per scrape, and the scrape latency over loopback HTTP. Each
// sub-benchmark builds one binary: gpuledger-exporter (the exporter
// alone) and gpuledger (the whole suite, run as `gpuledger exporter`).
// Scrapes ask for gzip, as Prometheus does; gpuledger-exporter/identity
// asks for none, to show what compression costs.
//
// The process reads the P1 node's 64 pods from a kubelet pod-resources
// server on a unix socket and an API server over HTTP (kubetest: pods,
// namespaces, the node, Kueue's LocalQueue). NVML cannot be mocked in
// another process: as on a node without a driver, the nvml collector
// reports itself failed and the allocations carry the unknown model, so
// the exposition lacks P1's 308 GPU and MIG series (BenchmarkP1RealNode
// measures them in process). A binary that does not build skips its
// sub-benchmark.
func BenchmarkP1RealProcess(b *testing.B) {
	const exporter, suite = "github.com/gpuledger/gpuledger/cmd/gpuledger-exporter", "github.com/gpuledger/gpuledger/cmd/gpuledger"
	for _, c := range []struct {
		name, pkg, cmd string
		gzip           bool
	}{
		{"gpuledger-exporter", exporter, "", true},
		{"gpuledger-exporter/identity", exporter, "", false},
		{"gpuledger", suite, "exporter", true},
	} {
		b.Run(c.name, func(b *testing.B) {
			bin := filepath.Join(b.TempDir(), filepath.Base(c.pkg))
			if out, err := exec.Command("go", "build", "-o", bin, c.pkg).CombinedOutput(); err != nil {
				b.Skipf("go build %s: %v\n%s", c.pkg, err, out)
			}
			benchProcess(b, bin, c.cmd, c.gzip)
		})
	}
}

var listeningAt = regexp.MustCompile(`msg=listening address=(\S+)`)

func benchProcess(b *testing.B, bin, cmd string, gzip bool) {
	rn := p1RealNode(b)
	rn.listPods()
	api, err := kubetest.Start(rn.objs...)
	if err != nil {
		b.Fatal(err)
	}
	defer api.Close()
	api.Serve(kube.LocalQueues, "LocalQueue", true)
	for _, q := range rn.queues {
		if err := api.Add(q); err != nil {
			b.Fatal(err)
		}
	}
	kubeconfig, err := api.Kubeconfig(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	var args []string
	if cmd != "" {
		args = append(args, cmd)
	}
	args = append(args, "--source", "real", "--node-name", rn.opts.Node, "--kubelet-socket", rn.opts.KubeletSocket,
		"--kubeconfig", kubeconfig, "--fpga-sysfs-root", rn.opts.FPGASysfsRoot, "--fpga-xbutil", "off",
		"--listen-address", "127.0.0.1:0")
	p := exec.Command(bin, args...)
	p.Env = append(os.Environ(), "NODE_NAME=")
	stderr, err := p.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = p.Process.Signal(syscall.SIGTERM)
		_ = p.Wait()
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr) // read to the end, so that the process never blocks on its log
		for sc.Scan() {
			if m := listeningAt.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a + "/metrics"
	case <-time.After(time.Minute):
		b.Fatal("the exporter did not say where it listens within a minute")
	}

	// The transport asks for gzip and inflates the answer, unless told not to.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: !gzip}}
	scrape := func() (time.Duration, string) {
		begin := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(begin)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("scrape: status %d, %v", resp.StatusCode, err)
		}
		return d, string(body)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, body := scrape()
		if strings.Count(body, "\ngpuledger_allocation_start_time_seconds{") == 64 &&
			strings.Count(body, "\ngpuledger_allocation_end_time_seconds{") == 8 &&
			strings.Contains(body, `gpuledger_attribution_available{node="p1-a100",source="apiserver"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the exporter did not serve the 64 allocations within a minute; last exposition:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for range 200 { // warm up
		scrape()
	}

	status := fmt.Sprintf("/proc/%d/status", p.Process.Pid)
	cpu0, cpuOK := procCPU(p.Process.Pid)
	lat := make([]time.Duration, 0, 4096)
	bytes := 0
	b.ResetTimer()
	for b.Loop() {
		d, body := scrape()
		lat = append(lat, d)
		bytes = len(body)
	}
	b.StopTimer()
	cpu1, _ := procCPU(p.Process.Pid)

	b.ReportMetric(float64(percentile(lat, 0.50).Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(percentile(lat, 0.99).Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(bytes), "bytes/scrape")
	if cpuOK && len(lat) > 0 {
		b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(len(lat)), "cpu-ns/scrape")
	}
	for _, f := range []struct{ field, unit string }{
		{"VmHWM", "hwm-MiB"}, {"VmRSS", "rss-MiB"}, {"RssAnon", "rss-anon-MiB"}, {"RssFile", "rss-file-MiB"},
	} {
		if v, ok := procStatusMiB(status, f.field); ok {
			b.ReportMetric(v, f.unit)
		}
	}
	if fi, err := os.Stat(bin); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "binary-MiB")
	}
	if l, ok := load1(); ok {
		b.ReportMetric(l, "load1")
	}
}

// procCPU is a process's user and system CPU time (Linux, in clock ticks
// of 10 ms).
func procCPU(pid int) (time.Duration, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may hold spaces: count from the
	// last parenthesis. utime and stime are fields 14 and 15.
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, true
}
