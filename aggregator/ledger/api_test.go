package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// reportRows returns Report's rows of q as text.
func reportRows(t *testing.T, s *Store, q ReportQuery) []ReportRow {
	t.Helper()
	var out []ReportRow
	if err := s.Report(context.Background(), q, func(r ReportRow) error { out = append(out, r); return nil }); err != nil {
		t.Fatalf("Report: %v", err)
	}
	return out
}

func usageRows(t *testing.T, s *Store, q UsageQuery) []UsageRow {
	t.Helper()
	var out []UsageRow
	if err := s.Usage(context.Background(), q, func(r UsageRow) error { out = append(out, r); return nil }); err != nil {
		t.Fatalf("Usage: %v", err)
	}
	return out
}

func rowText(r ReportRow) string {
	return fmt.Sprintf("%q %d %d %d %d %d %d %d", r.Keys, r.AllocatedMilliGPUSeconds, r.DeviceSeconds,
		r.UsedMilliGPUSeconds, r.IdleMilliGPUSeconds, r.EnergyMillijoules, r.FPGASeconds, r.BilledMilliGPUSeconds)
}

func texts(rows []ReportRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = rowText(r)
	}
	return out
}

// sumPeriods adds up the periods of usage rows by key, in key order.
func sumPeriods(rows []UsageRow) []ReportRow {
	byKey := map[string]*ReportRow{}
	var keys []string
	for _, r := range rows {
		k := strings.Join(r.Keys, "\x00")
		g := byKey[k]
		if g == nil {
			g = &ReportRow{Keys: r.Keys}
			byKey[k] = g
			keys = append(keys, k)
		}
		g.AllocatedMilliGPUSeconds += r.AllocatedMilliGPUSeconds
		g.DeviceSeconds += r.DeviceSeconds
		g.UsedMilliGPUSeconds += r.UsedMilliGPUSeconds
		g.IdleMilliGPUSeconds += r.IdleMilliGPUSeconds
		g.EnergyMillijoules += r.EnergyMillijoules
		g.FPGASeconds += r.FPGASeconds
		g.BilledMilliGPUSeconds += r.BilledMilliGPUSeconds
	}
	slices.Sort(keys) // byte order, as the ledger sorts
	out := make([]ReportRow, 0, len(keys))
	for _, k := range keys {
		out = append(out, *byKey[k])
	}
	return out
}

// TestUsageEqualsReport checks Usage against Report on a generated
// ledger: without filters it is Report; with a granularity its periods,
// read from rollups or from hours alike, add up to Report's rows.
func TestUsageEqualsReport(t *testing.T) {
	s, _ := newStore(t, Options{})
	_, windows, _ := generated()
	apply(t, s, windows...)

	ranges := [][2]string{
		{"2026-10-28T00:00:00Z", "2026-12-03T00:00:00Z"},
		{"2026-10-29T05:00:00Z", "2026-12-02T19:00:00Z"},
		{"2026-10-31T23:00:00Z", "2026-11-01T01:00:00Z"},
		{"2026-11-03T07:00:00Z", "2026-11-05T08:00:00Z"},
	}
	groupBys := [][]string{nil, {KeyProject}, {KeyUser, KeyResource}, Keys()}
	for _, rg := range ranges {
		from, to := utc(rg[0]), utc(rg[1])
		for _, gb := range groupBys {
			rq := ReportQuery{Cluster: testCluster, From: from, To: to, GroupBy: gb, Weights: map[string]float64{"A100": 1.5}}
			want := texts(reportRows(t, s, rq))
			if len(want) == 0 {
				t.Fatalf("%v by %v: no rows", rg, gb)
			}
			for _, g := range []string{"", GranularityHour, GranularityDay, GranularityMonth} {
				name := fmt.Sprintf("%v by %v per %q", rg, gb, g)
				auto := usageRows(t, s, UsageQuery{ReportQuery: rq, Granularity: g, Visible: Visibility{All: true}})
				hq := rq
				hq.HourlyOnly = true
				hourly := usageRows(t, s, UsageQuery{ReportQuery: hq, Granularity: g, Visible: Visibility{All: true}})
				if fmt.Sprint(auto) != fmt.Sprint(hourly) {
					t.Errorf("%s: rollups and hours differ:\n%v\n%v", name, auto, hourly)
				}
				if g == "" {
					sameRows(t, name, texts(sumPeriods(auto)), want)
					continue
				}
				sameRows(t, name+" summed", texts(sumPeriods(auto)), want)
				for i, r := range auto {
					if !r.Start.Equal(truncate(r.Start, g)) || r.Start.Before(truncate(from, g)) || !r.Start.Before(to) {
						t.Errorf("%s: period %s is not a %s of the range", name, r.Start, g)
					}
					if i > 0 && r.Start.Before(auto[i-1].Start) {
						t.Errorf("%s: periods out of order", name)
					}
				}
			}
		}
	}
}

func truncate(t time.Time, g string) time.Time {
	switch g {
	case GranularityDay:
		return utcDay(t)
	case GranularityMonth:
		return utcMonth(t)
	}
	return t.Truncate(time.Hour)
}

// TestUsageFilters checks that filters and visibility keep exactly the
// rows they name: Usage grouped by every key equals Report's rows
// filtered here.
func TestUsageFilters(t *testing.T) {
	s, _ := newStore(t, Options{})
	_, windows, _ := generated()
	apply(t, s, windows...)
	from, to := utc("2026-10-29T05:00:00Z"), utc("2026-12-02T19:00:00Z")
	all := reportRows(t, s, ReportQuery{From: from, To: to, GroupBy: Keys()})
	// Keys() order: project, user, namespace, resource, …
	cases := []struct {
		name                string
		projects, users, rs []string
		vis                 Visibility
	}{
		{name: "everything", vis: Visibility{All: true}},
		{name: "nothing visible", vis: Visibility{}},
		{name: "a project", projects: []string{"cms"}, vis: Visibility{All: true}},
		{name: "a formula project", projects: []string{"=HYPERLINK(\"x\")"}, vis: Visibility{All: true}},
		{name: "a user and two classes", users: []string{"bob"}, rs: []string{"gpu", "offload"}, vis: Visibility{All: true}},
		{name: "own rows", vis: Visibility{User: "alice"}},
		{name: "a manager's project and own rows", vis: Visibility{Projects: []string{"lhcb"}, User: "bob"}},
		{name: "a manager filtering another project", projects: []string{"cms"}, vis: Visibility{Projects: []string{"lhcb"}}},
		{name: "a user filtering a user", users: []string{"bob"}, vis: Visibility{User: "alice"}},
		{name: "an unknown user", users: []string{"mallory"}, vis: Visibility{All: true}},
	}
	in := func(list []string, v string) bool { return len(list) == 0 || slices.Contains(list, v) }
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want []ReportRow
			for _, r := range all {
				p, u, cl := r.Keys[0], r.Keys[1], r.Keys[3]
				visible := c.vis.All || slices.Contains(c.vis.Projects, p) || (c.vis.User != "" && u == c.vis.User)
				if visible && in(c.projects, p) && in(c.users, u) && in(c.rs, cl) {
					want = append(want, r)
				}
			}
			got := usageRows(t, s, UsageQuery{ReportQuery: ReportQuery{From: from, To: to, GroupBy: Keys()},
				Projects: c.projects, Users: c.users, Resources: c.rs, Visible: c.vis})
			var gotRows []ReportRow
			for _, r := range got {
				gotRows = append(gotRows, r.ReportRow)
			}
			sameRows(t, c.name, texts(gotRows), texts(want))
			if c.name == "everything" && len(want) == len(all) && len(all) < 10 {
				t.Errorf("the generated ledger has only %d groups", len(all))
			}
		})
	}
}

func TestIdle(t *testing.T) {
	s, _ := newStore(t, Options{})
	_, windows, _ := generated()
	apply(t, s, windows...)
	from, to := utc("2026-10-28T00:00:00Z"), utc("2026-12-03T00:00:00Z")
	gb := []string{KeyProject, KeyUser, KeyNamespace}
	var want []ReportRow
	for _, r := range reportRows(t, s, ReportQuery{From: from, To: to, GroupBy: gb}) {
		if r.IdleMilliGPUSeconds > 0 {
			want = append(want, r)
		}
	}
	slices.SortStableFunc(want, func(a, b ReportRow) int { return cmp.Compare(b.IdleMilliGPUSeconds, a.IdleMilliGPUSeconds) })
	if len(want) < 3 {
		t.Fatalf("only %d groups with idle time", len(want))
	}
	for _, limit := range []int{0, 2} {
		var got []ReportRow
		err := s.Idle(context.Background(), UsageQuery{ReportQuery: ReportQuery{From: from, To: to, GroupBy: gb},
			Granularity: GranularityDay, Visible: Visibility{All: true}}, limit, func(r ReportRow) error {
			got = append(got, r)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		w := want
		if limit > 0 {
			w = want[:limit]
		}
		sameRows(t, fmt.Sprintf("idle, limit %d", limit), texts(got), texts(w))
	}
}

func TestUsageBadQueries(t *testing.T) {
	s, _ := newStore(t, Options{})
	apply(t, s, win(at(0, 0), at(1, 0), iv("a", at(0, 0), at(1, 0))))
	ok := ReportQuery{From: time.Unix(at(0, 0), 0), To: time.Unix(at(1, 0), 0)}
	cases := []struct {
		name string
		q    UsageQuery
		msg  string
	}{
		{"granularity", UsageQuery{ReportQuery: ok, Granularity: "week"}, "unknown granularity"},
		{"class", UsageQuery{ReportQuery: ok, Resources: []string{"tpu"}}, "unknown resource class"},
		{"not text", UsageQuery{ReportQuery: ok, Users: []string{"a\x00b"}}, "not UTF-8"},
		{"range", UsageQuery{ReportQuery: ReportQuery{From: ok.To, To: ok.From}}, "not after"},
		{"key", UsageQuery{ReportQuery: ReportQuery{From: ok.From, To: ok.To, GroupBy: []string{"pod"}}}, "finer"},
	}
	for _, c := range cases {
		err := s.Usage(context.Background(), c.q, func(UsageRow) error { return nil })
		if !errors.Is(err, ErrBadQuery) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want ErrBadQuery mentioning %q", c.name, err, c.msg)
		}
	}
}

func TestUsageColumnsAndCells(t *testing.T) {
	cols := UsageColumns(GranularityDay, []string{KeyProject}, false)
	if cols[0] != "day" || cols[1] != KeyProject || cols[2] != ColAllocatedGPUHours {
		t.Errorf("columns %v", cols)
	}
	r := UsageRow{Start: utc("2026-11-02T00:00:00Z"), ReportRow: ReportRow{Keys: []string{"cms"}, AllocatedMilliGPUSeconds: 5_400_000}}
	cells := r.Cells(GranularityDay, false)
	if len(cells) != len(cols) || cells[0].Text() != "2026-11-02T00:00:00Z" || cells[2].Text() != "1.500000" {
		t.Errorf("cells %v for columns %v", cells, cols)
	}
	if got := UsageColumns("", nil, true); !slices.Equal(got, ReportColumns(nil, true)) {
		t.Errorf("no granularity: %v", got)
	}
}

// TestProjectsMonthsLatestHour checks the small reads of the API.
func TestProjectsMonthsLatestHour(t *testing.T) {
	now := utc("2026-12-15T00:00:00Z")
	s, _ := newStore(t, Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	oct := unix("2026-10-31T22:00:00Z")
	apply(t, s,
		win(oct, at(4, 0),
			iv("a", oct, at(0, 0)),                                  // cms/bob, October and November
			iv("b", at(1, 0), at(3, 30), project("atlas", "carol")), // November only
			iv("c", at(0, 0), at(1, 0), project("=cmd|'/c calc'!A0", "eve"))),
		observe.Window{Cluster: "other", From: at(0, 0), To: at(1, 0), Intervals: []observe.Interval{iv("d", at(0, 0), at(1, 0))}},
	)
	names := func(v Visibility) string {
		ps, err := s.Projects(ctx, "", v)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range ps {
			out = append(out, fmt.Sprintf("%s %s %s", p.Name, p.FirstMonth.Format("2006-01"), p.LastMonth.Format("2006-01")))
		}
		return strings.Join(out, ", ")
	}
	for _, c := range []struct {
		v    Visibility
		want string
	}{
		{Visibility{All: true}, "=cmd|'/c calc'!A0 2026-11 2026-11, atlas 2026-11 2026-11, cms 2026-10 2026-11"},
		{Visibility{User: "carol"}, "atlas 2026-11 2026-11"},
		{Visibility{Projects: []string{"cms"}, User: "carol"}, "atlas 2026-11 2026-11, cms 2026-10 2026-11"},
		{Visibility{}, ""},
	} {
		if got := names(c.v); got != c.want {
			t.Errorf("Projects(%+v) = %q, want %q", c.v, got, c.want)
		}
	}
	if _, err := s.Projects(ctx, "nope", Visibility{All: true}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("unknown cluster: %v", err)
	}

	h, ok, err := s.LatestHour(ctx, "")
	if err != nil || !ok || !h.Equal(time.Unix(at(3, 0), 0)) {
		t.Errorf("LatestHour = %s %v %v, want %s", h, ok, err, time.Unix(at(3, 0), 0).UTC())
	}
	if h, ok, err := s.LatestHour(ctx, "other"); err != nil || !ok || !h.Equal(time.Unix(at(0, 0), 0)) {
		t.Errorf("LatestHour(other) = %s %v %v", h, ok, err)
	}

	october := utc("2026-10-01T00:00:00Z")
	closed := func(cluster string, m time.Time) bool {
		c, err := s.MonthClosed(ctx, cluster, m)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if closed("", october) || closed(testCluster, october) {
		t.Error("October closed before CloseMonth")
	}
	if err := s.CloseMonth(ctx, testCluster, october); err != nil {
		t.Fatal(err)
	}
	if !closed(testCluster, october.Add(72*time.Hour)) {
		t.Error("October of ai-infn not closed after CloseMonth")
	}
	if closed("", october) {
		t.Error("October closed for every cluster while 'other' has not closed it")
	}
	if closed(testCluster, utc("2026-11-01T00:00:00Z")) {
		t.Error("November closed")
	}
}

func TestEmptyLedgerReads(t *testing.T) {
	s, _ := newStore(t, Options{})
	ctx := context.Background()
	if _, ok, err := s.LatestHour(ctx, ""); ok || err != nil {
		t.Errorf("LatestHour of an empty ledger: %v %v", ok, err)
	}
	if c, err := s.MonthClosed(ctx, "", utc("2026-10-01T00:00:00Z")); c || err != nil {
		t.Errorf("MonthClosed of an empty ledger: %v %v", c, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestQuotaUsage(t *testing.T) {
	s, _ := newStore(t, Options{})
	ctx := context.Background()
	apply(t, s, win(at(0, 0), at(5, 0),
		iv("a", at(0, 0), at(3, 0)),                                                 // cms/bob: 3 GPU-hours
		iv("o", at(2, 0), at(3, 0), offload(2)),                                     // cms/bob offloaded: 2 GPUs × 1 h
		iv("m", at(0, 30), at(2, 30), mig("1g.10gb", 143), project("cms", "alice")), // 2 h of a slice
		iv("n", at(0, 0), at(1, 0), mig("3g.40gb", 500)),                            // another profile
		iv("f", at(0, 0), at(1, 0), fpga()),                                         // 1 h of FPGA
		iv("x", at(0, 0), at(5, 0), project("atlas", "carol")),                      // atlas: 5 h
	))
	nov1 := utc("2026-11-01T00:00:00Z")
	quotas := []Quota{
		{Cluster: testCluster, Queue: "cms", Resource: "nvidia.com/gpu", Project: "cms", From: nov1, NominalMilli: 2000},
		{Cluster: testCluster, Queue: "cms", Resource: "nvidia.com/gpu", Project: "cms", From: time.Unix(at(2, 0), 0), NominalMilli: 1000},
		{Cluster: testCluster, Queue: "cms", Resource: "nvidia.com/mig-1g.10gb", Project: "cms", From: nov1, NominalMilli: 4000},
		{Cluster: testCluster, Queue: "cms", Resource: "xilinx.com/fpga-u55c", Project: "cms", From: nov1, NominalMilli: 1000},
		{Cluster: testCluster, Queue: "cms", Resource: "cpu", Project: "cms", From: nov1, NominalMilli: 64000},
		{Cluster: testCluster, Queue: "atlas-cq", Resource: "nvidia.com/gpu", Project: "atlas", From: time.Unix(at(1, 0), 0), NominalMilli: 500},
		// After the range: not in force.
		{Cluster: testCluster, Queue: "late", Resource: "nvidia.com/gpu", Project: "cms", From: time.Unix(at(9, 0), 0), NominalMilli: 1000},
	}
	if err := s.UpsertQuotas(ctx, quotas); err != nil {
		t.Fatal(err)
	}
	// Upserting again, and correcting one value, keeps one row per key.
	quotas[5].NominalMilli = 1000
	if err := s.UpsertQuotas(ctx, quotas); err != nil {
		t.Fatal(err)
	}
	hist, err := s.Quotas(ctx, testCluster)
	if err != nil || len(hist) != len(quotas) {
		t.Fatalf("Quotas: %d rows, %v; want %d", len(hist), err, len(quotas))
	}
	if hist[0].Queue != "atlas-cq" || hist[0].NominalMilli != 1000 || !hist[0].From.Equal(time.Unix(at(1, 0), 0)) {
		t.Errorf("first quota %+v", hist[0])
	}

	from, to := time.Unix(at(0, 0), 0), time.Unix(at(5, 0), 0)
	text := func(rows []QuotaRow) []string {
		var out []string
		for _, r := range rows {
			out = append(out, fmt.Sprintf("%s/%s %s %s nominal=%d quota=%d accounted=%v used=%d alloc=%d", r.Cluster, r.Queue,
				r.Resource, r.Project, r.NominalMilli, r.QuotaMilliSeconds, r.Accounted, r.UsedDeviceSeconds, r.AllocatedMilliGPUSeconds))
		}
		return out
	}
	rows, err := s.QuotaUsage(ctx, QuotaQuery{From: from, To: to, Visible: Visibility{All: true}})
	if err != nil {
		t.Fatal(err)
	}
	sameRows(t, "quota usage", text(rows), []string{
		// 1 GPU from 01:00 (4 h).
		"ai-infn/atlas-cq nvidia.com/gpu atlas nominal=1000 quota=14400000 accounted=true used=18000 alloc=18000000",
		// cpu is not accounted.
		"ai-infn/cms cpu cms nominal=64000 quota=1152000000 accounted=false used=0 alloc=0",
		// 2 GPUs for 2 h, then 1 for 3 h; used: 3 h local + 2 × 1 h offloaded.
		"ai-infn/cms nvidia.com/gpu cms nominal=1000 quota=25200000 accounted=true used=18000 alloc=18000000",
		// 4 slices for 5 h; used: alice's 1g.10gb 2 h, not bob's 3g.40gb.
		"ai-infn/cms nvidia.com/mig-1g.10gb cms nominal=4000 quota=72000000 accounted=true used=7200 alloc=1029600",
		"ai-infn/cms xilinx.com/fpga-u55c cms nominal=1000 quota=18000000 accounted=true used=3600 alloc=0",
	})
	rows, err = s.QuotaUsage(ctx, QuotaQuery{From: from, To: to, Visible: Visibility{Projects: []string{"atlas"}, User: "bob"}})
	if err != nil || len(rows) != 1 || rows[0].Project != "atlas" {
		t.Errorf("visible atlas: %v %v", text(rows), err)
	}
	rows, err = s.QuotaUsage(ctx, QuotaQuery{From: from, To: to, Visible: Visibility{User: "bob"}})
	if err != nil || len(rows) != 0 {
		t.Errorf("a user sees no quota: %v %v", text(rows), err)
	}
	rows, err = s.QuotaUsage(ctx, QuotaQuery{From: from, To: to, Projects: []string{"cms"}, Visible: Visibility{All: true}})
	if err != nil || len(rows) != 4 {
		t.Errorf("cms filter: %v %v", text(rows), err)
	}
	if _, err := s.QuotaUsage(ctx, QuotaQuery{From: to, To: from, Visible: Visibility{All: true}}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("bad range: %v", err)
	}

	for _, q := range []Quota{
		{Queue: "q", Resource: "nvidia.com/gpu", Project: "p", From: nov1},
		{Cluster: "c", Queue: "q", Resource: "nvidia.com/gpu", Project: "p"},
		{Cluster: "c", Queue: "q", Resource: "nvidia.com/gpu", Project: "p", From: nov1, NominalMilli: -1},
		{Cluster: "c", Queue: "q\x00", Resource: "nvidia.com/gpu", Project: "p", From: nov1},
	} {
		if err := s.UpsertQuotas(ctx, []Quota{q}); !errors.Is(err, ErrBadQuota) {
			t.Errorf("UpsertQuotas(%+v): %v, want ErrBadQuota", q, err)
		}
	}
}
