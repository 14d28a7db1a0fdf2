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

const fromTraceFixtures = "../../testdata/trace/"

// fromTraceArgs imports the Alibaba fixtures' window [1000, 2000); later
// flags override earlier ones.
func fromTraceArgs(extra ...string) []string {
	return fromTraceNoOrgs(append([]string{"--orgs", fromTraceFixtures + "orgs.csv"}, extra...)...)
}

func fromTraceNoOrgs(extra ...string) []string {
	args := []string{"sim", "from-trace", "--format", "alibaba-v2023",
		"--pods", fromTraceFixtures + "alibaba_pods.csv", "--nodes", fromTraceFixtures + "alibaba_nodes.csv",
		"--epoch", "2026-01-05T00:00:00Z", "--from-offset", "1000s", "--duration", "1000s", "--seed", "3"}
	return append(args, extra...)
}

func TestSimFromTrace(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // substrings of stdout
		stderr   []string // substrings of stderr
		validOut bool     // stdout is a valid scenario
	}{
		{name: "alibaba to stdout", args: fromTraceArgs("--out", "-", "--cluster", "test-cluster"), code: 0,
			stdout: []string{"cluster: test-cluster", "name: pod-frac-a", "nvidia.com/gpu.shared"}, validOut: true},
		{name: "uniform tenants", args: fromTraceArgs("--orgs", ""), code: 0,
			stdout: []string{"namespace: project-"}, validOut: true},
		{name: "MIG share", args: fromTraceArgs("--mig-share", "0.34"), code: 0,
			stdout: []string{"nvidia.com/mig-3g.40gb", "nvidia.com/mig.config: all-balanced"}, validOut: true},
		{name: "philly", args: []string{"sim", "from-trace", "--format", "philly-chronus",
			"--jobs", fromTraceFixtures + "philly_jobs.csv", "--epoch", "2026-01-05T00:00:00Z",
			"--from-offset", "100s", "--duration", "900s", "--scrape-interval", "30s"}, code: 0,
			stdout: []string{"name: philly-job-2-worker-1", "scrape_interval: 30s", "namespace: vc-aaa111"}, validOut: true},
		{name: "missing orgs file", args: fromTraceArgs("--orgs", filepath.Join(dir, "none.csv")), code: 1,
			stderr: []string{"none.csv", "--orgs ''"}},
		{name: "default orgs under the trace dir", args: fromTraceNoOrgs("--trace-dir", filepath.Join(dir, "traces")), code: 0,
			stdout: []string{"namespace: org-"}, validOut: true},
		{name: "placement failure", args: fromTraceArgs("--pods", fromTraceFixtures+"alibaba_crowded_pods.csv",
			"--nodes", fromTraceFixtures+"alibaba_tiny_nodes.csv", "--from-offset", "0s"), code: 1,
			stderr: []string{"3 pod(s) could not be placed", "pod-c", "pod-d", "pod-e"}},
		{name: "no epoch", args: []string{"sim", "from-trace", "--format", "alibaba-v2023", "--duration", "1d"}, code: 2,
			stderr: []string{"missing --epoch"}},
		{name: "bad epoch", args: fromTraceArgs("--epoch", "yesterday"), code: 2, stderr: []string{"bad --epoch"}},
		{name: "no duration", args: []string{"sim", "from-trace", "--format", "alibaba-v2023", "--epoch", "2026-01-05T00:00:00Z"}, code: 2,
			stderr: []string{"missing --duration"}},
		{name: "bad duration", args: fromTraceArgs("--duration", "a while"), code: 2, stderr: []string{"invalid value"}},
		{name: "unknown format", args: fromTraceArgs("--format", "helios"), code: 2, stderr: []string{`unknown --format "helios"`}},
		{name: "jobs for alibaba", args: fromTraceArgs("--jobs", "x.csv"), code: 2, stderr: []string{"--jobs is for philly-chronus"}},
		{name: "mig for philly", args: []string{"sim", "from-trace", "--format", "philly-chronus", "--mig-share", "0.5",
			"--epoch", "2026-01-05T00:00:00Z", "--duration", "1h"}, code: 2, stderr: []string{"--mig-share is for alibaba-v2023"}},
		{name: "bad window", args: fromTraceArgs("--duration", "0s"), code: 1, stderr: []string{"window duration 0s is not positive"}},
		{name: "missing trace", args: []string{"sim", "from-trace", "--format", "philly-chronus", "--trace-dir", dir,
			"--epoch", "2026-01-05T00:00:00Z", "--duration", "1h"}, code: 1, stderr: []string{filepath.Join(dir, "philly-derived-chronus")}},
	}
	// The default-orgs case reads <trace-dir>/alibaba-spot-gpu-v2026/…: lay
	// the fixture out that way in a temporary trace directory.
	orgsDir := filepath.Join(dir, "traces", "alibaba-spot-gpu-v2026")
	if err := os.MkdirAll(orgsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	orgs, err := os.ReadFile(fromTraceFixtures + "orgs.csv")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orgsDir, "org_by_gpu_seconds.derived.csv"), orgs, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), c.args, &stdout, &stderr)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, c.code, stderr.String())
			}
			for _, s := range c.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q", s)
				}
			}
			for _, s := range c.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			if c.validOut {
				if _, err := scenario.Parse("stdout", stdout.Bytes()); err != nil {
					t.Errorf("output does not parse: %v", err)
				}
			}
		})
	}
}

func TestSimFromTraceOutFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "scenario.yaml")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), fromTraceArgs("--out", out), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("wrote %d bytes to stdout with --out FILE", stdout.Len())
	}
	if !strings.Contains(stderr.String(), "pods=9") {
		t.Errorf("summary %q does not count the 9 pods in the window", stderr.String())
	}
	file, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("scenario file mode %v (err %v), want -rw-r--r--", fi.Mode(), err)
	}
	stdout.Reset()
	if code := run(context.Background(), fromTraceArgs(), &stdout, &stderr); code != 0 {
		t.Fatal(stderr.String())
	}
	if !bytes.Equal(file, stdout.Bytes()) {
		t.Error("--out FILE and --out - differ for the same seed")
	}
	entries, err := os.ReadDir(filepath.Dir(out))
	if err != nil || len(entries) != 1 {
		t.Errorf("output directory holds %v (err %v); want only the scenario", entries, err)
	}
}
