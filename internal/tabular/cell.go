// Package tabular writes reports as tables: RFC 4180 CSV or JSON, streamed
// row by row. It is shared by the simulator's ground truth, the ledger
// reports and the HTTP API, so that every table gpuledger emits follows the
// same rules:
//
//   - Cells are typed. Numbers (Int, Ratio) are written as they are; text
//     (String) is protected against spreadsheet formula injection: a text
//     cell starting with '=', '+', '-', '@', a tab or a carriage return is
//     prefixed with a single quote in CSV, so that a project called
//     "=HYPERLINK(…)" stays text when a report is opened in a spreadsheet.
//     Only text cells are changed: a negative number stays a number.
//   - Times are written in UTC, RFC 3339 (with fractional seconds only when
//     there are some).
//   - Exact quantities are integers; a Ratio cell shows an integer quotient
//     with a fixed number of decimals, rounded half away from zero from the
//     integers, never through floating point.
package tabular

import (
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

type kind uint8

const (
	kindString kind = iota
	kindInt
	kindRatio
	kindTime
)

// Cell is one typed value of a row.
type Cell struct {
	kind   kind
	s      string
	n, d   int64
	places int
	t      time.Time
}

// String is a text cell.
func String(s string) Cell { return Cell{kind: kindString, s: s} }

// Int is an integer cell.
func Int(n int64) Cell { return Cell{kind: kindInt, n: n} }

// Ratio is the decimal n/d with places decimals (0..18), rounded half away
// from zero; Ratio(5400000, 3600000, 6) is 1.500000. d must be positive;
// a zero or negative d gives the cell "NaN" in CSV and null in JSON.
func Ratio(n, d int64, places int) Cell {
	return Cell{kind: kindRatio, n: n, d: d, places: min(max(places, 0), 18)}
}

// Time is a time cell, written in UTC.
func Time(t time.Time) Cell { return Cell{kind: kindTime, t: t} }

// Text returns the cell as it is written in CSV, before formula
// neutralisation.
func (c Cell) Text() string {
	switch c.kind {
	case kindInt:
		return strconv.FormatInt(c.n, 10)
	case kindRatio:
		if c.d <= 0 {
			return "NaN"
		}
		return formatRatio(c.n, c.d, c.places)
	case kindTime:
		return c.t.UTC().Format(time.RFC3339Nano)
	}
	return c.s
}

// csvText is the cell as written in CSV: text cells are neutralised.
func (c Cell) csvText() string {
	if c.kind == kindString {
		return Neutralize(c.s)
	}
	return c.Text()
}

// appendJSON appends the cell as a JSON value.
func (c Cell) appendJSON(b []byte) []byte {
	switch c.kind {
	case kindInt:
		return strconv.AppendInt(b, c.n, 10)
	case kindRatio:
		if c.d <= 0 {
			return append(b, "null"...)
		}
		return append(b, formatRatio(c.n, c.d, c.places)...)
	case kindTime:
		return appendJSONString(b, c.Text())
	}
	return appendJSONString(b, c.s)
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// Neutralize protects a text cell against spreadsheet formula injection by
// prefixing a single quote when it starts with '=', '+', '-', '@', a tab or
// a carriage return.
func Neutralize(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + s
	}
	return s
}

var pow10 = func() [19]int64 {
	var p [19]int64
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// formatRatio writes n/d (d > 0) with places decimals, rounding half away
// from zero.
func formatRatio(n, d int64, places int) string {
	neg := n < 0
	scale := pow10[places]
	var f uint64 // the scaled fraction
	un := uint64(n)
	if neg {
		un = uint64(-(n + 1)) + 1 // |n| without overflow at MinInt64
	}
	ud := uint64(d)
	q, r := un/ud, un%ud // integer part and remainder
	// f = round(r × scale / d), from (2·r·scale + d) / 2d; r < d.
	if us := uint64(scale); ud <= (math.MaxUint64-ud)/(2*us+1) {
		f = (2*r*us + ud) / (2 * ud)
	} else {
		f = bigRound(r, us, ud)
	}
	if f == uint64(scale) {
		q, f = q+1, 0
	}
	var b strings.Builder
	if neg && (q != 0 || f != 0) {
		b.WriteByte('-')
	}
	b.WriteString(strconv.FormatUint(q, 10))
	if places > 0 {
		fs := strconv.FormatUint(f, 10)
		b.WriteByte('.')
		b.WriteString(strings.Repeat("0", places-len(fs)))
		b.WriteString(fs)
	}
	return b.String()
}

// bigRound is round(r × scale / d) when it does not fit in 64 bits.
func bigRound(r, scale, d uint64) uint64 {
	var num, den big.Int
	num.SetUint64(r)
	num.Mul(&num, den.SetUint64(scale))
	num.Lsh(&num, 1)
	num.Add(&num, den.SetUint64(d))
	den.SetUint64(d)
	den.Lsh(&den, 1)
	num.Quo(&num, &den)
	return num.Uint64()
}
