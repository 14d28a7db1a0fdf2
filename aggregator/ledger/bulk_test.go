package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

func TestHourParts(t *testing.T) {
	const h0 = 100 * hourSeconds
	type part struct {
		hour int64 // relative to h0, in hours
		v    values
	}
	cases := []struct {
		name      string
		x         storedInterval
		lo, hi    int64 // the run, hours from h0
		watermark int64
		want      []part
	}{
		{"inside one hour", storedInterval{start: h0 + 600, end: h0 + 900, weightMilli: 250, devices: 1}, 0, 3, 0,
			[]part{{0, values{allocated: 250 * 300, device: 300}}}},
		{"across two hours", storedInterval{start: h0 + 3000, end: h0 + 4200, weightMilli: 1000, devices: 1}, 0, 3, 0,
			[]part{{0, values{allocated: 600_000, device: 600}}, {1, values{allocated: 600_000, device: 600}}}},
		{"clipped to the run", storedInterval{start: h0 - 7200, end: h0 + 3*hourSeconds + 5, weightMilli: 143, devices: 1}, 1, 2, 0,
			[]part{{1, values{allocated: 143 * 3600, device: 3600}}}},
		{"open, to the watermark", storedInterval{start: h0 + 1800, weightMilli: 2000, devices: 2}, 0, 3, h0 + hourSeconds + 60,
			[]part{{0, values{allocated: 2000 * 1800, device: 3600}}, {1, values{allocated: 2000 * 60, device: 120}}}},
		{"open, starting after the watermark", storedInterval{start: h0 + 1800, weightMilli: 1000, devices: 1}, 0, 3, h0 + 600, nil},
		{"an FPGA card", storedInterval{start: h0, end: h0 + 90, weightMilli: 1000, devices: 1, fpga: true}, 0, 1, 0,
			[]part{{0, values{fpga: 90}}}},
		{"empty", storedInterval{start: h0 + 60, end: h0 + 60, weightMilli: 1000, devices: 1}, 0, 1, 0, nil},
		{"ending on the hour", storedInterval{start: h0 + 1800, end: h0 + hourSeconds, weightMilli: 1000, devices: 1}, 0, 3, 0,
			[]part{{0, values{allocated: 1_800_000, device: 1800}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []part
			hourParts(c.x, h0+c.lo*hourSeconds, h0+c.hi*hourSeconds, c.watermark, func(h int64, v values) {
				got = append(got, part{(h - h0) / hourSeconds, v})
			})
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("parts %v, want %v", got, c.want)
			}
		})
	}
}

func TestComplement(t *testing.T) {
	h := func(hs ...int64) []int64 {
		for i := range hs {
			hs[i] = 86400 + hs[i]*3600
		}
		return hs
	}
	nextDay := func(d int64) int64 { return d + 86400 }
	cases := []struct {
		name       string
		hours      []int64
		days       []int64
		wantLo     []int64
		wantHi     []int64
		wantPeriod []int64
	}{
		{"a whole day", h(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23),
			[]int64{86400}, nil, nil, []int64{86400}},
		{"one hour", h(5), []int64{86400}, h(0, 6), h(5, 24), []int64{86400}},
		{"two runs over two days", h(2, 3, 30),
			[]int64{86400, 2 * 86400}, h(0, 4, 31), h(2, 30, 48), []int64{86400, 2 * 86400}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := periods(c.hours, dayStart); fmt.Sprint(got) != fmt.Sprint(c.wantPeriod) {
				t.Errorf("periods: %v, want %v", got, c.wantPeriod)
			}
			lo, hi := complement(c.hours, c.days, hourSeconds, nextDay)
			if fmt.Sprint(lo, hi) != fmt.Sprint(c.wantLo, c.wantHi) {
				t.Errorf("complement: %v %v, want %v %v", lo, hi, c.wantLo, c.wantHi)
			}
		})
	}
	// The days of a month that a run of days leaves out.
	nov := unix("2026-11-01T00:00:00Z")
	lo, hi := complement([]int64{nov + 86400, nov + 2*86400}, []int64{nov}, 86400, nextMonth)
	if fmt.Sprint(lo, hi) != fmt.Sprint([]int64{nov, nov + 3*86400}, []int64{nov + 86400, unix("2026-12-01T00:00:00Z")}) {
		t.Errorf("days of November left out: %v %v", lo, hi)
	}
}

// TestBulkEqualsSQL applies the same random windows — backfills, five
// minute windows with usage, energy and capacity, late data that moves,
// closes or re-attributes intervals, a closed month corrected — to two
// ledgers, one that always takes the bulk paths (staged intervals, hours
// computed in Go) and one that never does, and checks that every table
// holds the same rows.
func TestBulkEqualsSQL(t *testing.T) {
	now := utc("2027-01-15T00:00:00Z")
	opts := Options{Now: func() time.Time { return now }}
	bulk, _ := newStore(t, opts)
	bulk.bulk = bulkThresholds{intervals: 1, hours: 1}
	sql, _ := newStore(t, opts)
	sql.bulk = bulkThresholds{intervals: 1 << 30, hours: 1 << 30}
	ctx := context.Background()
	for seed := uint64(1); seed <= 3; seed++ {
		cluster := fmt.Sprint("c", seed)
		for i, w := range randomWindows(seed, cluster) {
			for _, s := range []*Store{bulk, sql} {
				var err error
				if w.closeMonth != (time.Time{}) {
					err = s.CloseMonth(ctx, cluster, w.closeMonth)
				} else {
					err = s.ApplyWindow(ctx, w.Window)
				}
				if err != nil {
					t.Fatalf("seed %d, step %d: %v", seed, i, err)
				}
			}
		}
	}
	a, b := ledgerDump(t, bulk), ledgerDump(t, sql)
	for _, table := range ledgerDumpTables {
		if len(a[table]) == 0 && table != "ledger_adjustments" && table != "capacity_hourly" {
			t.Errorf("%s: no rows", table)
		}
		if d := diffRows(a[table], b[table]); d != "" {
			t.Errorf("%s: bulk path (-) and SQL path (+) differ:\n%s", table, d)
		}
	}
	if len(a["ledger_adjustments"]) == 0 {
		t.Error("no adjustments: the closed month was not corrected")
	}
	if len(a["capacity_hourly"]) == 0 {
		t.Error("no capacity rows")
	}
	checkRollups(t, bulk)
}

// step is a window to apply, or a month to close.
type step struct {
	observe.Window
	closeMonth time.Time
}

// randomWindows is a ledger's history over October and November 2026: a
// backfill of October, five-minute windows with usage, energy and capacity
// around the month's end, October closed, then a late backfill that
// changes some intervals (later ends, other projects, other weights,
// reopened or closed) over both months, and more five-minute windows.
func randomWindows(seed uint64, cluster string) []step {
	r := rand.New(rand.NewPCG(seed, 99))
	oct, nov, dec := unix("2026-10-01T00:00:00Z"), unix("2026-11-01T00:00:00Z"), unix("2026-12-01T00:00:00Z")
	var ivs []observe.Interval
	for i := range 60 {
		start := oct + r.Int64N(nov-oct+10*86400)
		end := start + 1 + r.Int64N(3*86400)
		var opts []ivOpt
		switch i % 5 {
		case 1:
			opts = append(opts, mig("1g.10gb", 143))
		case 2:
			opts = append(opts, shared(250))
		case 3:
			opts = append(opts, fpga())
		case 4:
			opts = append(opts, offload(1+r.Int64N(2)))
		}
		opts = append(opts, project(fmt.Sprint("p", r.IntN(4)), fmt.Sprint("u", r.IntN(3))))
		ivs = append(ivs, iv(fmt.Sprint("a", i), start, end, opts...))
	}
	byWindow := func(from, to int64, change func(observe.Interval) observe.Interval) observe.Window {
		w := observe.Window{Cluster: cluster, From: from, To: to}
		for _, x := range ivs {
			if x.Start >= to {
				continue
			}
			if x.End > to || x.End == 0 {
				x.End, x.EndExact, x.LastSeen = 0, false, to*1000 // open at the window's end
			}
			if change != nil {
				x = change(x)
			}
			w.Intervals = append(w.Intervals, x)
		}
		return w
	}
	fiveMinutes := func(from int64) observe.Window {
		w := byWindow(from, from+300, nil)
		var running []observe.Interval
		for _, x := range w.Intervals {
			if x.End == 0 || x.End > from {
				running = append(running, x)
			}
		}
		w.Intervals = running
		for _, x := range running {
			w.Usage = append(w.Usage, observe.Usage{AllocKey: x.AllocKey, UsedMilliGPUSeconds: r.Int64N(300_000),
				IdleMilliGPUSeconds: r.Int64N(1000), EnergyMillijoules: r.Int64N(1e8)})
			if x.Class == "gpu" {
				w.Energy = append(w.Energy, observe.Energy{Node: x.Node, GPUUUID: x.GPUUUID, Model: x.Model,
					EnergyMillijoules: r.Int64N(1e8)})
				w.Capacity = append(w.Capacity, observe.Capacity{Node: x.Node, Device: x.Device, Class: "gpu",
					Model: x.Model, Seconds: 300})
			}
		}
		return w
	}
	lateEnd := oct + 20*86400 + 7*3600
	var out []step
	add := func(w observe.Window) { out = append(out, step{Window: w}) }
	add(byWindow(oct, lateEnd, nil))
	for from := lateEnd; from < lateEnd+3*3600; from += 300 * (1 + r.Int64N(4)) {
		add(fiveMinutes(from))
	}
	// The backfill of the rest of October and into November, windows of
	// one to three days.
	from := lateEnd + 3*3600
	for from < nov+5*86400 {
		to := min(from+86400*(1+r.Int64N(3)), nov+5*86400)
		add(byWindow(from, to, nil))
		from = to
	}
	add(fiveMinutes(nov + 5*86400))
	out = append(out, step{closeMonth: time.Unix(oct, 0)})
	// Late data over both months: a window that ends before the watermark
	// and changes a third of the intervals it carries.
	add(byWindow(oct+22*86400, nov+2*86400, func(x observe.Interval) observe.Interval {
		switch r.IntN(6) {
		case 0:
			x.End, x.EndExact, x.LastSeen = x.Start+r.Int64N(86400)+1, true, (nov+2*86400)*1000
		case 1:
			x.Project = "moved"
		case 2:
			x.WeightMilli++
		}
		return x
	}))
	for k := range 4 {
		add(fiveMinutes(nov + 5*86400 + 300*int64(k+1)))
	}
	add(byWindow(nov+5*86400+1500, dec, nil))
	return out
}

// ledgerDumpTables are the tables compared by TestBulkEqualsSQL.
var ledgerDumpTables = []string{"ledger_hourly", "ledger_daily", "ledger_monthly", "ledger_monthly_project", "capacity_hourly",
	"ledger_adjustments", "intervals", "watermarks", "window_usage", "window_energy", "window_capacity"}

// ledgerDump returns the rows of every table a window writes, without the
// columns that record when they were written, sorted.
func ledgerDump(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	drop := map[string]string{
		"ledger_adjustments": "- 'id' - 'recorded_at'",
		"intervals":          "- 'created_at' - 'updated_at'",
		"watermarks":         "- 'updated_at'",
	}
	out := map[string][]string{}
	for _, table := range ledgerDumpTables {
		out[table] = queryRows(t, s, fmt.Sprintf("SELECT (to_jsonb(t) %s)::text FROM %s t ORDER BY 1", drop[table], table))
	}
	return out
}

// diffRows lists the rows only in a (-) and only in b (+), at most ten.
func diffRows(a, b []string) string {
	in := func(xs []string) map[string]int {
		m := map[string]int{}
		for _, x := range xs {
			m[x]++
		}
		return m
	}
	ma, mb := in(a), in(b)
	var d []string
	for _, x := range a {
		if mb[x] == 0 {
			d = append(d, "- "+x)
		} else {
			mb[x]--
		}
	}
	for _, x := range b {
		if ma[x] == 0 {
			d = append(d, "+ "+x)
		} else {
			ma[x]--
		}
	}
	if len(d) > 10 {
		d = append(d[:10], fmt.Sprintf("… %d more", len(d)-10))
	}
	return strings.Join(d, "\n")
}
