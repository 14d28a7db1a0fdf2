package trace

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// table reads a CSV file with a header row, by column name, and reports
// problems as file:line: column: message.
type table struct {
	name string
	r    *csv.Reader
	cols map[string]int
	rec  []string
}

// newTable reads the header and checks that the required columns are there.
func newTable(r io.Reader, name string, required ...string) (*table, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: empty file, want a header row", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	t := &table{name: name, r: cr, cols: make(map[string]int, len(header))}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		t.cols[h] = i
	}
	var missing []string
	for _, c := range required {
		if _, ok := t.cols[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s:1: missing column(s) %s", name, strings.Join(missing, ", "))
	}
	return t, nil
}

// next reads the next row; it returns false at the end of the file.
func (t *table) next() (bool, error) {
	rec, err := t.r.Read()
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", t.name, err)
	}
	t.rec = rec
	return true, nil
}

// line is the line of the current row.
func (t *table) line() int {
	l, _ := t.r.FieldPos(0)
	return l
}

func (t *table) errorf(col, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s: %s", t.name, t.line(), col, fmt.Sprintf(format, args...))
}

// str returns the trimmed text of a column.
// key reads col as a row's identifier: not empty, and not seen before in
// seen (which maps identifiers to their lines). what names the row in the
// duplicate error, missing is the error of an empty cell.
func (t *table) key(col, what, missing string, seen map[string]int) (string, error) {
	v := t.str(col)
	if v == "" {
		return "", t.errorf(col, "%s", missing)
	}
	if prev, dup := seen[v]; dup {
		return "", t.errorf(col, "duplicate %s %q (first on line %d)", what, v, prev)
	}
	seen[v] = t.line()
	return v, nil
}

func (t *table) str(col string) string {
	return strings.TrimSpace(t.rec[t.cols[col]])
}

// int parses a required integer column. Values written as floats with no
// fractional part ("120.0") are accepted.
func (t *table) int(col string) (int64, error) {
	v, ok, err := t.optInt(col)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, t.errorf(col, "missing value")
	}
	return v, nil
}

// optInt parses an integer column that may be empty.
func (t *table) optInt(col string) (int64, bool, error) {
	s := t.str(col)
	if s == "" {
		return 0, false, nil
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, true, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false, t.errorf(col, "%q is not an integer", s)
	}
	return int64(f), true, nil
}

// float parses a required finite number.
func (t *table) float(col string) (float64, error) {
	s := t.str(col)
	if s == "" {
		return 0, t.errorf(col, "missing value")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, t.errorf(col, "%q is not a finite number", s)
	}
	return f, nil
}
