package ledger

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func unix(s string) int64 { return utc(s).Unix() }

// frozenRows returns the rows of a month in the tables CloseMonth freezes.
func frozenRows(t *testing.T, s *Store, month time.Time) []string {
	t.Helper()
	end := month.AddDate(0, 1, 0)
	var out []string
	for _, q := range []string{
		"SELECT t::text FROM ledger_hourly t WHERE hour >= $1 AND hour < $2 ORDER BY 1",
		"SELECT t::text FROM ledger_daily t WHERE day >= $1 AND day < $2 ORDER BY 1",
		"SELECT t::text FROM ledger_monthly t WHERE month >= $1 AND month < $2 ORDER BY 1",
		"SELECT t::text FROM ledger_monthly_project t WHERE month >= $1 AND month < $2 ORDER BY 1",
		"SELECT t::text FROM capacity_hourly t WHERE hour >= $1 AND hour < $2 ORDER BY 1",
	} {
		rows, err := s.pool.Query(context.Background(), q, month, end)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var r string
			if err := rows.Scan(&r); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		rows.Close()
	}
	return out
}

func TestCloseMonth(t *testing.T) {
	now := utc("2026-12-15T10:00:00Z")
	s, _ := newStore(t, Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	oct := utc("2026-10-01T00:00:00Z")

	a := iv("a", unix("2026-10-31T22:30:00Z"), unix("2026-11-01T01:00:00Z"))
	b := iv("b", unix("2026-10-15T10:00:00Z"), unix("2026-10-15T12:00:00Z"), mig("1g.10gb", 143))
	// One window of intervals only, from mid-October into November.
	apply(t, s, win(unix("2026-10-15T10:00:00Z"), unix("2026-11-01T02:00:00Z"), a, b))
	w := observe.Window{Cluster: testCluster, From: unix("2026-11-01T02:00:00Z"), To: unix("2026-11-01T02:05:00Z")}
	w.Capacity = []observe.Capacity{{Node: "n0", Device: "GPU-a", Class: "gpu", Model: "A100", Seconds: 300}}
	apply(t, s, w)

	refusals := []struct {
		name    string
		cluster string
		month   string
		want    error
	}{
		{"the watermark has not reached the month's end", testCluster, "2026-11-01T00:00:00Z", ErrCannotClose},
		{"the current month", testCluster, "2026-12-01T00:00:00Z", ErrCannotClose},
		{"a future month", testCluster, "2027-01-01T00:00:00Z", ErrCannotClose},
		{"a cluster without data", "elsewhere", "2026-10-01T00:00:00Z", ErrCannotClose},
	}
	for _, r := range refusals {
		if err := s.CloseMonth(ctx, r.cluster, utc(r.month)); !errors.Is(err, r.want) {
			t.Errorf("%s: %v, want %v", r.name, err, r.want)
		}
	}
	if err := s.CloseMonth(ctx, testCluster, utc("2026-10-20T13:00:00Z")); err != nil { // any time in October
		t.Fatalf("close October: %v", err)
	}
	if err := s.CloseMonth(ctx, testCluster, oct); !errors.Is(err, ErrAlreadyClosed) {
		t.Errorf("closing October twice: %v, want ErrAlreadyClosed", err)
	}
	if ms, err := s.ClosedMonths(ctx, testCluster); err != nil || len(ms) != 1 || !ms[0].Equal(oct) {
		t.Errorf("ClosedMonths = %v, %v", ms, err)
	}
	frozen := frozenRows(t, s, oct)
	if len(frozen) == 0 {
		t.Fatal("no October rows")
	}

	// Late data for October: a pod nobody saw (lhcb, 09:30 → 10:15 on the
	// 20th), and b's end corrected from 12:00 to 11:30. And a's end moved
	// from 01:00 to 00:30 on 1 November, an open month.
	c := iv("c", unix("2026-10-20T09:30:00Z"), unix("2026-10-20T10:15:00Z"), project("lhcb", "carol"))
	late := []observe.Window{
		win(unix("2026-10-20T10:15:00Z"), unix("2026-10-20T10:20:00Z"), c),
		win(unix("2026-10-15T11:30:00Z"), unix("2026-10-15T11:35:00Z"),
			iv("b", unix("2026-10-15T10:00:00Z"), unix("2026-10-15T11:30:00Z"), mig("1g.10gb", 143))),
		win(unix("2026-11-01T00:30:00Z"), unix("2026-11-01T00:35:00Z"),
			iv("a", unix("2026-10-31T22:30:00Z"), unix("2026-11-01T00:30:00Z"))),
	}
	apply(t, s, late...)
	sameRows(t, "October's frozen rows", frozenRows(t, s, oct), frozen)
	adj := func() []string { return hourlyRowsAt(t, s, "ledger_adjustments") }
	wantAdj := []string{
		"2026-10-15T11:00:00Z cms bob mig A100 1g.10gb - -257400 -1800 0 0 0 0",
		"2026-10-20T09:00:00Z lhcb carol gpu A100 - - 1800000 1800 0 0 0 0",
		"2026-10-20T10:00:00Z lhcb carol gpu A100 - - 900000 900 0 0 0 0",
	}
	sameRows(t, "adjustments", adj(), wantAdj)
	var months []string
	rows, err := s.pool.Query(ctx, "SELECT DISTINCT to_char(month, 'YYYY-MM') FROM ledger_adjustments")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var m string
		_ = rows.Scan(&m)
		months = append(months, m)
	}
	rows.Close()
	if fmt.Sprint(months) != "[2026-10]" {
		t.Errorf("adjustments correct months %v, want [2026-10]", months)
	}
	// November is open: its rows follow the correction.
	sameRows(t, "November's hourly rows", hourlyRowsAt(t, s, "ledger_hourly", "2026-11-01T00:00:00Z"), []string{
		"2026-11-01T00:00:00Z cms bob gpu A100 - - 1800000 1800 0 0 0 0",
	})
	if wm, _, _ := s.Watermark(ctx, testCluster); !wm.Equal(utc("2026-11-01T02:05:00Z")) {
		t.Errorf("late data moved the watermark to %v", wm)
	}

	// Every interval is closed: none is left open for a restarted aggregator.
	if open, err := s.OpenIntervals(ctx, testCluster); err != nil || len(open) != 0 {
		t.Errorf("OpenIntervals = %v, %v", open, err)
	}

	// Applying the late windows again adds no adjustment.
	before := dump(t, s)
	apply(t, s, late...)
	if d := diffDumps(before, dump(t, s)); d != "" {
		t.Errorf("re-applying late data changed the ledger:\n%s", d)
	}

	// Reports of October add the adjustments, from the monthly rollup or
	// from the hours alike: cms = a 22:30 → 24:00 (5400 s) + b 10:00 →
	// 11:30 at 143 (772200), 10800 device-seconds; lhcb = 2700 s.
	want := []string{"cms 6172200 10800", "lhcb 2700000 2700"}
	for _, hourly := range []bool{false, true} {
		var got []string
		err := s.Report(ctx, ReportQuery{Cluster: testCluster, From: oct, To: oct.AddDate(0, 1, 0),
			GroupBy: []string{KeyProject}, HourlyOnly: hourly}, func(r ReportRow) error {
			got = append(got, fmt.Sprintf("%s %d %d", r.Keys[0], r.AllocatedMilliGPUSeconds, r.DeviceSeconds))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		sameRows(t, fmt.Sprintf("October's report (hourly only: %v)", hourly), got, want)
	}
	checkRollups(t, s)
}

// hourlyRowsAt lists rows of table as "time project user class model
// profile site values", optionally only from the given time on.
func hourlyRowsAt(t *testing.T, s *Store, table string, from ...string) []string {
	t.Helper()
	since := time.Unix(0, 0)
	if len(from) > 0 {
		since = utc(from[0])
	}
	rows, err := s.pool.Query(context.Background(), `SELECT hour, project, user_name, class, model, profile, site, `+
		valCols+` FROM `+table+` WHERE hour >= $1 ORDER BY 1, 2, 3, 4, 5, 6, 7`, since)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h time.Time
		var p, u, c, m, pr, si string
		var v [6]int64
		if err := rows.Scan(&h, &p, &u, &c, &m, &pr, &si, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s %s %s %s %s %s %d %d %d %d %d %d", h.UTC().Format(time.RFC3339),
			p, u, c, m, dash(pr), dash(si), v[0], v[1], v[2], v[3], v[4], v[5]))
	}
	return out
}
