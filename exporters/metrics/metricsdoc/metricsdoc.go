// Package metricsdoc reads the metric tables of docs/metrics.md and checks
// served metric families against them, so that the tests of every source
// hold the document to what the source really serves: each family served
// must have a row with its type and label names.
//
// A metric row is a table row whose first cell is a backquoted gpuledger_
// name: "| `name` | type | labels | meaning |". The labels cell lists
// backquoted label names separated by commas, is empty for a family
// without labels, or reads "same as above" to repeat the labels of the row
// just above it in the same table.
package metricsdoc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/gpuledger/gpuledger/exporters/collector"
)

// sameAsAbove is the labels cell that repeats the previous row's labels.
const sameAsAbove = "same as above"

// rowPrefix starts every metric row.
const rowPrefix = "| `" + collector.Namespace + "_"

// Row is a metric row of the document.
type Row struct {
	Name   string
	Type   string   // as the exposition names it: gauge, counter, …
	Labels []string // label names, sorted
	Line   int      // 1-based line of the row in the document
}

// Read parses the metric rows of the document at path, by metric name.
// It fails when the file cannot be read, a row has fewer than four cells,
// a name is listed twice, "same as above" has no row above it, or the
// document has no metric row at all.
func Read(path string) (map[string]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read metrics doc: %w", err)
	}
	defer f.Close()
	rows, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rows, nil
}

func parse(r io.Reader) (map[string]Row, error) {
	rows := map[string]Row{}
	var prev *Row // the row just above, in the same table
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, rowPrefix) {
			prev = nil
			continue
		}
		row, err := parseRow(line, n, prev)
		if err != nil {
			return nil, err
		}
		if other, dup := rows[row.Name]; dup {
			return nil, fmt.Errorf("line %d: %s already listed at line %d", n, row.Name, other.Line)
		}
		rows[row.Name] = row
		prev = &row
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	if len(rows) == 0 {
		return nil, errors.New("no metric rows (| `gpuledger_…` | type | labels | meaning |)")
	}
	return rows, nil
}

// parseRow parses the metric row line, number n; prev is the row above it
// in the same table, nil when there is none.
func parseRow(line string, n int, prev *Row) (Row, error) {
	cells := strings.Split(strings.Trim(line, "|"), "|")
	if len(cells) < 4 {
		return Row{}, fmt.Errorf("line %d: want | name | type | labels | meaning |, got %q", n, line)
	}
	row := Row{
		Name: strings.Trim(strings.TrimSpace(cells[0]), "`"),
		Type: strings.TrimSpace(cells[1]),
		Line: n,
	}
	cell := strings.TrimSpace(cells[2])
	if cell == sameAsAbove {
		if prev == nil {
			return Row{}, fmt.Errorf("line %d: %s: labels %q with no row above", n, row.Name, sameAsAbove)
		}
		row.Labels = prev.Labels
		return row, nil
	}
	for l := range strings.SplitSeq(cell, ",") {
		if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
			row.Labels = append(row.Labels, l)
		}
	}
	slices.Sort(row.Labels)
	return row, nil
}

// Compare returns one error for each family of mfs that has no row in
// rows, whose type differs from its row's, or one of whose series carries
// other label names than the row lists.
func Compare(rows map[string]Row, mfs []*dto.MetricFamily) []error {
	var errs []error
	for _, mf := range mfs {
		if err := compareFamily(rows, mf); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func compareFamily(rows map[string]Row, mf *dto.MetricFamily) error {
	name := mf.GetName()
	row, ok := rows[name]
	if !ok {
		return fmt.Errorf("%s is served but has no row", name)
	}
	if typ := strings.ToLower(mf.GetType().String()); typ != row.Type {
		return fmt.Errorf("line %d: %s has type %s in the doc, %s when served", row.Line, name, row.Type, typ)
	}
	for _, m := range mf.GetMetric() {
		if labels := labelNames(m); !slices.Equal(labels, row.Labels) {
			return fmt.Errorf("line %d: %s has labels %v in the doc, %v when served", row.Line, name, row.Labels, labels)
		}
	}
	return nil
}

// labelNames returns the sorted label names of a series.
func labelNames(m *dto.Metric) []string {
	var out []string
	for _, lp := range m.GetLabel() {
		out = append(out, lp.GetName())
	}
	slices.Sort(out)
	return out
}

// Check reads the document at path and reports through t, as errors, every
// difference Compare finds between it and mfs. It stops t when the
// document cannot be read.
func Check(t testing.TB, path string, mfs []*dto.MetricFamily) {
	t.Helper()
	rows, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range Compare(rows, mfs) {
		t.Errorf("%s: %v", path, err)
	}
}
