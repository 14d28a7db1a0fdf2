package nvml

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	dto "github.com/prometheus/client_model/go"
)

// docRow is a row of docs/metrics.md: | `name` | type | labels | meaning |.
type docRow struct {
	typ    string
	labels []string
}

func readMetricsDoc(t *testing.T) map[string]docRow {
	t.Helper()
	f, err := os.Open("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]docRow{}
	var prev []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "| `gpuledger_") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 4 {
			t.Fatalf("docs/metrics.md: bad row %q", line)
		}
		labels := prev
		if cell := strings.TrimSpace(cells[2]); cell != "same as above" {
			labels = nil
			for l := range strings.SplitSeq(cell, ",") {
				if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
					labels = append(labels, l)
				}
			}
		}
		prev = labels
		rows[strings.Trim(strings.TrimSpace(cells[0]), "`")] = docRow{typ: strings.TrimSpace(cells[1]), labels: slices.Sorted(slices.Values(labels))}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// Every family the NVML source serves — those the simulator does not serve
// included — is documented with its type and labels.
func TestServedFamiliesDocumented(t *testing.T) {
	doc := readMetricsDoc(t)
	f := newH200(t)
	c, clk := newCollector(t, f, nil)
	c.poll()
	clk.now = clk.now.Add(10 * time.Second)
	f.GPUs[0].Fail["GetTemperature"] = nvml.ERROR_UNKNOWN
	c.poll()
	c.recordEvent(f.XID(0, 79), map[string]gpuRef{f.GPUs[0].UUID: {index: "0", uuid: f.GPUs[0].UUID}})
	mfs := gather(t, c)
	served := map[string]bool{}
	for _, mf := range mfs {
		served[mf.GetName()] = true
		row, ok := doc[mf.GetName()]
		if !ok {
			t.Errorf("%s is served but not in docs/metrics.md", mf.GetName())
			continue
		}
		if typ := strings.ToLower(mf.GetType().String()); typ != row.typ {
			t.Errorf("%s: type %s in the doc, %s served", mf.GetName(), row.typ, typ)
		}
		for _, m := range mf.Metric {
			if got := labelNames(m); !slices.Equal(got, row.labels) {
				t.Errorf("%s: labels %v in the doc, %v served", mf.GetName(), row.labels, got)
				break
			}
		}
	}
	// The fake exercises every family of the source.
	for _, name := range []string{"gpuledger_gpu_memory_clock_hertz", "gpuledger_gpu_activity_ratio",
		"gpuledger_gpu_xid_errors_total", "gpuledger_gpu_nvml_errors_total", "gpuledger_mig_instance_activity_ratio",
		"gpuledger_gpu_utilization_ratio", "gpuledger_mig_instance_weight_ratio"} {
		if !served[name] {
			t.Errorf("%s not served by the H200 fake", name)
		}
	}
}

func labelNames(m *dto.Metric) []string {
	var out []string
	for _, lp := range m.Label {
		out = append(out, lp.GetName())
	}
	slices.Sort(out)
	return out
}
