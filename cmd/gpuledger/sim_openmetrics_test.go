package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const omSmall = "../../testdata/scenarios/small.yaml"

// omFamilies checks the layout of an OpenMetrics file: every family's
// metadata once, its samples right after it, and the closing # EOF. It
// returns the sample lines by family.
func omFamilies(t *testing.T, text string) map[string][]string {
	t.Helper()
	if !strings.HasSuffix(text, "\n# EOF\n") {
		t.Fatalf("no closing # EOF: %q", text[max(0, len(text)-80):])
	}
	fams := map[string][]string{}
	current := ""
	for _, l := range strings.Split(strings.TrimSuffix(text, "# EOF\n"), "\n") {
		switch {
		case l == "":
		case strings.HasPrefix(l, "# HELP "):
			current = strings.Fields(l)[2]
			if _, dup := fams[current]; dup {
				t.Fatalf("family %s written twice", current)
			}
			fams[current] = nil
		case strings.HasPrefix(l, "# TYPE "):
			if f := strings.Fields(l)[2]; f != current {
				t.Fatalf("TYPE of %s under the HELP of %s", f, current)
			}
		default:
			name := l[:strings.IndexAny(l, "{ ")]
			if name != current && name != current+"_total" {
				t.Fatalf("sample of %s inside family %s: %s", name, current, l)
			}
			fams[current] = append(fams[current], l)
		}
	}
	return fams
}

func TestSimOpenMetrics(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "t4.om")
	var stdout, stderr bytes.Buffer
	// t4-01 has a scrape gap from 11:00 for five minutes.
	code := run(context.Background(), []string{"sim", "openmetrics", "--scenario", omSmall, "--node", "t4-01",
		"--from", "2026-11-02T10:55:00Z", "--to", "2026-11-02T11:10:00Z", "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "wrote "+out) || !strings.Contains(stderr.String(), "60 instants, 40 scrapes and 20 failed inside faults") {
		t.Errorf("stderr: %s", stderr.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	fams := omFamilies(t, string(raw))
	for _, f := range []string{"gpuledger_allocation_start_time_seconds", "gpuledger_gpu_energy_joules", "gpuledger_exporter_time_seconds",
		"gpuledger_fpga_info", "up"} {
		if len(fams[f]) == 0 {
			t.Errorf("family %s missing", f)
		}
	}
	if !strings.Contains(string(raw), "# TYPE gpuledger_gpu_energy_joules counter\ngpuledger_gpu_energy_joules_total{") {
		t.Error("counter family not written the OpenMetrics way (family without _total, samples with it)")
	}
	// up: 1 outside the gap, 0 inside, one per instant, with the scrape's labels.
	ups := map[string]int{}
	for _, l := range fams["up"] {
		if !strings.HasPrefix(l, `up{cluster="ai-infn-small",instance="t4-01",job="gpuledger-exporter",node="t4-01"} `) {
			t.Fatalf("up line %q", l)
		}
		ups[strings.Fields(l)[1]]++
	}
	if ups["1"] != 40 || ups["0"] != 20 {
		t.Errorf("up values %v, want 40 ones and 20 zeros", ups)
	}
	// The exporter's clock is written only for the scrapes that succeed,
	// at the instant it reads.
	re := regexp.MustCompile(`^gpuledger_exporter_time_seconds\{cluster="ai-infn-small",instance="t4-01",job="gpuledger-exporter",node="t4-01"\} (\S+) (\d+)$`)
	for _, l := range fams["gpuledger_exporter_time_seconds"] {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("clock line %q", l)
		}
		v, err1 := strconv.ParseFloat(m[1], 64)
		ts, err2 := strconv.ParseInt(m[2], 10, 64)
		if err1 != nil || err2 != nil || v != float64(ts) {
			t.Errorf("clock %s at timestamp %s", m[1], m[2])
		}
	}
	if n := len(fams["gpuledger_exporter_time_seconds"]); n != 40 {
		t.Errorf("%d clock samples, want 40", n)
	}
	// Allocation series carry their own node label and the scrape's.
	if l := fams["gpuledger_allocation_start_time_seconds"][0]; !strings.Contains(l, `node="t4-01"`) ||
		!strings.Contains(l, `instance="t4-01"`) || strings.Count(l, "node=") != 1 {
		t.Errorf("allocation line %q", l)
	}
}

// Consecutive ranges write each instant once: a month can be written a
// day at a time.
func TestSimOpenMetricsConsecutiveRanges(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, args ...string) map[string][]string {
		var stdout, stderr bytes.Buffer
		out := filepath.Join(dir, name)
		args = append([]string{"sim", "openmetrics", "--scenario", omSmall, "--families", "aggregator", "--out", out}, args...)
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr.String())
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return omFamilies(t, string(raw))
	}
	whole := write("whole.om", "--from", "2026-11-02T13:00:00Z")
	a := write("a.om", "--from", "2026-11-02T13:00:00Z", "--to", "2026-11-02T13:30:00Z")
	b := write("b.om", "--from", "2026-11-02T13:30:00Z")
	var names []string
	for f := range whole {
		names = append(names, f)
	}
	sort.Strings(names)
	want := []string{"gpuledger_allocation_activity_ratio", "gpuledger_allocation_devices", "gpuledger_allocation_end_time_seconds",
		"gpuledger_allocation_start_time_seconds", "gpuledger_allocation_weight_ratio", "gpuledger_exporter_time_seconds",
		"gpuledger_fpga_info", "gpuledger_gpu_energy_joules", "gpuledger_gpu_info", "up"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("families %v, want %v", names, want)
	}
	for _, f := range names {
		joined := append(append([]string(nil), a[f]...), b[f]...)
		sort.Strings(joined)
		all := append([]string(nil), whole[f]...)
		sort.Strings(all)
		if strings.Join(joined, "\n") != strings.Join(all, "\n") {
			t.Errorf("%s: [13:00, 13:30) + [13:30, end] gives %d samples, the whole range %d", f, len(joined), len(all))
		}
	}
	// The scenario's end (14:00) is written when --to is left out.
	if !strings.Contains(strings.Join(b["up"], "\n"), " 1793628000") {
		t.Error("the last instant of the scenario was not written")
	}
}

func TestSimOpenMetricsStdout(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"sim", "openmetrics", "--scenario", omSmall, "--node", "vk-cnaf",
		"--from", "2026-11-02T10:00:00Z", "--to", "2026-11-02T10:00:01Z", "--families", "up,gpuledger_allocation_weight_ratio,gpuledger_gpu_info",
		"--out", "-"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := `# HELP gpuledger_allocation_weight_ratio Weight of the allocation in GPUs: 1 for a whole GPU or an FPGA card, the MIG slice or fraction weight, the requested GPU count on a virtual node.
# TYPE gpuledger_allocation_weight_ratio gauge
gpuledger_allocation_weight_ratio{class="offload",device="",gpu="",gpu_uuid="",model="NVIDIA A100-PCIE-40GB",namespace="ml-infn",node="vk-cnaf",pod="offload-sim-42",pod_uid="0b6c3f4e-1a2b-4c3d-8e9f-000000000009",profile="",project="ml-infn-gpu",queue="ml-infn-gpu",resource="nvidia.com/gpu",site="INFN-CNAF",user="heidi",cluster="ai-infn-small",instance="vk-cnaf",job="gpuledger-exporter"} 2 1793613600
# HELP up Whether the scrape of the target succeeded (1) or failed (0).
# TYPE up gauge
up{cluster="ai-infn-small",instance="vk-cnaf",job="gpuledger-exporter",node="vk-cnaf"} 1 1793613600
# EOF
`
	if stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant\n%s", stdout.String(), want)
	}
	// A virtual node has no GPU of its own: the family asked for is absent.
	if !strings.Contains(stderr.String(), "warning: no sample of gpuledger_gpu_info") {
		t.Errorf("stderr: %s", stderr.String())
	}
}

func TestSimOpenMetricsBadInput(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.om")
	cases := []struct {
		name string
		args []string
		code int
		text string
	}{
		{"no scenario", []string{"--out", out}, 2, "--scenario is required"},
		{"no output", []string{"--scenario", omSmall}, 2, "--out is required"},
		{"bad time", []string{"--scenario", omSmall, "--out", out, "--from", "yesterday"}, 2, "RFC 3339"},
		{"empty range", []string{"--scenario", omSmall, "--out", out, "--from", "2026-11-02T10:00:00Z", "--to", "2026-11-02T10:00:00Z"}, 2, "is not after --from"},
		{"before the scenario", []string{"--scenario", omSmall, "--out", out, "--from", "2026-11-01T10:00:00Z"}, 2, "within the scenario's"},
		{"after the scenario", []string{"--scenario", omSmall, "--out", out, "--to", "2026-11-03T10:00:00Z"}, 2, "within the scenario's"},
		{"unknown node", []string{"--scenario", omSmall, "--out", out, "--node", "gpu-99"}, 2, `--node "gpu-99": no such node`},
		{"bad family", []string{"--scenario", omSmall, "--out", out, "--families", "up,not a name"}, 2, "is not a metric name"},
		{"bad interval", []string{"--scenario", omSmall, "--out", out, "--interval", "soon"}, 2, "-interval"},
		{"missing scenario file", []string{"--scenario", filepath.Join(dir, "nope.yaml"), "--out", out}, 1, "nope.yaml"},
		{"unwritable output", []string{"--scenario", omSmall, "--out", filepath.Join(dir, "no", "such", "dir", "x.om")}, 1, "write"},
		{"stray argument", []string{"--scenario", omSmall, "--out", out, "extra"}, 2, "unexpected arguments"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"sim", "openmetrics"}, c.args...), &stdout, &stderr)
			if code != c.code || !strings.Contains(stderr.String(), c.text) {
				t.Errorf("exit %d, stderr %q; want %d containing %q", code, stderr.String(), c.code, c.text)
			}
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed run left %s behind", out)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}
