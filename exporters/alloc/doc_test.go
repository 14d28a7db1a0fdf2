package alloc_test

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

type docRow struct {
	typ    string
	labels []string
}

// readMetricsDoc reads the rows | `name` | type | labels | meaning | of
// docs/metrics.md; "same as above" repeats the previous labels.
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

// Every family the collector serves is documented with its type and labels.
func TestServedFamiliesDocumented(t *testing.T) {
	doc := readMetricsDoc(t)
	h := goldenNode(t)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(promCollector{h.c})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
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
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName())
			}
			slices.Sort(labels)
			if !slices.Equal(labels, row.labels) {
				t.Errorf("%s: labels %v in the doc, %v served", mf.GetName(), row.labels, labels)
				break
			}
		}
	}
	for _, name := range []string{famStart, famEnd, famWeight, famDevices, famActivity, famAvail, famUnres} {
		if !served[name] {
			t.Errorf("the golden node does not serve %s", name)
		}
	}
}
