package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/sim/truth"
)

func TestKeysAreTruthKeys(t *testing.T) {
	for _, k := range Keys() {
		if !slices.Contains(truth.Keys(), k) {
			t.Errorf("report key %q is not a sim truth key", k)
		}
	}
	for _, k := range notKept {
		if !slices.Contains(truth.Keys(), k) {
			t.Errorf("%q is not a sim truth key", k)
		}
	}
}

func TestParseGroupBy(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		err  string
	}{
		{"", nil, ""},
		{"project", []string{"project"}, ""},
		{" user , resource,model,site,profile,namespace", []string{"user", "resource", "model", "site", "profile", "namespace"}, ""},
		{"project,project", nil, "twice"},
		{"node", nil, "finer than the ledger"},
		{"pod", nil, "finer than the ledger"},
		{"color", nil, "unknown group-by key"},
		{"project,", nil, "unknown group-by key \"\""},
	}
	for _, c := range cases {
		got, err := ParseGroupBy(c.in)
		if c.err != "" {
			if !errors.Is(err, ErrBadQuery) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseGroupBy(%q) err = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseGroupBy(%q) = %v, %v, want %v", c.in, got, err, c.want)
		}
	}
}

func TestPlan(t *testing.T) {
	cases := []struct {
		from, to string
		want     string
	}{
		{"2026-11-02T03:00:00Z", "2026-11-02T09:00:00Z", "hour[11-02T03,11-02T09)"},
		{"2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z", "day[11-02T00,11-03T00)"},
		{"2026-11-02T05:00:00Z", "2026-11-04T07:00:00Z", "hour[11-02T05,11-03T00) day[11-03T00,11-04T00) hour[11-04T00,11-04T07)"},
		{"2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "month[11-01T00,12-01T00)"},
		{"2026-10-29T05:00:00Z", "2026-12-02T19:00:00Z",
			"hour[10-29T05,10-30T00) day[10-30T00,11-01T00) month[11-01T00,12-01T00) day[12-01T00,12-02T00) hour[12-02T00,12-02T19)"},
		{"2026-10-31T23:00:00Z", "2026-11-01T01:00:00Z", "hour[10-31T23,11-01T01)"},
		{"2026-11-30T00:00:00Z", "2026-12-02T00:00:00Z", "day[11-30T00,12-02T00)"},
		{"2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", "month[01-01T00,01-01T00)"},
	}
	for _, c := range cases {
		var got []string
		for _, s := range plan(utc(c.from), utc(c.to), false) {
			got = append(got, fmt.Sprintf("%s[%s,%s)", s.col, s.from.Format("01-02T15"), s.to.Format("01-02T15")))
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("plan(%s, %s) = %s, want %s", c.from, c.to, strings.Join(got, " "), c.want)
		}
		if h := plan(utc(c.from), utc(c.to), true); len(h) != 1 || h[0].table != "ledger_hourly" {
			t.Errorf("hourly-only plan(%s, %s) = %v", c.from, c.to, h)
		}
	}
}

// generated builds a month and more of varied intervals (Oct 28 → Dec 3)
// and some usage windows, deterministically.
func generated() (ivs []observe.Interval, windows []observe.Window, watermark int64) {
	r := rand.New(rand.NewPCG(7, 11))
	lo, hi := unix("2026-10-28T00:00:00Z"), unix("2026-12-03T00:00:00Z")
	projects := []string{"cms", "lhcb", "=HYPERLINK(\"x\")"}
	users := []string{"alice", "bob"}
	for i := range 80 {
		start := lo + r.Int64N(hi-lo-600)
		end := min(start+600+r.Int64N(5*24*3600), hi)
		var opts []ivOpt
		switch i % 6 {
		case 1:
			opts = append(opts, mig("3g.40gb", 500))
		case 2:
			opts = append(opts, shared(250))
		case 3:
			opts = append(opts, offload(1+r.Int64N(3)))
		case 4:
			opts = append(opts, fpga())
		}
		opts = append(opts, project(projects[r.IntN(len(projects))], users[r.IntN(len(users))]))
		if i%10 == 9 {
			end = 0 // still running at the watermark
			opts = append(opts, seen(hi))
		}
		x := iv(fmt.Sprint("p", i), start, end, opts...)
		ivs = append(ivs, x)
	}
	windows = append(windows, win(lo, hi, ivs...))
	// Usage for a few five-minute windows of the intervals running then.
	for k := range 12 {
		from := floorHour(lo+r.Int64N(hi-lo)) + 300*r.Int64N(12)
		w := win(from, from+300)
		for _, x := range ivs {
			if x.Start < from+300 && (x.End == 0 || x.End > from) {
				w.Intervals = append(w.Intervals, x)
				w.Usage = append(w.Usage, observe.Usage{AllocKey: x.AllocKey, UsedMilliGPUSeconds: int64(k) * 1000,
					IdleMilliGPUSeconds: 77, EnergyMillijoules: 1_000_000 + int64(k)})
			}
		}
		windows = append(windows, w)
	}
	return ivs, windows, hi
}

func TestReportRollupsEqualHours(t *testing.T) {
	s, _ := newStore(t, Options{})
	ctx := context.Background()
	ivs, windows, wm := generated()
	apply(t, s, windows...)
	checkRollups(t, s)

	ranges := [][2]string{
		{"2026-10-28T00:00:00Z", "2026-12-03T00:00:00Z"},
		{"2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"},
		{"2026-10-29T05:00:00Z", "2026-12-02T19:00:00Z"},
		{"2026-11-03T00:00:00Z", "2026-11-10T00:00:00Z"},
		{"2026-11-03T07:00:00Z", "2026-11-03T08:00:00Z"},
		{"2026-10-31T23:00:00Z", "2026-11-01T01:00:00Z"},
		{"2026-11-30T00:00:00Z", "2026-12-02T00:00:00Z"},
		{"2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
	}
	groupBys := [][]string{nil, {KeyProject}, {KeyUser, KeyResource}, {KeyModel, KeySite, KeyProfile}, Keys()}
	weights := map[string]float64{"A100": 1.5, "T4": 0.25}
	for _, rg := range ranges {
		from, to := utc(rg[0]), utc(rg[1])
		for _, gb := range groupBys {
			for _, wts := range []map[string]float64{weights, nil} { // without weights, months by project have their rows
				collect := func(hourly bool) []string {
					var out []string
					err := s.Report(ctx, ReportQuery{Cluster: testCluster, From: from, To: to, GroupBy: gb,
						Weights: wts, HourlyOnly: hourly}, func(r ReportRow) error {
						out = append(out, fmt.Sprintf("%q %d %d %d %d %d %d %d", r.Keys, r.AllocatedMilliGPUSeconds,
							r.DeviceSeconds, r.UsedMilliGPUSeconds, r.IdleMilliGPUSeconds, r.EnergyMillijoules,
							r.FPGASeconds, r.BilledMilliGPUSeconds))
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					return out
				}
				auto, hourly := collect(false), collect(true)
				if len(hourly) == 0 {
					t.Errorf("%v by %v: no rows", rg, gb)
				}
				sameRows(t, fmt.Sprintf("%v by %v, weights %v: rollups vs hours", rg, gb, wts), auto, hourly)
			}
		}

		// Allocated, device and FPGA time equal the intervals' own sums.
		type sums struct{ alloc, dev, fpga int64 }
		want := map[string]*sums{}
		for _, x := range ivs {
			end := x.End
			if end == 0 {
				end = wm
			}
			sec := min(end, to.Unix()) - max(x.Start, from.Unix())
			if sec <= 0 {
				continue
			}
			g := want[x.Project]
			if g == nil {
				g = &sums{}
				want[x.Project] = g
			}
			if x.Class == "fpga" {
				g.fpga += x.Devices * sec
				continue
			}
			g.alloc += x.WeightMilli * sec
			g.dev += x.Devices * sec
		}
		var got []string
		var wantRows []string
		err := s.Report(ctx, ReportQuery{Cluster: testCluster, From: from, To: to, GroupBy: []string{KeyProject}},
			func(r ReportRow) error {
				got = append(got, fmt.Sprintf("%s %d %d %d", r.Keys[0], r.AllocatedMilliGPUSeconds, r.DeviceSeconds, r.FPGASeconds))
				if r.BilledMilliGPUSeconds != r.AllocatedMilliGPUSeconds {
					t.Errorf("billed %d without weights, allocated %d", r.BilledMilliGPUSeconds, r.AllocatedMilliGPUSeconds)
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"=HYPERLINK(\"x\")", "cms", "lhcb"} { // byte order
			if g := want[p]; g != nil {
				wantRows = append(wantRows, fmt.Sprintf("%s %d %d %d", p, g.alloc, g.dev, g.fpga))
			}
		}
		sameRows(t, fmt.Sprintf("%v: report vs intervals", rg), got, wantRows)
	}
}

func TestReportValues(t *testing.T) {
	s, _ := newStore(t, Options{})
	ctx := context.Background()
	a := iv("a", at(0, 0), at(2, 0))                                                  // A100, 2 h
	m := iv("m", at(0, 30), at(1, 30), mig("1g.10gb", 143), project("lhcb", "carol")) // 1 h at 143
	sh := iv("s", at(1, 0), at(1, 45), shared(250))                                   // T4, 45 min at 250
	f := iv("f", at(0, 0), at(1, 0), fpga(), project("lhcb", "carol"))                // 1 h of FPGA
	w := win(at(0, 0), at(0, 5), a, m, f)
	w.Usage = []observe.Usage{{AllocKey: a.AllocKey, UsedMilliGPUSeconds: 120000, IdleMilliGPUSeconds: 60000, EnergyMillijoules: 90_000_000}}
	apply(t, s, w, win(at(2, 0), at(2, 5), a, m, sh, f))

	type row struct {
		keys                                         string
		alloc, dev, used, idle, energy, fpga, billed int64
	}
	cases := []struct {
		name string
		q    ReportQuery
		want []row
	}{{
		name: "by project with billing weights",
		q: ReportQuery{From: time.Unix(at(0, 0), 0), To: time.Unix(at(3, 0), 0), GroupBy: []string{KeyProject},
			Weights: map[string]float64{"A100": 2, "T4": 0.333333}},
		want: []row{
			// cms: a 7200 s × 1000 + s 2700 s × 250; billed 14400000 + 675000 × 0.333333.
			{"[cms]", 7_875_000, 9900, 120000, 60000, 90_000_000, 0, 14_400_000 + 225_000},
			// lhcb: m 3600 × 143 (billed × 2, A100); the FPGA hour.
			{"[lhcb]", 514_800, 3600, 0, 0, 0, 3600, 1_029_600},
		},
	}, {
		name: "one hour by resource and profile",
		q:    ReportQuery{Cluster: testCluster, From: time.Unix(at(1, 0), 0), To: time.Unix(at(2, 0), 0), GroupBy: []string{KeyResource, KeyProfile}},
		want: []row{
			{"[gpu ]", 3_600_000, 3600, 0, 0, 0, 0, 3_600_000},
			{"[mig 1g.10gb]", 1800 * 143, 1800, 0, 0, 0, 0, 1800 * 143},
			{"[shared ]", 675_000, 2700, 0, 0, 0, 0, 675_000},
		},
	}, {
		name: "a total",
		q:    ReportQuery{From: time.Unix(at(0, 0), 0), To: time.Unix(at(1, 0), 0)},
		want: []row{{"[]", 3_600_000 + 1800*143, 5400, 120000, 60000, 90_000_000, 3600, 3_600_000 + 1800*143}},
	}, {
		name: "nothing in the range",
		q:    ReportQuery{From: time.Unix(at(5, 0), 0), To: time.Unix(at(6, 0), 0), GroupBy: []string{KeyProject}},
	}, {
		name: "nothing in the range of a known cluster",
		q: ReportQuery{Cluster: testCluster, From: time.Unix(at(5, 0), 0), To: time.Unix(at(6, 0), 0),
			GroupBy: []string{KeyProject}},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []row
			err := s.Report(ctx, c.q, func(r ReportRow) error {
				got = append(got, row{fmt.Sprint(r.Keys), r.AllocatedMilliGPUSeconds, r.DeviceSeconds, r.UsedMilliGPUSeconds,
					r.IdleMilliGPUSeconds, r.EnergyMillijoules, r.FPGASeconds, r.BilledMilliGPUSeconds})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("rows\n got %v\nwant %v", got, c.want)
			}
		})
	}

	bad := []struct {
		name string
		q    ReportQuery
		msg  string
	}{
		{"to before from", ReportQuery{From: time.Unix(at(2, 0), 0), To: time.Unix(at(1, 0), 0)}, "not after"},
		{"no range", ReportQuery{}, "required"},
		{"not on the hour", ReportQuery{From: time.Unix(at(0, 30), 0), To: time.Unix(at(2, 0), 0)}, "whole UTC hour"},
		{"a finer key", ReportQuery{From: time.Unix(at(0, 0), 0), To: time.Unix(at(2, 0), 0), GroupBy: []string{"node"}}, "finer"},
		{"an unknown cluster", ReportQuery{Cluster: "nope", From: time.Unix(at(0, 0), 0), To: time.Unix(at(2, 0), 0)}, "no data"},
		{"a negative weight", ReportQuery{From: time.Unix(at(0, 0), 0), To: time.Unix(at(2, 0), 0),
			Weights: map[string]float64{"A100": -1}}, "billing weight"},
		{"too many decimals", ReportQuery{From: time.Unix(at(0, 0), 0), To: time.Unix(at(2, 0), 0),
			Weights: map[string]float64{"A100": 0.1234567}}, "6 decimals"},
	}
	for _, c := range bad {
		err := s.Report(ctx, c.q, func(ReportRow) error { t.Errorf("%s: a row", c.name); return nil })
		if !errors.Is(err, ErrBadQuery) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want ErrBadQuery mentioning %q", c.name, err, c.msg)
		}
	}
	// The callback's error stops the report.
	stop := errors.New("stop")
	if err := s.Report(ctx, ReportQuery{From: time.Unix(at(0, 0), 0), To: time.Unix(at(3, 0), 0), GroupBy: []string{KeyProject}},
		func(ReportRow) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("callback error: %v", err)
	}
}

// TestReportSQLStable checks that a report's statement text depends on the
// query's shape only, so that pgx prepares it once per connection, and
// that its values travel as arguments.
func TestReportSQLStable(t *testing.T) {
	month := func(m string) (time.Time, time.Time) { return utc(m), utc(m).AddDate(0, 1, 0) }
	f1, t1 := month("2026-10-01T00:00:00Z")
	f2, t2 := month("2027-03-01T00:00:00Z")
	a, aArgs := reportSQL(ReportQuery{Cluster: "ai-infn", From: f1, To: t1, GroupBy: []string{KeyProject}}, nil, nil)
	b, bArgs := reportSQL(ReportQuery{Cluster: "other", From: f2, To: t2, GroupBy: []string{KeyProject}}, nil, nil)
	if a != b {
		t.Errorf("two months of two clusters by project: statements differ:\n%s\n---\n%s", a, b)
	}
	if len(aArgs) != 4 || aArgs[0] != "ai-infn" || bArgs[0] != "other" {
		t.Errorf("arguments %v and %v, want the cluster, the month and the bounds of the adjustments", aArgs, bArgs)
	}
	// A month by project reads the months' rows by project; by user, or
	// with billing weights (which need the model), the monthly rows.
	if !strings.Contains(a, "FROM ledger_monthly_project ") {
		t.Errorf("a month by project does not read ledger_monthly_project:\n%s", a)
	}
	for _, q := range []ReportQuery{
		{Cluster: "ai-infn", From: f1, To: t1, GroupBy: []string{KeyUser}},
		{Cluster: "ai-infn", From: f1, To: t1, GroupBy: []string{KeyProject}, Weights: map[string]float64{"A100": 2}},
	} {
		models, micro, err := weightMicro(q.Weights)
		if err != nil {
			t.Fatal(err)
		}
		if c, _ := reportSQL(q, models, micro); strings.Contains(c, "ledger_monthly_project") || !strings.Contains(c, "FROM ledger_monthly ") {
			t.Errorf("%+v: not read from ledger_monthly:\n%s", q, c)
		}
	}
	for _, other := range []ReportQuery{
		{From: f1, To: t1, GroupBy: []string{KeyProject}},                                    // every cluster
		{Cluster: "ai-infn", From: f1, To: t1, GroupBy: []string{KeyUser}},                   // other keys
		{Cluster: "ai-infn", From: f1.Add(time.Hour), To: t1, GroupBy: []string{KeyProject}}, // other segments
		{Cluster: "ai-infn", From: f1, To: t1, GroupBy: []string{KeyProject}, HourlyOnly: true},
	} {
		if c, _ := reportSQL(other, nil, nil); c == a {
			t.Errorf("%+v: same statement as a month by project of one cluster", other)
		}
	}
}
