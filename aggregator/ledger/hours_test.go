package ledger

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestAffectedHours(t *testing.T) {
	h := func(hh, mm int64) int64 { return at(hh, mm) }
	cases := []struct {
		name string
		c    change
		want []int64 // hours from t0
	}{
		{"a new closed interval", change{newStart: h(0, 50), newEnd: h(2, 10), newWM: h(3, 0)}, []int64{0, 1, 2}},
		{"a new open interval runs to the watermark", change{newStart: h(0, 50), newWM: h(1, 5)}, []int64{0, 1}},
		{"an open interval closed", change{existed: true, oldStart: h(0, 0), newStart: h(0, 0), newEnd: h(2, 30),
			oldWM: h(5, 5), newWM: h(5, 10)}, []int64{2, 3, 4, 5}},
		{"an end moved later", change{existed: true, oldStart: h(0, 0), oldEnd: h(1, 10), newStart: h(0, 0), newEnd: h(3, 0),
			oldWM: h(4, 0), newWM: h(4, 0)}, []int64{1, 2}},
		{"only last seen changed", change{existed: true, oldStart: h(0, 0), newStart: h(0, 0), oldWM: h(1, 0), newWM: h(1, 0)}, nil},
		{"the attribution changed", change{existed: true, keyChanged: true, oldStart: h(0, 0), oldEnd: h(0, 30),
			newStart: h(0, 0), newEnd: h(0, 30)}, []int64{0}},
		{"the start moved", change{existed: true, oldStart: h(2, 0), oldEnd: h(3, 0), newStart: h(0, 10), newEnd: h(0, 20)},
			[]int64{0, 2}},
	}
	for _, c := range cases {
		s := hourSet{}
		c.c.affected(s)
		var got []int64
		for _, x := range s.sorted() {
			got = append(got, (x-t0)/3600)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: hours %v, want %v", c.name, got, c.want)
		}
	}
}

func TestRuns(t *testing.T) {
	hours := []int64{at(0, 0), at(1, 0), at(2, 0), at(5, 0), at(16, 0), at(40, 0)} // 2 Nov 08:00 … 4 Nov 00:00
	lo, hi := hourRuns(hours)
	if fmt.Sprint(lo) != fmt.Sprint([]int64{at(0, 0), at(5, 0), at(16, 0), at(40, 0)}) ||
		fmt.Sprint(hi) != fmt.Sprint([]int64{at(3, 0), at(6, 0), at(17, 0), at(41, 0)}) {
		t.Errorf("hourRuns = %v %v", lo, hi)
	}
	day := func(s string) time.Time { return utc(s + "T00:00:00Z") }
	dl, dh, ml, mh := dayAndMonthRuns(hours)
	if fmt.Sprint(dl) != fmt.Sprint([]time.Time{day("2026-11-02")}) || fmt.Sprint(dh) != fmt.Sprint([]time.Time{day("2026-11-05")}) {
		t.Errorf("day runs %v %v", dl, dh)
	}
	if fmt.Sprint(ml) != fmt.Sprint([]time.Time{day("2026-11-01")}) || fmt.Sprint(mh) != fmt.Sprint([]time.Time{day("2026-12-01")}) {
		t.Errorf("month runs %v %v", ml, mh)
	}
	// Days and months with gaps.
	hours = []int64{unix("2026-10-03T10:00:00Z"), unix("2026-10-03T11:00:00Z"), unix("2026-10-05T00:00:00Z"),
		unix("2026-11-30T23:00:00Z"), unix("2026-12-01T00:00:00Z"), unix("2027-02-01T00:00:00Z")}
	dl, dh, ml, mh = dayAndMonthRuns(hours)
	want := "[2026-10-03 2026-10-05 2026-11-30 2027-02-01] [2026-10-04 2026-10-06 2026-12-02 2027-02-02] " +
		"[2026-10-01 2027-02-01] [2027-01-01 2027-03-01]"
	f := func(ts []time.Time) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.Format("2006-01-02"))
		}
		return out
	}
	if got := fmt.Sprint(f(dl), " ", f(dh), " ", f(ml), " ", f(mh)); got != want {
		t.Errorf("runs with gaps:\n got %s\nwant %s", got, want)
	}
}
