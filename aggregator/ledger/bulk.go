package ledger

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// The bulk path recomputes many hours at once — a backfill, late data
// that moves a long interval — in Go instead of in SQL: it reads the
// stored intervals and usage of the hours, computes their hourly rows with
// the same integer rules as recomputeSQL (hourParts), sums them into the
// day and month rollups together with the stored rows of the other hours
// and days of those days and months, and writes all of them with COPY.
// The result is identical to the SQL path's, row for row
// (TestBulkEqualsSQL); what changes is the cost: the database no longer
// groups tens of thousands of interval-hours by seven text columns, nor
// reads back the rows it has just written to roll them up.

// bulkThresholds say when ApplyWindow takes its bulk paths: a window's
// intervals are staged with COPY when it carries at least intervals of
// them, and its hours are recomputed in Go when at least hours of them
// are to be recomputed.
type bulkThresholds struct {
	intervals, hours int
}

// defaultBulk: a five-minute window of a busy cluster (hundreds of
// allocations, one or two hours) stays on the SQL paths; a backfill of
// days takes the bulk ones.
var defaultBulk = bulkThresholds{intervals: 1000, hours: 24}

// ledgerKey is the ledger key of a row after the cluster and the time.
type ledgerKey struct {
	project, user, namespace, class, model, profile, site string
}

// values are the values of a ledger row, in table order.
type values struct {
	allocated, device, used, idle, energy, fpga int64
}

func (v *values) add(o values) {
	v.allocated += o.allocated
	v.device += o.device
	v.used += o.used
	v.idle += o.idle
	v.energy += o.energy
	v.fpga += o.fpga
}

func (v values) zero() bool { return v == values{} }

// rowID is a ledger row's time (the start of its hour, day or month, Unix
// seconds) and key (an index into a rowSet's keys).
type rowID struct {
	t   int64
	key int32
}

// keyTable interns ledger keys.
type keyTable struct {
	keys  []ledgerKey
	index map[ledgerKey]int32
}

// key returns the index of k, adding it when new.
func (kt *keyTable) key(k ledgerKey) int32 {
	i, ok := kt.index[k]
	if !ok {
		i = int32(len(kt.keys))
		kt.keys = append(kt.keys, k)
		kt.index[k] = i
	}
	return i
}

// rowSet sums ledger rows by time and key.
type rowSet struct {
	*keyTable
	rows map[rowID]*values
}

func newRowSet() *rowSet {
	return &rowSet{keyTable: &keyTable{index: map[ledgerKey]int32{}}, rows: map[rowID]*values{}}
}

// add adds v to the row (t, key).
func (s *rowSet) add(t int64, key int32, v values) {
	id := rowID{t, key}
	if r, ok := s.rows[id]; ok {
		r.add(v)
		return
	}
	s.rows[id] = &v
}

// rollUp returns a set of the same keys holding the rows of s summed by
// period (the start of the UTC day or month holding each row's time).
func (s *rowSet) rollUp(period func(int64) int64) *rowSet {
	out := &rowSet{keyTable: s.keyTable, rows: make(map[rowID]*values, len(s.rows)/8)}
	for id, v := range s.rows {
		out.add(period(id.t), id.key, *v)
	}
	return out
}

// sorted returns the row IDs by time, then by key in byte order: a table's
// primary key order when its collation sorts UTF-8 by code point (C,
// C.UTF-8), so that COPY fills the key's index mostly from left to right.
func (s *rowSet) sorted() []rowID {
	rank := make([]int32, len(s.keys))
	order := make([]int32, len(s.keys))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return compareKeys(s.keys[a], s.keys[b]) })
	for r, k := range order {
		rank[k] = int32(r)
	}
	ids := make([]rowID, 0, len(s.rows))
	for id := range s.rows {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b rowID) int {
		return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(rank[a.key], rank[b.key]))
	})
	return ids
}

func compareKeys(a, b ledgerKey) int {
	return cmp.Or(cmp.Compare(a.project, b.project), cmp.Compare(a.user, b.user),
		cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.class, b.class), cmp.Compare(a.model, b.model),
		cmp.Compare(a.profile, b.profile), cmp.Compare(a.site, b.site))
}

// storedInterval is what the hourly rows need of an interval.
type storedInterval struct {
	start, end           int64 // end 0 while open
	weightMilli, devices int64
	fpga                 bool
}

// hourParts calls fn with each hour of the run [lo, hi) (whole hours)
// that x overlaps and its values there, as recomputeSQL computes them:
// the seconds s of [start, end) inside the hour, an open interval running
// to the watermark, give weight × s allocated and devices × s device
// seconds, or devices × s FPGA seconds for an FPGA card. Hours where s is
// not positive are skipped.
func hourParts(x storedInterval, lo, hi, watermark int64, fn func(hour int64, v values)) {
	end := effectiveEnd(x.end, watermark)
	for h := max(floorHour(x.start), lo); h < min(end, hi); h += hourSeconds {
		s := min(end, h+hourSeconds) - max(x.start, h)
		if s <= 0 {
			continue
		}
		if x.fpga {
			fn(h, values{fpga: x.devices * s})
		} else {
			fn(h, values{allocated: x.weightMilli * s, device: x.devices * s})
		}
	}
}

// iKeyCols are the ledger key's columns of the intervals table, as i.
const iKeyCols = "i.project, i.user_name, i.namespace, i.class, i.model, i.profile, i.site"

// bulkIntervalsSQL reads the intervals of cluster $1 overlapping each run
// of hours $2, $3 (an interval overlapping two runs comes once per run).
const bulkIntervalsSQL = `
SELECT r.lo, r.hi, i.start_unix, coalesce(i.end_unix, 0), i.weight_milli, i.devices, ` + iKeyCols + `
FROM ` + runs + `
JOIN intervals i ON i.cluster = $1 AND int8range(i.start_unix, i.end_unix) && int8range(r.lo, r.hi)`

// bulkUsageSQL sums the window_usage rows of the windows starting in the
// runs of hours $2, $3 of cluster $1 by hour and ledger key, as
// recomputeSQL counts them (an FPGA's used and idle time are not GPU time).
const bulkUsageSQL = `
SELECT u.window_start_unix - u.window_start_unix % 3600, ` + iKeyCols + `,
	sum(CASE WHEN i.class = 'fpga' THEN 0 ELSE u.used_milli_gpu_seconds END)::bigint,
	sum(CASE WHEN i.class = 'fpga' THEN 0 ELSE u.idle_milli_gpu_seconds END)::bigint,
	sum(u.energy_millijoules)::bigint
FROM ` + runs + `
JOIN window_usage u ON u.cluster = $1 AND u.window_start_unix >= r.lo AND u.window_start_unix < r.hi
JOIN intervals i ON i.cluster = u.cluster AND i.node = u.node AND i.device = u.device
	AND i.pod_uid = u.pod_uid AND i.resource = u.resource
GROUP BY 1, ` + iKeyCols

// storedRollupSQL sums the stored rows of table (as l, with time column
// col) of cluster $1 in the runs $2, $3 (Unix seconds) by period ('day'
// or 'month').
func storedRollupSQL(table, col, period string) string {
	return fmt.Sprintf(`
SELECT extract(epoch FROM date_trunc('%s', l.%s, 'UTC'))::bigint, %s,
	sum(l.allocated_milli_gpu_seconds)::bigint, sum(l.device_seconds)::bigint,
	sum(l.used_milli_gpu_seconds)::bigint, sum(l.idle_milli_gpu_seconds)::bigint,
	sum(l.energy_millijoules)::bigint, sum(l.fpga_seconds)::bigint
FROM %s
JOIN %s l ON l.cluster = $1 AND l.%s >= to_timestamp(r.lo) AND l.%s < to_timestamp(r.hi)
GROUP BY 1, %s`, period, col, lKeyCols, runs, table, col, col, lKeyCols)
}

// recomputeBulk rewrites the hourly, capacity, daily and monthly rows of
// the given hours (sorted, none in a closed month) on the bulk path. The
// months' rows by project are a few, rolled up in SQL as on the SQL path.
func recomputeBulk(ctx context.Context, tx pgx.Tx, cluster string, hours []int64, watermark int64) error {
	lo, hi := hourRuns(hours)
	hourly := newRowSet()
	if err := computeHours(ctx, tx, cluster, lo, hi, watermark, hourly); err != nil {
		return err
	}

	// The days holding the hours, summed from the new hourly rows and the
	// stored rows of the other hours of those days; the months likewise
	// from the days.
	days := periods(hours, dayStart)
	daily := hourly.rollUp(dayStart)
	otherLo, otherHi := complement(hours, days, hourSeconds, func(d int64) int64 { return d + 86400 })
	if err := addStored(ctx, tx, cluster, daily, "ledger_hourly", "hour", "day", otherLo, otherHi); err != nil {
		return err
	}
	monthly := daily.rollUp(monthStart)
	otherLo, otherHi = complement(days, periods(days, monthStart), 86400, nextMonth)
	if err := addStored(ctx, tx, cluster, monthly, "ledger_daily", "day", "month", otherLo, otherHi); err != nil {
		return err
	}

	dayLo, dayHi, monthLo, monthHi := dayAndMonthRuns(hours)
	const inHours = " WHERE l.cluster = $1 AND l.hour >= to_timestamp(r.lo) AND l.hour < to_timestamp(r.hi)"
	steps := []struct {
		what string
		run  func() error
	}{
		{"delete hourly rows", execStep(ctx, tx, "DELETE FROM ledger_hourly l USING "+runs+inHours, cluster, lo, hi)},
		{"write hourly rows", func() error { return copyRows(ctx, tx, "ledger_hourly", "hour", cluster, hourly) }},
		{"delete capacity rows", execStep(ctx, tx, "DELETE FROM capacity_hourly l USING "+runs+inHours, cluster, lo, hi)},
		{"recompute capacity rows", execStep(ctx, tx, capacitySQL, cluster, lo, hi)},
		{"delete daily rows", execStep(ctx, tx, "DELETE FROM ledger_daily l USING "+timeRuns+
			" WHERE l.cluster = $1 AND l.day >= r.lo AND l.day < r.hi", cluster, dayLo, dayHi)},
		{"write daily rows", func() error { return copyRows(ctx, tx, "ledger_daily", "day", cluster, daily) }},
		{"delete monthly rows", execStep(ctx, tx, deleteMonthsSQL("ledger_monthly"), cluster, monthLo, monthHi)},
		{"write monthly rows", func() error { return copyRows(ctx, tx, "ledger_monthly", "month", cluster, monthly) }},
		{"delete monthly rows by project", execStep(ctx, tx, deleteMonthsSQL("ledger_monthly_project"), cluster, monthLo, monthHi)},
		{"roll up months by project", execStep(ctx, tx, monthlyProjectSQL, cluster, monthLo, monthHi)},
	}
	for _, st := range steps {
		if err := st.run(); err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	return nil
}

// execStep returns a step that runs one statement.
func execStep(ctx context.Context, tx pgx.Tx, sql string, args ...any) func() error {
	return func() error {
		_, err := tx.Exec(ctx, sql, args...)
		return err
	}
}

// computeHours adds to set the hourly rows of the runs of hours lo, hi:
// the stored intervals' parts of each hour and the stored usage of the
// windows starting in it. Rows whose values are all zero are left out, as
// recomputeSQL's HAVING leaves them.
func computeHours(ctx context.Context, tx pgx.Tx, cluster string, lo, hi []int64, watermark int64, set *rowSet) error {
	rows, err := tx.Query(ctx, bulkIntervalsSQL, cluster, lo, hi)
	if err != nil {
		return fmt.Errorf("read intervals: %w", err)
	}
	var k ledgerKey
	var runLo, runHi int64
	var x storedInterval
	_, err = pgx.ForEachRow(rows, []any{&runLo, &runHi, &x.start, &x.end, &x.weightMilli, &x.devices,
		&k.project, &k.user, &k.namespace, &k.class, &k.model, &k.profile, &k.site}, func() error {
		x.fpga = k.class == "fpga"
		key := set.key(k)
		hourParts(x, runLo, runHi, watermark, func(h int64, v values) { set.add(h, key, v) })
		return nil
	})
	if err != nil {
		return fmt.Errorf("read intervals: %w", err)
	}
	rows, err = tx.Query(ctx, bulkUsageSQL, cluster, lo, hi)
	if err != nil {
		return fmt.Errorf("read usage: %w", err)
	}
	var h int64
	var v values
	_, err = pgx.ForEachRow(rows, []any{&h, &k.project, &k.user, &k.namespace, &k.class, &k.model, &k.profile, &k.site,
		&v.used, &v.idle, &v.energy}, func() error {
		set.add(h, set.key(k), values{used: v.used, idle: v.idle, energy: v.energy})
		return nil
	})
	if err != nil {
		return fmt.Errorf("read usage: %w", err)
	}
	for id, v := range set.rows {
		if v.zero() {
			delete(set.rows, id)
		}
	}
	return nil
}

// addStored adds to set the stored rows of table in the runs of times
// lo, hi (Unix seconds), summed by period.
func addStored(ctx context.Context, tx pgx.Tx, cluster string, set *rowSet, table, col, period string, lo, hi []int64) error {
	if len(lo) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, storedRollupSQL(table, col, period), cluster, lo, hi)
	if err != nil {
		return fmt.Errorf("read stored %s rows: %w", table, err)
	}
	var t int64
	var k ledgerKey
	var v values
	_, err = pgx.ForEachRow(rows, []any{&t, &k.project, &k.user, &k.namespace, &k.class, &k.model, &k.profile, &k.site,
		&v.allocated, &v.device, &v.used, &v.idle, &v.energy, &v.fpga}, func() error {
		set.add(t, set.key(k), v)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read stored %s rows: %w", table, err)
	}
	return nil
}

// copyRows writes the rows of set into table (time column col) with COPY.
// Each row is encoded from one reused row of pointers, so that streaming
// tens of thousands of rows allocates nothing per value.
func copyRows(ctx context.Context, tx pgx.Tx, table, col, cluster string, set *rowSet) error {
	ids := set.sorted()
	cols := []string{"cluster", col, "project", "user_name", "namespace", "class", "model", "profile", "site",
		"allocated_milli_gpu_seconds", "device_seconds", "used_milli_gpu_seconds", "idle_milli_gpu_seconds",
		"energy_millijoules", "fpga_seconds"}
	var t time.Time
	var k ledgerKey
	var v values
	row := []any{&cluster, &t, &k.project, &k.user, &k.namespace, &k.class, &k.model, &k.profile, &k.site,
		&v.allocated, &v.device, &v.used, &v.idle, &v.energy, &v.fpga}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromSlice(len(ids), func(i int) ([]any, error) {
		id := ids[i]
		t, k, v = time.Unix(id.t, 0).UTC(), set.keys[id.key], *set.rows[id]
		return row, nil
	}))
	return err
}

// dayStart and monthStart are the starts of the UTC day and month holding
// Unix second t; nextMonth is the start of the month after t's.
func dayStart(t int64) int64   { return t - t%86400 }
func monthStart(t int64) int64 { return utcMonth(time.Unix(t, 0)).Unix() }
func nextMonth(t int64) int64  { return utcMonth(time.Unix(t, 0)).AddDate(0, 1, 0).Unix() }

// periods returns the distinct periods (by start) holding the sorted
// times ts, in order.
func periods(ts []int64, period func(int64) int64) []int64 {
	var out []int64
	for _, t := range ts {
		if p := period(t); len(out) == 0 || out[len(out)-1] != p {
			out = append(out, p)
		}
	}
	return out
}

// complement returns, as runs [lo, hi), the steps of step seconds inside
// the sorted periods (each from its start to end(start)) that are not among
// the sorted times ts: the hours of the days, or the days of the months,
// that the recompute does not rewrite.
func complement(ts, periods []int64, step int64, end func(int64) int64) (lo, hi []int64) {
	i := 0
	for _, p := range periods {
		for t := p; t < end(p); t += step {
			for i < len(ts) && ts[i] < t {
				i++
			}
			if i < len(ts) && ts[i] == t {
				continue
			}
			if n := len(hi); n > 0 && hi[n-1] == t {
				hi[n-1] = t + step
			} else {
				lo, hi = append(lo, t), append(hi, t+step)
			}
		}
	}
	return lo, hi
}
