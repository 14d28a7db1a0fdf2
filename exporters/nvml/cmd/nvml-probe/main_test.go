package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// On a machine without libnvidia-ml.so.1 the probe says so and fails.
func TestProbeWithoutNVML(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run("n", 10*time.Millisecond, &stdout, &stderr)
	if code == 0 && strings.Contains(stdout.String(), "gpuledger_gpu_info") {
		t.Skip("libnvidia-ml.so.1 is present here; this test is for machines without it")
	}
	if code != 2 || !strings.Contains(stderr.String(), "NVML unavailable") {
		t.Errorf("run = %d, stderr %q; want 2 and NVML unavailable", code, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("exposition written without NVML: %q", stdout.String())
	}
}
