package main

import (
	"bufio"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLinksTheExporterOnly: the binary links none of the rest of the
// suite, nor client-go's clientset, typed clients, informers or discovery
// client (which register every API group at start: see exporters/kube's
// API).
func TestLinksTheExporterOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"github.com/gpuledger/gpuledger/aggregator", "github.com/gpuledger/gpuledger/api",
		"github.com/gpuledger/gpuledger/dashboards", "github.com/gpuledger/gpuledger/internal/demo",
		"github.com/jackc/pgx", "github.com/lestrrat-go/jwx", "github.com/grafana/grafana-foundation-sdk",
		"github.com/go-chi/chi",
		"k8s.io/client-go/kubernetes", "k8s.io/client-go/informers", "k8s.io/client-go/discovery",
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("gpuledger-exporter links %s", d)
			}
		}
	}
	for _, want := range []string{"github.com/gpuledger/gpuledger/exporters/cli", "github.com/gpuledger/gpuledger/exporters/kube"} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("gpuledger-exporter does not link %s", want)
		}
	}
}

var listeningAt = regexp.MustCompile(`msg=listening address=(\S+)`)

// TestBinary runs the built binary: exit statuses, a simulated node
// served over HTTP, a graceful stop.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "gpuledger-exporter")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"-h"}, 0, "-kubelet-socket"},
		{[]string{"--no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"--source", "nvml"}, 2, `gpuledger-exporter: unknown --source "nvml"`},
		{[]string{"--source", "sim", "--scenario", "/nonexistent.yaml", "--node-name", "t4-01"}, 1, "nonexistent.yaml"},
	} {
		cmd := exec.Command(bin, c.args...)
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != c.code || !strings.Contains(string(out), c.stderr) {
			t.Errorf("%q: exit %d, output %q; want %d containing %q", c.args, code, out, c.code, c.stderr)
		}
	}

	cmd := exec.Command(bin, "--source", "sim", "--scenario", "../../testdata/scenarios/small.yaml", "--node-name", "t4-01",
		"--listen-address", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var addr string
	for addr == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the exporter exited before listening")
			}
			if m := listeningAt.FindStringSubmatch(l); m != nil {
				addr = m[1]
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the exporter did not say where it listens within 30 s")
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics?at=2026-11-02T09:45:00Z")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`gpuledger_allocation_start_time_seconds{`, `node="t4-01"`, "process_cpu_seconds_total ", "gpuledger_build_info{"} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Fatalf("GET /metrics: %d, want 200 with %q:\n%.2000s", resp.StatusCode, want, body)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped := false
	for l := range lines {
		stopped = stopped || strings.Contains(l, "msg=stopped")
	}
	if err := cmd.Wait(); err != nil || !stopped {
		t.Errorf("after SIGTERM: exit %v, logged its stop: %v", err, stopped)
	}
}
