package dashboards

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gpuledger/gpuledger/aggregator/intervals"
	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/aggregator/source"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/exporters/sim"
	"github.com/gpuledger/gpuledger/internal/pgtest"
	"github.com/gpuledger/gpuledger/sim/clock"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// TestDashboardsSQL runs every SQL query of every dashboard, and the SQL
// query variables, against the real ledger schema in a fresh PostgreSQL
// database holding the ledger of testdata/scenarios/small.yaml: the
// simulated exporters scraped every 15 s, reconstructed by the aggregator's
// interval reconstruction and written with Store.ApplyWindow, plus the
// scenario's Kueue quotas. Grafana's variables and macros are expanded for
// the scenario's six hours. Each query must run and return rows; a result
// of numbers only must hold one that is not zero (a filter that matches
// nothing summed to 0 would otherwise pass). The project table must also
// equal the ledger's own report (Store.Report).
func TestDashboardsSQL(t *testing.T) {
	t.Parallel()
	s, err := scenario.Load(scenarioFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := ledger.Open(ctx, pgtest.New(t), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	fillLedger(t, ctx, store, s)

	ran := 0
	for _, b := range buildAll(t) {
		vals := values(&b.d)
		t.Run(b.d.UID, func(t *testing.T) {
			for _, v := range b.d.Templating.List {
				if v.Type != "query" || v.Datasource.Type != PostgresType {
					continue
				}
				q, _ := v.Query.(string)
				rows, err := runSQL(ctx, store, q, &b.d, vals, s)
				if err != nil {
					t.Errorf("variable %s: %v", v.Name, err)
					continue
				}
				var offered []string
				for _, r := range rows {
					offered = append(offered, fmt.Sprint(r[0]))
				}
				for _, want := range vals[v.Name] {
					if !slices.Contains(offered, want) {
						t.Errorf("variable %s offers %v, not %q", v.Name, offered, want)
					}
				}
			}
			for _, q := range b.targets() {
				if q.panel.Datasource.Type != PostgresType {
					continue
				}
				rows, err := runSQL(ctx, store, q.RawSQL, &b.d, vals, s)
				if err != nil {
					t.Errorf("%s %q: %v", q.key(), q.panel.Title, err)
					continue
				}
				ran++
				t.Logf("%s %q: %d rows, first %v", q.key(), q.panel.Title, len(rows), firstRow(rows))
				if err := meaningful(rows); err != nil {
					t.Errorf("%s %q: %v", q.key(), q.panel.Title, err)
				}
				if q.Format == string(SQLFormatTimeSeries) {
					if err := timeSeriesShape(rows); err != nil {
						t.Errorf("%s %q: %v", q.key(), q.panel.Title, err)
					}
				}
			}
		})
	}
	if ran == 0 {
		t.Error("no SQL query ran")
	}
	t.Logf("%d SQL queries returned rows", ran)
	t.Run("equals the report", func(t *testing.T) { checkEqualsReport(t, ctx, store, s) })
}

// checkEqualsReport: the project table's GPU-hours are the ledger's report
// by project, to the nano-GPU-hour, for every project of the cluster.
func checkEqualsReport(t *testing.T, ctx context.Context, store *ledger.Store, s *scenario.Scenario) {
	want := map[string]int64{}
	err := store.Report(ctx, ledger.ReportQuery{Cluster: s.Cluster, From: s.Start, To: s.End, GroupBy: []string{"project"}},
		func(r ledger.ReportRow) error {
			want[r.Keys[0]] = r.AllocatedMilliGPUSeconds
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	var table *target
	for _, b := range buildAll(t) {
		for _, q := range b.targets() {
			if q.key() == "gpuledger-project-accounting/8/A" {
				table = &q
			}
		}
	}
	if table == nil {
		t.Fatal("no query gpuledger-project-accounting/8/A (Projects over the range)")
	}
	var projects []string
	for p := range want {
		projects = append(projects, p)
	}
	d := &jsonDashboard{UID: table.dashboard}
	d.Templating.List = []jsonVar{{Name: "cluster"}, {Name: "project", Multi: true, IncludeAll: true}}
	rows, err := runSQL(ctx, store, table.RawSQL, d, map[string][]string{"cluster": {s.Cluster}, "project": projects}, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want) || len(want) < 3 {
		t.Errorf("%d rows for %d projects of the report", len(rows), len(want))
	}
	for _, r := range rows {
		project := fmt.Sprint(r[0])
		got, ok := asFloat(r[1])
		if !ok || math.Abs(got-float64(want[project])/3.6e6) > 1e-9 {
			t.Errorf("project %s: %v GPU-hours, the report says %.9f", project, r[1], float64(want[project])/3.6e6)
		}
	}
}

// runSQL expands q as Grafana would for the scenario's time range and runs
// it; it returns the rows' values.
func runSQL(ctx context.Context, store *ledger.Store, q string, d *jsonDashboard, vals map[string][]string, s *scenario.Scenario) ([][]any, error) {
	sql, err := interpolate(q, PostgresType, d.Templating.List, vals, nil)
	if err != nil {
		return nil, err
	}
	if sql, err = expandSQLMacros(sql, s.Start, s.End, time.Minute); err != nil {
		return nil, err
	}
	rows, err := store.Pool().Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, sql)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, sql)
	}
	return out, nil
}

// firstRow is the first row for the log, numbers as numbers.
func firstRow(rows [][]any) []any {
	if len(rows) == 0 {
		return nil
	}
	out := make([]any, len(rows[0]))
	for i, v := range rows[0] {
		if f, ok := asFloat(v); ok {
			out[i] = f
		} else {
			out[i] = v
		}
	}
	return out
}

// meaningful: at least one row, and when every value is a number (a stat),
// one that is not zero.
func meaningful(rows [][]any) error {
	if len(rows) == 0 {
		return errors.New("no rows")
	}
	for _, r := range rows {
		for _, v := range r {
			f, ok := asFloat(v)
			if !ok && v != nil {
				return nil // text or time: the rows say something
			}
			if ok && f != 0 {
				return nil
			}
		}
	}
	return fmt.Errorf("only zeros and NULLs: %v", rows)
}

// timeSeriesShape: a time series query returns a time column first,
// sorted.
func timeSeriesShape(rows [][]any) error {
	var last time.Time
	for i, r := range rows {
		ts, ok := r[0].(time.Time)
		if !ok {
			return fmt.Errorf("row %d: first column %T, want a time", i, r[0])
		}
		if ts.Before(last) {
			return fmt.Errorf("row %d: time %s before %s: Grafana wants time series sorted", i, ts, last)
		}
		last = ts
	}
	return nil
}

// asFloat reads the numeric values pgx returns.
func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case float64:
		return x, true
	case pgtype.Numeric:
		if !x.Valid {
			return 0, false
		}
		f, err := x.Float64Value()
		if err != nil || !f.Valid {
			return 0, false
		}
		return f.Float64, true
	case *big.Int:
		f, _ := new(big.Float).SetInt(x).Float64()
		return f, true
	}
	return 0, false
}

// fillLedger writes the ledger of the scenario: every node's simulated
// exporter read at every scrape instant (failed inside its faults), the
// scrapes reconstructed into windows as the aggregator does, each window
// applied; and the scenario's ClusterQueue quotas from its start, accounted
// to the project of the queue's name (the default attribution rules).
func fillLedger(t *testing.T, ctx context.Context, store *ledger.Store, s *scenario.Scenario) {
	t.Helper()
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	rec, err := intervals.New(intervals.Config{Cluster: s.Cluster, ScrapeInterval: s.ScrapeInterval.D()})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range s.Nodes {
		src, err := sim.New(s, allocs, n.Name, clock.Fixed(s.Start), sim.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for at := s.Start; !at.After(s.End); at = at.Add(s.ScrapeInterval.D()) {
			sc, err := scrape(src, n.Name, at)
			if err != nil {
				t.Fatal(err)
			}
			rec.Observe(sc)
		}
	}
	windows := rec.Close(s.End.Unix())
	if len(windows) == 0 {
		t.Fatal("the reconstruction closed no window")
	}
	for _, w := range windows {
		if err := store.ApplyWindow(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	var quotas []ledger.Quota
	for _, cq := range s.ClusterQueues {
		for res, n := range cq.Quota {
			quotas = append(quotas, ledger.Quota{Cluster: s.Cluster, Queue: cq.Name, Resource: res, Project: cq.Name,
				From: s.Start, NominalMilli: n * 1000})
		}
	}
	if err := store.UpsertQuotas(ctx, quotas); err != nil {
		t.Fatal(err)
	}
}

// scrape is what the node's exporter answers at a scrape instant: a failed
// scrape inside a fault, else its families parsed as the aggregator parses
// them.
func scrape(src *sim.Source, node string, at time.Time) (observe.Scrape, error) {
	if err := src.Check(at); err != nil {
		if errors.Is(err, sim.ErrUnavailable) {
			return observe.Scrape{Target: node, Time: at.UnixMilli()}, nil
		}
		return observe.Scrape{}, err
	}
	c, err := src.At(at)
	if err != nil {
		return observe.Scrape{}, err
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(unchecked{c}); err != nil {
		return observe.Scrape{}, err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return observe.Scrape{}, err
	}
	fams := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		fams[mf.GetName()] = mf
	}
	sc, err := source.ParseFamilies(node, fams, at)
	if err != nil {
		return observe.Scrape{}, fmt.Errorf("node %s at %s: %w", node, at.Format(time.RFC3339), err)
	}
	return sc, nil
}

// unchecked serves a source collector as a Prometheus collector.
type unchecked struct{ c collector.Collector }

func (unchecked) Describe(chan<- *prometheus.Desc) {}

func (u unchecked) Collect(ch chan<- prometheus.Metric) {
	if err := u.c.Update(ch); err != nil {
		ch <- prometheus.NewInvalidMetric(prometheus.NewInvalidDesc(err), err)
	}
}
