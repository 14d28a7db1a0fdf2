package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReplayCommand runs `gpuledger replay` as a user does, without a
// database: it starts its own PostgreSQL, replays the small scenario with
// its four faults played for real, prints progress, the summary and the
// comparison, and with --require-exact exits 0 only because the ledger
// equals the ground truth.
func TestReplayCommand(t *testing.T) {
	bin := buildBinary(t)
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "replay", "--scenario", "../../testdata/scenarios/small.yaml",
		"--require-exact", "--group-by", "project,user", "--work-dir", work)
	cmd.Env = append(os.Environ(), "DATABASE_URL=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gpuledger replay: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	out := stdout.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^replay: no --database-url: using a private throwaway PostgreSQL \S+ at postgres://`),
		regexp.MustCompile(`(?m)^replay: \S+, 2026-11-02T\S+ to 2026-11-0\dT\S+, \d+ pods, 4 faults$`),
		regexp.MustCompile(`(?m)^replay: 2026-11-02T\d\d:00:00Z \(\d+%\)$`), // progress, not on a terminal: one line an hour
		regexp.MustCompile(`(?m)faults played: 1 aggregator crashes, 1 database outages, 1 scrape gaps, 1 exporter restarts$`),
		regexp.MustCompile(`(?m)^total\s+[0-9.]+\s+[0-9.]+\s+0\.000$`),
		regexp.MustCompile(`(?m)^replay: the ledger equals the ground truth exactly`),
	} {
		if !want.MatchString(out) {
			t.Errorf("the output has no line matching %s:\n%s", want, out)
		}
	}
	if !strings.Contains(out, filepath.Join(work, "aggregator.log")) {
		t.Errorf("the aggregator's log is not named:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(work, "aggregator.log")); err != nil {
		t.Errorf("aggregator log: %v", err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"replay"}, "--scenario is required"},
		{[]string{"replay", "--scenario", "../../testdata/scenarios/small.yaml", "--group-by", "project,colour"}, "--group-by"},
		{[]string{"replay", "--scenario", "/nonexistent/scenario.yaml"}, "nonexistent"},
	} {
		cmd := exec.CommandContext(ctx, bin, c.args...)
		b, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(b), c.want) {
			t.Errorf("%v: %v\n%s\nwant a failure saying %q", c.args, err, b, c.want)
		}
	}
}
