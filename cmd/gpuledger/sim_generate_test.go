package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuledger/gpuledger/sim/scenario"
)

func simGenerate(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"sim", "generate"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestSimGenerateStdout(t *testing.T) {
	args := []string{"--nodes", "4", "--duration", "2h", "--seed", "7", "--faults", "--cluster", "test-cluster",
		"--start", "2027-01-10T06:00:00+01:00", "--scrape-interval", "30s", "--load", "0.5"}
	code, stdout, stderr := simGenerate(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	s, err := scenario.Parse("stdout", []byte(stdout))
	if err != nil {
		t.Fatalf("the output does not parse: %v", err)
	}
	if s.Cluster != "test-cluster" || s.ScrapeInterval.D().Seconds() != 30 ||
		s.Start.Format("2006-01-02T15:04:05Z07:00") != "2027-01-10T05:00:00Z" || s.End.Sub(s.Start).Hours() != 2 {
		t.Errorf("cluster %q, scrape interval %s, window %s → %s", s.Cluster, s.ScrapeInterval.D(), s.Start, s.End)
	}
	if len(s.Nodes) != 4+3 || len(s.Faults) != 4 || len(s.Pods) == 0 {
		t.Errorf("%d nodes, %d faults, %d pods", len(s.Nodes), len(s.Faults), len(s.Pods))
	}
	if !strings.Contains(s.Source, "--seed 7") || !strings.Contains(s.Source, "--faults") ||
		!strings.Contains(s.Source, "--cluster test-cluster --scrape-interval 30s") {
		t.Errorf("source %q does not say how to regenerate", s.Source)
	}
	// Same flags, same bytes.
	if _, again, _ := simGenerate(t, args...); again != stdout {
		t.Error("the same flags gave different output")
	}
	if _, other, _ := simGenerate(t, append(args, "--seed", "8")...); other == stdout {
		t.Error("another seed gave the same output")
	}
}

func TestSimGenerateOutFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cluster.yaml")
	code, stdout, stderr := simGenerate(t, "--nodes", "2", "--duration", "1h", "--out", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing when writing a file", stdout)
	}
	if !strings.Contains(stderr, "wrote "+path) {
		t.Errorf("stderr %q does not report the file", stderr)
	}
	s, err := scenario.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Nodes) != 2+3 {
		t.Errorf("%d nodes, want 2 physical and 3 virtual", len(s.Nodes))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d files in the output folder, want only the scenario", len(entries))
	}
}

func TestSimGenerateErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no nodes", []string{"--nodes", "0"}, 2, "nodes 0 outside"},
		{"two problems", []string{"--nodes", "0", "--load", "0"}, 2, "nodes 0 outside [1, 2000]; load 0 outside"},
		{"bad duration", []string{"--duration", "a while"}, 2, "invalid value \"a while\" for flag -duration"},
		{"fractional duration", []string{"--duration", "1500ms"}, 2, "not a whole number of seconds"},
		{"load too high", []string{"--load", "1.5"}, 2, "load 1.5 outside (0, 0.95]"},
		{"bad start", []string{"--start", "yesterday"}, 2, "RFC 3339"},
		{"empty cluster", []string{"--cluster", ""}, 2, "missing cluster name"},
		{"empty out", []string{"--out", ""}, 2, "missing --out"},
		{"stray argument", []string{"extra"}, 2, "unexpected arguments: extra"},
		{"unwritable out", []string{"--nodes", "1", "--duration", "1m", "--out", "/nonexistent/dir/x.yaml"}, 1, "write scenario"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := simGenerate(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}
}

func TestSimGenerateHelp(t *testing.T) {
	code, _, stderr := simGenerate(t, "-h")
	if code != 0 || !strings.Contains(stderr, "-load float") || !strings.Contains(stderr, "docs/generated-clusters.md") {
		t.Errorf("exit %d, help %q", code, stderr)
	}
}
