package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/observe"
)

// fakeProm is a Prometheus HTTP API that answers /api/v1/query with what
// answer returns, and records the queries.
type fakeProm struct {
	*httptest.Server
	mu      sync.Mutex
	queries []fakeQuery
}

type fakeQuery struct {
	query   string
	at      float64 // seconds
	rangeMs int64
	partial string // the partial_response parameter
}

var rangeRe = regexp.MustCompile(`\[(\d+)ms\]$`)

func newFakeProm(t *testing.T, answer func(n int, q fakeQuery) (int, string)) *fakeProm {
	f := &fakeProm{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("bad request: %v", err)
		}
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		q := fakeQuery{query: r.Form.Get("query"), partial: r.Form.Get("partial_response")}
		q.at, _ = strconv.ParseFloat(r.Form.Get("time"), 64)
		if m := rangeRe.FindStringSubmatch(q.query); m != nil {
			q.rangeMs, _ = strconv.ParseInt(m[1], 10, 64)
		}
		f.mu.Lock()
		n := len(f.queries)
		f.queries = append(f.queries, q)
		f.mu.Unlock()
		code, body := answer(n, q)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeProm) recorded() []fakeQuery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeQuery(nil), f.queries...)
}

// stream is one series of a matrix answer.
type stream struct {
	labels map[string]string
	values [][2]any // [seconds, "value"]
}

func matrix(streams ...stream) string {
	type result struct {
		Metric map[string]string `json:"metric"`
		Values [][2]any          `json:"values"`
	}
	out := struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string   `json:"resultType"`
			Result     []result `json:"result"`
		} `json:"data"`
	}{Status: "success"}
	out.Data.ResultType = "matrix"
	out.Data.Result = []result{}
	for _, s := range streams {
		out.Data.Result = append(out.Data.Result, result{s.labels, s.values})
	}
	b, _ := json.Marshal(out)
	return string(b)
}

func apiError(kind, msg string) string {
	return fmt.Sprintf(`{"status":"error","errorType":%q,"error":%q}`, kind, msg)
}

// series labels: the allocation labels of the tests plus a scrape's.
func promLabels(name, instance string, extra ...string) map[string]string {
	l := map[string]string{"__name__": name, "job": "gpuledger-exporter", "instance": instance, "cluster": "c1"}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

func allocPromLabels(name, instance string) map[string]string {
	return promLabels(name, instance, "node", "a100-mig-01", "resource", "nvidia.com/mig-1g.10gb", "class", "mig",
		"device", "MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d03", "gpu_uuid", "GPU-5c89852c", "gpu", "0",
		"model", "NVIDIA A100-SXM4-80GB", "profile", "1g.10gb", "namespace", "hub", "pod", "jupyter-alice",
		"pod_uid", "uid-1", "user", "alice", "project", "jupyterhub", "queue", "", "site", "")
}

func fastOptions(url string) PrometheusOptions {
	return PrometheusOptions{URL: url, Cluster: "c1", Job: "gpuledger-exporter", Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

const t0 = 1_793_606_400 // 2026-11-02T08:00:00Z

func TestPrometheusFetch(t *testing.T) {
	const inst = "10.0.0.7:9835"
	from, to := time.Unix(t0, 0), time.Unix(t0+60, 0)
	f := newFakeProm(t, func(int, fakeQuery) (int, string) {
		return 200, matrix(
			stream{promLabels(FamilyTime, inst), [][2]any{{t0 - 0.001, "1793606399.999"}, {t0, "1793606400"}, {t0 + 15, "1793606415"}, {t0 + 30, "1793606430"}, {t0 + 60, "1793606460"}}},
			stream{allocPromLabels(FamilyStart, inst), [][2]any{{t0, "1793604600"}, {t0 + 15, "1793604600"}}},
			stream{allocPromLabels(FamilyWeight, inst), [][2]any{{t0, "0.143"}, {t0 + 15, "0.143"}}},
			stream{allocPromLabels(FamilyDevices, inst), [][2]any{{t0, "1"}, {t0 + 15, "1"}}},
			stream{allocPromLabels(FamilyActivity, inst), [][2]any{{t0, "0.25"}, {t0 + 15, "NaN"}}},
			stream{promLabels(FamilyEnergy, inst, "node", "a100-mig-01", "uuid", "GPU-5c89852c", "gpu", "0"), [][2]any{{t0, "1000.5"}}},
			stream{promLabels(FamilyGPUInfo, inst, "node", "a100-mig-01", "uuid", "GPU-5c89852c", "gpu", "0", "model", "A100", "mig_mode", "enabled"), [][2]any{{t0, "1"}}},
			stream{promLabels(FamilyUp, inst), [][2]any{{t0, "1"}, {t0 + 15, "1"}, {t0 + 30, "1"}, {t0 + 45, "0"}}},
			// A second exporter, named by its node label everywhere.
			stream{promLabels(FamilyTime, "vk-cnaf", "node", "vk-cnaf"), [][2]any{{t0 + 5, "1793606405"}}},
			stream{promLabels(FamilyUp, "vk-cnaf", "node", "vk-cnaf"), [][2]any{{t0 + 5, "1"}}},
			// Not a family of ours.
			stream{promLabels("gpuledger_gpu_power_watts", inst), [][2]any{{t0, "300"}}},
		)
	})
	p, err := NewPrometheus(fastOptions(f.URL))
	if err != nil {
		t.Fatal(err)
	}
	scrapes, err := p.Fetch(context.Background(), from, to)
	var se *SeriesError
	if !errors.As(err, &se) || se.Dropped != 1 || !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), "NaN") {
		t.Fatalf("want one NaN activity dropped, got %v", err)
	}
	alloc := observe.Alloc{AllocKey: testKey, Attrs: testAttrs, Start: t0 - 1800, WeightMilli: 143, Devices: 1, ActivityMilli: 250}
	noActivity := alloc
	noActivity.ActivityMilli = -1
	want := []observe.Scrape{
		{Target: "a100-mig-01", Time: t0 * 1000, OK: true, Allocs: []observe.Alloc{alloc},
			GPUs: []observe.GPU{{Node: "a100-mig-01", UUID: "GPU-5c89852c", Model: "A100", EnergyMillijoules: 1_000_500}}},
		{Target: "vk-cnaf", Time: (t0 + 5) * 1000, OK: true},
		{Target: "a100-mig-01", Time: (t0 + 15) * 1000, OK: true, Allocs: []observe.Alloc{noActivity}},
		// Only the exporter's clock: named through the instance's node.
		{Target: "a100-mig-01", Time: (t0 + 30) * 1000, OK: true},
		// up = 0 and nothing else: a failed scrape.
		{Target: "a100-mig-01", Time: (t0 + 45) * 1000, OK: false},
	}
	if len(scrapes) != len(want) {
		t.Fatalf("%d scrapes, want %d: %+v", len(scrapes), len(want), scrapes)
	}
	for i := range want {
		if fmt.Sprintf("%+v", scrapes[i]) != fmt.Sprintf("%+v", want[i]) {
			t.Errorf("scrape %d:\n got %+v\nwant %+v", i, scrapes[i], want[i])
		}
	}
	qs := f.recorded()
	if len(qs) != 1 {
		t.Fatalf("%d queries, want 1", len(qs))
	}
	q := qs[0]
	for _, frag := range []string{`__name__=~"gpuledger_allocation_activity_ratio|`, `|up"`, `cluster="c1"`, `job="gpuledger-exporter"`} {
		if !strings.Contains(q.query, frag) {
			t.Errorf("query %s lacks %s", q.query, frag)
		}
	}
	if q.rangeMs != 60_001 || q.at != float64(t0+60)-0.001 || q.partial != "false" {
		t.Errorf("query range %d ms at %v partial_response %q; want 60001 ms at %v, false", q.rangeMs, q.at, q.partial, float64(t0+60)-0.001)
	}
}

// The cluster-mode exporter's Kueue quotas come with its scrapes, like
// every other family; a NaN quota is dropped at its scrape.
func TestPrometheusQuotas(t *testing.T) {
	const inst = "10.0.0.9:9835"
	quota := func(cq, flavor, res string) map[string]string {
		return promLabels(FamilyQuota, inst, "cluster_queue", cq, "flavor", flavor, "resource", res)
	}
	f := newFakeProm(t, func(int, fakeQuery) (int, string) {
		return 200, matrix(
			stream{promLabels(FamilyTime, inst), [][2]any{{t0, "1793606400"}, {t0 + 15, "1793606415"}}},
			stream{quota("cms-gpu", "a100", "nvidia.com/gpu"), [][2]any{{t0, "8"}, {t0 + 15, "6"}}},
			stream{quota("hub", "t4", "nvidia.com/gpu.shared"), [][2]any{{t0, "16"}, {t0 + 15, "NaN"}}},
			stream{promLabels(FamilyUp, inst), [][2]any{{t0, "1"}, {t0 + 15, "1"}}},
		)
	})
	p, err := NewPrometheus(fastOptions(f.URL))
	if err != nil {
		t.Fatal(err)
	}
	scrapes, err := p.Fetch(context.Background(), time.Unix(t0, 0), time.Unix(t0+60, 0))
	var se *SeriesError
	if !errors.As(err, &se) || se.Dropped != 1 || !errors.Is(err, ErrBadValue) {
		t.Fatalf("want the NaN quota dropped, got %v", err)
	}
	want := []observe.Scrape{
		{Target: inst, Time: t0 * 1000, OK: true, Quotas: []observe.Quota{
			{ClusterQueue: "cms-gpu", Flavor: "a100", Resource: "nvidia.com/gpu", NominalMilli: 8000},
			{ClusterQueue: "hub", Flavor: "t4", Resource: "nvidia.com/gpu.shared", NominalMilli: 16000}}},
		{Target: inst, Time: (t0 + 15) * 1000, OK: true, Quotas: []observe.Quota{
			{ClusterQueue: "cms-gpu", Flavor: "a100", Resource: "nvidia.com/gpu", NominalMilli: 6000}}},
	}
	if fmt.Sprintf("%+v", scrapes) != fmt.Sprintf("%+v", want) {
		t.Errorf("scrapes\n got %+v\nwant %+v", scrapes, want)
	}
	if q := f.recorded()[0].query; !strings.Contains(q, "|"+FamilyQuota+"|") {
		t.Errorf("query %s does not read %s", q, FamilyQuota)
	}
}

func TestPrometheusChunks(t *testing.T) {
	f := newFakeProm(t, func(_ int, q fakeQuery) (int, string) {
		// One exporter-clock sample at every quarter hour of the window.
		end := int64(q.at*1000) + 1
		var vals [][2]any
		for ms := end - q.rangeMs + 1; ms <= end; ms += 15 * 60_000 {
			vals = append(vals, [2]any{float64(ms) / 1000, strconv.FormatInt(ms/1000, 10)})
		}
		return 200, matrix(stream{promLabels(FamilyTime, "n1", "node", "n1"), vals})
	})
	opts := fastOptions(f.URL)
	opts.Chunk = time.Hour
	p, err := NewPrometheus(opts)
	if err != nil {
		t.Fatal(err)
	}
	from := time.Unix(t0, 0)
	scrapes, err := p.Fetch(context.Background(), from, from.Add(150*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// [08:00, 10:30) every 15 minutes: 10 scrapes, each once.
	if len(scrapes) != 10 {
		t.Fatalf("%d scrapes, want 10", len(scrapes))
	}
	for i, s := range scrapes {
		if s.Time != (t0+int64(i)*900)*1000 {
			t.Errorf("scrape %d at %d", i, s.Time)
		}
	}
	qs := f.recorded()
	wantAt := []float64{t0 + 3600 - 0.001, t0 + 7200 - 0.001, t0 + 9000 - 0.001}
	wantRange := []int64{3_600_001, 3_600_001, 1_800_001}
	if len(qs) != 3 {
		t.Fatalf("%d queries, want 3", len(qs))
	}
	for i, q := range qs {
		if q.at != wantAt[i] || q.rangeMs != wantRange[i] {
			t.Errorf("query %d: %d ms at %v; want %d ms at %v", i, q.rangeMs, q.at, wantRange[i], wantAt[i])
		}
	}
}

func TestPrometheusErrors(t *testing.T) {
	ok := matrix(stream{promLabels(FamilyTime, "n1", "node", "n1"), [][2]any{{t0, "1793606400"}}})
	cases := []struct {
		name    string
		answer  func(n int, q fakeQuery) (int, string)
		queries int    // queries the server sees
		err     error  // nil: success
		text    string // in the error
	}{
		{"5xx retried", func(n int, _ fakeQuery) (int, string) {
			if n < 2 {
				return 503, "Service Unavailable"
			}
			return 200, ok
		}, 3, nil, ""},
		{"5xx until the retries run out", func(int, fakeQuery) (int, string) { return 502, "Bad Gateway" }, 6, ErrQuery, "server error: 502"},
		{"server timeout retried", func(n int, _ fakeQuery) (int, string) {
			if n == 0 {
				return 503, apiError("timeout", "query timed out in expression evaluation")
			}
			return 200, ok
		}, 2, nil, ""},
		{"429 retried", func(n int, _ fakeQuery) (int, string) {
			if n == 0 {
				return 429, "slow down"
			}
			return 200, ok
		}, 2, nil, ""},
		{"bad query not retried", func(int, fakeQuery) (int, string) {
			return 400, apiError("bad_data", `invalid parameter "query": parse error`)
		}, 1, ErrQuery, "parse error"},
		{"partial answer retried, then an error", func(int, fakeQuery) (int, string) {
			return 200, strings.Replace(ok, `"status":"success"`, `"status":"success","warnings":["store 10.0.0.3:10901 unavailable"]`, 1)
		}, 6, ErrPartial, "store 10.0.0.3:10901 unavailable"},
		{"partial answer once", func(n int, _ fakeQuery) (int, string) {
			if n == 0 {
				return 200, strings.Replace(ok, `"status":"success"`, `"status":"success","warnings":["partial"]`, 1)
			}
			return 200, ok
		}, 2, nil, ""},
		{"truncated JSON retried", func(n int, _ fakeQuery) (int, string) {
			if n == 0 {
				return 200, ok[:len(ok)/2]
			}
			return 200, ok
		}, 2, nil, ""},
		{"not a matrix", func(int, fakeQuery) (int, string) {
			return 200, `{"status":"success","data":{"resultType":"vector","result":[]}}`
		}, 6, ErrQuery, "want a matrix"},
		{"too many samples: split", func(_ int, q fakeQuery) (int, string) {
			if q.rangeMs > 20*60_000 {
				return 422, apiError("execution", "query processing would load too many samples into memory in query execution")
			}
			return 200, ok
		}, 1 + 2 + 4, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeProm(t, c.answer)
			p, err := NewPrometheus(fastOptions(f.URL))
			if err != nil {
				t.Fatal(err)
			}
			from := time.Unix(t0, 0)
			scrapes, err := p.Fetch(context.Background(), from, from.Add(time.Hour))
			if n := len(f.recorded()); n != c.queries {
				t.Errorf("%d queries, want %d", n, c.queries)
			}
			if c.err == nil {
				if err != nil || len(scrapes) != 1 || !scrapes[0].OK {
					t.Errorf("Fetch = %+v, %v; want one scrape", scrapes, err)
				}
				return
			}
			if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.text) || scrapes != nil {
				t.Errorf("Fetch = %d scrapes, %v; want error %v containing %q", len(scrapes), err, c.err, c.text)
			}
		})
	}
}

func TestPrometheusTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release) // before Close, which waits for the handlers
	opts := fastOptions(hang.URL)
	opts.Timeout, opts.Retries = 100*time.Millisecond, 2
	p, err := NewPrometheus(opts)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	_, err = p.Fetch(context.Background(), time.Unix(t0, 0), time.Unix(t0+60, 0))
	if !errors.Is(err, ErrQuery) || !strings.Contains(err.Error(), "after 3 attempts") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hanging server: %v", err)
	}
	if time.Since(begin) > 3*time.Second {
		t.Errorf("three 100 ms attempts took %s", time.Since(begin))
	}

	// The caller's context ends during the backoff.
	down := newFakeProm(t, func(int, fakeQuery) (int, string) { return 503, "down" })
	opts = fastOptions(down.URL)
	opts.Backoff, opts.MaxBackoff = time.Hour, time.Hour
	p, err = NewPrometheus(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	begin = time.Now()
	_, err = p.Fetch(ctx, time.Unix(t0, 0), time.Unix(t0+60, 0))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "503") || time.Since(begin) > 3*time.Second {
		t.Errorf("canceled during backoff after %s: %v", time.Since(begin), err)
	}
}

func TestPrometheusOptions(t *testing.T) {
	cases := []struct {
		name string
		opts PrometheusOptions
		err  string
	}{
		{"no URL", PrometheusOptions{}, "want an http(s) URL"},
		{"no scheme", PrometheusOptions{URL: "prometheus:9090"}, "want an http(s) URL"},
		{"bad cluster label", PrometheusOptions{URL: "http://p:9090", ClusterLabel: "a-b"}, "not a valid label name"},
		{"tiny chunk", PrometheusOptions{URL: "http://p:9090", Chunk: time.Millisecond}, "shorter than a second"},
		{"negative timeout", PrometheusOptions{URL: "http://p:9090", Timeout: -time.Second}, "negative"},
	}
	for _, c := range cases {
		if _, err := NewPrometheus(c.opts); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		}
	}
	p, err := NewPrometheus(PrometheusOptions{URL: "http://p:9090", Cluster: `a"b`})
	if err != nil {
		t.Fatal(err)
	}
	q, at := p.Query(time.Unix(t0, 0), time.Unix(t0+300, 0))
	if want := `{__name__=~"gpuledger_allocation_activity_ratio|gpuledger_allocation_devices|gpuledger_allocation_end_time_seconds|gpuledger_allocation_start_time_seconds|gpuledger_allocation_weight_ratio|gpuledger_exporter_time_seconds|gpuledger_fpga_info|gpuledger_gpu_energy_joules_total|gpuledger_gpu_info|gpuledger_kueue_clusterqueue_nominal_quota",cluster="a\"b"}[300001ms]`; q != want {
		t.Errorf("query\n got %s\nwant %s", q, want)
	}
	if !at.Equal(time.UnixMilli(t0*1000 + 300_000 - 1)) {
		t.Errorf("evaluated at %s", at)
	}
	for _, r := range [][2]time.Time{{time.Unix(t0, 0), time.Unix(t0, 0)}, {time.Unix(t0+1, 0), time.Unix(t0, 0)}} {
		if _, err := p.Fetch(context.Background(), r[0], r[1]); !errors.Is(err, ErrBadRange) {
			t.Errorf("Fetch(%s, %s) = %v, want ErrBadRange", r[0], r[1], err)
		}
	}
}
