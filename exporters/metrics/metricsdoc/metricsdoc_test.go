package metricsdoc

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const table = "| name | type | labels | meaning |\n|---|---|---|---|\n"

func TestParse(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want map[string]Row
	}{
		{"labels sorted, backquotes and spaces trimmed",
			table + "| `gpuledger_a` | gauge | `node`, `gpu`,`uuid` | A. |\n",
			map[string]Row{"gpuledger_a": {Name: "gpuledger_a", Type: "gauge", Labels: []string{"gpu", "node", "uuid"}, Line: 3}}},
		{"same as above repeats the row above",
			table + "| `gpuledger_a` | gauge | `node` | A. |\n| `gpuledger_b_total` | counter | same as above | B. |\n",
			map[string]Row{
				"gpuledger_a":       {Name: "gpuledger_a", Type: "gauge", Labels: []string{"node"}, Line: 3},
				"gpuledger_b_total": {Name: "gpuledger_b_total", Type: "counter", Labels: []string{"node"}, Line: 4},
			}},
		{"empty labels cell",
			"text\n" + table + "| `gpuledger_t` | gauge | | T. |\n\n| `node` | a label |\n",
			map[string]Row{"gpuledger_t": {Name: "gpuledger_t", Type: "gauge", Line: 4}}},
		{"other tables and prose ignored",
			"# `gpuledger_x` in a heading\n" + table + "| `gpuledger_a` | gauge | `node` | A. |\n\n| label | value |\n| `node` | the node |\n",
			map[string]Row{"gpuledger_a": {Name: "gpuledger_a", Type: "gauge", Labels: []string{"node"}, Line: 4}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parse(strings.NewReader(c.doc))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("got %v\nwant %v", got, c.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		{"short row", table + "| `gpuledger_a` | gauge |\n", "line 3: want | name | type | labels | meaning |"},
		{"listed twice", table + "| `gpuledger_a` | gauge | | A. |\n| `gpuledger_a` | gauge | | A. |\n", "line 4: gpuledger_a already listed at line 3"},
		{"same as above first in its table",
			table + "| `gpuledger_a` | gauge | `node` | A. |\n\n" + table + "| `gpuledger_b` | gauge | same as above | B. |\n",
			`line 7: gpuledger_b: labels "same as above" with no row above`},
		{"no rows", "# Metrics\n" + table, "no metric rows"},
		{"empty", "", "no metric rows"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(strings.NewReader(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "metrics.md")
	if _, err := Read(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: err = %v, want one naming %s", err, missing)
	}
	bad := filepath.Join(t.TempDir(), "metrics.md")
	if err := os.WriteFile(bad, []byte(table+"| `gpuledger_a` |\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(bad); err == nil || !strings.HasPrefix(err.Error(), bad+": line 3:") {
		t.Errorf("bad row: err = %v, want it located as %s: line 3", err, bad)
	}
}

// The repository's document parses and lists the families every source
// serves (spot check; the sources' tests check the rest).
func TestReadRepositoryDoc(t *testing.T) {
	rows, err := Read("../../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range map[string]string{
		"gpuledger_allocation_start_time_seconds": "gauge",
		"gpuledger_gpu_energy_joules_total":       "counter",
		"gpuledger_exporter_time_seconds":         "gauge",
	} {
		if rows[name].Type != typ {
			t.Errorf("%s: row %+v, want type %s", name, rows[name], typ)
		}
	}
	if got := rows["gpuledger_allocation_end_time_seconds"].Labels; !slices.Equal(got, rows["gpuledger_allocation_start_time_seconds"].Labels) || len(got) == 0 {
		t.Errorf("allocation end labels %v, want the start's (same as above)", got)
	}
}

// gathered serves a gauge with labels node and gpu and a counter with
// label node, one series each.
func gathered(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "gpuledger_a", Help: "A."}, []string{"node", "gpu"})
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gpuledger_b_total", Help: "B."}, []string{"node"})
	reg.MustRegister(g, c)
	g.WithLabelValues("n0", "0").Set(1)
	g.WithLabelValues("n0", "1").Set(1)
	c.WithLabelValues("n0").Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

func TestCompare(t *testing.T) {
	a := Row{Name: "gpuledger_a", Type: "gauge", Labels: []string{"gpu", "node"}, Line: 3}
	b := Row{Name: "gpuledger_b_total", Type: "counter", Labels: []string{"node"}, Line: 4}
	with := func(r Row, change func(*Row)) Row { change(&r); return r }
	cases := []struct {
		name string
		rows []Row
		want []string
	}{
		{"match", []Row{a, b}, nil},
		{"extra rows are not Compare's concern", []Row{a, b, {Name: "gpuledger_c", Type: "gauge"}}, nil},
		{"undocumented", []Row{a}, []string{"gpuledger_b_total is served but has no row"}},
		{"type", []Row{a, with(b, func(r *Row) { r.Type = "gauge" })},
			[]string{"line 4: gpuledger_b_total has type gauge in the doc, counter when served"}},
		{"label missing from the doc", []Row{with(a, func(r *Row) { r.Labels = []string{"node"} }), b},
			[]string{"line 3: gpuledger_a has labels [node] in the doc, [gpu node] when served"}},
		{"label not served", []Row{a, with(b, func(r *Row) { r.Labels = []string{"node", "uuid"} })},
			[]string{"line 4: gpuledger_b_total has labels [node uuid] in the doc, [node] when served"}},
		{"no labels in the doc", []Row{a, with(b, func(r *Row) { r.Labels = nil })},
			[]string{"line 4: gpuledger_b_total has labels [] in the doc, [node] when served"}},
	}
	mfs := gathered(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows := map[string]Row{}
			for _, r := range c.rows {
				rows[r.Name] = r
			}
			var got []string
			for _, err := range Compare(rows, mfs) {
				got = append(got, err.Error())
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %q\nwant %q", got, c.want)
			}
		})
	}
}

// recorder keeps what Check reports.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.md")
	doc := table + "| `gpuledger_a` | gauge | `node`, `gpu` | A. |\n| `gpuledger_b_total` | gauge | `node` | B. |\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &recorder{TB: t}
	Check(r, path, gathered(t))
	want := []string{path + ": line 4: gpuledger_b_total has type gauge in the doc, counter when served"}
	if !slices.Equal(r.errs, want) {
		t.Errorf("reported %q, want %q", r.errs, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(table + "| `gpuledger_a` | gauge | `node` | A. |\n| `gpuledger_b` | counter | same as above | B. |\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		rows, err := parse(strings.NewReader(string(doc)))
		if err != nil {
			return
		}
		for name, r := range rows {
			if name != r.Name || !strings.HasPrefix(name, "gpuledger_") || r.Line < 1 {
				t.Errorf("row %q: %+v", name, r)
			}
			if !slices.IsSorted(r.Labels) {
				t.Errorf("row %q: labels %v not sorted", name, r.Labels)
			}
		}
	})
}
