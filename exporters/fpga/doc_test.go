package fpga

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Every family this source serves is in docs/metrics.md with its type and
// labels. (The shared check in exporters/ learns types and labels from the
// simulator, which serves only some FPGA families.)
func TestServedFamiliesDocumented(t *testing.T) {
	doc := readMetricsDoc(t, "../../docs/metrics.md")
	s := newSource(t, Options{SysfsRoot: sysfsTree(t, "u55c-u250"), XbutilSource: "testdata/xbutil/u55c-u250-v70.json"})
	poll(t, s)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(promCollector{s})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) < 9 {
		t.Errorf("only %d families served", len(mfs))
	}
	for _, mf := range mfs {
		row, ok := doc[mf.GetName()]
		if !ok {
			t.Errorf("%s is not in docs/metrics.md", mf.GetName())
			continue
		}
		if typ := strings.ToLower(mf.GetType().String()); typ != row.typ {
			t.Errorf("%s: type %s, documented %s", mf.GetName(), typ, row.typ)
		}
		var labels []string
		for _, l := range mf.Metric[0].Label {
			labels = append(labels, l.GetName())
		}
		slices.Sort(labels)
		if !slices.Equal(labels, row.labels) {
			t.Errorf("%s: labels %v, documented %v", mf.GetName(), labels, row.labels)
		}
	}
}

type docRow struct {
	typ    string
	labels []string
}

// readMetricsDoc reads the metric rows of docs/metrics.md: "| `name` |
// type | labels | meaning |", "same as above" repeating the labels.
func readMetricsDoc(t *testing.T, path string) map[string]docRow {
	t.Helper()
	f, err := os.Open(path)
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
			t.Fatalf("bad row %q", line)
		}
		labels := prev
		if cell := strings.TrimSpace(cells[2]); cell != "same as above" {
			labels = nil
			for l := range strings.SplitSeq(cell, ",") {
				if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
					labels = append(labels, l)
				}
			}
			slices.Sort(labels)
		}
		prev = labels
		rows[strings.Trim(strings.TrimSpace(cells[0]), "`")] = docRow{typ: strings.TrimSpace(cells[1]), labels: labels}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}
