package dashboards

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/source/backfill"
	"github.com/gpuledger/gpuledger/internal/promtest"
	"github.com/gpuledger/gpuledger/sim/scenario"
)

// noSimData lists the metric families the dashboards query that the
// simulated exporters do not serve, with the reason. Their queries must
// still parse, and may return nothing. The test fails when a family listed
// here does have simulated data (remove it from the list), and when a
// family the dashboards use has none but is not listed: a family that
// should have data cannot hide.
var noSimData = map[string]string{
	"gpuledger_gpu_memory_clock_hertz":               "NVML source only: the simulator models the SM clock alone",
	"gpuledger_gpu_activity_ratio":                   "NVML GPM (Hopper and newer) only",
	"gpuledger_gpu_xid_errors_total":                 "NVML event set only: the simulator injects no XID",
	"gpuledger_gpu_nvml_errors_total":                "NVML source only: counts failed NVML calls",
	"gpuledger_dcgm_graphics_activity_ratio":         "dcgm source (polls a node's dcgm-exporter); the simulator is not one",
	"gpuledger_dcgm_sm_activity_ratio":               "dcgm source only",
	"gpuledger_dcgm_tensor_activity_ratio":           "dcgm source only",
	"gpuledger_dcgm_dram_activity_ratio":             "dcgm source only",
	"gpuledger_dcgm_up":                              "dcgm source only",
	"gpuledger_dcgm_last_success_timestamp_seconds":  "dcgm source only",
	"gpuledger_dcgm_samples_dropped_total":           "dcgm source only",
	"gpuledger_fpga_voltage_volts":                   "real FPGA cards only (exporters/fpga: XRT sysfs and xbutil)",
	"gpuledger_fpga_current_amperes":                 "real FPGA cards only",
	"gpuledger_fpga_fan_speed_rpm":                   "real FPGA cards only",
	"gpuledger_fpga_board_info":                      "real FPGA cards only",
	"gpuledger_fpga_read_errors_total":               "real FPGA cards only",
	"gpuledger_pending_pod_requests":                 "exporter in cluster mode (Kubernetes API); the simulator serves nodes",
	"gpuledger_kueue_clusterqueue_nominal_quota":     "exporter in cluster mode (Kueue ClusterQueues); the simulator serves nodes",
	"gpuledger_attribution_available":                "the real allocation collector (kubelet, API server); the simulator attributes from the scenario",
	"gpuledger_attribution_unresolved_devices":       "the real allocation collector only",
	"gpuledger_exporter_collector_success":           "served by the exporter's collector registry around the sources; the backfilled history holds the sources' own series",
	"gpuledger_exporter_collector_duration_seconds":  "served by the exporter's collector registry, as above",
	"gpuledger_aggregator_watermark_seconds":         "the aggregator's own metric, scraped from the aggregator",
	"gpuledger_aggregator_last_scrape_time_seconds":  "the aggregator's own metric",
	"gpuledger_aggregator_ledger_write_errors_total": "the aggregator's own metric",
	"gpuledger_aggregator_windows_applied_total":     "the aggregator's own metric",
	"gpuledger_aggregator_scrapes_total":             "the aggregator's own metric",
	"gpuledger_api_requests_total":                   "the accounting API's own metric",
	"gpuledger_api_request_duration_seconds_bucket":  "the accounting API's own metric",
	"gpuledger_api_auth_failures_total":              "the accounting API's own metric",
}

// noDataTargets are queries of served families that still return nothing
// on the simulated history, by dashboard/panel/refId, with the reason.
var noDataTargets = map[string]string{
	"gpuledger-self-health/35/A": "up of the aggregator's scrape job: the history holds the exporters' scrapes only",
}

// familyRef finds the metric families an expression reads.
var familyRef = regexp.MustCompile(`\b(gpuledger_[a-z0-9_]+)\b|\b(up)\{`)

func families(expr string) []string {
	var out []string
	for _, m := range familyRef.FindAllStringSubmatch(expr, -1) {
		if f := m[1] + m[2]; !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// promVarQuery is a Prometheus query variable: label_values(selector, label).
var promVarQuery = regexp.MustCompile(`^label_values\((.+), *(\w+)\)$`)

// TestDashboardsPromQL runs every PromQL query of every dashboard, and the
// Prometheus variable queries, against a real Prometheus serving the
// simulated history of testdata/scenarios/small.yaml, with the dashboard
// variables set to values of that cluster. Each query must parse, and
// return data unless it reads a family listed in noSimData (or is listed
// in noDataTargets).
func TestDashboardsPromQL(t *testing.T) {
	t.Parallel()
	s, err := scenario.Load(scenarioFile)
	if err != nil {
		t.Fatal(err)
	}
	all := buildAll(t)
	used := map[string]bool{"up": true}
	for _, b := range all {
		for _, q := range b.targets() {
			for _, f := range families(q.Expr) {
				used[f] = true
			}
		}
	}
	var fams []string
	for f := range used {
		fams = append(fams, f)
	}
	sort.Strings(fams)
	srv := promtest.StartWith(t, s, promtest.Options{Backfill: backfill.Options{Families: fams}})

	// The families without simulated data are exactly those listed.
	missing := map[string]bool{}
	for _, f := range srv.History.Missing {
		missing[f] = true
		if _, ok := noSimData[f]; !ok {
			t.Errorf("family %s: the dashboards query it, the simulated history has none, and noSimData does not say why", f)
		}
	}
	for f := range noSimData {
		switch {
		case !used[f]:
			t.Errorf("noSimData lists %s, which no dashboard queries: remove it", f)
		case !missing[f]:
			t.Errorf("noSimData lists %s, but the simulated history has it: remove it so that its queries must return data", f)
		}
	}

	c := &promClient{base: srv.URL, from: s.Start, to: s.End, step: time.Minute}
	builtins := map[string]string{
		// $__interval is the step; $__rate_interval is max($__interval +
		// scrape interval, 4 × scrape interval) with the 15 s scrape.
		"__interval":      "1m",
		"__rate_interval": "75s",
		"__range":         fmt.Sprintf("%ds", int(s.End.Sub(s.Start).Seconds())),
	}
	var withData, noData int
	for _, b := range all {
		vals := values(&b.d)
		t.Run(b.d.UID, func(t *testing.T) {
			checkPromVariables(t, c, &b.d, vals, builtins)
			for _, q := range b.targets() {
				if q.panel.Datasource.Type != PrometheusType {
					continue
				}
				expr, err := interpolate(q.Expr, PrometheusType, b.d.Templating.List, vals, builtins)
				if err != nil {
					t.Errorf("%s %q: %v", q.key(), q.panel.Title, err)
					continue
				}
				series, err := c.rangeQuery(expr)
				if err != nil {
					t.Errorf("%s %q: %v\n%s", q.key(), q.panel.Title, err, expr)
					continue
				}
				reason := whyNoData(q)
				switch {
				case series == 0 && reason == "":
					t.Errorf("%s %q returns no data, and reads only families the simulator serves:\n%s", q.key(), q.panel.Title, expr)
				case series > 0 && noDataTargets[q.key()] != "":
					t.Errorf("%s %q returns data: remove it from noDataTargets", q.key(), q.panel.Title)
				case series == 0:
					noData++
					t.Logf("no sim data: %s %q: %s", q.key(), q.panel.Title, reason)
				default:
					withData++
				}
			}
		})
	}
	t.Logf("%d PromQL queries returned data, %d parsed and have no simulated data", withData, noData)
	if withData == 0 {
		t.Error("no query returned data")
	}
}

// whyNoData says why a query may return nothing on the simulated history,
// or "" when it must return data.
func whyNoData(q target) string {
	if r := noDataTargets[q.key()]; r != "" {
		return r
	}
	var rs []string
	for _, f := range families(q.Expr) {
		if r := noSimData[f]; r != "" {
			rs = append(rs, f+": "+r)
		}
	}
	return strings.Join(rs, "; ")
}

// checkPromVariables runs the dashboard's Prometheus query variables: each
// must offer the values the queries are tested with.
func checkPromVariables(t *testing.T, c *promClient, d *jsonDashboard, vals map[string][]string, builtins map[string]string) {
	t.Helper()
	for _, v := range d.Templating.List {
		if v.Type != "query" || v.Datasource.Type != PrometheusType {
			continue
		}
		q, _ := v.Query.(string)
		m := promVarQuery.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, q)
			continue
		}
		selector, err := interpolate(m[1], PrometheusType, d.Templating.List, vals, builtins)
		if err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
			continue
		}
		got, err := c.labelValues(m[2], selector)
		if err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
			continue
		}
		for _, want := range vals[v.Name] {
			if !slices.Contains(got, want) {
				t.Errorf("variable %s offers %v, not %q", v.Name, got, want)
			}
		}
	}
}

// promClient queries Prometheus's HTTP API over a fixed range, as a
// dashboard over that time range does.
type promClient struct {
	base     string
	from, to time.Time
	step     time.Duration
}

type promResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func (c *promClient) call(method, path string, params url.Values) (json.RawMessage, error) {
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = http.PostForm(c.base+path, params)
	} else {
		resp, err = http.Get(c.base + path + "?" + params.Encode())
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var r promResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s: %s", path, r.ErrorType, r.Error)
	}
	return r.Data, nil
}

// rangeQuery runs expr over the range and returns how many series have at
// least one point. Prometheus refuses an expression that does not parse
// (bad_data).
func (c *promClient) rangeQuery(expr string) (int, error) {
	data, err := c.call(http.MethodPost, "/api/v1/query_range", url.Values{
		"query": {expr},
		"start": {strconv.FormatInt(c.from.Unix(), 10)},
		"end":   {strconv.FormatInt(c.to.Unix(), 10)},
		"step":  {strconv.FormatFloat(c.step.Seconds(), 'f', -1, 64)},
	})
	if err != nil {
		return 0, err
	}
	var m struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Values [][2]any `json:"values"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return 0, fmt.Errorf("decode the result: %w", err)
	}
	if m.ResultType != "matrix" {
		return 0, fmt.Errorf("result type %s, want matrix", m.ResultType)
	}
	n := 0
	for _, r := range m.Result {
		if len(r.Values) > 0 {
			n++
		}
	}
	return n, nil
}

// labelValues returns the values of label on the series selector matches
// over the range: what Grafana's label_values() variable offers.
func (c *promClient) labelValues(label, selector string) ([]string, error) {
	data, err := c.call(http.MethodGet, "/api/v1/label/"+label+"/values", url.Values{
		"match[]": {selector},
		"start":   {strconv.FormatInt(c.from.Unix(), 10)},
		"end":     {strconv.FormatInt(c.to.Unix(), 10)},
	})
	if err != nil {
		return nil, err
	}
	var out []string
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("decode the label values: %w", err)
	}
	return out, nil
}

// TestDashboardsFamiliesExist: every family a dashboard queries is one
// gpuledger defines (exporters/metrics, the collector wrapper, the
// aggregator, the API) or Prometheus's up, so that a misspelt name of a
// family without simulated data cannot pass unnoticed.
func TestDashboardsFamiliesExist(t *testing.T) {
	defined := definedFamilies(t)
	for _, b := range buildAll(t) {
		for _, q := range b.targets() {
			for _, f := range families(q.Expr) {
				base := strings.TrimSuffix(f, "_bucket")
				if f != "up" && !defined[f] && !defined[base] {
					t.Errorf("%s %q reads %s, which no gpuledger source defines", q.key(), q.panel.Title, f)
				}
			}
		}
	}
}

// definedFamilies reads the metric names gpuledger's Go sources define:
// descriptors built on collector.Namespace and literal gpuledger_ names in
// the exporters, the aggregator and the API (tests left out).
func definedFamilies(t *testing.T) map[string]bool {
	t.Helper()
	nsName := regexp.MustCompile(`Namespace\s*\+\s*"(_[a-z0-9_]+)"`)
	literal := regexp.MustCompile(`"(gpuledger_[a-z0-9_]+)"`)
	out := map[string]bool{}
	for _, dir := range []string{"../exporters", "../aggregator", "../api"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range nsName.FindAllStringSubmatch(string(src), -1) {
				out["gpuledger"+m[1]] = true
			}
			for _, m := range literal.FindAllStringSubmatch(string(src), -1) {
				out[m[1]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !out["gpuledger_allocation_weight_ratio"] || !out["gpuledger_aggregator_watermark_seconds"] {
		t.Fatalf("reading the metric definitions found %d names, not the known ones", len(out))
	}
	return out
}
