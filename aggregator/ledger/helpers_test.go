package ledger

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/internal/pgtest"
)

const testCluster = "ai-infn"

// t0 is 2026-11-02T08:00:00Z, the start of the tests' hours.
var t0 = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC).Unix()

// at is t0 plus h:m (minutes may exceed 59).
func at(h, m int64) int64 { return t0 + h*3600 + m*60 }

// newStore opens a store on a fresh database.
func newStore(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	url := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	return s, url
}

// ivOpt changes an interval built by iv.
type ivOpt func(*observe.Interval)

// iv is an allocation of a whole GPU by pod on node n0, project cms, user
// bob, over [start, end) (end 0: open), seen last at its end or start.
func iv(pod string, start, end int64, opts ...ivOpt) observe.Interval {
	x := observe.Interval{
		AllocKey: observe.AllocKey{Node: "n0", Device: "GPU-" + pod, PodUID: "uid-" + pod, Resource: "nvidia.com/gpu"},
		Attrs: observe.Attrs{Class: "gpu", GPUUUID: "GPU-" + pod, Model: "A100", Namespace: "cms-ml",
			Pod: pod, User: "bob", Project: "cms"},
		Start: start, End: end, EndExact: end != 0, LastSeen: max(start, end) * 1000, WeightMilli: 1000, Devices: 1,
	}
	for _, o := range opts {
		o(&x)
	}
	return x
}

func mig(profile string, weight int64) ivOpt {
	return func(x *observe.Interval) {
		x.Class, x.Profile, x.WeightMilli, x.Resource = "mig", profile, weight, "nvidia.com/mig-"+profile
	}
}

func shared(weight int64) ivOpt {
	return func(x *observe.Interval) {
		x.Class, x.WeightMilli, x.Resource, x.Model = "shared", weight, "nvidia.com/gpu.shared", "T4"
	}
}

func offload(devices int64) ivOpt {
	return func(x *observe.Interval) {
		x.Class, x.WeightMilli, x.Devices, x.Device, x.GPUUUID = "offload", devices*1000, devices, "", ""
		x.Node, x.Site, x.Model, x.Resource = "vk-cnaf", "INFN-CNAF", "A100-PCIE", "nvidia.com/gpu"
	}
}

func fpga() ivOpt {
	return func(x *observe.Interval) {
		x.Class, x.Model, x.Resource, x.Device, x.GPUUUID = "fpga", "U55C", "amd.com/xilinx_u55c", "0000:3b:00.1", ""
	}
}

func project(p, user string) ivOpt {
	return func(x *observe.Interval) { x.Project, x.User = p, user }
}

func inferred(lastSeen int64) ivOpt {
	return func(x *observe.Interval) { x.EndExact, x.LastSeen = false, lastSeen*1000 }
}

func seen(lastSeen int64) ivOpt {
	return func(x *observe.Interval) { x.LastSeen = lastSeen * 1000 }
}

// win is a window of cluster testCluster.
func win(from, to int64, ivs ...observe.Interval) observe.Window {
	return observe.Window{Cluster: testCluster, From: from, To: to, Intervals: ivs}
}

func apply(t *testing.T, s *Store, ws ...observe.Window) {
	t.Helper()
	for _, w := range ws {
		if err := s.ApplyWindow(context.Background(), w); err != nil {
			t.Fatalf("ApplyWindow [%d, %d): %v", w.From-t0, w.To-t0, err)
		}
	}
}

// hourlyRows returns the hourly rows as "HH:MM project user class model profile site
// alloc dev used idle energy fpga", hours relative to t0 (08:00 = "00:00").
func hourlyRows(t *testing.T, s *Store, cluster, table string) []string {
	t.Helper()
	col := map[string]string{"ledger_hourly": "hour", "ledger_daily": "day", "ledger_monthly": "month",
		"ledger_adjustments": "hour"}[table]
	rows, err := s.pool.Query(context.Background(), fmt.Sprintf(`SELECT extract(epoch FROM %s)::bigint,
		project, user_name, class, model, profile, site, %s FROM %s WHERE cluster = $1
		ORDER BY 1, 2, 3, 4, 5, 6, 7`, col, valCols, table), cluster)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h, a, d, u, i, e, f int64
		var p, us, c, m, pr, si string
		if err := rows.Scan(&h, &p, &us, &c, &m, &pr, &si, &a, &d, &u, &i, &e, &f); err != nil {
			t.Fatal(err)
		}
		rel := h - t0
		out = append(out, fmt.Sprintf("%02d:%02d %s %s %s %s %s %s %d %d %d %d %d %d",
			rel/3600, rel%3600/60, p, us, c, m, dash(pr), dash(si), a, d, u, i, e, f))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// allTables lists every table the ledger writes.
var allTables = []string{"intervals", "window_usage", "window_energy", "window_capacity", "watermarks",
	"ledger_hourly", "ledger_daily", "ledger_monthly", "ledger_monthly_project", "capacity_hourly", "closed_months",
	"ledger_adjustments", "schema_migrations"}

// dump returns every row of every table as text, sorted.
func dump(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, tab := range allTables {
		out[tab] = queryRows(t, s, fmt.Sprintf("SELECT t::text FROM %s t ORDER BY 1", tab))
	}
	return out
}

// queryRows returns the single text column of every row of q.
func queryRows(t *testing.T, s *Store, q string) []string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func diffDumps(a, b map[string][]string) string {
	var d []string
	for _, tab := range allTables {
		if strings.Join(a[tab], "\n") != strings.Join(b[tab], "\n") {
			d = append(d, fmt.Sprintf("%s:\n  before %q\n  after  %q", tab, a[tab], b[tab]))
		}
	}
	return strings.Join(d, "\n")
}

func sameRows(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got\n\t%s\n want\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// checkRollups asserts that the daily rows are the sums of the hourly rows,
// the monthly rows the sums of the daily rows, and the monthly rows by
// project the sums of the monthly rows.
func checkRollups(t *testing.T, s *Store) {
	t.Helper()
	for _, q := range []struct{ what, sql string }{
		{"daily vs hourly", `
			(SELECT cluster, date_trunc('day', hour, 'UTC') AS day, ` + keyCols + `,
				sum(allocated_milli_gpu_seconds), sum(device_seconds), sum(used_milli_gpu_seconds),
				sum(idle_milli_gpu_seconds), sum(energy_millijoules), sum(fpga_seconds)
			 FROM ledger_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9)
			 EXCEPT ALL
			(SELECT cluster, day, ` + keyCols + `, ` + valCols + ` FROM ledger_daily)`},
		{"hourly vs daily", `
			(SELECT cluster, day, ` + keyCols + `, ` + valCols + ` FROM ledger_daily)
			 EXCEPT ALL
			(SELECT cluster, date_trunc('day', hour, 'UTC') AS day, ` + keyCols + `,
				sum(allocated_milli_gpu_seconds), sum(device_seconds), sum(used_milli_gpu_seconds),
				sum(idle_milli_gpu_seconds), sum(energy_millijoules), sum(fpga_seconds)
			 FROM ledger_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9)`},
		{"monthly vs daily", `
			(SELECT cluster, date_trunc('month', day, 'UTC') AS month, ` + keyCols + `,
				sum(allocated_milli_gpu_seconds), sum(device_seconds), sum(used_milli_gpu_seconds),
				sum(idle_milli_gpu_seconds), sum(energy_millijoules), sum(fpga_seconds)
			 FROM ledger_daily GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9)
			 EXCEPT ALL
			(SELECT cluster, month, ` + keyCols + `, ` + valCols + ` FROM ledger_monthly)`},
		{"monthly by project vs monthly", `
			(SELECT cluster, month, project, sum(allocated_milli_gpu_seconds), sum(device_seconds),
				sum(used_milli_gpu_seconds), sum(idle_milli_gpu_seconds), sum(energy_millijoules), sum(fpga_seconds)
			 FROM ledger_monthly GROUP BY 1, 2, 3)
			 EXCEPT ALL
			(SELECT cluster, month, project, ` + valCols + ` FROM ledger_monthly_project)`},
		{"monthly vs monthly by project", `
			(SELECT cluster, month, project, ` + valCols + ` FROM ledger_monthly_project)
			 EXCEPT ALL
			(SELECT cluster, month, project, sum(allocated_milli_gpu_seconds), sum(device_seconds),
				sum(used_milli_gpu_seconds), sum(idle_milli_gpu_seconds), sum(energy_millijoules), sum(fpga_seconds)
			 FROM ledger_monthly GROUP BY 1, 2, 3)`},
		{"daily vs monthly", `
			(SELECT cluster, month, ` + keyCols + `, ` + valCols + ` FROM ledger_monthly)
			 EXCEPT ALL
			(SELECT cluster, date_trunc('month', day, 'UTC') AS month, ` + keyCols + `,
				sum(allocated_milli_gpu_seconds), sum(device_seconds), sum(used_milli_gpu_seconds),
				sum(idle_milli_gpu_seconds), sum(energy_millijoules), sum(fpga_seconds)
			 FROM ledger_daily GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9)`},
	} {
		var n int
		if err := s.pool.QueryRow(context.Background(), "SELECT count(*) FROM ("+q.sql+") x").Scan(&n); err != nil {
			t.Fatalf("%s: %v", q.what, err)
		}
		if n != 0 {
			t.Errorf("rollups: %d rows of %s differ", n, q.what)
		}
	}
}
