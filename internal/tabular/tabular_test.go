package tabular

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestRatio(t *testing.T) {
	cases := []struct {
		n, d   int64
		places int
		want   string
	}{
		{5400000, 3600000, 6, "1.500000"},
		{20130000, 3600000, 6, "5.591667"}, // 5.5916666… rounds up
		{10738800, 3600000, 6, "2.983000"},
		{1, 3600000, 6, "0.000000"},       // 0.00000027…
		{2, 3600000, 6, "0.000001"},       // 0.00000055… rounds up
		{1800, 3600000000, 6, "0.000001"}, // exactly half: away from zero
		{-1800, 3600000000, 6, "-0.000001"},
		{-1, 3600000, 6, "0.000000"}, // no "-0"
		{-5400000, 3600000, 6, "-1.500000"},
		{7, 2, 0, "4"},
		{-7, 2, 0, "-4"},
		{999999, 1000000, 5, "1.00000"}, // the fraction carries into the integer
		{2, 3, 18, "0.666666666666666667"},
		{math.MaxInt64, 1, 3, "9223372036854775807.000"},
		{math.MinInt64, 1, 0, "-9223372036854775808"},
		{math.MaxInt64, math.MaxInt64 - 1, 18, "1.000000000000000000"},
		{1, math.MaxInt64, 18, "0.000000000000000000"},
		{math.MaxInt64 / 2, math.MaxInt64, 18, "0.500000000000000000"},
		{0, 3600, 6, "0.000000"},
		{1, 0, 6, "NaN"},
	}
	for _, c := range cases {
		if got := Ratio(c.n, c.d, c.places).Text(); got != c.want {
			t.Errorf("Ratio(%d, %d, %d) = %s, want %s", c.n, c.d, c.places, got, c.want)
		}
	}
}

func TestNeutralize(t *testing.T) {
	cases := map[string]string{
		"=HYPERLINK(\"http://x\",\"y\")": "'=HYPERLINK(\"http://x\",\"y\")",
		"+1+2":                           "'+1+2",
		"-2+3":                           "'-2+3",
		"@SUM(A1)":                       "'@SUM(A1)",
		"\tcmd":                          "'\tcmd",
		"\rcmd":                          "'\rcmd",
		"cms":                            "cms",
		"a=b":                            "a=b",
		"":                               "",
		"'quoted":                        "'quoted",
		" =leading":                      " =leading",
		"ml-infn":                        "ml-infn",
		"INFN-CNAF":                      "INFN-CNAF",
		"1g.10gb+me":                     "1g.10gb+me",
	}
	for in, want := range cases {
		if got := Neutralize(in); got != want {
			t.Errorf("Neutralize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCSV(t *testing.T) {
	var b bytes.Buffer
	w, err := NewCSV(&b, []string{"project", "when", "hours", "milli_seconds"})
	if err != nil {
		t.Fatal(err)
	}
	rome := time.FixedZone("CET", 3600)
	rows := [][]Cell{
		{String("cms"), Time(time.Date(2026, 11, 2, 9, 0, 0, 0, rome)), Ratio(5400000, 3600000, 6), Int(5400000)},
		{String("=1+2"), Time(time.Date(2026, 11, 2, 8, 0, 0, 500, time.UTC)), Ratio(-1800000, 3600000, 6), Int(-1800000)},
		{String("say \"hi\", then\nleave"), Time(time.Time{}), Ratio(0, 1, 0), Int(0)},
		{String("@cmd"), Time(time.Unix(0, 0)), Ratio(1, 3, 2), Int(1)},
		{String("-x"), Time(time.Unix(0, 0)), Ratio(1, 3, 2), Int(1)},
		{String("+x"), Time(time.Unix(0, 0)), Ratio(1, 3, 2), Int(1)},
		{String("\tx"), Time(time.Unix(0, 0)), Ratio(1, 3, 2), Int(1)},
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write([]Cell{String("short")}); !errors.Is(err, ErrColumns) {
		t.Errorf("short row: %v, want ErrColumns", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := "project,when,hours,milli_seconds\r\n" +
		"cms,2026-11-02T08:00:00Z,1.500000,5400000\r\n" + // times in UTC
		"'=1+2,2026-11-02T08:00:00.0000005Z,-0.500000,-1800000\r\n" + // text neutralised, numbers not
		"\"say \"\"hi\"\", then\r\nleave\",0001-01-01T00:00:00Z,0,0\r\n" + // RFC 4180 quoting
		"'@cmd,1970-01-01T00:00:00Z,0.33,1\r\n" +
		"'-x,1970-01-01T00:00:00Z,0.33,1\r\n" +
		"'+x,1970-01-01T00:00:00Z,0.33,1\r\n" +
		"'\tx,1970-01-01T00:00:00Z,0.33,1\r\n"
	if b.String() != want {
		t.Errorf("CSV:\n%q\nwant\n%q", b.String(), want)
	}
	// What a spreadsheet would read back is text for every neutralised cell.
	recs, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs[1:] {
		if c := r[0]; c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			t.Errorf("cell %q starts a formula", c)
		}
	}
}

func TestCSVStreams(t *testing.T) {
	var b bytes.Buffer
	w, err := NewCSV(&b, []string{"n"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]Cell{Int(1)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if b.String() != "n\r\n1\r\n" {
		t.Errorf("after Flush: %q", b.String())
	}
	// Large tables reach the writer before Close.
	for i := 0; i < 10000; i++ {
		if err := w.Write([]Cell{Int(int64(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if b.Len() < 10000 {
		t.Errorf("only %d bytes written before Close: rows are not streamed", b.Len())
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrors(t *testing.T) {
	c, err := NewCSV(failWriter{}, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Write([]Cell{String("x")})
	if err := c.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("CSV Close on a failing writer = %v", err)
	}
	j, err := NewJSON(failWriter{}, []string{"a"})
	if err != nil {
		t.Fatal(err) // buffered: the failure shows on flush
	}
	if err := j.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("JSON Close on a failing writer = %v", err)
	}
	if _, err := NewJSON(&bytes.Buffer{}, nil, Field{"bad", func() {}}); err == nil {
		t.Error("NewJSON accepted a field JSON cannot encode")
	}
	if _, err := New("xml", &bytes.Buffer{}, nil); err == nil || !strings.Contains(err.Error(), `unknown format "xml"`) {
		t.Errorf("New(xml) = %v", err)
	}
}

func TestJSON(t *testing.T) {
	var b bytes.Buffer
	w, err := New(FormatJSON, &b, []string{"project", "when", "hours", "milli_seconds"},
		Field{"window", map[string]string{"from": "2026-11-02T08:00:00Z"}}, Field{"group_by", []string{"project"}})
	if err != nil {
		t.Fatal(err)
	}
	rows := [][]Cell{
		{String("cms"), Time(time.Date(2026, 11, 2, 9, 0, 0, 0, time.FixedZone("CET", 3600))), Ratio(5400000, 3600000, 6), Int(5400000)},
		{String("=1+2 \"q\" <b>"), Time(time.Unix(0, 0)), Ratio(-1, 3, 6), Int(-1)},
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write(nil); !errors.Is(err, ErrColumns) {
		t.Errorf("empty row: %v, want ErrColumns", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := `{"window":{"from":"2026-11-02T08:00:00Z"},"group_by":["project"],"rows":[` + "\n" +
		`{"project":"cms","when":"2026-11-02T08:00:00Z","hours":1.500000,"milli_seconds":5400000},` + "\n" +
		`{"project":"=1+2 \"q\" \u003cb\u003e","when":"1970-01-01T00:00:00Z","hours":-0.333333,"milli_seconds":-1}` + "\n]}\n"
	if b.String() != want {
		t.Errorf("JSON:\n%s\nwant\n%s", b.String(), want)
	}
	var doc struct {
		GroupBy []string         `json:"group_by"`
		Rows    []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	if len(doc.Rows) != 2 || doc.Rows[0]["hours"] != 1.5 || doc.Rows[1]["project"] != "=1+2 \"q\" <b>" {
		t.Errorf("decoded %+v", doc)
	}
}

func TestJSONEmpty(t *testing.T) {
	var b bytes.Buffer
	w, err := NewJSON(&b, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if b.String() != "{\"rows\":[]}\n" {
		t.Errorf("empty table: %q", b.String())
	}
	if err := json.Unmarshal(b.Bytes(), new(any)); err != nil {
		t.Error(err)
	}
}
