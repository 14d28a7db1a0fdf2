package api

import (
	"encoding/csv"
	"encoding/json"
	"mime"
	"strings"
	"testing"
)

func TestUsageJSONValues(t *testing.T) {
	e := newEnv(t, newLedger(t), nil)
	admin := e.roles().admin
	resp, b := e.get(t, admin, "/api/v1/usage?from=2026-11-02T08:00:00Z&to=2026-11-02T12:00:00Z&group_by=user&project=atlas&granularity=hour")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	doc, rows := jsonRows(t, b)
	var meta struct {
		Window      map[string]string   `json:"window"`
		GroupBy     []string            `json:"group_by"`
		Granularity string              `json:"granularity"`
		Filters     map[string][]string `json:"filters"`
		Scope       struct{ All bool }  `json:"scope"`
	}
	raw, _ := json.Marshal(doc)
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Window["from"] != "2026-11-02T08:00:00Z" || meta.Window["to"] != "2026-11-02T12:00:00Z" ||
		meta.Granularity != "hour" || meta.GroupBy[0] != "user" || meta.Filters["project"][0] != "atlas" || !meta.Scope.All {
		t.Errorf("metadata %+v", meta)
	}
	// bob's half T4 every hour; carol's GPU at 09:00 and 10:00; idle at 10:00.
	want := []string{
		"2026-11-02T08:00:00Z bob 0.5 1800000 0",
		"2026-11-02T09:00:00Z bob 0.5 1800000 0",
		"2026-11-02T09:00:00Z carol 1 3600000 0",
		"2026-11-02T10:00:00Z bob 0.5 1800000 300",
		"2026-11-02T10:00:00Z carol 1 3600000 300000",
		"2026-11-02T11:00:00Z bob 0.5 1800000 0",
	}
	var got []string
	for _, r := range rows {
		got = append(got, strings.Join([]string{r["hour"].(string), r["user"].(string), num(r["allocated_gpu_hours"]),
			num(r["allocated_milli_gpu_seconds"]), num(r["idle_milli_gpu_seconds"])}, " "))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func num(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestUsageCSV(t *testing.T) {
	e := newEnv(t, newLedger(t), nil)
	admin := e.roles().admin
	for _, how := range []struct {
		name, query string
		headers     []string
	}{
		{"format=csv", "&format=csv", nil},
		{"Accept: text/csv", "", []string{"Accept", "text/csv"}},
		{"Accept: text/csv first", "", []string{"Accept", "text/csv;q=0.9, application/json;q=0.5"}},
	} {
		t.Run(how.name, func(t *testing.T) {
			resp, b := e.get(t, admin, "/api/v1/usage?from=2026-11-02T08:00:00Z&to=2026-11-02T09:00:00Z&group_by=project,resource"+how.query, how.headers...)
			if resp.StatusCode != 200 {
				t.Fatalf("%d: %s", resp.StatusCode, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8; header=present" {
				t.Errorf("Content-Type %q", ct)
			}
			disp, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
			if err != nil || disp != "attachment" || params["filename"] != "gpuledger-usage-20261102T08Z-20261102T09Z.csv" {
				t.Errorf("Content-Disposition %q", resp.Header.Get("Content-Disposition"))
			}
			want := "project,resource,allocated_gpu_hours,used_gpu_hours,idle_gpu_hours,energy_kwh,fpga_hours," +
				"allocated_milli_gpu_seconds,used_milli_gpu_seconds,idle_milli_gpu_seconds,energy_millijoules,fpga_seconds,device_seconds\r\n" +
				// The formula is neutralised: a spreadsheet shows it as text.
				`"'=HYPERLINK(""http://x"",""y"")",gpu,1.000000,0.000000,0.000000,0.000000,0.000000,3600000,0,0,0,0,3600` + "\r\n" +
				"atlas,shared,0.500000,0.000000,0.000000,0.000000,0.000000,1800000,0,0,0,0,3600\r\n" +
				"cms,mig,0.143000,0.000000,0.000000,0.000000,0.000000,514800,0,0,0,0,3600\r\n"
			if string(b) != want {
				t.Errorf("CSV\n%q\nwant\n%q", b, want)
			}
			recs, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
			if err != nil || len(recs) != 4 {
				t.Errorf("not RFC 4180 CSV: %v", err)
			}
		})
	}
	// JSON is the default, and an Accept preferring JSON keeps it.
	for _, accept := range []string{"", "*/*", "application/json, text/csv", "text/html"} {
		resp, _ := e.get(t, admin, "/api/v1/usage?from=2026-11-02T08:00:00Z&to=2026-11-02T09:00:00Z", "Accept", accept)
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Accept %q: Content-Type %q", accept, ct)
		}
	}
}

func TestMonthlyReport(t *testing.T) {
	e := newEnv(t, newLedger(t), nil)
	admin := e.roles().admin
	for _, c := range []struct {
		month, status, csv string
	}{
		{"2026-10", StatusClosed, "project,user,allocated_gpu_hours,used_gpu_hours,idle_gpu_hours,energy_kwh,fpga_hours," +
			"allocated_milli_gpu_seconds,used_milli_gpu_seconds,idle_milli_gpu_seconds,energy_millijoules,fpga_seconds,device_seconds\r\n" +
			"cms,bob,2.000000,0.000000,0.000000,0.000000,0.000000,7200000,0,0,0,0,7200\r\n"},
		{"2026-11", StatusProvisional, ""},
	} {
		resp, b := e.get(t, admin, "/api/v1/reports/monthly/"+c.month)
		doc, _ := jsonRows(t, b)
		var status, month string
		_ = json.Unmarshal(doc["status"], &status)
		_ = json.Unmarshal(doc["month"], &month)
		if resp.StatusCode != 200 || status != c.status || month != c.month || resp.Header.Get(StatusHeader) != c.status {
			t.Errorf("%s: %d status %q (header %q), month %q", c.month, resp.StatusCode, status, resp.Header.Get(StatusHeader), month)
		}
		resp, b = e.get(t, admin, "/api/v1/reports/monthly/"+c.month+"?format=csv")
		_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
		if params["filename"] != "gpuledger-"+c.month+"-"+c.status+".csv" || resp.Header.Get(StatusHeader) != c.status {
			t.Errorf("%s: Content-Disposition %q, status header %q", c.month, resp.Header.Get("Content-Disposition"), resp.Header.Get(StatusHeader))
		}
		if strings.Contains(string(b), "#") {
			t.Errorf("%s: comment in the CSV: %q", c.month, b)
		}
		if c.csv != "" && string(b) != c.csv {
			t.Errorf("%s CSV\n%q\nwant\n%q", c.month, b, c.csv)
		}
		recs, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
		if err != nil || len(recs) < 2 || len(recs[0]) != 13 {
			t.Errorf("%s: CSV %v %v", c.month, recs, err)
		}
	}
	// A cluster named: October is closed there too.
	resp, _ := e.get(t, admin, "/api/v1/reports/monthly/2026-10?cluster="+cluster)
	if resp.Header.Get(StatusHeader) != StatusClosed {
		t.Errorf("cluster %s: %q", cluster, resp.Header.Get(StatusHeader))
	}
}

func TestIdleAndQuotaValues(t *testing.T) {
	e := newEnv(t, newLedger(t), nil)
	admin := e.roles().admin
	// Without a range: the latest hour (t0+3h) holds no idle time.
	resp, b := e.get(t, admin, "/api/v1/idle")
	doc, rows := jsonRows(t, b)
	var latest bool
	_ = json.Unmarshal(doc["latest_hour"], &latest)
	if resp.StatusCode != 200 || !latest || !strings.Contains(string(doc["window"]), `"from":"2026-11-02T11:00:00Z"`) || len(rows) != 0 {
		t.Errorf("latest hour: %d %s", resp.StatusCode, b)
	}
	_, b = e.get(t, admin, "/api/v1/idle?from=2026-11-02T10:00:00Z&to=2026-11-02T11:00:00Z&format=csv")
	want := "project,user,namespace,idle_gpu_hours,allocated_gpu_hours,idle_ratio,idle_milli_gpu_seconds,allocated_milli_gpu_seconds\r\n" +
		"atlas,carol,atlas-ns,0.083333,1.000000,0.083333,300000,3600000\r\n" +
		"atlas,bob,atlas-ns,0.000083,0.500000,0.000167,300,1800000\r\n"
	if string(b) != want {
		t.Errorf("idle CSV\n%q\nwant\n%q", b, want)
	}
	_, b = e.get(t, admin, "/api/v1/idle?from=2026-11-02T10:00:00Z&to=2026-11-02T11:00:00Z&limit=1")
	if _, rows := jsonRows(t, b); len(rows) != 1 || rows[0]["user"] != "carol" {
		t.Errorf("limit=1: %s", b)
	}

	_, b = e.get(t, admin, "/api/v1/quota?from=2026-11-02T08:00:00Z&to=2026-11-02T12:00:00Z&format=csv")
	want = strings.Join(QuotaColumns, ",") + "\r\n" +
		// 1 GPU for 4 h; carol held one for 2 h.
		"ai-infn,atlas-cq,atlas,nvidia.com/gpu,1.000,4.000000,2.000000,2.000000,0.500000,14400000,7200,7200000\r\n" +
		// 2 shared GPUs for 4 h; bob held one (half weighted) for 4 h.
		"ai-infn,atlas-cq,atlas,nvidia.com/gpu.shared,2.000,8.000000,4.000000,2.000000,0.500000,28800000,14400,7200000\r\n" +
		// 2 GPUs for 4 h; cms held none (bob's GPU ended at 08:00, alice's is a MIG slice).
		"ai-infn,cms,cms,nvidia.com/gpu,2.000,8.000000,0.000000,0.000000,0.000000,28800000,0,0\r\n"
	if string(b) != want {
		t.Errorf("quota CSV\n%s\nwant\n%s", b, want)
	}
}
