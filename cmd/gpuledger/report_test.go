package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/aggregator/observe"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/internal/pgtest"
	"github.com/gpuledger/gpuledger/internal/tabular"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// ledgerDB returns the URL of a fresh ledger holding windows.
func ledgerDB(t *testing.T, windows ...observe.Window) string {
	t.Helper()
	url := pgtest.New(t)
	ctx := context.Background()
	s, err := ledger.Open(ctx, url, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, w := range windows {
		if err := s.ApplyWindow(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	return url
}

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func hhmm(s string) int64 {
	t, err := time.Parse(time.RFC3339, "2026-11-02T"+s+":00Z")
	if err != nil {
		panic(err)
	}
	return t.Unix()
}

// reportWindows: a project name that is a spreadsheet formula, a user
// starting with '-', a MIG slice and an FPGA, with usage in the first
// window.
func reportWindows() []observe.Window {
	a := observe.Interval{
		AllocKey: observe.AllocKey{Node: "n0", Device: "GPU-a", PodUID: "uid-a", Resource: "nvidia.com/gpu"},
		Attrs: observe.Attrs{Class: "gpu", GPUUUID: "GPU-a", Model: "A100", Namespace: "ns", Pod: "a",
			User: "alice", Project: `=HYPERLINK("http://x","y")`},
		Start: hhmm("08:00"), End: hhmm("09:30"), EndExact: true, LastSeen: hhmm("09:30") * 1000, WeightMilli: 1000, Devices: 1,
	}
	b := observe.Interval{
		AllocKey: observe.AllocKey{Node: "n0", Device: "MIG-b", PodUID: "uid-b", Resource: "nvidia.com/mig-1g.10gb"},
		Attrs: observe.Attrs{Class: "mig", GPUUUID: "GPU-b", Model: "A100", Profile: "1g.10gb", Namespace: "cms-ml",
			Pod: "b", User: "-bob", Project: "cms"},
		Start: hhmm("08:00"), End: hhmm("10:00"), EndExact: true, LastSeen: hhmm("10:00") * 1000, WeightMilli: 143, Devices: 1,
	}
	c := observe.Interval{
		AllocKey: observe.AllocKey{Node: "n0", Device: "0000:3b:00.1", PodUID: "uid-c", Resource: "amd.com/xilinx_u55c"},
		Attrs:    observe.Attrs{Class: "fpga", Model: "U55C", Namespace: "cms-ml", Pod: "c", User: "carol", Project: "cms"},
		Start:    hhmm("08:30"), End: hhmm("09:00"), EndExact: true, LastSeen: hhmm("09:00") * 1000, WeightMilli: 1000, Devices: 1,
	}
	w1 := observe.Window{Cluster: "c1", From: hhmm("08:00"), To: hhmm("08:05"), Intervals: []observe.Interval{a, b, c},
		Usage: []observe.Usage{{AllocKey: a.AllocKey, UsedMilliGPUSeconds: 150000, IdleMilliGPUSeconds: 30000, EnergyMillijoules: 45_000_000}}}
	w2 := observe.Window{Cluster: "c1", From: hhmm("10:00"), To: hhmm("10:05"), Intervals: []observe.Interval{a, b, c}}
	return []observe.Window{w1, w2}
}

func TestReportCSV(t *testing.T) {
	url := ledgerDB(t, reportWindows()...)
	weights := filepath.Join(t.TempDir(), "weights.yaml")
	if err := os.WriteFile(weights, []byte("# billing weights\nA100: 2\nT4: 0.25\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{{
		name: "by project and user",
		args: []string{"--group-by", "project,user"},
		want: "project,user,allocated_gpu_hours,used_gpu_hours,idle_gpu_hours,energy_kwh,fpga_hours," +
			"allocated_milli_gpu_seconds,used_milli_gpu_seconds,idle_milli_gpu_seconds,energy_millijoules,fpga_seconds,device_seconds\r\n" +
			// 5400 s of a GPU; used 150000 milli-GPU-s = 0.0416666… h; 45 kJ = 0.0125 kWh. The
			// formula is neutralised and quoted (RFC 4180).
			`"'=HYPERLINK(""http://x"",""y"")",alice,1.500000,0.041667,0.008333,0.012500,0.000000,5400000,150000,30000,45000000,0,5400` + "\r\n" +
			// 7200 s × 143 = 1029600 milli-GPU-s.
			"cms,'-bob,0.286000,0.000000,0.000000,0.000000,0.000000,1029600,0,0,0,0,7200\r\n" +
			// An FPGA is FPGA hours, not GPU-hours.
			"cms,carol,0.000000,0.000000,0.000000,0.000000,0.500000,0,0,0,0,1800,0\r\n",
	}, {
		name: "by resource with billing weights",
		args: []string{"--group-by", "resource", "--billing-weights", weights, "--cluster", "c1"},
		want: "resource,allocated_gpu_hours,used_gpu_hours,idle_gpu_hours,energy_kwh,fpga_hours,billed_gpu_hours," +
			"allocated_milli_gpu_seconds,used_milli_gpu_seconds,idle_milli_gpu_seconds,energy_millijoules,fpga_seconds,device_seconds," +
			"billed_milli_gpu_seconds\r\n" +
			"fpga,0.000000,0.000000,0.000000,0.000000,0.500000,0.000000,0,0,0,0,1800,0,0\r\n" +
			"gpu,1.500000,0.041667,0.008333,0.012500,0.000000,3.000000,5400000,150000,30000,45000000,0,5400,10800000\r\n" +
			"mig,0.286000,0.000000,0.000000,0.000000,0.000000,0.572000,1029600,0,0,0,0,7200,2059200\r\n",
	}, {
		name: "one total row",
		args: []string{"--group-by", ""},
		want: "allocated_gpu_hours,used_gpu_hours,idle_gpu_hours,energy_kwh,fpga_hours," +
			"allocated_milli_gpu_seconds,used_milli_gpu_seconds,idle_milli_gpu_seconds,energy_millijoules,fpga_seconds,device_seconds\r\n" +
			"1.786000,0.041667,0.008333,0.012500,0.500000,6429600,150000,30000,45000000,1800,12600\r\n",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"report", "--database-url", url,
				"--from", "2026-11-02T08:00:00Z", "--to", "2026-11-02T10:00:00Z"}, c.args...)
			code, stdout, stderr := runCmd(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if stdout != c.want {
				t.Errorf("stdout:\n%s\nwant\n%s", stdout, c.want)
			}
		})
	}

	// The range reaches past the ledger's watermark: a warning, not an error.
	code, _, stderr := runCmd(t, "report", "--database-url", url, "--cluster", "c1",
		"--from", "2026-11-02T08:00:00Z", "--to", "2026-11-02T12:00:00Z")
	if code != 0 || !strings.Contains(stderr, "complete up to 2026-11-02T10:05:00Z") {
		t.Errorf("exit %d, stderr %q: want a warning about the watermark", code, stderr)
	}
}

func TestReportJSON(t *testing.T) {
	url := ledgerDB(t, reportWindows()...)
	code, stdout, stderr := runCmd(t, "report", "--database-url", url, "--format", "json", "--group-by", "user",
		"--from", "2026-11-02T09:00:00+01:00", "--to", "2026-11-02T10:00:00Z") // 08:00Z → 10:00Z
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		Window  map[string]string `json:"window"`
		GroupBy []string          `json:"group_by"`
		Rows    []map[string]any  `json:"rows"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if doc.Window["from"] != "2026-11-02T08:00:00Z" || doc.Window["to"] != "2026-11-02T10:00:00Z" || len(doc.GroupBy) != 1 {
		t.Errorf("window %v, group_by %v", doc.Window, doc.GroupBy)
	}
	// JSON is not a spreadsheet: names are kept as they are.
	if len(doc.Rows) != 3 || doc.Rows[0]["user"] != "-bob" || doc.Rows[0]["allocated_milli_gpu_seconds"] != float64(1029600) ||
		doc.Rows[1]["user"] != "alice" || doc.Rows[1]["allocated_gpu_hours"] != 1.5 {
		t.Errorf("rows %v", doc.Rows)
	}
}

func TestReportFlags(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	down := "postgres://postgres@127.0.0.1:1/x?sslmode=disable"
	badWeights := filepath.Join(t.TempDir(), "w.yaml")
	if err := os.WriteFile(badWeights, []byte("A100: heavy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	negWeights := filepath.Join(t.TempDir(), "neg.yaml")
	if err := os.WriteFile(negWeights, []byte("A100: -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rng := []string{"--from", "2026-11-02T08:00:00Z", "--to", "2026-11-02T10:00:00Z"}
	with := func(extra ...string) []string {
		return append(append([]string{"report", "--database-url", down}, rng...), extra...)
	}
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"no database", append([]string{"report"}, rng...), "--database-url is required"},
		{"no range", []string{"report", "--database-url", down}, "--from and --to are required"},
		{"not RFC 3339", []string{"report", "--database-url", down, "--from", "2026-11-02 08:00", "--to", "2026-11-02T10:00:00Z"}, "RFC 3339"},
		{"to before from", []string{"report", "--database-url", down, "--from", "2026-11-02T10:00:00Z", "--to", "2026-11-02T08:00:00Z"}, "not after"},
		{"not on the hour", []string{"report", "--database-url", down, "--from", "2026-11-02T08:30:00Z", "--to", "2026-11-02T10:00:00Z"}, "whole UTC hour"},
		{"a half-hour zone", []string{"report", "--database-url", down, "--from", "2026-11-02T08:00:00+05:30", "--to", "2026-11-03T10:00:00Z"}, "whole UTC hour"},
		{"unknown key", with("--group-by", "project,colour"), "unknown group-by key \"colour\""},
		{"a key finer than the ledger", with("--group-by", "pod"), "finer than the ledger"},
		{"bad format", with("--format", "xlsx"), "want csv or json"},
		{"missing weights file", with("--billing-weights", "/nonexistent/w.yaml"), "--billing-weights"},
		{"weights not numbers", with("--billing-weights", badWeights), "mapping of GPU model to weight"},
		{"a negative weight", with("--billing-weights", negWeights), "billing weight of \"A100\""},
		{"stray argument", with("extra"), "unexpected arguments"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, c.args...)
			if code != 2 || !strings.Contains(stderr, c.msg) || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 mentioning %q", code, stdout, stderr, c.msg)
			}
		})
	}

	// A database without a ledger is left alone.
	empty := pgtest.New(t)
	for _, args := range [][]string{
		{"report", "--database-url", empty, "--from", "2026-11-02T08:00:00Z", "--to", "2026-11-02T10:00:00Z"},
		{"ledger", "close", "--database-url", empty, "--cluster", "c1", "--month", "2026-09"},
	} {
		code, stdout, stderr := runCmd(t, args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "does not hold the current gpuledger ledger schema") {
			t.Errorf("%s on a database without a ledger: exit %d, stdout %q, stderr %q", args[0], code, stdout, stderr)
		}
	}
	c, err := pgx.Connect(context.Background(), empty)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var tables int
	if err := c.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil || tables != 0 {
		t.Errorf("%d tables created in a database without a ledger (%v)", tables, err)
	}

	// A database that is down: retried for --wait, then a clear error.
	start := time.Now()
	code, stdout, stderr := runCmd(t, with("--wait", "400ms")...)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "gave up") || !strings.Contains(stderr, "retrying") {
		t.Errorf("database down: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("database down: gave up after %s, want about --wait", d)
	}
}

// TestReportEqualsSimTruth feeds a scenario's exact intervals to the
// ledger and compares `gpuledger report` with `gpuledger sim truth`.
func TestReportEqualsSimTruth(t *testing.T) {
	s, err := scenario.Load(truthSmall)
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	w := observe.Window{Cluster: s.Cluster, From: s.Start.Unix(), To: s.End.Unix()}
	for _, a := range allocs {
		w.From = min(w.From, a.Start.Unix()-a.Start.Unix()%3600)
		var end int64
		if !a.End.IsZero() {
			end = a.End.Unix()
		}
		w.Intervals = append(w.Intervals, observe.Interval{
			AllocKey: observe.AllocKey{Node: a.Node, Device: a.DeviceID, PodUID: a.Pod.UID, Resource: a.Resource},
			Attrs: observe.Attrs{Class: string(a.Class), GPUUUID: a.GPUUUID, Model: a.Model, Profile: a.Profile,
				Namespace: a.Pod.Namespace, Pod: a.Pod.Name, User: a.User, Project: a.Project, Queue: a.Queue, Site: a.Site},
			Start: a.Start.Unix(), End: end, EndExact: end != 0, LastSeen: max(end, s.End.Unix()) * 1000,
			WeightMilli: a.WeightMilli, Devices: a.Devices,
		})
	}
	url := ledgerDB(t, w)
	ranges := [][2]string{
		{s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339)},
		{"2026-11-02T09:00:00Z", "2026-11-02T10:00:00Z"},
		{"2026-11-02T10:00:00Z", "2026-11-02T13:00:00Z"},
	}
	for _, rg := range ranges {
		for _, gb := range []string{"project", "user,resource", "site,resource", "model,profile", "namespace", ""} {
			code, truthOut, stderr := runCmd(t, "sim", "truth", "--scenario", truthSmall, "--from", rg[0], "--to", rg[1], "--group-by", gb)
			if code != 0 {
				t.Fatalf("sim truth: %s", stderr)
			}
			code, ledgerOut, stderr := runCmd(t, "report", "--database-url", url, "--from", rg[0], "--to", rg[1], "--group-by", gb)
			if code != 0 {
				t.Fatalf("report: %s", stderr)
			}
			truthRows, ledgerRows := readCSV(t, truthOut), readCSV(t, ledgerOut)
			if len(truthRows) != len(ledgerRows) || len(truthRows) < 2 {
				t.Fatalf("%v by %q: %d truth rows, %d ledger rows\n%s\n%s", rg, gb, len(truthRows), len(ledgerRows), truthOut, ledgerOut)
			}
			for i := 1; i < len(truthRows); i++ {
				tr, lr := truthRows[i], ledgerRows[i]
				for _, col := range []string{"allocated_gpu_hours", "fpga_hours", "allocated_milli_gpu_seconds"} {
					if tr[col] != lr[col] {
						t.Errorf("%v by %q, row %d (%v): %s truth %s, ledger %s", rg, gb, i, tr, col, tr[col], lr[col])
					}
				}
				for _, k := range strings.Split(gb, ",") {
					if k != "" && tr[k] != lr[k] {
						t.Errorf("%v by %q, row %d: %s truth %q, ledger %q", rg, gb, i, k, tr[k], lr[k])
					}
				}
				dev, _ := strconv.ParseInt(lr["device_seconds"], 10, 64)
				if got := tabular.Ratio(dev, 3600, 6).Text(); got != tr["device_hours"] {
					t.Errorf("%v by %q, row %d: device hours truth %s, ledger %s", rg, gb, i, tr["device_hours"], got)
				}
			}
		}
	}
}

// readCSV returns the records of a CSV as maps from column to cell; the
// first is the header's.
func readCSV(t *testing.T, s string) []map[string]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v\n%s", err, s)
	}
	out := make([]map[string]string, len(recs))
	for i, r := range recs {
		out[i] = map[string]string{}
		for j, c := range r {
			out[i][recs[0][j]] = c
		}
	}
	return out
}

func TestLedgerClose(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	sept := func(s string) int64 {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		return t.Unix()
	}
	x := observe.Interval{
		AllocKey: observe.AllocKey{Node: "n0", Device: "GPU-a", PodUID: "uid-a", Resource: "nvidia.com/gpu"},
		Attrs:    observe.Attrs{Class: "gpu", Model: "A100", Project: "cms", User: "bob"},
		Start:    sept("2026-09-30T20:00:00Z"), End: sept("2026-10-01T01:00:00Z"), EndExact: true, WeightMilli: 1000, Devices: 1,
	}
	url := ledgerDB(t, observe.Window{Cluster: "c1", From: sept("2026-09-30T20:00:00Z"), To: sept("2026-10-01T02:00:00Z"),
		Intervals: []observe.Interval{x}})
	current := time.Now().UTC().Format("2006-01")
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"no cluster", []string{"--database-url", url, "--month", "2026-09"}, 2, "", "--cluster is required"},
		{"no month", []string{"--database-url", url, "--cluster", "c1"}, 2, "", "--month is required"},
		{"bad month", []string{"--database-url", url, "--cluster", "c1", "--month", "2026-13"}, 2, "", "want YYYY-MM"},
		{"no database", []string{"--cluster", "c1", "--month", "2026-09"}, 2, "", "--database-url is required"},
		{"the current month", []string{"--database-url", url, "--cluster", "c1", "--month", current}, 1, "", "has not ended"},
		{"a future month", []string{"--database-url", url, "--cluster", "c1", "--month", "2999-01"}, 1, "", "has not ended"},
		{"beyond the watermark", []string{"--database-url", url, "--cluster", "c1", "--month", "2026-10"}, 1, "",
			"complete only up to 2026-10-01T02:00:00Z"},
		{"a cluster without data", []string{"--database-url", url, "--cluster", "c2", "--month", "2026-09"}, 1, "", "no data"},
		{"September", []string{"--database-url", url, "--cluster", "c1", "--month", "2026-09"}, 0, "closed 2026-09 of cluster c1", ""},
		{"September again", []string{"--database-url", url, "--cluster", "c1", "--month", "2026-09"}, 1, "", "already closed"},
	}
	for _, c := range cases {
		code, stdout, stderr := runCmd(t, append([]string{"ledger", "close"}, c.args...)...)
		if code != c.code || !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d, %q, %q", c.name, code, stdout, stderr, c.code, c.stdout, c.stderr)
		}
	}
}
