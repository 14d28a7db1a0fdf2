package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const truthSmall = "../../testdata/scenarios/small.yaml"

func TestSimTruthCSV(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"sim", "truth", "--scenario", truthSmall}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	// The whole scenario (08:00 → 14:00) by project; sums worked out in
	// sim/truth's tests: cms-gpu 9930 s + 10200 s of a whole GPU = 20,130,000
	// milli-GPU-s = 5.591667 GPU-hours (5.5916666… rounded half up).
	want := "project,allocated_gpu_hours,device_hours,fpga_hours,allocated_milli_gpu_seconds\r\n" +
		"cms-gpu,5.591667,5.591667,0.000000,20130000\r\n" +
		"jupyterhub,2.983000,14.500000,0.000000,10738800\r\n" +
		"lhcb-batch,1.500000,4.000000,0.000000,5400000\r\n" +
		"ml-infn,0.000000,0.000000,1.000000,0\r\n" +
		"ml-infn-gpu,5.750000,7.500000,0.000000,20700000\r\n"
	if stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant\n%s", stdout.String(), want)
	}
}

func TestSimTruthWindowAndKeys(t *testing.T) {
	var stdout, stderr bytes.Buffer
	// 09:00 → 10:00 given in another zone (10:00+01:00 is 09:00Z).
	code := run(context.Background(), []string{"sim", "truth", "--scenario", truthSmall,
		"--from", "2026-11-02T10:00:00+01:00", "--to", "2026-11-02T10:00:00Z", "--group-by", "site, resource"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	// bob 3600 s × 1000; alice 3600 × 143 + trainer 3600 × 500 + dave 3600 × 750;
	// erin 09:15 → 10:00 = 2700 × 250; grace's FPGA 09:00 → 09:30.
	want := "site,resource,allocated_gpu_hours,device_hours,fpga_hours,allocated_milli_gpu_seconds\r\n" +
		",fpga,0.000000,0.000000,0.500000,0\r\n" +
		",gpu,1.000000,1.000000,0.000000,3600000\r\n" +
		",mig,1.393000,4.000000,0.000000,5014800\r\n" +
		",shared,0.187500,0.750000,0.000000,675000\r\n"
	if stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant\n%s", stdout.String(), want)
	}
}

func TestSimTruthJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"sim", "truth", "--scenario", truthSmall, "--format", "json",
		"--group-by", "user", "--from", "2026-11-02T13:00:00Z", "--to", "2026-11-02T15:00:00Z"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var doc struct {
		Window  map[string]string `json:"window"`
		GroupBy []string          `json:"group_by"`
		Rows    []struct {
			User      string  `json:"user"`
			Hours     float64 `json:"allocated_gpu_hours"`
			Devices   float64 `json:"device_hours"`
			FPGA      float64 `json:"fpga_hours"`
			MilliSecs int64   `json:"allocated_milli_gpu_seconds"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	if doc.Window["from"] != "2026-11-02T13:00:00Z" || doc.Window["to"] != "2026-11-02T15:00:00Z" ||
		strings.Join(doc.GroupBy, ",") != "user" {
		t.Errorf("window %v, group_by %v", doc.Window, doc.GroupBy)
	}
	// Past the scenario's end, open allocations run to the window's end:
	// alice 7200 s × 143, carol 7200 × 1000, erin 2700 × 250, frank 7200 × 250.
	want := map[string]int64{"alice": 1029600, "carol": 7200000, "erin": 675000, "frank": 1800000}
	if len(doc.Rows) != len(want) {
		t.Fatalf("rows %+v", doc.Rows)
	}
	for _, r := range doc.Rows {
		if r.MilliSecs != want[r.User] {
			t.Errorf("%s: %d milli-GPU-s, want %d", r.User, r.MilliSecs, want[r.User])
		}
	}
	if doc.Rows[1].User != "carol" || doc.Rows[1].Hours != 2 || doc.Rows[1].Devices != 2 {
		t.Errorf("carol's row: %+v", doc.Rows[1])
	}
	if !strings.Contains(stdout.String(), `"allocated_gpu_hours":0.286000`) {
		t.Errorf("hours are not written with 6 decimals:\n%s", stdout.String())
	}
}

func TestSimTruthErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	small, err := os.ReadFile(truthSmall)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, bytes.Replace(small, []byte("node: vk-cnaf"), []byte("node: vk-nowhere"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no scenario", nil, 2, "--scenario is required"},
		{"unknown flag", []string{"--scenario", truthSmall, "--window", "1h"}, 2, "flag provided but not defined: -window"},
		{"stray argument", []string{"--scenario", truthSmall, "extra"}, 2, "unexpected arguments: extra"},
		{"bad format", []string{"--scenario", truthSmall, "--format", "xlsx"}, 2, `--format "xlsx": want csv or json`},
		{"unknown key", []string{"--scenario", truthSmall, "--group-by", "project,team"}, 2, `unknown group-by key "team"`},
		{"key twice", []string{"--scenario", truthSmall, "--group-by", "user,user"}, 2, `"user" given twice`},
		{"bad from", []string{"--scenario", truthSmall, "--from", "yesterday"}, 2, `--from "yesterday": want an RFC 3339 time`},
		{"fractional to", []string{"--scenario", truthSmall, "--to", "2026-11-02T10:00:00.5Z"}, 2, "want a whole second"},
		{"inverted window", []string{"--scenario", truthSmall, "--from", "2026-11-02T12:00:00Z", "--to", "2026-11-02T11:00:00Z"}, 2,
			"--to 2026-11-02T11:00:00Z is not after --from 2026-11-02T12:00:00Z"},
		{"from after the scenario's end", []string{"--scenario", truthSmall, "--from", "2026-11-02T15:00:00Z"}, 2, "is not after --from"},
		{"missing file", []string{"--scenario", filepath.Join(dir, "none.yaml")}, 1, "no such file"},
		{"invalid scenario", []string{"--scenario", bad}, 1, `bad.yaml:159: pods[8].node: unknown node "vk-nowhere"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"sim", "truth"}, c.args...), &stdout, &stderr)
			if code != c.code || !strings.Contains(stderr.String(), c.msg) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr.String(), c.code, c.msg)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout not empty on error: %q", stdout.String())
			}
		})
	}
}

func TestSimTruthHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"sim", "truth", "-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("-h exit %d", code)
	}
	for _, want := range []string{"-scenario", "-group-by", "project, user, namespace, resource", "-format"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, stderr.String())
		}
	}
}
