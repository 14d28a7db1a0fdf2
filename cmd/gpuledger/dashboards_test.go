package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpuledger/gpuledger/dashboards"
)

// TestDashboardsCommand: gpuledger dashboards --out DIR writes every
// dashboard, byte for byte the committed JSON, and lists the files.
func TestDashboardsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"dashboards", "--out", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	specs := dashboards.All()
	if lines := strings.Split(strings.TrimSpace(stdout.String()), "\n"); len(lines) != len(specs) {
		t.Errorf("stdout lists %d files, want %d:\n%s", len(lines), len(specs), stdout.String())
	}
	for _, s := range specs {
		got, err := os.ReadFile(filepath.Join(dir, s.FileName()))
		if err != nil {
			t.Error(err)
			continue
		}
		committed, err := os.ReadFile(filepath.Join("../../dashboards", dashboards.GeneratedDir, s.FileName()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, committed) {
			t.Errorf("%s differs from the committed dashboards/%s/%s", s.FileName(), dashboards.GeneratedDir, s.FileName())
		}
	}
}

func TestDashboardsCommandErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no out", []string{"dashboards"}, 2, "--out is required"},
		{"stray argument", []string{"dashboards", "--out", t.TempDir(), "extra"}, 2, "unexpected arguments"},
		{"out is a file", []string{"dashboards", "--out", file}, 1, "create " + file},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.code, tc.msg)
			}
		})
	}
}
