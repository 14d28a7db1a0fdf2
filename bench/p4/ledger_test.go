package p4

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gpuledger/gpuledger/internal/pgtest"
)

// The generated ledger. Every hour holds slots rows: slot s runs jobs of
// jobHours hours, one after the other, each on another ledger key, the
// first hour of each job partial; the slots start their jobs at five
// different hours of the six (phases), as a queue of jobs would. Job j of
// slot s holds the key at position j × slots + s, scattered over the keys
// by step. In any one day a slot runs parts of five jobs, and the day's
// positions span fewer than users × len(deviceKinds) = 6 500, so the day
// has exactly slots × 5 distinct keys, distinct even without their cluster
// (the API's group-by keys have none); every month touches every key.
//
// A key is a user (of users, each in one of projects projects: few large
// projects, many small ones), a device kind and a cluster: 500 × 13 × 3 =
// 19 500 keys, each the ledger key (cluster, project, user, namespace,
// class, model, profile, site) of its rows.
const (
	slots       = 1000
	jobHours    = 6
	phases      = 5
	daySlotKeys = slots * phases // distinct keys per day (24 hours: 4 whole jobs and 2 parts, phase ≠ 0)
	users       = 500
	projects    = 50
	step        = 7919 // prime to nKeys: a bijection of the positions, and of their residues modulo 6 500
)

var clusters = []string{"cluster-a", "cluster-b", "cluster-c"}

// deviceKind is what a key's allocations hold.
type deviceKind struct {
	class, model, profile, site string
	weightMilli, watts          int64
}

var deviceKinds = []deviceKind{
	{"gpu", "NVIDIA A100-SXM4-80GB", "", "", 1000, 400},
	{"gpu", "NVIDIA A30", "", "", 1000, 165},
	{"gpu", "Tesla T4", "", "", 1000, 70},
	{"gpu", "NVIDIA L40S", "", "", 1000, 350},
	{"mig", "NVIDIA A100-SXM4-80GB", "1g.10gb", "", 143, 400},
	{"mig", "NVIDIA A100-SXM4-80GB", "2g.20gb", "", 286, 400},
	{"mig", "NVIDIA A100-SXM4-80GB", "3g.40gb", "", 429, 400},
	{"mig", "NVIDIA A30", "1g.6gb", "", 250, 165},
	{"mig", "NVIDIA A30", "2g.12gb", "", 500, 165},
	{"shared", "Tesla T4", "", "", 250, 70},
	{"fpga", "Alveo U55C", "", "", 1000, 150},
	{"fpga", "Alveo U250", "", "", 1000, 225},
	{"offload", "NVIDIA A100-SXM4-64GB", "", "leonardo", 1000, 440},
}

// nKeys is the number of ledger keys.
var nKeys = users * len(clusters) * len(deviceKinds)

// ledgerKey is one generated key: its index k and its columns.
type ledgerKey struct {
	k                                                              int
	cluster, project, user, namespace, class, model, profile, site string
	devices, weight, watts                                         int64
}

// keyOf builds key k: user k mod users, then the device kind, then the
// cluster (the most significant), so that keys equal modulo
// users × len(deviceKinds) differ only by their cluster.
func keyOf(k int) ledgerKey {
	u, v := k%users, k/users
	d := deviceKinds[v%len(deviceKinds)]
	devices := int64(1)
	switch {
	case (d.class == "gpu" || d.class == "offload") && k%7 == 0:
		devices = 4
	case d.class == "offload":
		devices = 2
	}
	project := projectName(projectOf(u))
	namespace := project // Kueue batch jobs run in the project's namespace
	if d.class == "mig" || d.class == "shared" {
		namespace = "jupyterhub" // notebooks
	}
	return ledgerKey{k: k, cluster: clusters[v/len(deviceKinds)], project: project, user: fmt.Sprintf("user-%03d", u),
		namespace: namespace, class: d.class, model: d.model, profile: d.profile, site: d.site,
		devices: devices, weight: d.weightMilli * devices, watts: d.watts}
}

// projectOf is user u's project: ⌊projects × (u/users)²⌋, so that
// project-00 has 71 users and project-49 five.
func projectOf(u int) int { return projects * u * u / (users * users) }

func projectName(p int) string { return fmt.Sprintf("project-%02d", p) }

// usersOf returns the users of project p.
func usersOf(p int) []string {
	var out []string
	for u := range users {
		if projectOf(u) == p {
			out = append(out, fmt.Sprintf("user-%03d", u))
		}
	}
	return out
}

// genSQL is the generator: one row (h, s, k) per hour h of the ledger and
// slot s, k the key slot s holds in hour h ($2 hours).
var genSQL = fmt.Sprintf(`SELECT g.h, s.s, ((g.h + s.s %% %[3]d + 1) / %[2]d * %[1]d + s.s) %% %[4]d * %[5]d %% %[4]d AS k
	FROM generate_series(0, $2::int - 1) AS g(h) CROSS JOIN generate_series(0, %[1]d - 1) AS s(s)`,
	slots, jobHours, phases, nKeys, step)

// valuesSQL computes, for a generated row x joined with its key o, the
// hour's seconds held (a job's first hour is partial), the activity and
// idle percentages, from a hash of the key and the hour.
var valuesSQL = fmt.Sprintf(`CROSS JOIN LATERAL (
	SELECT CASE WHEN (x.h + x.s %% %[2]d + 1) %% %[1]d = 0 THEN 300 + r %% 3300 ELSE 3600 END AS secs,
		r / 7 %% 101 AS act, r / 13 %% 10 AS idl
	FROM (SELECT (x.k::bigint * 2654435761 + x.h::bigint * 97531) %% 1000000007 AS r) AS r0) AS v`, jobHours, phases)

// valueCols are the six value columns of a generated hourly row, in table
// order. FPGA cards add FPGA seconds and nothing to the GPU columns.
var valueCols = []string{
	"CASE WHEN o.fpga THEN 0 ELSE o.weight * v.secs END",
	"CASE WHEN o.fpga THEN 0 ELSE o.devices * v.secs END",
	"CASE WHEN o.fpga THEN 0 ELSE o.weight * v.secs * v.act / 100 END",
	"CASE WHEN o.fpga THEN 0 WHEN v.act < 10 THEN o.weight * v.secs * (100 - v.act) / 100 ELSE o.weight * v.secs * v.idl / 100 END",
	"o.weight * v.secs * o.watts * (30 + v.act) / 130",
	"CASE WHEN o.fpga THEN o.devices * v.secs ELSE 0 END",
}

const (
	keyColsSQL   = "cluster, project, user_name, namespace, class, model, profile, site"
	valueColsSQL = "allocated_milli_gpu_seconds, device_seconds, used_milli_gpu_seconds, idle_milli_gpu_seconds, energy_millijoules, fpga_seconds"
	sumColsSQL   = `sum(allocated_milli_gpu_seconds)::bigint, sum(device_seconds)::bigint, sum(used_milli_gpu_seconds)::bigint,
	sum(idle_milli_gpu_seconds)::bigint, sum(energy_millijoules)::bigint, sum(fpga_seconds)::bigint`
)

// hourlySQL inserts the hourly rows in the order of the table's primary
// key (cluster, hour, then the key columns in the database's collation:
// the keys' rank), so that each goes to the right end of the key's index,
// the cheapest insert a B-tree has (faster here than dropping the index
// and building it again afterwards). Only integers are sorted; the text
// columns are joined afterwards.
var hourlySQL = `INSERT INTO ledger_hourly (cluster, hour, project, user_name, namespace, class, model, profile, site, ` + valueColsSQL + `)
SELECT o.cluster, $1::timestamptz + x.h * interval '1 hour', o.project, o.user_name, o.namespace, o.class, o.model, o.profile, o.site,
	` + strings.Join(valueCols, ",\n\t") + `
FROM (SELECT x.h, x.s, x.k FROM (` + genSQL + `) AS x JOIN p4_keys AS r ON r.k = x.k ORDER BY r.ci, x.h, r.rank) AS x
JOIN p4_keys AS o ON o.k = x.k
` + valuesSQL

// dailySQL inserts the daily rows, summed from the generated hours
// grouped by integers (day, key), in primary key order.
var dailySQL = func() string {
	sums := make([]string, len(valueCols))
	names := strings.Split(valueColsSQL, ", ")
	for i, c := range valueCols {
		sums[i] = "sum(" + c + ")::bigint AS " + names[i]
	}
	return `INSERT INTO ledger_daily (cluster, day, project, user_name, namespace, class, model, profile, site, ` + valueColsSQL + `)
SELECT o.cluster, $1::timestamptz + d.d * 24 * interval '1 hour', o.project, o.user_name, o.namespace, o.class, o.model, o.profile, o.site,
	` + valueColsSQL + `
FROM (SELECT x.h / 24 AS d, x.k, min(o.ci) AS ci, min(o.rank) AS rank,
		` + strings.Join(sums, ",\n\t\t") + `
	FROM (` + genSQL + `) AS x JOIN p4_keys AS o ON o.k = x.k
	` + valuesSQL + `
	GROUP BY x.h / 24, x.k ORDER BY ci, d, rank) AS d
JOIN p4_keys AS o ON o.k = d.k`
}()

// rollupSQL are the coarser rollups, each from the one below, inserted in
// key order; a table the schema lacks is skipped.
var rollupSQL = []struct{ table, sql string }{
	{"ledger_monthly", `INSERT INTO ledger_monthly (cluster, month, project, user_name, namespace, class, model, profile, site, ` + valueColsSQL + `)
SELECT cluster, date_trunc('month', day, 'UTC'), project, user_name, namespace, class, model, profile, site, ` + sumColsSQL + `
FROM ledger_daily GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9`},
	{"ledger_monthly_project", `INSERT INTO ledger_monthly_project (cluster, month, project, ` + valueColsSQL + `)
SELECT cluster, month, project, ` + sumColsSQL + `
FROM ledger_monthly GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`},
}

// knownTables are the ledger's tables of rows (ledger_*) this generator
// knows: it fills the first four and leaves the adjustments empty. A new
// rollup table would be left empty and make the API's answers wrong, so
// fill refuses a schema with another one.
var knownTables = []string{"ledger_hourly", "ledger_daily", "ledger_monthly", "ledger_monthly_project", "ledger_adjustments"}

// fillStats describes a generated ledger.
type fillStats struct {
	hourly, daily, monthly int64
	took                   time.Duration
	steps                  []string // "name took", for the log
}

// fill generates hours hours of rows from start (a UTC midnight) into
// the empty ledger of pool: hourly, daily and monthly rows, the monthly
// rows by project where the schema has them, and a watermark per cluster
// at the end, then vacuums and analyzes the database (the server this
// runs on may have autovacuum off; a ledger in service is vacuumed).
func fill(ctx context.Context, pool *pgxpool.Pool, start time.Time, hours int) (fillStats, error) {
	var st fillStats
	began := time.Now()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return st, err
	}
	defer conn.Release()
	c := conn.Conn()
	if err := checkTables(ctx, c); err != nil {
		return st, err
	}
	step := func(name, sql string, args ...any) error {
		t := time.Now()
		if _, err := c.Exec(ctx, sql, args...); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		st.steps = append(st.steps, fmt.Sprintf("%s %.1fs", name, time.Since(t).Seconds()))
		return nil
	}
	// A setting of this connection only, while it fills: the generator's
	// sorts and aggregations in memory. Every other connection, and this
	// one back in the pool, keeps the server's.
	if err := step("settings", "SET work_mem = '1GB'"); err != nil {
		return st, err
	}
	defer func() {
		if _, err := c.Exec(ctx, "RESET work_mem"); err != nil {
			conn.Conn().Close(ctx) // the pool then drops it
		}
	}()
	if err := createKeys(ctx, c); err != nil {
		return st, err
	}
	if err := step("hourly rows", hourlySQL, start, hours); err != nil {
		return st, err
	}
	if err := step("daily rows", dailySQL, start, hours); err != nil {
		return st, err
	}
	for _, r := range rollupSQL {
		var exists bool
		if err := c.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", r.table).Scan(&exists); err != nil {
			return st, err
		}
		if exists {
			if err := step(r.table, r.sql); err != nil {
				return st, err
			}
		}
	}
	end := start.Add(time.Duration(hours) * time.Hour).Unix()
	if err := step("watermarks", "INSERT INTO watermarks (cluster, watermark_unix) SELECT unnest($1::text[]), $2", clusters, end); err != nil {
		return st, err
	}
	if err := step("drop keys", "DROP TABLE p4_keys"); err != nil {
		return st, err
	}
	if err := step("vacuum analyze", "VACUUM ANALYZE"); err != nil {
		return st, err
	}
	err = st.count(ctx, c)
	st.took = time.Since(began)
	return st, err
}

// count reads the ledger's hourly, daily and monthly row counts into st.
func (st *fillStats) count(ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) error {
	return db.QueryRow(ctx, `SELECT (SELECT count(*) FROM ledger_hourly), (SELECT count(*) FROM ledger_daily),
		(SELECT count(*) FROM ledger_monthly)`).Scan(&st.hourly, &st.daily, &st.monthly)
}

// filled returns the row counts of a ledger fill already generated for
// hours (a database kept by -p4.database), or zero counts for an empty
// ledger; a ledger with other contents is an error.
func filled(ctx context.Context, pool *pgxpool.Pool, hours int) (fillStats, error) {
	var st fillStats
	err := st.count(ctx, pool)
	switch {
	case err != nil:
		return st, err
	case st.hourly != 0 && st.hourly != int64(hours*slots):
		return st, fmt.Errorf("the database holds %d hourly rows, not the %d of -p4.hours %d: drop it or name another", st.hourly, hours*slots, hours)
	}
	return st, nil
}

// keptDatabase returns the URL of the database name on the test server,
// creating it when it does not exist.
func keptDatabase(ctx context.Context, name string) (string, error) {
	u, err := url.Parse(pgtest.AdminURL())
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", err
		}
	}
	u.Path = "/" + name
	return u.String(), nil
}

// checkTables refuses a schema with ledger tables fill does not know, or
// with triggers on the tables it fills.
func checkTables(ctx context.Context, c *pgx.Conn) error {
	rows, err := c.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'ledger\_%'`)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, t := range tables {
		if !slices.Contains(knownTables, t) {
			return fmt.Errorf("table %s: the P4 generator does not fill it (it knows %s); teach bench/p4 how", t,
				strings.Join(knownTables, ", "))
		}
	}
	var trig []string
	rows, err = c.Query(ctx, `SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = ANY(
		SELECT to_regclass(t) FROM unnest($1::text[]) AS t)`, knownTables)
	if err != nil {
		return err
	}
	if trig, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return err
	}
	if len(trig) > 0 {
		return fmt.Errorf("triggers %s on the ledger tables: the P4 generator writes the rollups itself; teach bench/p4 how",
			strings.Join(trig, ", "))
	}
	return nil
}

// createKeys writes the keys into the temporary table p4_keys, with
// their cluster's rank (ci) and their rank in the primary keys' order
// after the cluster and the time (rank), in the database's collation.
func createKeys(ctx context.Context, c *pgx.Conn) error {
	if _, err := c.Exec(ctx, `CREATE TEMPORARY TABLE p4_keys (k int PRIMARY KEY, cluster text, project text, user_name text,
		namespace text, class text, model text, profile text, site text, devices bigint, weight bigint, watts bigint,
		fpga boolean, ci int, rank int)`); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	rows := make([][]any, nKeys)
	for k := range nKeys {
		x := keyOf(k)
		rows[k] = []any{int32(k), x.cluster, x.project, x.user, x.namespace, x.class, x.model, x.profile, x.site,
			x.devices, x.weight, x.watts, x.class == "fpga"}
	}
	cols := []string{"k", "cluster", "project", "user_name", "namespace", "class", "model", "profile", "site",
		"devices", "weight", "watts", "fpga"}
	if _, err := c.CopyFrom(ctx, pgx.Identifier{"p4_keys"}, cols, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	_, err := c.Exec(ctx, `UPDATE p4_keys SET ci = r.ci, rank = r.rank FROM (SELECT k,
		dense_rank() OVER (ORDER BY cluster) AS ci,
		row_number() OVER (ORDER BY project, user_name, namespace, class, model, profile, site) AS rank
		FROM p4_keys) AS r WHERE r.k = p4_keys.k;
		ANALYZE p4_keys`)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	return nil
}
