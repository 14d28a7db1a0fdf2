package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters"
	"github.com/gpuledger/gpuledger/exporters/server"
	"github.com/gpuledger/gpuledger/exporters/sim"
	"github.com/gpuledger/gpuledger/internal/testlog"
	"github.com/gpuledger/gpuledger/sim/clock"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// e2eFor replaces every alert's for: in the end-to-end test, so that an
// idle GPU fires in seconds; the expressions stay the real ones.
const e2eFor = "2s"

// e2eWait bounds the wait for the notifications.
const e2eWait = 45 * time.Second

// TestAlertEndToEnd serves a simulated node whose pods hold idle GPUs, has
// a real Prometheus scrape it and evaluate the real rules (for: shortened),
// and a real Alertmanager route the alerts with the example configuration's
// routing tree to webhooks: each idle-GPU alert must reach the receiver of
// its project with the pod's user, project, namespace and pod.
func TestAlertEndToEnd(t *testing.T) {
	prom := binary(t, "prometheus", "prometheus")
	am := binary(t, "prometheus-alertmanager", "prometheus-alertmanager")
	dir := t.TempDir()

	exporterAddr := serveSimNode(t, "testdata/idle-gpu.yaml", "a100-01")
	hook := newWebhook(t)

	amAddr := freeAddr(t)
	amConfig := filepath.Join(dir, "alertmanager.yml")
	writeFile(t, amConfig, testAlertmanagerConfig(t, hook.url))
	startDaemon(t, "alertmanager", am, "http://"+amAddr,
		"--config.file="+amConfig, "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=", "--log.level=warn")

	rulesPath := filepath.Join(dir, "rules.yml")
	writeFile(t, rulesPath, shortRules(t, e2eFor))
	promConfig := filepath.Join(dir, "prometheus.yml")
	writeFile(t, promConfig, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%q]
scrape_configs:
  - job_name: gpuledger-exporter
    static_configs:
      - targets: [%q]
`, rulesPath, amAddr, exporterAddr)))
	promAddr := freeAddr(t)
	startDaemon(t, "prometheus", prom, "http://"+promAddr,
		"--config.file="+promConfig, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn")

	want := map[string]map[string]string{ // receiver → labels its idle-GPU alert carries
		"project-cms-gpu": {"user": "carol", "project": "cms-gpu", "namespace": "cms-ml", "pod": "cms-train-8a01",
			"node": "a100-01", "class": "gpu", "gpu_uuid": "GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
			"model": "NVIDIA A100-SXM4-80GB", "queue": "cms-gpu", "severity": "warning"},
		"project-jupyterhub": {"user": "alice", "project": "jupyterhub", "namespace": "hub", "pod": "jupyter-alice",
			"node": "a100-01", "class": "mig", "gpu_uuid": "GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f",
			"model": "NVIDIA A100-SXM4-80GB", "profile": "1g.10gb", "severity": "warning"},
	}
	got := hook.waitFor(t, e2eWait, func(ns []notification) bool {
		for recv := range want {
			if findIdle(ns, recv) == nil {
				return false
			}
		}
		return true
	})
	for _, n := range got {
		t.Logf("%s ← %s (%d alerts)", n.path, n.msg.Receiver, len(n.msg.Alerts))
	}
	for recv, labels := range want {
		n := findIdle(got, recv)
		if n.path != "/"+recv {
			t.Errorf("%s: notification posted to %s, want /%s", recv, n.path, recv)
		}
		a := n.msg.idle()
		for k, v := range labels {
			if a.Labels[k] != v {
				t.Errorf("%s: alert label %s=%q, want %q (labels %v)", recv, k, a.Labels[k], v, a.Labels)
			}
		}
		if a.Annotations["runbook_url"] != RunbookBase+"#gpuledgergpuallocatedidle" {
			t.Errorf("%s: runbook_url %q", recv, a.Annotations["runbook_url"])
		}
		if !strings.Contains(a.Annotations["summary"], labels["user"]) {
			t.Errorf("%s: summary %q does not name user %s", recv, a.Annotations["summary"], labels["user"])
		}
	}
	// Whatever else arrived so far: no alert about the busy slice or the
	// FPGA, and every project alert at its own project's receiver.
	for _, n := range got {
		for _, a := range n.msg.Alerts {
			if p := a.Labels["pod"]; p == "lhcb-reco-1" || p == "fpga-hls-3" {
				t.Errorf("alert %s about pod %s (busy slice or FPGA) reached %s", a.Labels["alertname"], p, n.msg.Receiver)
			}
			if p := a.Labels["project"]; want["project-"+p] != nil && n.msg.Receiver != "project-"+p {
				t.Errorf("alert %s of project %s reached receiver %s", a.Labels["alertname"], p, n.msg.Receiver)
			}
		}
	}
}

// serveSimNode serves one node of a scenario on loopback, its clock two
// hours into the scenario and running at wall speed, until the test ends.
func serveSimNode(t *testing.T, path, node string) string {
	t.Helper()
	s, err := scenario.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	src, err := sim.New(s, allocs, node, clock.NewVirtual(s.Start.Add(2*time.Hour), 1), sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := exporters.NewSimNode(src, exporters.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sim exporter: %v", err)
		}
	})
	return l.Addr().String()
}

// shortRules is the real rule file with every alert's for: set to d.
func shortRules(t *testing.T, d string) []byte {
	t.Helper()
	f := loadRules(t)
	for i := range f.Groups {
		for j := range f.Groups[i].Rules {
			if r := &f.Groups[i].Rules[j]; r.Alert != "" && r.For != "" {
				r.For = d
			}
		}
	}
	out, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testAlertmanagerConfig is alertmanager-example.yaml with every receiver's
// webhooks pointed at base/<receiver> and notifications sent without
// waiting: the routing tree and inhibitions are the example's.
func testAlertmanagerConfig(t *testing.T, base string) []byte {
	t.Helper()
	data, err := os.ReadFile("alertmanager-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("alertmanager-example.yaml: %v", err)
	}
	route, ok := cfg["route"].(map[string]any)
	if !ok {
		t.Fatal("alertmanager-example.yaml: no route")
	}
	route["group_wait"], route["group_interval"] = "1s", "1s"
	receivers, ok := cfg["receivers"].([]any)
	if !ok {
		t.Fatal("alertmanager-example.yaml: no receivers")
	}
	for _, r := range receivers {
		recv, _ := r.(map[string]any)
		name, _ := recv["name"].(string)
		hooks, _ := recv["webhook_configs"].([]any)
		if name == "" || len(hooks) == 0 {
			t.Fatalf("alertmanager-example.yaml: receiver %v has no name or no webhook_configs", r)
		}
		for _, h := range hooks {
			h.(map[string]any)["url"] = base + "/" + name
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// notification is one webhook request Alertmanager made.
type notification struct {
	path string
	msg  webhookMessage
}

// webhookMessage is Alertmanager's webhook payload (version 4), reduced to
// what the test reads.
type webhookMessage struct {
	Receiver string         `json:"receiver"`
	Status   string         `json:"status"`
	Alerts   []webhookAlert `json:"alerts"`
}

type webhookAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// idle returns the message's firing idle-GPU alert, if any.
func (m webhookMessage) idle() *webhookAlert {
	for i, a := range m.Alerts {
		if a.Labels["alertname"] == "GPULedgerGPUAllocatedIdle" && a.Status == "firing" {
			return &m.Alerts[i]
		}
	}
	return nil
}

// findIdle returns the first notification to receiver carrying a firing
// idle-GPU alert.
func findIdle(ns []notification, receiver string) *notification {
	for i := range ns {
		if ns[i].msg.Receiver == receiver && ns[i].msg.idle() != nil {
			return &ns[i]
		}
	}
	return nil
}

// webhook records the notifications posted to an httptest.Server.
type webhook struct {
	url     string
	mu      sync.Mutex
	got     []notification
	errs    []error
	arrived chan struct{}
}

func newWebhook(t *testing.T) *webhook {
	h := &webhook{arrived: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func (h *webhook) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var msg webhookMessage
	if err == nil {
		err = json.Unmarshal(body, &msg)
	}
	h.mu.Lock()
	if err != nil {
		h.errs = append(h.errs, fmt.Errorf("%s %s: %w: %s", r.Method, r.URL.Path, err, body))
	} else {
		h.got = append(h.got, notification{path: r.URL.Path, msg: msg})
	}
	h.mu.Unlock()
	select {
	case h.arrived <- struct{}{}:
	default:
	}
}

// waitFor waits until done holds for the notifications received, and
// returns them; it fails the test after wait.
func (h *webhook) waitFor(t *testing.T, wait time.Duration, done func([]notification) bool) []notification {
	t.Helper()
	deadline := time.After(wait)
	for {
		h.mu.Lock()
		got, errs := append([]notification(nil), h.got...), errors.Join(h.errs...)
		h.mu.Unlock()
		if errs != nil {
			t.Fatalf("webhook: %v", errs)
		}
		if done(got) {
			return got
		}
		select {
		case <-h.arrived:
		case <-deadline:
			t.Fatalf("notifications after %s: %+v", wait, got)
		}
	}
}

// freeAddr returns a loopback address with a port free a moment ago, for
// programs that must be told a concrete port.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startDaemon runs a Prometheus-style server until the test ends and waits
// for its /-/ready. Its output is logged when the test fails.
func startDaemon(t *testing.T, name, path, base string, args ...string) {
	t.Helper()
	logs := &testlog.Buffer{}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Logf("%s: SIGTERM: %v", name, err)
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			if err := cmd.Process.Kill(); err != nil {
				t.Logf("%s: kill: %v", name, err)
			}
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, logs.String())
		}
	})
	deadline := time.After(15 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("%s exited: %v\n%s", name, err, logs.String())
		case <-deadline:
			t.Fatalf("%s not ready after 15s\n%s", name, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
