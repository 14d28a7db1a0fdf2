package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// The ledger key's columns, after cluster and the time key, and the value
// columns, in table order.
const (
	keyCols  = "project, user_name, namespace, class, model, profile, site"
	lKeyCols = "l.project, l.user_name, l.namespace, l.class, l.model, l.profile, l.site"
	lValCols = "l.allocated_milli_gpu_seconds, l.device_seconds, l.used_milli_gpu_seconds, l.idle_milli_gpu_seconds, l.energy_millijoules, l.fpga_seconds"
	valCols  = "allocated_milli_gpu_seconds, device_seconds, used_milli_gpu_seconds, idle_milli_gpu_seconds, energy_millijoules, fpga_seconds"
)

// The statements below take the hours to recompute as disjoint runs of
// whole hours [lo, hi), Unix seconds, in $2 and $3: a run is read with one
// index range scan, however many hours it holds.
const runs = `unnest($2::bigint[], $3::bigint[]) AS r(lo, hi)`

// recomputeSQL computes the hourly rows of cluster $1 for the runs of
// hours $2, $3 with the watermark $4, from the stored intervals and window
// usage. Allocated and device seconds come from the intervals' overlap
// with each hour, an open interval running to the watermark; used, idle
// and energy are the window_usage rows of windows starting in the hour.
// FPGA cards count FPGA seconds, not GPU seconds.
const recomputeSQL = `
WITH parts AS (
	SELECT g.h, i.project, i.user_name, i.namespace, i.class, i.model, i.profile, i.site,
		CASE WHEN i.class = 'fpga' THEN 0 ELSE i.weight_milli * o.s END AS allocated,
		CASE WHEN i.class = 'fpga' THEN 0 ELSE i.devices * o.s END AS device_seconds,
		0::bigint AS used, 0::bigint AS idle, 0::bigint AS energy,
		CASE WHEN i.class = 'fpga' THEN i.devices * o.s ELSE 0 END AS fpga_seconds
	FROM ` + runs + `
	JOIN intervals i ON i.cluster = $1 AND int8range(i.start_unix, i.end_unix) && int8range(r.lo, r.hi)
	CROSS JOIN LATERAL generate_series(greatest(i.start_unix - i.start_unix % 3600, r.lo),
		least(coalesce(i.end_unix, $4::bigint), r.hi) - 1, 3600) AS g(h)
	CROSS JOIN LATERAL (SELECT least(coalesce(i.end_unix, $4::bigint), g.h + 3600) - greatest(i.start_unix, g.h) AS s) o
	WHERE o.s > 0
	UNION ALL
	SELECT u.window_start_unix - u.window_start_unix % 3600, i.project, i.user_name, i.namespace, i.class,
		i.model, i.profile, i.site, 0, 0,
		CASE WHEN i.class = 'fpga' THEN 0 ELSE u.used_milli_gpu_seconds END,
		CASE WHEN i.class = 'fpga' THEN 0 ELSE u.idle_milli_gpu_seconds END,
		u.energy_millijoules, 0
	FROM ` + runs + `
	JOIN window_usage u ON u.cluster = $1 AND u.window_start_unix >= r.lo AND u.window_start_unix < r.hi
	JOIN intervals i ON i.cluster = u.cluster AND i.node = u.node AND i.device = u.device
		AND i.pod_uid = u.pod_uid AND i.resource = u.resource
)
SELECT $1::text AS cluster, to_timestamp(h) AS hour, ` + keyCols + `,
	sum(allocated)::bigint AS allocated_milli_gpu_seconds,
	sum(device_seconds)::bigint AS device_seconds,
	sum(used)::bigint AS used_milli_gpu_seconds,
	sum(idle)::bigint AS idle_milli_gpu_seconds,
	sum(energy)::bigint AS energy_millijoules,
	sum(fpga_seconds)::bigint AS fpga_seconds
FROM parts
GROUP BY h, ` + keyCols + `
HAVING sum(allocated) <> 0 OR sum(device_seconds) <> 0 OR sum(used) <> 0 OR sum(idle) <> 0
	OR sum(energy) <> 0 OR sum(fpga_seconds) <> 0`

// inRunsHourly and inRunsAdjustments are the rows (as l) of the hours in
// the runs $2, $3.
const (
	inRunsHourly      = runs + ` JOIN ledger_hourly l ON l.cluster = $1 AND l.hour >= to_timestamp(r.lo) AND l.hour < to_timestamp(r.hi)`
	inRunsAdjustments = runs + ` JOIN ledger_adjustments l ON l.cluster = $1 AND l.hour >= to_timestamp(r.lo) AND l.hour < to_timestamp(r.hi)`
)

// The columns of a window's intervals as the upsert reads them: an end of
// 0 is an open interval.
var inputCols = []string{"node", "device", "pod_uid", "resource", "class", "gpu_uuid", "model", "profile",
	"namespace", "pod", "user_name", "project", "queue", "site", "start_unix", "end_unix", "end_exact",
	"last_seen_unix_ms", "weight_milli", "devices"}

// arrayInput is a window's intervals given as 20 arrays, $2 to $21.
const arrayInput = `
	SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
		$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
		$16::bigint[], $17::bigint[], $18::boolean[], $19::bigint[], $20::bigint[], $21::bigint[])
	AS t(node, device, pod_uid, resource, class, gpu_uuid, model, profile, namespace, pod, user_name,
		project, queue, site, start_unix, end_unix, end_exact, last_seen_unix_ms, weight_milli, devices)`

// stageTable is a temporary table of the window's intervals, written with
// COPY when a window carries many (bulkThresholds.intervals or more); it
// is dropped at commit.
const (
	stageTable     = "ledger_stage_intervals"
	createStageSQL = `CREATE TEMPORARY TABLE ` + stageTable + ` (
	node text, device text, pod_uid text, resource text, class text, gpu_uuid text, model text, profile text,
	namespace text, pod text, user_name text, project text, queue text, site text, start_unix bigint,
	end_unix bigint, end_exact boolean, last_seen_unix_ms bigint, weight_milli bigint, devices bigint
) ON COMMIT DROP`
	stagedInput = `
	SELECT * FROM ` + stageTable
)

// upsertIntervalsSQL and upsertStagedSQL upsert the intervals of a window
// of cluster $1, given as arrays or staged.
const (
	upsertIntervalsSQL = "WITH input AS (" + arrayInput + "\n)," + upsertSQL
	upsertStagedSQL    = "WITH input AS (" + stagedInput + "\n)," + upsertSQL
)

// upsertSQL is the upsert after its input: it inserts the new intervals,
// updates the known ones that changed, and returns, for each interval it
// inserted or changed, the new and old extent and whether its ledger key,
// weight or device count changed. The new ones are inserted without ON
// CONFLICT: ApplyWindow holds the cluster's lock, so no other transaction
// inserts intervals of the cluster meanwhile, and all parts of the
// statement see the table as it was before it.
const upsertSQL = `
old AS (
	SELECT i.ctid AS row_id, i.node, i.device, i.pod_uid, i.resource, i.start_unix, i.end_unix,
		i.project, i.user_name, i.namespace, i.class, i.model, i.profile, i.site, i.weight_milli, i.devices
	FROM intervals i JOIN input n USING (node, device, pod_uid, resource)
	WHERE i.cluster = $1
),
ins AS (
	INSERT INTO intervals (cluster, node, device, pod_uid, resource, class, gpu_uuid, model, profile,
		namespace, pod, user_name, project, queue, site, start_unix, end_unix, end_exact, last_seen_unix_ms,
		weight_milli, devices)
	SELECT $1, n.node, n.device, n.pod_uid, n.resource, n.class, n.gpu_uuid, n.model, n.profile, n.namespace,
		n.pod, n.user_name, n.project, n.queue, n.site, n.start_unix, NULLIF(n.end_unix, 0), n.end_exact,
		n.last_seen_unix_ms, n.weight_milli, n.devices
	FROM input n
	WHERE NOT EXISTS (SELECT FROM old o
		WHERE o.node = n.node AND o.device = n.device AND o.pod_uid = n.pod_uid AND o.resource = n.resource)
	RETURNING start_unix, end_unix
),
upd AS (
	UPDATE intervals i SET
		class = n.class, gpu_uuid = n.gpu_uuid, model = n.model, profile = n.profile, namespace = n.namespace,
		pod = n.pod, user_name = n.user_name, project = n.project, queue = n.queue, site = n.site,
		start_unix = n.start_unix, end_unix = NULLIF(n.end_unix, 0), end_exact = n.end_exact,
		last_seen_unix_ms = n.last_seen_unix_ms, weight_milli = n.weight_milli, devices = n.devices,
		updated_at = now()
	FROM old o JOIN input n USING (node, device, pod_uid, resource)
	WHERE i.ctid = o.row_id
		AND (i.class, i.gpu_uuid, i.model, i.profile, i.namespace, i.pod, i.user_name, i.project, i.queue,
		i.site, i.start_unix, i.end_unix, i.end_exact, i.last_seen_unix_ms, i.weight_milli, i.devices)
		IS DISTINCT FROM
		(n.class, n.gpu_uuid, n.model, n.profile, n.namespace, n.pod, n.user_name, n.project, n.queue, n.site,
		n.start_unix, NULLIF(n.end_unix, 0), n.end_exact, n.last_seen_unix_ms, n.weight_milli, n.devices)
		-- An interval only moves forward: an exact end is kept against an
		-- inferred one, and an older view (seen earlier) never replaces a newer.
		AND (n.end_exact OR (NOT i.end_exact AND n.last_seen_unix_ms >= i.last_seen_unix_ms))
	RETURNING i.start_unix, i.end_unix, o.start_unix AS old_start, o.end_unix AS old_end,
		(i.project, i.user_name, i.namespace, i.class, i.model, i.profile, i.site, i.weight_milli, i.devices)
		IS DISTINCT FROM
		(o.project, o.user_name, o.namespace, o.class, o.model, o.profile, o.site, o.weight_milli, o.devices)
		AS key_changed
)
SELECT start_unix, coalesce(end_unix, 0), false, 0::bigint, 0::bigint, false FROM ins
UNION ALL
SELECT start_unix, coalesce(end_unix, 0), true, old_start, coalesce(old_end, 0), key_changed FROM upd`

// overlapSQL finds a stored window of cluster $1 that overlaps [$2, $3)
// with other bounds. Windows with rows lie within one hour, so only the
// rows starting in the hour before $2 or later need looking at.
const overlapSQL = `
SELECT window_start_unix, window_end_unix FROM (
	SELECT window_start_unix, window_end_unix FROM window_usage
	WHERE cluster = $1 AND window_start_unix > $2 - 3600 AND window_start_unix < $3 AND window_end_unix > $2
	UNION ALL
	SELECT window_start_unix, window_end_unix FROM window_energy
	WHERE cluster = $1 AND window_start_unix > $2 - 3600 AND window_start_unix < $3 AND window_end_unix > $2
	UNION ALL
	SELECT window_start_unix, window_end_unix FROM window_capacity
	WHERE cluster = $1 AND window_start_unix > $2 - 3600 AND window_start_unix < $3 AND window_end_unix > $2
) w WHERE NOT (window_start_unix = $2 AND window_end_unix = $3)
LIMIT 1`

const adjustSQL = `
WITH rec AS (` + recomputeSQL + `),
cur AS (
	SELECT hour, ` + keyCols + `,
		sum(allocated_milli_gpu_seconds)::bigint AS allocated_milli_gpu_seconds,
		sum(device_seconds)::bigint AS device_seconds,
		sum(used_milli_gpu_seconds)::bigint AS used_milli_gpu_seconds,
		sum(idle_milli_gpu_seconds)::bigint AS idle_milli_gpu_seconds,
		sum(energy_millijoules)::bigint AS energy_millijoules,
		sum(fpga_seconds)::bigint AS fpga_seconds
	FROM (
		SELECT l.hour, ` + lKeyCols + `, ` + lValCols + ` FROM ` + inRunsHourly + `
		UNION ALL
		SELECT l.hour, ` + lKeyCols + `, ` + lValCols + ` FROM ` + inRunsAdjustments + `
	) x
	GROUP BY hour, ` + keyCols + `
),
d AS (
	SELECT hour, ` + keyCols + `,
		coalesce(rec.allocated_milli_gpu_seconds, 0) - coalesce(cur.allocated_milli_gpu_seconds, 0) AS allocated_milli_gpu_seconds,
		coalesce(rec.device_seconds, 0) - coalesce(cur.device_seconds, 0) AS device_seconds,
		coalesce(rec.used_milli_gpu_seconds, 0) - coalesce(cur.used_milli_gpu_seconds, 0) AS used_milli_gpu_seconds,
		coalesce(rec.idle_milli_gpu_seconds, 0) - coalesce(cur.idle_milli_gpu_seconds, 0) AS idle_milli_gpu_seconds,
		coalesce(rec.energy_millijoules, 0) - coalesce(cur.energy_millijoules, 0) AS energy_millijoules,
		coalesce(rec.fpga_seconds, 0) - coalesce(cur.fpga_seconds, 0) AS fpga_seconds
	FROM rec FULL JOIN cur USING (hour, ` + keyCols + `)
)
INSERT INTO ledger_adjustments (cluster, month, hour, ` + keyCols + `, ` + valCols + `, window_start_unix, window_end_unix)
SELECT $1, date_trunc('month', hour, 'UTC'), hour, ` + keyCols + `, ` + valCols + `, $5, $6
FROM d
WHERE allocated_milli_gpu_seconds <> 0 OR device_seconds <> 0 OR used_milli_gpu_seconds <> 0
	OR idle_milli_gpu_seconds <> 0 OR energy_millijoules <> 0 OR fpga_seconds <> 0
ORDER BY hour, ` + keyCols

// capacitySQL computes the capacity rows of cluster $1 for the runs of
// hours $2, $3: the devices seen (window_capacity) and GPU energy
// (window_energy) by hour, class and model, with the allocated time of
// the hour's ledger rows of that model (gpu, mig and shared slices count
// against a GPU model, fpga rows against an FPGA model; offloaded GPUs
// are not local capacity). Rows exist where devices or energy were seen.
const capacitySQL = `
WITH cap AS (
	SELECT h, class, model, sum(dev)::bigint AS dev, sum(energy)::bigint AS energy
	FROM (
		SELECT c.window_start_unix - c.window_start_unix % 3600 AS h, c.class, c.model, c.seconds AS dev,
			0::bigint AS energy
		FROM ` + runs + `
		JOIN window_capacity c ON c.cluster = $1 AND c.window_start_unix >= r.lo AND c.window_start_unix < r.hi
		UNION ALL
		SELECT e.window_start_unix - e.window_start_unix % 3600, 'gpu', e.model, 0, e.energy_millijoules
		FROM ` + runs + `
		JOIN window_energy e ON e.cluster = $1 AND e.window_start_unix >= r.lo AND e.window_start_unix < r.hi
	) p
	GROUP BY h, class, model
)
INSERT INTO capacity_hourly (cluster, hour, class, model, device_seconds, capacity_milli_gpu_seconds,
	allocated_milli_gpu_seconds, unallocated_milli_gpu_seconds, allocated_fpga_seconds,
	unallocated_fpga_seconds, energy_millijoules)
SELECT $1, to_timestamp(c.h), c.class, c.model, c.dev,
	CASE WHEN c.class = 'gpu' THEN c.dev * 1000 ELSE 0 END,
	a.alloc,
	CASE WHEN c.class = 'gpu' THEN c.dev * 1000 - a.alloc ELSE 0 END,
	a.fpga,
	CASE WHEN c.class = 'fpga' THEN c.dev - a.fpga ELSE 0 END,
	c.energy
FROM cap c
CROSS JOIN LATERAL (
	SELECT coalesce(sum(l.allocated_milli_gpu_seconds), 0)::bigint AS alloc,
		coalesce(sum(l.fpga_seconds), 0)::bigint AS fpga
	FROM ledger_hourly l
	WHERE l.cluster = $1 AND l.hour = to_timestamp(c.h) AND l.model = c.model
		AND CASE WHEN c.class = 'fpga' THEN l.class = 'fpga' ELSE l.class IN ('gpu', 'mig', 'shared') END
) a`

// timeRuns is runs of days or months [lo, hi) as timestamps, in $2 and $3.
const timeRuns = `unnest($2::timestamptz[], $3::timestamptz[]) AS r(lo, hi)`

// dailySQL rolls the hourly rows of the days in the runs $2, $3 up.
const dailySQL = `
INSERT INTO ledger_daily (cluster, day, ` + keyCols + `, ` + valCols + `)
SELECT l.cluster, date_trunc('day', l.hour, 'UTC'), ` + lKeyCols + `,
	sum(l.allocated_milli_gpu_seconds)::bigint, sum(l.device_seconds)::bigint,
	sum(l.used_milli_gpu_seconds)::bigint, sum(l.idle_milli_gpu_seconds)::bigint,
	sum(l.energy_millijoules)::bigint, sum(l.fpga_seconds)::bigint
FROM ` + timeRuns + `
JOIN ledger_hourly l ON l.cluster = $1 AND l.hour >= r.lo AND l.hour < r.hi
GROUP BY l.cluster, date_trunc('day', l.hour, 'UTC'), ` + lKeyCols

// monthlySQL rolls the daily rows of the months in the runs $2, $3 up.
const monthlySQL = `
INSERT INTO ledger_monthly (cluster, month, ` + keyCols + `, ` + valCols + `)
SELECT l.cluster, date_trunc('month', l.day, 'UTC'), ` + lKeyCols + `,
	sum(l.allocated_milli_gpu_seconds)::bigint, sum(l.device_seconds)::bigint,
	sum(l.used_milli_gpu_seconds)::bigint, sum(l.idle_milli_gpu_seconds)::bigint,
	sum(l.energy_millijoules)::bigint, sum(l.fpga_seconds)::bigint
FROM ` + timeRuns + `
JOIN ledger_daily l ON l.cluster = $1 AND l.day >= r.lo AND l.day < r.hi
GROUP BY l.cluster, date_trunc('month', l.day, 'UTC'), ` + lKeyCols

// monthlyProjectSQL rolls the monthly rows of the months in the runs $2,
// $3 up by project.
const monthlyProjectSQL = `
INSERT INTO ledger_monthly_project (cluster, month, project, ` + valCols + `)
SELECT l.cluster, l.month, l.project,
	sum(l.allocated_milli_gpu_seconds)::bigint, sum(l.device_seconds)::bigint,
	sum(l.used_milli_gpu_seconds)::bigint, sum(l.idle_milli_gpu_seconds)::bigint,
	sum(l.energy_millijoules)::bigint, sum(l.fpga_seconds)::bigint
FROM ` + timeRuns + `
JOIN ledger_monthly l ON l.cluster = $1 AND l.month >= r.lo AND l.month < r.hi
GROUP BY l.cluster, l.month, l.project`

// deleteMonthsSQL deletes the rows of the months in the runs $2, $3 of
// cluster $1 from a monthly table.
func deleteMonthsSQL(table string) string {
	return "DELETE FROM " + table + " l USING " + timeRuns + " WHERE l.cluster = $1 AND l.month >= r.lo AND l.month < r.hi"
}

// ApplyWindow stores w and brings the ledger up to date with it, in one
// transaction:
//
//  1. upsert w's intervals (a row that changes gets a new updated_at). An
//     interval only moves forward: an exact end is not replaced by an
//     inferred end or by "open", and a view of it seen earlier (a smaller
//     LastSeen) does not replace a later one, so replaying old windows
//     after newer ones cannot undo what the newer ones established;
//  2. replace the usage, energy and capacity rows of the window;
//  3. move the cluster's watermark to w.To if that is later (a window
//     that ends before the watermark is late data and leaves it);
//  4. recompute the hourly ledger and capacity rows of every hour the
//     window touches — its own hours, the hours the watermark moved over,
//     and for each interval that changed the hours between its old and
//     new extent — then the day and month rollups of those hours and the
//     months' rows by project. Many hours (a backfill) are computed in Go
//     and written with COPY (recomputeBulk), a few in SQL (recompute);
//     both give the same rows.
//
// Hours of a closed month are not rewritten: the difference between
// their recomputed and recorded values goes to ledger_adjustments.
// Applying the same Window twice leaves every table as it was. An error
// leaves the database untouched; IsTransient says whether to retry.
func (s *Store) ApplyWindow(ctx context.Context, w observe.Window) error {
	if err := validateWindow(&w); err != nil {
		return err
	}
	start := time.Now()
	var stats applyStats
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		stats, err = applyWindow(ctx, tx, &w, s.bulk)
		return err
	})
	if err != nil {
		return fmt.Errorf("apply window [%s, %s) of cluster %q: %w",
			time.Unix(w.From, 0).UTC().Format(time.RFC3339), time.Unix(w.To, 0).UTC().Format(time.RFC3339), w.Cluster, err)
	}
	s.log.Debug("applied window", "cluster", w.Cluster, "from", w.From, "to", w.To,
		"intervals", len(w.Intervals), "changed", stats.changed, "hours", stats.hours,
		"adjusted_hours", stats.adjustedHours, "late", stats.late, "took", time.Since(start))
	return nil
}

type applyStats struct {
	changed, hours, adjustedHours int
	late                          bool
}

// applyWindow applies w in tx, on the bulk paths from the thresholds of
// bulk on.
func applyWindow(ctx context.Context, tx pgx.Tx, w *observe.Window, bulk bulkThresholds) (applyStats, error) {
	var st applyStats
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", lockApply, clusterKey(w.Cluster)); err != nil {
		return st, err
	}
	// A backfill recomputes months of hours in one statement: let its
	// aggregates stay in memory.
	if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '64MB'"); err != nil {
		return st, err
	}
	var oldWM int64
	hadWM := true
	if err := tx.QueryRow(ctx, "SELECT watermark_unix FROM watermarks WHERE cluster = $1", w.Cluster).Scan(&oldWM); err != nil {
		if !errors.Is(err, pgx.ErrNoRows) {
			return st, err
		}
		hadWM = false
	}
	newWM := max(oldWM, w.To)
	st.late = hadWM && w.To < oldWM

	var storedFrom, storedTo int64
	switch err := tx.QueryRow(ctx, overlapSQL, w.Cluster, w.From, w.To).Scan(&storedFrom, &storedTo); {
	case err == nil:
		return st, fmt.Errorf("%w: [%d, %d) is stored, [%d, %d) given", ErrWindowOverlap, storedFrom, storedTo, w.From, w.To)
	case !errors.Is(err, pgx.ErrNoRows):
		return st, err
	}

	// 1. Intervals, and the hours their changes touch.
	affected := hourSet{}
	affected.addRange(w.From, w.To)
	if hadWM && newWM > oldWM {
		affected.addRange(oldWM, newWM)
	}
	if len(w.Intervals) > 0 {
		n, err := upsertIntervals(ctx, tx, w, len(w.Intervals) >= bulk.intervals, oldWM, newWM, affected)
		if err != nil {
			return st, err
		}
		st.changed = n
	}

	// 2. The window's own rows.
	if err := replaceWindowRows(ctx, tx, w); err != nil {
		return st, err
	}

	// 3. The watermark.
	if _, err := tx.Exec(ctx, `INSERT INTO watermarks (cluster, watermark_unix) VALUES ($1, $2)
		ON CONFLICT (cluster) DO UPDATE SET watermark_unix = EXCLUDED.watermark_unix, updated_at = now()
		WHERE watermarks.watermark_unix < EXCLUDED.watermark_unix`, w.Cluster, newWM); err != nil {
		return st, err
	}

	// 4. Recompute, outside closed months; adjust inside them.
	closed, err := closedMonths(ctx, tx, w.Cluster)
	if err != nil {
		return st, err
	}
	var open, frozen []int64
	for _, h := range affected.sorted() {
		if closed[utcMonth(time.Unix(h, 0)).Unix()] {
			frozen = append(frozen, h)
		} else {
			open = append(open, h)
		}
	}
	st.hours, st.adjustedHours = len(open), len(frozen)
	if len(frozen) > 0 {
		lo, hi := hourRuns(frozen)
		if _, err := tx.Exec(ctx, adjustSQL, w.Cluster, lo, hi, newWM, w.From, w.To); err != nil {
			return st, fmt.Errorf("adjust closed hours: %w", err)
		}
	}
	if len(open) == 0 {
		return st, nil
	}
	if len(open) >= bulk.hours {
		return st, recomputeBulk(ctx, tx, w.Cluster, open, newWM)
	}
	return st, recompute(ctx, tx, w.Cluster, open, newWM)
}

// recompute rewrites the hourly, capacity, daily and monthly rows of the
// given hours (sorted, none in a closed month).
func recompute(ctx context.Context, tx pgx.Tx, cluster string, hours []int64, watermark int64) error {
	lo, hi := hourRuns(hours)
	dayLo, dayHi, monthLo, monthHi := dayAndMonthRuns(hours)
	const inHours = " WHERE l.cluster = $1 AND l.hour >= to_timestamp(r.lo) AND l.hour < to_timestamp(r.hi)"
	steps := []struct {
		what string
		sql  string
		args []any
	}{
		{"delete hourly rows", "DELETE FROM ledger_hourly l USING " + runs + inHours, []any{cluster, lo, hi}},
		// Rows go in in hour order, the primary key's order after the
		// cluster, so that a backfill of many hours fills the key's index
		// from left to right instead of splitting pages all over it.
		{"recompute hourly rows", "INSERT INTO ledger_hourly (cluster, hour, " + keyCols + ", " + valCols + ")" + recomputeSQL +
			" ORDER BY h", []any{cluster, lo, hi, watermark}},
		{"delete capacity rows", "DELETE FROM capacity_hourly l USING " + runs + inHours, []any{cluster, lo, hi}},
		{"recompute capacity rows", capacitySQL, []any{cluster, lo, hi}},
		// The rollups read the hourly or daily rows of runs given as
		// arrays, which the planner cannot size: it expects a handful and
		// sorts them, a backfill's tens of thousands included. Hashing is
		// as cheap for a few rows and half the cost for many. The setting
		// lasts until the transaction ends; the rollups are its last
		// statements.
		{"aggregate rollups by hashing", "SET LOCAL enable_sort = off", nil},
		{"delete daily rows", "DELETE FROM ledger_daily l USING " + timeRuns +
			" WHERE l.cluster = $1 AND l.day >= r.lo AND l.day < r.hi", []any{cluster, dayLo, dayHi}},
		{"roll up days", dailySQL, []any{cluster, dayLo, dayHi}},
		{"delete monthly rows", deleteMonthsSQL("ledger_monthly"), []any{cluster, monthLo, monthHi}},
		{"roll up months", monthlySQL, []any{cluster, monthLo, monthHi}},
		{"delete monthly rows by project", deleteMonthsSQL("ledger_monthly_project"), []any{cluster, monthLo, monthHi}},
		{"roll up months by project", monthlyProjectSQL, []any{cluster, monthLo, monthHi}},
	}
	for _, st := range steps {
		if _, err := tx.Exec(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	return nil
}

// upsertIntervals writes w's intervals and adds to affected the hours
// their changes touch. It returns how many rows changed.
func upsertIntervals(ctx context.Context, tx pgx.Tx, w *observe.Window, staged bool, oldWM, newWM int64, affected hourSet) (int, error) {
	var rows pgx.Rows
	var err error
	if staged {
		rows, err = upsertStaged(ctx, tx, w)
	} else {
		rows, err = tx.Query(ctx, upsertIntervalsSQL, intervalArrays(w)...)
	}
	if err != nil {
		return 0, fmt.Errorf("upsert intervals: %w", err)
	}
	changed := 0
	for rows.Next() {
		c := change{oldWM: oldWM, newWM: newWM}
		if err := rows.Scan(&c.newStart, &c.newEnd, &c.existed, &c.oldStart, &c.oldEnd, &c.keyChanged); err != nil {
			rows.Close()
			return 0, fmt.Errorf("upsert intervals: %w", err)
		}
		c.affected(affected)
		changed++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("upsert intervals: %w", err)
	}
	return changed, nil
}

// intervalArrays returns the arguments of upsertIntervalsSQL: the cluster
// and the intervals' columns as arrays.
func intervalArrays(w *observe.Window) []any {
	n := len(w.Intervals)
	text := make([][]string, 14)
	for i := range text {
		text[i] = make([]string, n)
	}
	starts, ends, lastSeen, weights, devices := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	exact := make([]bool, n)
	for i, iv := range w.Intervals {
		for j, v := range []string{iv.Node, iv.Device, iv.PodUID, iv.Resource, iv.Class, iv.GPUUUID, iv.Model,
			iv.Profile, iv.Namespace, iv.Pod, iv.User, iv.Project, iv.Queue, iv.Site} {
			text[j][i] = v
		}
		starts[i], ends[i], exact[i], lastSeen[i], weights[i], devices[i] =
			iv.Start, iv.End, iv.EndExact, iv.LastSeen, iv.WeightMilli, iv.Devices
	}
	args := []any{w.Cluster}
	for _, col := range text {
		args = append(args, col)
	}
	return append(args, starts, ends, exact, lastSeen, weights, devices)
}

// upsertStaged writes w's intervals into a temporary table with COPY and
// upserts them from there.
func upsertStaged(ctx context.Context, tx pgx.Tx, w *observe.Window) (pgx.Rows, error) {
	if _, err := tx.Exec(ctx, createStageSQL); err != nil {
		return nil, err
	}
	row := make([]any, len(inputCols))
	_, err := tx.CopyFrom(ctx, pgx.Identifier{stageTable}, inputCols, pgx.CopyFromSlice(len(w.Intervals), func(i int) ([]any, error) {
		x := &w.Intervals[i]
		row[0], row[1], row[2], row[3], row[4], row[5], row[6] = x.Node, x.Device, x.PodUID, x.Resource, x.Class, x.GPUUUID, x.Model
		row[7], row[8], row[9], row[10], row[11], row[12], row[13] = x.Profile, x.Namespace, x.Pod, x.User, x.Project, x.Queue, x.Site
		row[14], row[15], row[16], row[17], row[18], row[19] = x.Start, x.End, x.EndExact, x.LastSeen, x.WeightMilli, x.Devices
		return row, nil
	}))
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	return tx.Query(ctx, upsertStagedSQL, w.Cluster)
}

// replaceWindowRows replaces the usage, energy and capacity rows stored
// for the window starting at w.From.
func replaceWindowRows(ctx context.Context, tx pgx.Tx, w *observe.Window) error {
	for _, t := range []string{"window_usage", "window_energy", "window_capacity"} {
		if _, err := tx.Exec(ctx, "DELETE FROM "+t+" WHERE cluster = $1 AND window_start_unix = $2", w.Cluster, w.From); err != nil {
			return fmt.Errorf("replace %s: %w", t, err)
		}
	}
	if len(w.Usage) > 0 {
		n := len(w.Usage)
		node, dev, uid, res := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		used, idle, energy := make([]int64, n), make([]int64, n), make([]int64, n)
		for i, u := range w.Usage {
			node[i], dev[i], uid[i], res[i] = u.Node, u.Device, u.PodUID, u.Resource
			used[i], idle[i], energy[i] = u.UsedMilliGPUSeconds, u.IdleMilliGPUSeconds, u.EnergyMillijoules
		}
		if _, err := tx.Exec(ctx, `INSERT INTO window_usage (cluster, window_start_unix, window_end_unix, node, device,
			pod_uid, resource, used_milli_gpu_seconds, idle_milli_gpu_seconds, energy_millijoules)
			SELECT $1, $2, $3, * FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[])`,
			w.Cluster, w.From, w.To, node, dev, uid, res, used, idle, energy); err != nil {
			return fmt.Errorf("insert window usage: %w", err)
		}
	}
	if len(w.Energy) > 0 {
		n := len(w.Energy)
		node, gpu, model, energy := make([]string, n), make([]string, n), make([]string, n), make([]int64, n)
		for i, e := range w.Energy {
			node[i], gpu[i], model[i], energy[i] = e.Node, e.GPUUUID, e.Model, e.EnergyMillijoules
		}
		if _, err := tx.Exec(ctx, `INSERT INTO window_energy (cluster, window_start_unix, window_end_unix, node, gpu_uuid,
			model, energy_millijoules)
			SELECT $1, $2, $3, * FROM unnest($4::text[], $5::text[], $6::text[], $7::bigint[])`,
			w.Cluster, w.From, w.To, node, gpu, model, energy); err != nil {
			return fmt.Errorf("insert window energy: %w", err)
		}
	}
	if len(w.Capacity) > 0 {
		n := len(w.Capacity)
		node, dev, class, model, secs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]int64, n)
		for i, c := range w.Capacity {
			node[i], dev[i], class[i], model[i], secs[i] = c.Node, c.Device, c.Class, c.Model, c.Seconds
		}
		if _, err := tx.Exec(ctx, `INSERT INTO window_capacity (cluster, window_start_unix, window_end_unix, node, device,
			class, model, seconds)
			SELECT $1, $2, $3, * FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])`,
			w.Cluster, w.From, w.To, node, dev, class, model, secs); err != nil {
			return fmt.Errorf("insert window capacity: %w", err)
		}
	}
	return nil
}

// closedMonths returns the closed months of a cluster, by the Unix time
// of their start.
func closedMonths(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, cluster string) (map[int64]bool, error) {
	rows, err := q.Query(ctx, "SELECT month FROM closed_months WHERE cluster = $1", cluster)
	if err != nil {
		return nil, err
	}
	months, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, err
	}
	out := make(map[int64]bool, len(months))
	for _, m := range months {
		out[m.Unix()] = true
	}
	return out, nil
}
