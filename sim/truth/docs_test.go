package truth

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

const scenarioDoc = "../../docs/scenario.md"

// TestDocExample parses the example of docs/scenario.md and checks the
// figures the text gives for it.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile(scenarioDoc)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Example\n\n```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no YAML example under ## Example")
	}
	s, err := scenario.Parse("example.yaml", m[1])
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Compute(allocs, s.Start, s.End, []string{KeyPod, KeyUser, KeyProject, KeySite})
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		// 2 GPUs × 1 h (09:00 → the scenario's end, 10:00)
		r("cms-ml/offload-1|unknown|cms|INFN-CNAF", 2*1000*3600, 2*3600, 0),
		// 3g.40gb (500) × 1.5 h
		r("cms-ml/train-0|bob|cms-gpu|", 500*5400, 5400, 0),
	}
	if len(rep.Rows) != len(want) {
		t.Fatalf("rows %+v", rep.Rows)
	}
	for i, w := range want {
		g := rep.Rows[i]
		if strings.Join(g.Keys, "|") != strings.Join(w.Keys, "|") || g.AllocatedMilliGPUSeconds != w.AllocatedMilliGPUSeconds || g.DeviceSeconds != w.DeviceSeconds {
			t.Errorf("row %d = %+v, want %+v", i, g, w)
		}
	}
	for _, claim := range []string{"0.75 allocated GPU-hours", "2 allocated GPU-hours", "user `unknown`, project `cms`", "project `cms-gpu`"} {
		if !strings.Contains(strings.Join(strings.Fields(string(doc)), " "), claim) {
			t.Errorf("docs/scenario.md no longer says %q", claim)
		}
	}
}

// TestDocWeights checks the weights table of docs/scenario.md against
// accounting.MIGWeight.
func TestDocWeights(t *testing.T) {
	doc, err := os.ReadFile(scenarioDoc)
	if err != nil {
		t.Fatal(err)
	}
	models := map[string]string{
		"A100-40GB": "NVIDIA A100-PCIE-40GB", "A100-80GB": "NVIDIA A100-SXM4-80GB", "A30": "NVIDIA A30",
		"H100-80GB": "NVIDIA H100 80GB HBM3", "H100-94GB (NVL)": "NVIDIA H100 NVL", "H200": "NVIDIA H200",
	}
	row := regexp.MustCompile(`(?m)^\| (A100-40GB|A100-80GB|A30|H100-80GB|H100-94GB \(NVL\)|H200) \| ([^|]+) \|[^|]*\|[^|]*\| (\d+) \|$`)
	rows := row.FindAllStringSubmatch(string(doc), -1)
	if len(rows) < 30 {
		t.Fatalf("found %d weight rows in docs/scenario.md", len(rows))
	}
	for _, m := range rows {
		want, _ := strconv.ParseInt(m[3], 10, 64)
		for _, profile := range strings.Split(m[2], ",") {
			profile = strings.TrimSpace(profile)
			got, err := accounting.MIGWeight(models[m[1]], profile)
			if err != nil || got != want {
				t.Errorf("docs say %s %s weighs %d; MIGWeight = %d, %v", m[1], profile, want, got, err)
			}
		}
	}
}
