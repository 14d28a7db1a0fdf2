package ledger

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gpuledger/gpuledger/internal/tabular"
)

// Group-by keys of reports: the names sim/truth uses, for the columns of
// the ledger key.
const (
	KeyProject   = "project"
	KeyUser      = "user"
	KeyNamespace = "namespace"
	KeyResource  = "resource" // the class: gpu, mig, shared, fpga, offload
	KeyModel     = "model"
	KeyProfile   = "profile"
	KeySite      = "site"
)

var keyColumn = map[string]string{
	KeyProject: "project", KeyUser: "user_name", KeyNamespace: "namespace", KeyResource: "class",
	KeyModel: "model", KeyProfile: "profile", KeySite: "site",
}

// notKept are sim/truth keys finer than the ledger's hourly key.
var notKept = []string{"node", "pod", "queue"}

// Keys returns the group-by keys reports know, in the ledger key's order.
func Keys() []string {
	return []string{KeyProject, KeyUser, KeyNamespace, KeyResource, KeyModel, KeyProfile, KeySite}
}

// ParseGroupBy parses a comma-separated list of group-by keys; spaces
// around keys are ignored and an empty list gives one total row.
func ParseGroupBy(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, k := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(k))
	}
	if err := checkGroupBy(out); err != nil {
		return nil, err
	}
	return out, nil
}

func checkGroupBy(groupBy []string) error {
	for i, k := range groupBy {
		if _, ok := keyColumn[k]; !ok {
			if slices.Contains(notKept, k) {
				return fmt.Errorf("%w: group-by key %q is finer than the ledger's hourly rows (keys: %s); "+
					"the intervals table keeps it for audit", ErrBadQuery, k, strings.Join(Keys(), ", "))
			}
			return fmt.Errorf("%w: unknown group-by key %q (known: %s)", ErrBadQuery, k, strings.Join(Keys(), ", "))
		}
		if slices.Contains(groupBy[:i], k) {
			return fmt.Errorf("%w: group-by key %q given twice", ErrBadQuery, k)
		}
	}
	return nil
}

// ReportQuery asks for the ledger's usage over [From, To), grouped.
type ReportQuery struct {
	// Cluster restricts the report to one cluster; "" sums every cluster.
	Cluster string
	// From and To are whole UTC hours, From before To.
	From, To time.Time
	// GroupBy are keys among Keys(); none gives one total row.
	GroupBy []string
	// Weights are billing weights by device model (as the ledger stores
	// it), with at most 6 decimals; a model not listed weighs 1. They
	// scale allocated GPU time into billed GPU time.
	Weights map[string]float64
	// HourlyOnly sums hourly rows even where day and month rollups cover
	// the range. The result is the same; it is for checking that.
	HourlyOnly bool
}

// ReportRow is one group of a report. Values include the adjustments
// recorded for hours of closed months inside the range.
type ReportRow struct {
	Keys                     []string // in the order of the query's GroupBy
	AllocatedMilliGPUSeconds int64
	DeviceSeconds            int64
	UsedMilliGPUSeconds      int64
	IdleMilliGPUSeconds      int64
	EnergyMillijoules        int64
	FPGASeconds              int64
	// BilledMilliGPUSeconds is Σ allocated × the model's weight, rounded
	// half away from zero to a milli-GPU-second.
	BilledMilliGPUSeconds int64
}

// Report columns after the group-by keys: hours (6 decimals, rounded
// half away from zero from the integers), then the exact integers.
const (
	ColAllocatedGPUHours        = "allocated_gpu_hours"
	ColUsedGPUHours             = "used_gpu_hours"
	ColIdleGPUHours             = "idle_gpu_hours"
	ColEnergyKWh                = "energy_kwh"
	ColFPGAHours                = "fpga_hours"
	ColBilledGPUHours           = "billed_gpu_hours"
	ColAllocatedMilliGPUSeconds = "allocated_milli_gpu_seconds"
	ColUsedMilliGPUSeconds      = "used_milli_gpu_seconds"
	ColIdleMilliGPUSeconds      = "idle_milli_gpu_seconds"
	ColEnergyMillijoules        = "energy_millijoules"
	ColFPGASeconds              = "fpga_seconds"
	ColDeviceSeconds            = "device_seconds"
	ColBilledMilliGPUSeconds    = "billed_milli_gpu_seconds"
)

// Units of the report's hour and energy columns.
const (
	milliGPUSecondsPerHour = 1000 * hourSeconds
	millijoulesPerKWh      = 3_600_000_000
	hourDecimals           = 6
)

// ReportColumns returns a report's columns: the group-by keys, the hour
// and energy columns, then the exact integer columns. billed adds the
// billed_gpu_hours and billed_milli_gpu_seconds columns.
func ReportColumns(groupBy []string, billed bool) []string {
	cols := append(slices.Clone(groupBy), ColAllocatedGPUHours, ColUsedGPUHours, ColIdleGPUHours, ColEnergyKWh, ColFPGAHours)
	if billed {
		cols = append(cols, ColBilledGPUHours)
	}
	cols = append(cols, ColAllocatedMilliGPUSeconds, ColUsedMilliGPUSeconds, ColIdleMilliGPUSeconds,
		ColEnergyMillijoules, ColFPGASeconds, ColDeviceSeconds)
	if billed {
		cols = append(cols, ColBilledMilliGPUSeconds)
	}
	return cols
}

// Cells returns the row in the order of ReportColumns.
func (r *ReportRow) Cells(billed bool) []tabular.Cell {
	out := make([]tabular.Cell, 0, len(r.Keys)+13)
	for _, k := range r.Keys {
		out = append(out, tabular.String(k))
	}
	out = append(out,
		tabular.Ratio(r.AllocatedMilliGPUSeconds, milliGPUSecondsPerHour, hourDecimals),
		tabular.Ratio(r.UsedMilliGPUSeconds, milliGPUSecondsPerHour, hourDecimals),
		tabular.Ratio(r.IdleMilliGPUSeconds, milliGPUSecondsPerHour, hourDecimals),
		tabular.Ratio(r.EnergyMillijoules, millijoulesPerKWh, hourDecimals),
		tabular.Ratio(r.FPGASeconds, hourSeconds, hourDecimals))
	if billed {
		out = append(out, tabular.Ratio(r.BilledMilliGPUSeconds, milliGPUSecondsPerHour, hourDecimals))
	}
	out = append(out, tabular.Int(r.AllocatedMilliGPUSeconds), tabular.Int(r.UsedMilliGPUSeconds),
		tabular.Int(r.IdleMilliGPUSeconds), tabular.Int(r.EnergyMillijoules), tabular.Int(r.FPGASeconds),
		tabular.Int(r.DeviceSeconds))
	if billed {
		out = append(out, tabular.Int(r.BilledMilliGPUSeconds))
	}
	return out
}

// weightMicro converts billing weights to integer millionths.
func weightMicro(weights map[string]float64) (models []string, micro []int64, err error) {
	models = slices.Sorted(maps.Keys(weights))
	micro = make([]int64, len(models))
	for i, m := range models {
		w := weights[m]
		if math.IsNaN(w) || math.IsInf(w, 0) || w < 0 || w > 1e6 {
			return nil, nil, fmt.Errorf("%w: billing weight of %q is %v, want a number from 0 to 1000000", ErrBadQuery, m, w)
		}
		scaled := w * 1e6
		if math.Abs(scaled-math.Round(scaled)) > 1e-3 {
			return nil, nil, fmt.Errorf("%w: billing weight of %q (%v) has more than 6 decimals", ErrBadQuery, m, w)
		}
		micro[i] = int64(math.Round(scaled))
	}
	return models, micro, nil
}

// segment is a part of a report's range read from one table.
type segment struct {
	table, col string
	from, to   time.Time
}

// clusterCond is the condition, followed by " AND ", that keeps the rows
// of cluster, or of every cluster when it is "": those with a watermark,
// which every cluster with ledger rows has (written in the same
// transaction). The list of clusters, read once per statement, lets the
// index be descended per cluster where no condition would read it whole.
func clusterCond(cluster string, arg func(any) string) string {
	if cluster == "" {
		return "cluster = ANY(ARRAY(SELECT cluster FROM watermarks)) AND "
	}
	return "cluster = " + arg(cluster) + " AND "
}

// maxPeriodList bounds the periods a segment names one by one (cond).
const maxPeriodList = 400

// cond is the condition on the period column that selects the segment's
// rows. Up to maxPeriodList periods it names each period's start: the
// ledger's primary keys begin with (cluster, period, project), so the
// index is descended once per period (and project, when the query names
// projects) and reads only the rows wanted, where a range of periods
// reads every row of the range and filters the projects afterwards
// (PostgreSQL 15 does not skip within an index). Longer segments are a
// range. arg adds an argument and returns its placeholder.
func (sg segment) cond(arg func(any) string) string {
	step := func(t time.Time) time.Time { return t.Add(time.Hour) }
	switch sg.col {
	case "day":
		step = func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
	case "month":
		step = func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
	}
	var starts []time.Time
	for t := sg.from; t.Before(sg.to); t = step(t) {
		if len(starts) == maxPeriodList {
			return fmt.Sprintf("%s >= %s AND %s < %s", sg.col, arg(sg.from), sg.col, arg(sg.to))
		}
		starts = append(starts, t)
	}
	return fmt.Sprintf("%s = ANY(%s::timestamptz[])", sg.col, arg(starts))
}

// plan splits [from, to) (whole UTC hours) into the fewest rows to read:
// whole months from ledger_monthly, whole days from ledger_daily, and the
// remaining hours at either end from ledger_hourly.
func plan(from, to time.Time, hourlyOnly bool) []segment {
	hourly := func(a, b time.Time) segment { return segment{"ledger_hourly", "hour", a, b} }
	d0 := utcDay(from)
	if !d0.Equal(from) {
		d0 = d0.AddDate(0, 0, 1)
	}
	d1 := utcDay(to)
	if hourlyOnly || !d0.Before(d1) {
		return []segment{hourly(from, to)}
	}
	var out []segment
	if from.Before(d0) {
		out = append(out, hourly(from, d0))
	}
	m0 := utcMonth(d0)
	if !m0.Equal(d0) {
		m0 = m0.AddDate(0, 1, 0)
	}
	m1 := utcMonth(d1)
	if m0.Before(m1) {
		if d0.Before(m0) {
			out = append(out, segment{"ledger_daily", "day", d0, m0})
		}
		out = append(out, segment{"ledger_monthly", "month", m0, m1})
		if m1.Before(d1) {
			out = append(out, segment{"ledger_daily", "day", m1, d1})
		}
	} else {
		out = append(out, segment{"ledger_daily", "day", d0, d1})
	}
	if d1.Before(to) {
		out = append(out, hourly(d1, to))
	}
	return out
}

// Report streams the groups of q, sorted by their keys (byte order), to
// fn, one row at a time as the database returns them. Groups whose values
// are all zero are left out. The values include, by the hour they
// correct, the adjustments recorded for closed months.
func (s *Store) Report(ctx context.Context, q ReportQuery, fn func(ReportRow) error) error {
	if err := q.Validate(); err != nil {
		return err
	}
	models, micro, err := weightMicro(q.Weights)
	if err != nil {
		return err
	}
	// One round trip: the cluster is a condition of the statement, whose
	// text depends only on the query's shape, so that pgx prepares it once
	// per connection. Only an empty answer asks whether the cluster exists.
	sql, args := reportSQL(q, models, micro)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer rows.Close()
	n := len(q.GroupBy)
	groups := 0
	for rows.Next() {
		groups++
		r := ReportRow{Keys: make([]string, n)}
		dest := make([]any, 0, n+7)
		for i := range r.Keys {
			dest = append(dest, &r.Keys[i])
		}
		dest = append(dest, &r.AllocatedMilliGPUSeconds, &r.DeviceSeconds, &r.UsedMilliGPUSeconds,
			&r.IdleMilliGPUSeconds, &r.EnergyMillijoules, &r.FPGASeconds, &r.BilledMilliGPUSeconds)
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return s.checkEmptyAnswer(ctx, q.Cluster, groups)
}

// checkEmptyAnswer turns an empty answer for an unknown cluster into the
// error that names the clusters there are. Every ledger row's cluster has
// a watermark, written in the same transaction: an unknown cluster can
// only give an empty answer, so only an empty answer asks.
func (s *Store) checkEmptyAnswer(ctx context.Context, cluster string, groups int) error {
	if groups > 0 || cluster == "" {
		return nil
	}
	_, err := s.reportClusters(ctx, cluster)
	return err
}

// Validate checks a query without asking the database; the errors wrap
// ErrBadQuery.
func (q *ReportQuery) Validate() error {
	if err := checkGroupBy(q.GroupBy); err != nil {
		return err
	}
	if err := checkRange(q.From, q.To); err != nil {
		return err
	}
	_, _, err := weightMicro(q.Weights)
	return err
}

// checkRange checks a report's range.
func checkRange(from, to time.Time) error {
	switch {
	case from.IsZero() || to.IsZero():
		return fmt.Errorf("%w: from and to are required", ErrBadQuery)
	case !to.After(from):
		return fmt.Errorf("%w: to %s is not after from %s", ErrBadQuery,
			to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"from", from}, {"to", to}} {
		if t.t.Nanosecond() != 0 || t.t.Unix()%hourSeconds != 0 {
			return fmt.Errorf("%w: %s %s is not a whole UTC hour (the ledger is hourly)", ErrBadQuery,
				t.name, t.t.Format(time.RFC3339Nano))
		}
	}
	return nil
}

// reportClusters is the list of clusters a report reads.
func (s *Store) reportClusters(ctx context.Context, cluster string) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT cluster FROM watermarks ORDER BY cluster")
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	all, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if cluster == "" {
		return all, nil
	}
	if !slices.Contains(all, cluster) {
		known := "none"
		if len(all) > 0 {
			known = strings.Join(all, ", ")
		}
		return nil, fmt.Errorf("%w: cluster %q has no data in the ledger (clusters: %s)", ErrBadQuery, cluster, known)
	}
	return []string{cluster}, nil
}

// reportSQL builds the report's query: the segments' rows (for whole
// months by project, or their total, ledger_monthly_project's) and the
// adjustments of the range, weighted by model, grouped and sorted. The
// rows are those of q.Cluster, or of every cluster when it is "" (every
// cluster with ledger rows has a watermark). The statement's text depends
// only on the query's shape — cluster or not, group-by keys, segments,
// weights or not — and its values are arguments.
//
// Groups are formed and sorted in the "C" collation: for the database's
// deterministic collations equal text is equal bytes, so the groups are
// the same, and one sort both groups and gives the byte order reports
// promise.
func reportSQL(q ReportQuery, models []string, micro []int64) (string, []any) {
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where := clusterCond(q.Cluster, arg)
	cols := make([]string, 0, len(q.GroupBy)+1)
	for _, k := range q.GroupBy {
		cols = append(cols, keyColumn[k])
	}
	if len(models) > 0 && !slices.Contains(cols, "model") {
		cols = append(cols, "model")
	}
	cols = append(cols, valCols)
	sel := strings.Join(cols, ", ")
	from, to := q.From.UTC(), q.To.UTC()
	// Whole months by project, or their total, without weights (which need
	// the model) are the months' rows by project.
	byProject := len(models) == 0 && (len(q.GroupBy) == 0 || slices.Equal(q.GroupBy, []string{KeyProject}))
	var parts []string
	for _, sg := range plan(from, to, q.HourlyOnly) {
		if sg.table == "ledger_monthly" && byProject {
			sg.table = "ledger_monthly_project"
		}
		parts = append(parts, fmt.Sprintf("SELECT %s FROM %s WHERE %s%s", sel, sg.table, where, sg.cond(arg)))
	}
	parts = append(parts, fmt.Sprintf("SELECT %s FROM ledger_adjustments WHERE %shour >= %s AND hour < %s",
		sel, where, arg(from), arg(to)))

	keys := make([]string, len(q.GroupBy))
	for i, k := range q.GroupBy {
		keys[i] = "r." + keyColumn[k] + ` COLLATE "C"`
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	for _, k := range keys {
		b.WriteString(k + ", ")
	}
	b.WriteString(`sum(r.allocated_milli_gpu_seconds)::bigint, sum(r.device_seconds)::bigint,
	sum(r.used_milli_gpu_seconds)::bigint, sum(r.idle_milli_gpu_seconds)::bigint,
	sum(r.energy_millijoules)::bigint, sum(r.fpga_seconds)::bigint, `)
	if len(models) > 0 {
		fmt.Fprintf(&b, "round(sum(r.allocated_milli_gpu_seconds::numeric * coalesce(bw.micro, 1000000)) / 1000000)::bigint\n"+
			"FROM (%s) r\nLEFT JOIN unnest(%s::text[], %s::bigint[]) AS bw(model, micro) ON bw.model = r.model\n",
			strings.Join(parts, "\nUNION ALL\n"), arg(models), arg(micro))
	} else {
		fmt.Fprintf(&b, "sum(r.allocated_milli_gpu_seconds)::bigint\nFROM (%s) r\n", strings.Join(parts, "\nUNION ALL\n"))
	}
	if len(keys) > 0 {
		b.WriteString("GROUP BY " + strings.Join(keys, ", ") + "\n")
	}
	b.WriteString(`HAVING sum(r.allocated_milli_gpu_seconds) <> 0 OR sum(r.device_seconds) <> 0
	OR sum(r.used_milli_gpu_seconds) <> 0 OR sum(r.idle_milli_gpu_seconds) <> 0
	OR sum(r.energy_millijoules) <> 0 OR sum(r.fpga_seconds) <> 0`)
	if len(keys) > 0 {
		b.WriteString("\nORDER BY " + strings.Join(keys, ", "))
	}
	return b.String(), args
}
