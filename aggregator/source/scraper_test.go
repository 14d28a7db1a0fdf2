package source

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/sim/clock"
)

// TestScrapeAll scrapes the simulated nodes of small.yaml together with
// targets that are down, answer 503, hang, or answer garbage: each bad one
// fails with its reason, and none delays the others beyond the timeout.
func TestScrapeAll(t *testing.T) {
	s, allocs := loadSmall(t)
	at := time.Date(2026, 11, 2, 11, 7, 0, 0, time.UTC)
	clk := clock.NewManual(at)
	targets := serveCluster(t, s, allocs, clk)

	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := l.Addr().String()
	l.Close()

	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "exporter restarting", http.StatusServiceUnavailable)
	}))
	defer unavailable.Close()
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)
	// A body that starts well and then stalls: the timeout covers reading.
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte("gpuledger_exporter_time_seconds 1.79361762e+09\n"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer stall.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte("<html><body>Welcome to nginx!</body></html>\n"))
	}))
	defer garbage.Close()
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		line := []byte("# padding padding padding padding padding padding padding\n")
		for range 2000 {
			w.Write(line)
		}
	}))
	defer huge.Close()
	nan := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte("gpuledger_exporter_time_seconds 1.79361762e+09\n" +
			alloc(allocLabels(), "1793608200", "NaN", "1", "", "0.5") +
			alloc(allocLabels("pod_uid", "uid-2", "device", "MIG-2"), "1793608200", "0.143", "1", "", "0.5")))
	}))
	defer nan.Close()

	bad := []struct {
		target Target
		reason string
		status int
		text   string
	}{
		{Target{"down", "http://" + downAddr + "/metrics"}, ReasonUnreachable, 0, "refused"},
		{Target{"unavailable", unavailable.URL + "/metrics"}, ReasonHTTPStatus, 503, "exporter restarting"},
		{Target{"hang", hang.URL + "/metrics"}, ReasonTimeout, 0, "deadline"},
		{Target{"stall", stall.URL + "/metrics"}, ReasonTimeout, 200, "deadline"},
		{Target{"garbage", garbage.URL + "/metrics"}, ReasonBadBody, 200, "does not parse"},
		{Target{"huge", huge.URL + "/metrics"}, ReasonTooLarge, 200, "too large"},
	}
	all := append([]Target(nil), targets...)
	for _, b := range bad {
		all = append(all, b.target)
	}
	all = append(all, Target{"nan", nan.URL + "/metrics"})

	const timeout = 400 * time.Millisecond
	sc, err := NewScraper(StaticTargets(all), ScraperOptions{Timeout: timeout, Concurrency: 4, MaxBodyBytes: 64 << 10,
		Clock: clock.Fixed(at.Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	results, err := sc.ScrapeAll(context.Background())
	elapsed := time.Since(begin)
	if err != nil {
		t.Fatal(err)
	}
	// Two slow targets, four at a time: one timeout's worth, plus slack.
	if elapsed > timeout+2*time.Second {
		t.Errorf("ScrapeAll took %s with a %s timeout", elapsed, timeout)
	}
	if len(results) != len(all) {
		t.Fatalf("%d results for %d targets", len(results), len(all))
	}
	for i, tg := range targets {
		r := results[i]
		if r.Target != tg.Name || !r.OK || r.Reason != "" || r.Err != nil || r.Time != at.UnixMilli() || r.StatusCode != 200 {
			t.Errorf("%s: %+v", tg.Name, r)
			continue
		}
		checkAgainstScenario(t, s, allocs, tg.Name, r.Scrape)
	}
	for i, b := range bad {
		r := results[len(targets)+i]
		if r.Target != b.target.Name || r.OK || r.Reason != b.reason || r.StatusCode != b.status ||
			r.Err == nil || !strings.Contains(r.Err.Error(), b.text) {
			t.Errorf("%s: OK %v reason %q status %d err %v; want reason %q status %d error containing %q",
				b.target.Name, r.OK, r.Reason, r.StatusCode, r.Err, b.reason, b.status, b.text)
		}
		// A failed scrape is dated by the scraper's clock.
		if r.Time != at.Add(time.Hour).UnixMilli() {
			t.Errorf("%s: failed scrape at %d, want the clock's %d", b.target.Name, r.Time, at.Add(time.Hour).UnixMilli())
		}
		if r.Duration > timeout+time.Second {
			t.Errorf("%s: took %s", b.target.Name, r.Duration)
		}
	}
	r := results[len(results)-1]
	var se *SeriesError
	if !r.OK || r.Reason != ReasonDroppedSeries || r.Dropped != 4 || !errors.As(r.Err, &se) || len(r.Allocs) != 1 ||
		r.Time != at.UnixMilli() {
		t.Errorf("nan: OK %v reason %q dropped %d allocs %d time %d err %v", r.OK, r.Reason, r.Dropped, len(r.Allocs), r.Time, r.Err)
	}

	// Inside the scrape gap of t4-01, the simulated exporter answers 503.
	clk.Set(time.Date(2026, 11, 2, 11, 2, 0, 0, time.UTC))
	gap, err := NewScraper(StaticTargets(targets), ScraperOptions{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	results, err = gap.ScrapeAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		inGap := r.Target == "t4-01"
		if r.OK == inGap || (inGap && (r.Reason != ReasonHTTPStatus || r.StatusCode != 503 || !strings.Contains(r.Err.Error(), "scrape_gap"))) {
			t.Errorf("%s during t4-01's gap: OK %v reason %q status %d err %v", r.Target, r.OK, r.Reason, r.StatusCode, r.Err)
		}
	}
}

func TestScrapeAllCanceled(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()
	sc, err := NewScraper(StaticTargets{{"a", hang.URL}, {"b", hang.URL}}, ScraperOptions{Timeout: time.Minute, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	results, _ := sc.ScrapeAll(ctx)
	if time.Since(begin) > 5*time.Second {
		t.Errorf("canceled ScrapeAll took %s", time.Since(begin))
	}
	for _, r := range results {
		if r.OK || (r.Reason != ReasonTimeout && r.Reason != ReasonCanceled) {
			t.Errorf("%s: OK %v reason %q", r.Target, r.OK, r.Reason)
		}
	}
}

type failingDiscoverer struct {
	targets []Target
	err     error
}

func (f *failingDiscoverer) Targets(context.Context) ([]Target, error) { return f.targets, f.err }

func TestScrapeAllDiscoveryFailure(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("gpuledger_exporter_time_seconds 1.79361762e+09\n"))
	}))
	defer ok.Close()
	d := &failingDiscoverer{targets: []Target{{"n1", ok.URL}}}
	sc, err := NewScraper(d, ScraperOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rs, err := sc.ScrapeAll(context.Background()); err != nil || len(rs) != 1 || !rs[0].OK {
		t.Fatalf("first round: %v %+v", err, rs)
	}
	d.targets, d.err = nil, errors.New("API server unreachable")
	rs, err := sc.ScrapeAll(context.Background())
	if err == nil || !strings.Contains(err.Error(), "API server unreachable") {
		t.Errorf("discovery error not reported: %v", err)
	}
	if len(rs) != 1 || !rs[0].OK || rs[0].Target != "n1" {
		t.Errorf("the last targets were not scraped: %+v", rs)
	}
}

func TestParseTargets(t *testing.T) {
	cases := []struct {
		in   string
		want StaticTargets
		err  string
	}{
		{"127.0.0.1:9835, node-2:9835", StaticTargets{{"127.0.0.1:9835", "http://127.0.0.1:9835/metrics"}, {"node-2:9835", "http://node-2:9835/metrics"}}, ""},
		{"https://gpu-01.example:9835/custom", StaticTargets{{"gpu-01.example:9835", "https://gpu-01.example:9835/custom"}}, ""},
		{"[::1]:9835", StaticTargets{{"[::1]:9835", "http://[::1]:9835/metrics"}}, ""},
		{"gpu-01=10.0.0.7:9835,vk-cnaf=http://10.0.0.8:9835/metrics?x=y", StaticTargets{{"gpu-01", "http://10.0.0.7:9835/metrics"},
			{"vk-cnaf", "http://10.0.0.8:9835/metrics?x=y"}}, ""},
		{"http://h:1/metrics?a=b", StaticTargets{{"h:1", "http://h:1/metrics?a=b"}}, ""},
		{"=h:1", nil, "empty name"},
		{"n=h:1,n=h:2", nil, "listed twice"},
		{"n=", nil, "want host:port"},
		{"", nil, "no targets"},
		{"node-1", nil, "want host:port"},
		{"ftp://x:1", nil, "scheme must be http or https"},
		{"a:1,a:1", nil, "listed twice"},
	}
	for _, c := range cases {
		got, err := ParseTargets(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrBadTarget) {
				t.Errorf("ParseTargets(%q) = %v, %v; want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseTargets(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestFileSD(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, body string
		want       []Target
		err        string
	}{
		{"demo.json", `[
  {"targets": ["127.0.0.1:40001"], "labels": {"node": "t4-01", "cluster": "ai-infn-small"}},
  {"targets": ["127.0.0.1:40000"], "labels": {"node": "a100-mig-01", "cluster": "ai-infn-small"}}
]`, []Target{{"a100-mig-01", "http://127.0.0.1:40000/metrics"}, {"t4-01", "http://127.0.0.1:40001/metrics"}}, ""},
		{"unnamed.yaml", "- targets: [gpu-1:9835, gpu-2:9835]\n  labels: {__scheme__: https, __metrics_path__: /m}\n",
			[]Target{{"gpu-1:9835", "https://gpu-1:9835/m"}, {"gpu-2:9835", "https://gpu-2:9835/m"}}, ""},
		{"shared-node.json", `[{"targets": ["a:1", "b:1"], "labels": {"node": "n"}}]`, nil, "give each node its own group"},
		{"twice.json", `[{"targets": ["a:1"], "labels": {"node": "n"}}, {"targets": ["b:1"], "labels": {"node": "n"}}]`, nil, "listed twice"},
		{"broken.json", `[{"targets": "a:1"}]`, nil, "broken.json"},
		{"bad-target.json", `[{"targets": ["no-port"]}]`, nil, "want host:port"},
	}
	for _, c := range cases {
		got, err := FileSD{Path: write(c.name, c.body)}.Targets(context.Background())
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, %v; want error %q", c.name, got, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	if _, err := (FileSD{Path: filepath.Join(dir, "missing.json")}).Targets(context.Background()); err == nil {
		t.Error("a missing file_sd file gave no error")
	}
}
