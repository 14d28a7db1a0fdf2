package cli

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestRunUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
		{[]string{"stray"}, "unexpected arguments: stray"},
		{[]string{"--source", "nvml"}, `unknown --source "nvml"`},
		{[]string{"--node-name", "n1", "--mode", "galaxy"}, `unknown mode "galaxy"`},
		{[]string{"--source", "sim"}, "needs --scenario"},
		{[]string{"--collectors", "sim"}, "needs --scenario"},
		{[]string{"--source", "real", "--collectors", "sim,nvml"}, "--collectors sim serves a simulated node"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--web.max-requests", "-1"}, "must not be negative"},
	}
	for _, c := range cases {
		t.Setenv("NODE_NAME", "")
		err := Run(t.Context(), "gpuledger-exporter", c.args, io.Discard)
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%q) = %v; want a usage error containing %q", c.args, err, c.want)
		}
		if errors.Is(err, ErrUsage) && strings.HasPrefix(err.Error(), ErrUsage.Error()) {
			t.Errorf("Run(%q): the usage mark shows in the message %q", c.args, err)
		}
	}
	var help bytes.Buffer
	if err := Run(t.Context(), "gpuledger-exporter", []string{"-h"}, &help); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	if !strings.Contains(help.String(), "Usage of gpuledger-exporter") || !strings.Contains(help.String(), "-kubelet-socket") {
		t.Errorf("-h printed %q", help.String())
	}
}

// TestFlagDefaults checks the defaults the operator's interface promises
// (docs/operations.md), as -h prints them.
func TestFlagDefaults(t *testing.T) {
	t.Setenv("NODE_NAME", "node-from-env")
	var help bytes.Buffer
	if err := Run(t.Context(), "gpuledger-exporter", []string{"-h"}, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	defaults := map[string]string{}
	// -h prints "  -name type\n    \tusage (default "value")": read each
	// flag's default from its usage block.
	var name string
	for _, line := range strings.Split(help.String(), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(line, "  -") {
			name = strings.TrimPrefix(f[0], "-")
			defaults[name] = ""
		}
		if i := strings.LastIndex(line, "(default "); i >= 0 && name != "" {
			defaults[name] = strings.Trim(strings.TrimSuffix(strings.TrimSpace(line[i+len("(default "):]), ")"), `"`)
		}
	}
	for flagName, want := range map[string]string{
		"mode":               "node",
		"node-name":          "node-from-env",
		"listen-address":     ":9835",
		"fpga-sysfs-root":    "/sys",
		"kubelet-socket":     "/var/lib/kubelet/pod-resources/kubelet.sock",
		"collectors":         "", // all that apply
		"kubeconfig":         "", // in cluster
		"dcgm-exporter-url":  "",
		"fpga-xbutil":        "",
		"attribution-config": "",
		"web.config.file":    "",
	} {
		got, ok := defaults[flagName]
		if !ok {
			t.Errorf("no flag --%s in -h", flagName)
			continue
		}
		if got != want {
			t.Errorf("--%s defaults to %q, want %q", flagName, got, want)
		}
	}
}

func TestExitCode(t *testing.T) {
	cases := []struct {
		err  error
		code int
		out  string
	}{
		{nil, 0, ""},
		{flag.ErrHelp, 0, ""},
		{usagef("--sim-speed 0: must be positive"), 2, "gpuledger-exporter: --sim-speed 0: must be positive\n"},
		{errors.New("listen on :1: permission denied"), 1, "gpuledger-exporter: listen on :1: permission denied\n"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		if code := ExitCode("gpuledger-exporter", c.err, &out); code != c.code || out.String() != c.out {
			t.Errorf("ExitCode(%v) = %d, %q; want %d, %q", c.err, code, out.String(), c.code, c.out)
		}
	}
}
