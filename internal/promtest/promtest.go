// Package promtest runs a real Prometheus for tests: the history of a
// scenario, written as OpenMetrics, backfilled with promtool into a fresh
// TSDB and served on a loopback port until the test ends. Without the
// Debian package prometheus the test fails under CI and is skipped
// elsewhere.
package promtest

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/source"
	"github.com/gpuledger/gpuledger/aggregator/source/backfill"
	"github.com/gpuledger/gpuledger/internal/procutil"
	"github.com/gpuledger/gpuledger/internal/testlog"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// Binary finds a Prometheus binary: at /usr/bin (the Debian packages), else
// on the PATH. Without it the test fails in CI and is skipped elsewhere.
func Binary(t testing.TB, name string) string {
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

// Options tune StartWith. The zero value gives Start's Prometheus.
type Options struct {
	// Backfill chooses the history written. Families defaults to the
	// families the aggregator reads and up, TempDir to the test's
	// temporary directory; the rest defaults as in backfill.Options.
	Backfill backfill.Options
	// MaxBlockDuration is promtool's --max-block-duration: the longest
	// block written (0: promtool's default, 2 hours). promtool reads the
	// history once per block range, so a long history wants long blocks.
	MaxBlockDuration time.Duration
	// ReadyTimeout bounds the wait for Prometheus to be ready (default
	// 15 s).
	ReadyTimeout time.Duration
}

// Server is a Prometheus started by StartWith, and what building its TSDB
// took.
type Server struct {
	URL     string         // base URL, http://127.0.0.1:port
	History backfill.Stats // the OpenMetrics history written
	// Write and Blocks are the times taken to write the history and to
	// turn it into TSDB blocks with promtool.
	Write, Blocks time.Duration
	// TSDBBlocks and TSDBBytes describe the TSDB Prometheus serves.
	TSDBBlocks int
	TSDBBytes  int64
}

// Start backfills the history of s into a new TSDB and serves it
// with a real Prometheus until the test ends; it returns the base URL.
func Start(t testing.TB, s *scenario.Scenario) string {
	t.Helper()
	return StartWith(t, s, Options{}).URL
}

// StartWith is Start with options. The history file is removed once
// promtool has read it.
func StartWith(t testing.TB, s *scenario.Scenario, opts Options) *Server {
	t.Helper()
	prom, promtool := Binary(t, "prometheus"), Binary(t, "promtool")
	srv := &Server{}
	dir := t.TempDir()
	om := filepath.Join(dir, "history.om")
	f, err := os.Create(om)
	if err != nil {
		t.Fatal(err)
	}
	bo := opts.Backfill
	if len(bo.Families) == 0 {
		bo.Families = append(source.Families(), source.FamilyUp)
	}
	if bo.TempDir == "" {
		bo.TempDir = dir
	}
	began := time.Now()
	srv.History, err = backfill.Write(context.Background(), f, s, bo)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	srv.Write = time.Since(began)
	t.Logf("history: %d samples, %.1f MB", srv.History.Samples, float64(srv.History.Bytes)/1e6)
	data := filepath.Join(dir, "data")
	args := []string{"tsdb", "create-blocks-from", "openmetrics", "--quiet"}
	if opts.MaxBlockDuration > 0 {
		args = append(args, "--max-block-duration="+opts.MaxBlockDuration.String())
	}
	began = time.Now()
	out, err := exec.Command(promtool, append(args, om, data)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool tsdb create-blocks-from openmetrics: %v\n%s", err, out)
	}
	srv.Blocks = time.Since(began)
	if err := os.Remove(om); err != nil {
		t.Fatal(err)
	}
	srv.TSDBBlocks, srv.TSDBBytes, err = tsdbSize(data)
	if err != nil {
		t.Fatal(err)
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
	logs := &testlog.Buffer{}
	cmd := exec.Command(prom, "--config.file="+cfg, "--storage.tsdb.path="+data, "--web.listen-address="+addr,
		"--storage.tsdb.retention.time=10y", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logs, logs
	procutil.DieWithParent(cmd)
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
	srv.URL = "http://" + addr
	wait := opts.ReadyTimeout
	if wait <= 0 {
		wait = 15 * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		resp, err := http.Get(srv.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return srv
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("prometheus exited: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after %s\n%s", wait, logs.String())
		}
	}
}

// tsdbSize counts the blocks of a TSDB directory (their subdirectories
// holding a meta.json) and the bytes of all its files.
func tsdbSize(dir string) (blocks int, bytes int64, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if d.Name() == "meta.json" && filepath.Dir(filepath.Dir(path)) == dir {
			blocks++
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		bytes += info.Size()
		return nil
	})
	return blocks, bytes, err
}
