package ledger

// Reads for the accounting API (package api): usage with filters, a time
// column and the caller's visibility, idle GPU time, the projects, the
// status of a month, and Kueue quotas against usage. They add to Report
// without changing it: every filter is a SQL condition on the rows read,
// so that what a caller may not see never leaves the database.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gpuledger/gpuledger/accounting"
	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/internal/tabular"
)

// Granularities of a usage query's time column.
const (
	GranularityHour  = "hour"
	GranularityDay   = "day"
	GranularityMonth = "month"
)

// Granularities returns the granularities a usage query knows.
func Granularities() []string {
	return []string{GranularityHour, GranularityDay, GranularityMonth}
}

// Classes returns the resource classes the ledger keeps: the values of
// the "resource" key.
func Classes() []string {
	return []string{string(accounting.ClassGPU), string(accounting.ClassMIG), string(accounting.ClassShared),
		string(accounting.ClassFPGA), string(accounting.ClassOffload)}
}

// Visibility is the part of the ledger a caller may read: the rows of the
// projects listed and the rows whose user is User, or every row with All.
// The zero value sees nothing.
type Visibility struct {
	All      bool
	Projects []string
	User     string
}

// UsageQuery is a report query narrowed by filters and by the caller's
// visibility, with an optional time column.
type UsageQuery struct {
	ReportQuery
	// Projects, Users and Resources keep the rows whose project, user or
	// resource class is listed; an empty list keeps every row.
	Projects, Users, Resources []string
	// Granularity adds a first column, the start of the row's hour, day
	// or month (UTC); "" gives one row per group over the whole range.
	Granularity string
	// Visible restricts the rows read to what the caller may see.
	Visible Visibility
}

// Validate checks a query without asking the database; the errors wrap
// ErrBadQuery.
func (q *UsageQuery) Validate() error {
	if err := q.ReportQuery.Validate(); err != nil {
		return err
	}
	if q.Granularity != "" && !slices.Contains(Granularities(), q.Granularity) {
		return fmt.Errorf("%w: unknown granularity %q (known: %s)", ErrBadQuery, q.Granularity,
			strings.Join(Granularities(), ", "))
	}
	for _, f := range []struct {
		name   string
		values []string
	}{{KeyProject, q.Projects}, {KeyUser, q.Users}, {"visible project", q.Visible.Projects},
		{"visible user", []string{q.Visible.User}}} {
		for _, v := range f.values {
			if err := checkText(f.name, v); err != nil {
				return fmt.Errorf("%w: %v", ErrBadQuery, err)
			}
		}
	}
	for _, c := range q.Resources {
		if !slices.Contains(Classes(), c) {
			return fmt.Errorf("%w: unknown resource class %q (known: %s)", ErrBadQuery, c, strings.Join(Classes(), ", "))
		}
	}
	return nil
}

// UsageRow is one group of a usage query, in one period when the query
// has a granularity.
type UsageRow struct {
	// Start is the start of the row's period (UTC); zero without a
	// granularity.
	Start time.Time
	ReportRow
}

// UsageColumns returns the columns of a usage query: the period (named
// after the granularity) when there is one, then ReportColumns.
func UsageColumns(granularity string, groupBy []string, billed bool) []string {
	cols := ReportColumns(groupBy, billed)
	if granularity == "" {
		return cols
	}
	return append([]string{granularity}, cols...)
}

// Cells returns the row in the order of UsageColumns.
func (r *UsageRow) Cells(granularity string, billed bool) []tabular.Cell {
	cells := r.ReportRow.Cells(billed)
	if granularity == "" {
		return cells
	}
	return append([]tabular.Cell{tabular.Time(r.Start)}, cells...)
}

// Usage streams the groups of q to fn, one row at a time as the database
// returns them, sorted by period and then by their keys (byte order).
// Groups whose values are all zero are left out; adjustments of closed
// months count in the hour they correct, as in Report.
func (s *Store) Usage(ctx context.Context, q UsageQuery, fn func(UsageRow) error) error {
	return s.usage(ctx, q, usageShape{}, fn)
}

// Idle streams the groups of q (its granularity is ignored) that hold
// idle GPU time, the most idle first (ties in key order), at most limit
// of them (0: all).
func (s *Store) Idle(ctx context.Context, q UsageQuery, limit int, fn func(ReportRow) error) error {
	q.Granularity = ""
	sh := usageShape{having: "sum(r.idle_milli_gpu_seconds) > 0", orderIdle: true, limit: max(limit, 0)}
	return s.usage(ctx, q, sh, func(r UsageRow) error { return fn(r.ReportRow) })
}

// usageShape changes what a usage query returns: an extra HAVING
// condition, the order (most idle first) and a row limit.
type usageShape struct {
	having    string
	orderIdle bool
	limit     int
}

func (s *Store) usage(ctx context.Context, q UsageQuery, sh usageShape, fn func(UsageRow) error) error {
	if err := q.Validate(); err != nil {
		return err
	}
	models, micro, err := weightMicro(q.Weights)
	if err != nil {
		return err
	}
	// One round trip, as Report: the cluster is a condition of the
	// statement, and only an empty answer asks whether it exists.
	sql, args := usageSQL(q, models, micro, sh)
	// Planned with its values on each execution: a prepared statement's
	// generic plan, which PostgreSQL switches to after five executions,
	// reads every row of the range and filters the project afterwards —
	// three times the database's time for one project's month of a large
	// ledger (docs/performance.md, P4).
	rows, err := s.pool.Query(ctx, sql, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
	if err != nil {
		return fmt.Errorf("usage: %w", err)
	}
	defer rows.Close()
	n := len(q.GroupBy)
	groups := 0
	for rows.Next() {
		r := UsageRow{ReportRow: ReportRow{Keys: make([]string, n)}}
		dest := make([]any, 0, n+8)
		if q.Granularity != "" {
			dest = append(dest, &r.Start)
		}
		for i := range r.Keys {
			dest = append(dest, &r.Keys[i])
		}
		dest = append(dest, &r.AllocatedMilliGPUSeconds, &r.DeviceSeconds, &r.UsedMilliGPUSeconds,
			&r.IdleMilliGPUSeconds, &r.EnergyMillijoules, &r.FPGASeconds, &r.BilledMilliGPUSeconds)
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("usage: %w", err)
		}
		r.Start = r.Start.UTC()
		groups++
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("usage: %w", err)
	}
	return s.checkEmptyAnswer(ctx, q.Cluster, groups)
}

// sqlArgs collects the arguments of a statement and names their
// placeholders.
type sqlArgs []any

func (a *sqlArgs) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// rowFilter is the condition on the ledger key that the filters and the
// visibility of q put on every row read, starting with " AND", or "".
func rowFilter(q UsageQuery, args *sqlArgs) string {
	var b strings.Builder
	for _, f := range []struct {
		col    string
		values []string
	}{{"project", q.Projects}, {"user_name", q.Users}, {"class", q.Resources}} {
		if len(f.values) > 0 {
			fmt.Fprintf(&b, " AND %s = ANY(%s::text[])", f.col, args.add(f.values))
		}
	}
	b.WriteString(visibilityFilter(q.Visible, args))
	return b.String()
}

// visibilityFilter is the condition that keeps the rows v sees.
func visibilityFilter(v Visibility, args *sqlArgs) string {
	if v.All {
		return ""
	}
	var or []string
	if len(v.Projects) > 0 {
		or = append(or, "project = ANY("+args.add(v.Projects)+"::text[])")
	}
	if v.User != "" {
		or = append(or, "user_name = "+args.add(v.User))
	}
	if len(or) == 0 {
		return " AND false"
	}
	return " AND (" + strings.Join(or, " OR ") + ")"
}

// usagePlan is the segments a usage query reads: rows no coarser than its
// granularity.
func usagePlan(from, to time.Time, granularity string, hourlyOnly bool) []segment {
	switch {
	case hourlyOnly || granularity == GranularityHour:
		return []segment{{"ledger_hourly", "hour", from, to}}
	case granularity == GranularityDay:
		d0 := utcDay(from)
		if !d0.Equal(from) {
			d0 = d0.AddDate(0, 0, 1)
		}
		d1 := utcDay(to)
		if !d0.Before(d1) {
			return []segment{{"ledger_hourly", "hour", from, to}}
		}
		var out []segment
		if from.Before(d0) {
			out = append(out, segment{"ledger_hourly", "hour", from, d0})
		}
		out = append(out, segment{"ledger_daily", "day", d0, d1})
		if d1.Before(to) {
			out = append(out, segment{"ledger_hourly", "hour", d1, to})
		}
		return out
	}
	return plan(from, to, false)
}

// usageSQL builds a usage query: the segments' rows and the adjustments
// of the range, filtered, weighted by model, grouped by period and keys.
func usageSQL(q UsageQuery, models []string, micro []int64, sh usageShape) (string, []any) {
	var args sqlArgs
	where := clusterCond(q.Cluster, args.add)
	from, to := q.From.UTC(), q.To.UTC()
	filter := rowFilter(q, &args)
	var parts []string
	for _, sg := range usagePlan(from, to, q.Granularity, q.HourlyOnly) {
		parts = append(parts, fmt.Sprintf("SELECT %s AS t, %s, %s FROM %s WHERE %s%s%s",
			sg.col, keyCols, valCols, sg.table, where, sg.cond(args.add), filter))
	}
	parts = append(parts, fmt.Sprintf("SELECT hour AS t, %s, %s FROM ledger_adjustments WHERE %shour >= %s AND hour < %s%s",
		keyCols, valCols, where, args.add(from), args.add(to), filter))

	var group, order []string
	var b strings.Builder
	b.WriteString("SELECT ")
	if q.Granularity != "" {
		fmt.Fprintf(&b, "date_trunc('%s', r.t, 'UTC'), ", q.Granularity)
		group, order = append(group, "1"), append(order, "1")
	}
	for _, k := range q.GroupBy {
		c := "r." + keyColumn[k]
		b.WriteString(c + ", ")
		group, order = append(group, c), append(order, c+` COLLATE "C"`)
	}
	b.WriteString(`sum(r.allocated_milli_gpu_seconds)::bigint, sum(r.device_seconds)::bigint,
	sum(r.used_milli_gpu_seconds)::bigint, sum(r.idle_milli_gpu_seconds)::bigint,
	sum(r.energy_millijoules)::bigint, sum(r.fpga_seconds)::bigint, `)
	union := strings.Join(parts, "\nUNION ALL\n")
	if len(models) > 0 {
		fmt.Fprintf(&b, "round(sum(r.allocated_milli_gpu_seconds::numeric * coalesce(bw.micro, 1000000)) / 1000000)::bigint\n"+
			"FROM (%s) r\nLEFT JOIN unnest(%s::text[], %s::bigint[]) AS bw(model, micro) ON bw.model = r.model\n",
			union, args.add(models), args.add(micro))
	} else {
		fmt.Fprintf(&b, "sum(r.allocated_milli_gpu_seconds)::bigint\nFROM (%s) r\n", union)
	}
	if len(group) > 0 {
		b.WriteString("GROUP BY " + strings.Join(group, ", ") + "\n")
	}
	b.WriteString(`HAVING (sum(r.allocated_milli_gpu_seconds) <> 0 OR sum(r.device_seconds) <> 0
	OR sum(r.used_milli_gpu_seconds) <> 0 OR sum(r.idle_milli_gpu_seconds) <> 0
	OR sum(r.energy_millijoules) <> 0 OR sum(r.fpga_seconds) <> 0)`)
	if sh.having != "" {
		b.WriteString(" AND " + sh.having)
	}
	if sh.orderIdle {
		order = append([]string{"sum(r.idle_milli_gpu_seconds) DESC"}, order...)
	}
	if len(order) > 0 {
		b.WriteString("\nORDER BY " + strings.Join(order, ", "))
	}
	if sh.limit > 0 {
		b.WriteString("\nLIMIT " + args.add(sh.limit))
	}
	return b.String(), args
}

// ProjectSummary is a project the ledger holds rows of.
type ProjectSummary struct {
	Name string
	// FirstMonth and LastMonth are the first and last months (UTC) with
	// rows of the project.
	FirstMonth, LastMonth time.Time
}

// Projects returns the projects of cluster ("" for every cluster) with
// rows v sees, by name (byte order).
func (s *Store) Projects(ctx context.Context, cluster string, v Visibility) ([]ProjectSummary, error) {
	clusters, err := s.reportClusters(ctx, cluster)
	if err != nil {
		return nil, err
	}
	args := sqlArgs{clusters}
	sql := `SELECT project, min(month), max(month) FROM ledger_monthly WHERE cluster = ANY($1)` +
		visibilityFilter(v, &args) + ` GROUP BY project ORDER BY project COLLATE "C"`
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("projects: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ProjectSummary, error) {
		var p ProjectSummary
		err := r.Scan(&p.Name, &p.FirstMonth, &p.LastMonth)
		p.FirstMonth, p.LastMonth = p.FirstMonth.UTC(), p.LastMonth.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("projects: %w", err)
	}
	return out, nil
}

// MonthClosed reports whether the UTC month holding month is closed for
// cluster, or with cluster "" for every cluster of the ledger. A ledger
// without clusters has no closed month.
func (s *Store) MonthClosed(ctx context.Context, cluster string, month time.Time) (bool, error) {
	clusters, err := s.reportClusters(ctx, cluster)
	if err != nil {
		return false, err
	}
	if len(clusters) == 0 {
		return false, nil
	}
	var n int
	err = s.pool.QueryRow(ctx, "SELECT count(*) FROM closed_months WHERE cluster = ANY($1) AND month = $2",
		clusters, utcMonth(month)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("month status: %w", err)
	}
	return n == len(clusters), nil
}

// LatestHour returns the latest hour with ledger rows in cluster ("" for
// every cluster), and false when there is none.
func (s *Store) LatestHour(ctx context.Context, cluster string) (time.Time, bool, error) {
	clusters, err := s.reportClusters(ctx, cluster)
	if err != nil {
		return time.Time{}, false, err
	}
	var h *time.Time
	err = s.pool.QueryRow(ctx, `SELECT max(x.h) FROM unnest($1::text[]) AS c(name)
		CROSS JOIN LATERAL (SELECT max(hour) AS h FROM ledger_hourly WHERE cluster = c.name) x`, clusters).Scan(&h)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("latest hour: %w", err)
	}
	if h == nil {
		return time.Time{}, false, nil
	}
	return h.UTC(), true, nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping ledger database: %w", err)
	}
	return nil
}

// ErrBadQuota is a quota that cannot be stored as given.
var ErrBadQuota = errors.New("bad quota")

// Quota is the nominal quota of a Kueue ClusterQueue for one resource,
// in force from From until the next Quota of the same cluster, queue and
// resource.
type Quota struct {
	Cluster string
	// Queue is the ClusterQueue.
	Queue string
	// Resource is the Kubernetes resource name (nvidia.com/gpu,
	// nvidia.com/mig-1g.10gb, …).
	Resource string
	// Project is the ledger project the queue's usage is accounted to
	// (with the default attribution rules, the ClusterQueue's name).
	Project string
	From    time.Time
	// NominalMilli is the nominal quota in thousandths of the resource,
	// summed over the queue's ResourceFlavors.
	NominalMilli int64
}

func (q *Quota) validate() error {
	for _, f := range []struct{ name, v string }{
		{"cluster", q.Cluster}, {"queue", q.Queue}, {"resource", q.Resource}, {"project", q.Project}} {
		if f.v == "" {
			return fmt.Errorf("%w: empty %s", ErrBadQuota, f.name)
		}
		if err := checkText(f.name, f.v); err != nil {
			return fmt.Errorf("%w: %v", ErrBadQuota, err)
		}
	}
	if q.From.IsZero() {
		return fmt.Errorf("%w: %s/%s %s has no start", ErrBadQuota, q.Cluster, q.Queue, q.Resource)
	}
	if q.NominalMilli < 0 {
		return fmt.Errorf("%w: %s/%s %s nominal quota %d is negative", ErrBadQuota, q.Cluster, q.Queue, q.Resource, q.NominalMilli)
	}
	return nil
}

// UpsertQuotas stores quotas in one transaction: a quota with the
// cluster, queue, resource and start of a stored one replaces it. A
// writer that records each quota it observes only when it changes keeps
// the history short; repeating an unchanged value changes no result.
func (s *Store) UpsertQuotas(ctx context.Context, qs []Quota) error {
	if len(qs) == 0 {
		return nil
	}
	cols := make([][]string, 5)
	from := make([]time.Time, len(qs))
	nominal := make([]int64, len(qs))
	for i := range qs {
		q := &qs[i]
		if err := q.validate(); err != nil {
			return err
		}
		for j, v := range []string{q.Cluster, q.Queue, q.Resource, q.Project} {
			cols[j] = append(cols[j], v)
		}
		from[i], nominal[i] = q.From.UTC(), q.NominalMilli
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO queue_quotas AS q (cluster, queue, resource, project, valid_from, nominal_milli)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[])
		ON CONFLICT (cluster, queue, resource, valid_from) DO UPDATE SET
			project = EXCLUDED.project, nominal_milli = EXCLUDED.nominal_milli, recorded_at = now()
		WHERE (q.project, q.nominal_milli) IS DISTINCT FROM (EXCLUDED.project, EXCLUDED.nominal_milli)`,
		cols[0], cols[1], cols[2], cols[3], from, nominal)
	if err != nil {
		return fmt.Errorf("upsert quotas: %w", err)
	}
	return nil
}

// RecordQuotas adds to the quota history of cluster the quotas observed
// from their At on (observe.QueueQuota: the aggregator gives each change
// once, dated by the first scrape that showed it), in one statement. A
// quota is stored only where it changes the history: when the latest row
// of its queue and resource starting at or before it has the same project
// and value, nothing is written, so giving the same quotas again — after a
// failure, or by a restarted aggregator that sees the values in force —
// changes nothing. Starts are floored to the second; of two quotas of one
// queue and resource in the same second the later in qs wins. A quota that
// cannot be stored (empty names, text that is not UTF-8, a negative value)
// is left out with an error wrapping ErrBadQuota; the others are stored.
func (s *Store) RecordQuotas(ctx context.Context, cluster string, qs []observe.QueueQuota) error {
	var bad []error
	type key struct {
		queue, resource string
		from            time.Time
	}
	index := map[key]int{}
	var rows []Quota
	for _, o := range qs {
		q := Quota{Cluster: cluster, Queue: o.Queue, Resource: o.Resource, Project: o.Project,
			From: time.UnixMilli(o.At).UTC().Truncate(time.Second), NominalMilli: o.NominalMilli}
		if err := q.validate(); err != nil {
			bad = append(bad, err)
			continue
		}
		k := key{q.Queue, q.Resource, q.From}
		if i, ok := index[k]; ok {
			rows[i] = q
			continue
		}
		index[k] = len(rows)
		rows = append(rows, q)
	}
	if len(rows) > 0 {
		cols := make([][]string, 3)
		from := make([]time.Time, len(rows))
		nominal := make([]int64, len(rows))
		for i, q := range rows {
			cols[0], cols[1], cols[2] = append(cols[0], q.Queue), append(cols[1], q.Resource), append(cols[2], q.Project)
			from[i], nominal[i] = q.From, q.NominalMilli
		}
		_, err := s.pool.Exec(ctx, `INSERT INTO queue_quotas AS q (cluster, queue, resource, project, valid_from, nominal_milli)
			SELECT $1, n.queue, n.resource, n.project, n.valid_from, n.nominal_milli
			FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[])
				AS n(queue, resource, project, valid_from, nominal_milli)
			WHERE NOT EXISTS (
				SELECT 1 FROM (
					SELECT p.project, p.nominal_milli FROM queue_quotas p
					WHERE p.cluster = $1 AND p.queue = n.queue AND p.resource = n.resource AND p.valid_from <= n.valid_from
					ORDER BY p.valid_from DESC LIMIT 1) prev
				WHERE prev.project = n.project AND prev.nominal_milli = n.nominal_milli)
			ON CONFLICT (cluster, queue, resource, valid_from) DO UPDATE SET
				project = EXCLUDED.project, nominal_milli = EXCLUDED.nominal_milli, recorded_at = now()
			WHERE (q.project, q.nominal_milli) IS DISTINCT FROM (EXCLUDED.project, EXCLUDED.nominal_milli)`,
			cluster, cols[0], cols[1], cols[2], from, nominal)
		if err != nil {
			return fmt.Errorf("record quotas of cluster %s: %w", cluster, err)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("record quotas of cluster %s: %d left out: %w", cluster, len(bad), errors.Join(bad...))
	}
	return nil
}

// Quotas returns the quota history of cluster ("" for every cluster), by
// cluster, queue, resource and start.
func (s *Store) Quotas(ctx context.Context, cluster string) ([]Quota, error) {
	rows, err := s.pool.Query(ctx, `SELECT cluster, queue, resource, project, valid_from, nominal_milli
		FROM queue_quotas WHERE $1 = '' OR cluster = $1
		ORDER BY cluster COLLATE "C", queue COLLATE "C", resource COLLATE "C", valid_from`, cluster)
	if err != nil {
		return nil, fmt.Errorf("quotas: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Quota, error) {
		var q Quota
		err := r.Scan(&q.Cluster, &q.Queue, &q.Resource, &q.Project, &q.From, &q.NominalMilli)
		q.From = q.From.UTC()
		return q, err
	})
	if err != nil {
		return nil, fmt.Errorf("quotas: %w", err)
	}
	return out, nil
}

// QuotaQuery asks for quotas against usage over [From, To).
type QuotaQuery struct {
	// Cluster restricts the answer to one cluster; "" reads every cluster.
	Cluster string
	// From and To are whole UTC hours, From before To.
	From, To time.Time
	// Projects keeps the queues of the projects listed; empty keeps all.
	Projects []string
	// Visible restricts the queues to those of the projects the caller
	// sees (Visibility.User plays no part: a quota is a project's).
	Visible Visibility
}

// QuotaRow is one queue's quota of one resource against the usage of its
// project over a range.
type QuotaRow struct {
	Cluster, Queue, Resource, Project string
	// NominalMilli is the nominal quota in force at the end of the range
	// (the latest one starting before it), in thousandths of the resource.
	NominalMilli int64
	// QuotaMilliSeconds is the quota over the range: Σ nominal (milli) ×
	// the seconds of the range it was in force.
	QuotaMilliSeconds int64
	// Accounted is false for a resource the ledger does not account (cpu,
	// memory): the usage values are then zero.
	Accounted bool
	// UsedDeviceSeconds is the devices of the resource the project held
	// in the cluster × seconds (FPGA seconds for FPGA resources).
	UsedDeviceSeconds int64
	// AllocatedMilliGPUSeconds is the weighted GPU time of the same rows.
	AllocatedMilliGPUSeconds int64
}

// QuotaUsage returns the quotas of the range against usage, by cluster,
// queue, resource and project. The usage of a quota is the ledger rows of
// the quota's cluster and project whose resource class (and MIG profile)
// the quota's resource names: nvidia.com/gpu counts whole GPUs, local and
// offloaded; nvidia.com/mig-<profile> the slices of that profile;
// nvidia.com/gpu.shared the shared GPUs; an FPGA resource every FPGA.
func (s *Store) QuotaUsage(ctx context.Context, q QuotaQuery) ([]QuotaRow, error) {
	if err := checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	for _, v := range append(slices.Clone(q.Projects), q.Visible.Projects...) {
		if err := checkText(KeyProject, v); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadQuery, err)
		}
	}
	clusters, err := s.reportClusters(ctx, q.Cluster)
	if err != nil {
		return nil, err
	}
	from, to := q.From.UTC(), q.To.UTC()
	args := sqlArgs{clusters, from, to}
	filter := visibilityFilter(Visibility{All: q.Visible.All, Projects: q.Visible.Projects}, &args)
	if len(q.Projects) > 0 {
		filter += " AND project = ANY(" + args.add(q.Projects) + "::text[])"
	}
	rows, err := s.pool.Query(ctx, `WITH q AS (
		SELECT cluster, queue, resource, project, nominal_milli, valid_from,
			lead(valid_from) OVER (PARTITION BY cluster, queue, resource ORDER BY valid_from) AS valid_to
		FROM queue_quotas WHERE cluster = ANY($1) AND valid_from < $3
	)
	SELECT cluster, queue, resource, project,
		(array_agg(nominal_milli ORDER BY valid_from DESC))[1],
		sum(nominal_milli * extract(epoch FROM least(coalesce(valid_to, $3), $3) - greatest(valid_from, $2))::bigint)::bigint
	FROM q WHERE coalesce(valid_to, 'infinity') > $2`+filter+`
	GROUP BY cluster, queue, resource, project
	ORDER BY cluster COLLATE "C", queue COLLATE "C", resource COLLATE "C", project COLLATE "C"`, args...)
	if err != nil {
		return nil, fmt.Errorf("quota usage: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (QuotaRow, error) {
		var x QuotaRow
		err := r.Scan(&x.Cluster, &x.Queue, &x.Resource, &x.Project, &x.NominalMilli, &x.QuotaMilliSeconds)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("quota usage: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	used, err := s.projectClassUsage(ctx, out, from, to)
	if err != nil {
		return nil, err
	}
	for i := range out {
		x := &out[i]
		classes, profile, ok := quotaClasses(x.Resource)
		x.Accounted = ok
		for _, c := range classes {
			for key, u := range used {
				if key.cluster != x.Cluster || key.project != x.Project || key.class != c ||
					(profile != "" && key.profile != profile) {
					continue
				}
				x.UsedDeviceSeconds += u.device
				x.AllocatedMilliGPUSeconds += u.allocated
			}
		}
	}
	return out, nil
}

// quotaClasses maps a quota's resource to the ledger classes (and MIG
// profile) that count against it; ok is false for a resource the ledger
// does not account.
func quotaClasses(resource string) (classes []string, profile string, ok bool) {
	class, profile, ok := accounting.ResourceClass(resource)
	if !ok {
		return nil, "", false
	}
	if class == accounting.ClassGPU {
		return []string{string(accounting.ClassGPU), string(accounting.ClassOffload)}, "", true
	}
	return []string{string(class)}, profile, true
}

type classKey struct{ cluster, project, class, profile string }

type classUsage struct{ device, allocated int64 }

// projectClassUsage sums the ledger over [from, to) by cluster, project,
// class and profile for the projects of rows.
func (s *Store) projectClassUsage(ctx context.Context, rows []QuotaRow, from, to time.Time) (map[classKey]classUsage, error) {
	var clusters, projects []string
	for _, r := range rows {
		if !slices.Contains(clusters, r.Cluster) {
			clusters = append(clusters, r.Cluster)
		}
		if !slices.Contains(projects, r.Project) {
			projects = append(projects, r.Project)
		}
	}
	args := sqlArgs{clusters, projects}
	var parts []string
	for _, sg := range plan(from, to, false) {
		parts = append(parts, fmt.Sprintf(`SELECT cluster, project, class, profile, device_seconds, fpga_seconds,
			allocated_milli_gpu_seconds FROM %s WHERE cluster = ANY($1) AND project = ANY($2) AND %s >= %s AND %s < %s`,
			sg.table, sg.col, args.add(sg.from), sg.col, args.add(sg.to)))
	}
	parts = append(parts, fmt.Sprintf(`SELECT cluster, project, class, profile, device_seconds, fpga_seconds,
		allocated_milli_gpu_seconds FROM ledger_adjustments WHERE cluster = ANY($1) AND project = ANY($2)
		AND hour >= %s AND hour < %s`, args.add(from), args.add(to)))
	res, err := s.pool.Query(ctx, `SELECT cluster, project, class, profile,
		sum(device_seconds + fpga_seconds)::bigint, sum(allocated_milli_gpu_seconds)::bigint
		FROM (`+strings.Join(parts, "\nUNION ALL\n")+`) r GROUP BY cluster, project, class, profile`, args...)
	if err != nil {
		return nil, fmt.Errorf("quota usage: %w", err)
	}
	defer res.Close()
	out := map[classKey]classUsage{}
	for res.Next() {
		var k classKey
		var u classUsage
		if err := res.Scan(&k.cluster, &k.project, &k.class, &k.profile, &u.device, &u.allocated); err != nil {
			return nil, fmt.Errorf("quota usage: %w", err)
		}
		out[k] = u
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("quota usage: %w", err)
	}
	return out, nil
}
