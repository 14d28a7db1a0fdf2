package tabular

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Writer writes the rows of one table. Write takes one row of cells, in
// the order of the columns; Close ends the table and flushes it. A Writer
// is not safe for concurrent use.
type Writer interface {
	Write(row []Cell) error
	Close() error
}

// Formats New knows.
const (
	FormatCSV  = "csv"
	FormatJSON = "json"
)

// ErrColumns is returned for a row whose length is not the number of columns.
var ErrColumns = errors.New("row does not match the columns")

// Field is a named value a JSON table carries beside its rows (a report's
// window, its grouping). CSV has no place for it and leaves it out.
type Field struct {
	Name  string
	Value any
}

// New returns a writer of the named format ("csv" or "json").
func New(format string, w io.Writer, columns []string, meta ...Field) (Writer, error) {
	switch format {
	case FormatCSV:
		return NewCSV(w, columns)
	case FormatJSON:
		return NewJSON(w, columns, meta...)
	}
	return nil, fmt.Errorf("unknown format %q (csv, json)", format)
}

// CSV writes RFC 4180 CSV: a header record of column names, then one
// record per row, CRLF line ends, fields quoted where RFC 4180 needs it.
// Output is buffered and reaches w as the buffer fills and on Flush or
// Close, so large reports stream.
type CSV struct {
	w       *csv.Writer
	columns int
	record  []string
}

// NewCSV writes the header and returns the writer.
func NewCSV(w io.Writer, columns []string) (*CSV, error) {
	c := &CSV{w: csv.NewWriter(w), columns: len(columns), record: make([]string, len(columns))}
	c.w.UseCRLF = true
	for i, name := range columns {
		c.record[i] = Neutralize(name)
	}
	if err := c.w.Write(c.record); err != nil {
		return nil, fmt.Errorf("write CSV header: %w", err)
	}
	return c, nil
}

// Write writes one row.
func (c *CSV) Write(row []Cell) error {
	if len(row) != c.columns {
		return fmt.Errorf("%w: %d cells, %d columns", ErrColumns, len(row), c.columns)
	}
	for i, cell := range row {
		c.record[i] = cell.csvText()
	}
	if err := c.w.Write(c.record); err != nil {
		return fmt.Errorf("write CSV row: %w", err)
	}
	return nil
}

// Flush sends the buffered rows to the underlying writer.
func (c *CSV) Flush() error {
	c.w.Flush()
	if err := c.w.Error(); err != nil {
		return fmt.Errorf("flush CSV: %w", err)
	}
	return nil
}

// Close flushes the table.
func (c *CSV) Close() error { return c.Flush() }

// JSON writes a table as one JSON object: the meta fields, in order, then
// "rows", an array of objects whose keys are the column names in column
// order. Each row is on its own line, so the output streams and diffs well:
//
//	{"window":{…},"group_by":["project"],"rows":[
//	{"project":"cms","allocated_gpu_hours":5.591667},
//	{"project":"lhcb","allocated_gpu_hours":1.500000}
//	]}
//
// Text cells are JSON strings (not neutralised: JSON is not a spreadsheet),
// Int and Ratio cells are JSON numbers, times are RFC 3339 strings in UTC.
type JSON struct {
	w       *bufio.Writer
	keys    [][]byte // column names, quoted
	buf     []byte
	written int
	err     error
}

// NewJSON writes the opening of the object and returns the writer.
func NewJSON(w io.Writer, columns []string, meta ...Field) (*JSON, error) {
	j := &JSON{w: bufio.NewWriter(w), keys: make([][]byte, len(columns))}
	for i, name := range columns {
		j.keys[i] = appendJSONString(nil, name)
	}
	b := []byte{'{'}
	for _, f := range meta {
		v, err := json.Marshal(f.Value)
		if err != nil {
			return nil, fmt.Errorf("write JSON field %s: %w", f.Name, err)
		}
		b = appendJSONString(b, f.Name)
		b = append(b, ':')
		b = append(b, v...)
		b = append(b, ',')
	}
	b = append(b, `"rows":[`...)
	if _, err := j.w.Write(b); err != nil {
		return nil, fmt.Errorf("write JSON: %w", err)
	}
	return j, nil
}

// Write writes one row.
func (j *JSON) Write(row []Cell) error {
	if j.err != nil {
		return j.err
	}
	if len(row) != len(j.keys) {
		return fmt.Errorf("%w: %d cells, %d columns", ErrColumns, len(row), len(j.keys))
	}
	b := j.buf[:0]
	if j.written > 0 {
		b = append(b, ',')
	}
	b = append(b, '\n', '{')
	for i, cell := range row {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, j.keys[i]...)
		b = append(b, ':')
		b = cell.appendJSON(b)
	}
	b = append(b, '}')
	j.buf = b
	if _, err := j.w.Write(b); err != nil {
		j.err = fmt.Errorf("write JSON row: %w", err)
		return j.err
	}
	j.written++
	return nil
}

// Flush sends the buffered rows to the underlying writer.
func (j *JSON) Flush() error {
	if err := j.w.Flush(); err != nil {
		return fmt.Errorf("flush JSON: %w", err)
	}
	return nil
}

// Close ends the object and flushes it.
func (j *JSON) Close() error {
	if j.err != nil {
		return j.err
	}
	end := "]}\n"
	if j.written > 0 {
		end = "\n]}\n"
	}
	if _, err := j.w.WriteString(end); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return j.Flush()
}
