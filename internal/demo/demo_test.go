package demo

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/alerts"
	"github.com/gpuledger/gpuledger/attribution"
	"github.com/gpuledger/gpuledger/dashboards"
	"github.com/gpuledger/gpuledger/internal/pgtest"
	"github.com/gpuledger/gpuledger/sim/scenario"
	"github.com/gpuledger/gpuledger/sim/truth"
)

// syncBuffer is a bytes.Buffer safe for the demo goroutine and the test.
type syncBuffer struct {
	ch  chan struct{}
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.ch <- struct{}{}
	defer func() { <-b.ch }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.ch <- struct{}{}
	defer func() { <-b.ch }()
	return b.buf.String()
}

// waitServing waits until the demo says it serves, failing when it ends
// first or does not get there within limit.
func waitServing(t *testing.T, narration *syncBuffer, done <-chan error, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(narration.String(), "Serving until Ctrl-C") {
		select {
		case err := <-done:
			t.Fatalf("demo ended early: %v\n%s", err, narration.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo not serving after %s:\n%s", limit, narration.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGeneratedDemo runs the demo on a generated cluster, scrapes every
// exporter it started, and checks the ground truth it wrote against the
// scenario it wrote, and the dashboards and rules it wrote.
func TestGeneratedDemo(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	narration := &syncBuffer{ch: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Out: out, Generated: true, Nodes: 4, Window: 2 * time.Hour, Speed: 600, NoLedger: true}, narration)
	}()

	targetsFile := filepath.Join(out, "targets.json")
	waitServing(t, narration, done, 30*time.Second)
	checkArtifacts(t, out, narration.String())
	if _, err := os.Stat(filepath.Join(out, "tokens")); err == nil || strings.Contains(narration.String(), "Usage page") {
		t.Error("without a ledger the demo must not serve the usage page nor mint tokens")
	}

	raw, err := os.ReadFile(targetsFile)
	if err != nil {
		t.Fatal(err)
	}
	var groups []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(raw, &groups); err != nil {
		t.Fatalf("targets.json: %v", err)
	}
	s, err := scenario.Load(filepath.Join(out, "scenario.yaml"))
	if err != nil {
		t.Fatalf("the demo wrote an invalid scenario: %v", err)
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]bool{}
	for _, a := range allocs {
		nodes[a.Node] = true
	}
	if len(groups) != len(nodes) {
		t.Errorf("demo serves %d exporters, the scenario has allocations on %d nodes", len(groups), len(nodes))
	}
	for _, g := range groups {
		resp, err := http.Get("http://" + g.Targets[0] + "/metrics")
		if err != nil {
			t.Fatalf("scrape %s: %v", g.Labels["node"], err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			continue // inside a simulated fault
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `node="`+g.Labels["node"]+`"`) {
			t.Errorf("exporter of %s: status %d, its series do not name the node", g.Labels["node"], resp.StatusCode)
		}
	}
	if !strings.Contains(narration.String(), "generated AI_INFN-like cluster") {
		t.Errorf("the demo does not say it used a generated cluster:\n%s", narration.String())
	}

	// The by-project truth sums to the scenario's allocations, computed here
	// independently.
	var want int64
	for _, a := range allocs {
		if a.Class == "fpga" {
			continue
		}
		start, end := max(a.Start.Unix(), s.Start.Unix()), s.End.Unix()
		if !a.Open() {
			end = min(a.End.Unix(), end)
		}
		if end > start {
			want += a.WeightMilli * (end - start)
		}
	}
	f, err := os.Open(filepath.Join(out, "truth-by-project.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := -1
	for i, h := range rows[0] {
		if h == "allocated_milli_gpu_seconds" {
			col = i
		}
	}
	if col < 0 {
		t.Fatalf("truth CSV has no allocated_milli_gpu_seconds column: %v", rows[0])
	}
	var got int64
	for _, r := range rows[1:] {
		n, err := strconv.ParseInt(r[col], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	if got != want || want == 0 {
		t.Errorf("truth total %d milli-GPU-s, want %d", got, want)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demo did not stop after cancel")
	}
}

func TestTraceDemoFallsBack(t *testing.T) {
	var buf bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // serve nothing: just choose, write and check
	err := Run(ctx, Options{Out: t.TempDir(), TraceDir: t.TempDir(), Nodes: 2, Window: time.Hour, NoLedger: true}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "the public traces are not at") {
		t.Errorf("without traces the demo must say it generated a cluster and why:\n%s", buf.String())
	}
}

// TestTraceDemo uses the public trace when it is beside the checkout (CI has
// it).
func TestTraceDemo(t *testing.T) {
	dir := os.Getenv("TRACE_DIR")
	if dir == "" {
		dir = "../../../shared/data"
	}
	if _, err := os.Stat(filepath.Join(dir, "alibaba-gpu-v2023", "openb_pod_list_default.csv")); err != nil {
		t.Skipf("public traces not found at %s (set TRACE_DIR): %v", dir, err)
	}
	var buf bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := t.TempDir()
	if err := Run(ctx, Options{Out: out, TraceDir: dir, Window: time.Hour, NoLedger: true}, &buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "window of the public Alibaba GPU v2023 trace") {
		t.Errorf("the demo does not say it used the trace:\n%s", buf.String())
	}
	if _, err := scenario.Load(filepath.Join(out, "scenario.yaml")); err != nil {
		t.Errorf("trace demo scenario: %v", err)
	}
}

// TestDemoLedger runs the demo's replay into a database of its own and
// checks that it reports the ledger equal to the ground truth, then that
// the API answers the printed curl examples with the minted tokens and the
// usage page answers after a login through the development provider.
func TestDemoLedger(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "gpuledger")
	build := exec.Command("go", "build", "-o", bin, "github.com/gpuledger/gpuledger/cmd/gpuledger")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	buf := &syncBuffer{ch: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := t.TempDir()
	dbURL := pgtest.New(t)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Out: out, Generated: true, Nodes: 3, Window: 2 * time.Hour, Binary: bin, DatabaseURL: dbURL}, buf)
	}()
	waitServing(t, buf, done, 90*time.Second)
	narration := buf.String()
	if !strings.Contains(narration, "equals the ground truth") {
		t.Errorf("the demo's ledger is not reported exact:\n%s", narration)
	}
	if _, err := os.Stat(filepath.Join(out, "ledger-by-project-user-resource.csv")); err != nil {
		t.Errorf("ledger report not written: %v", err)
	}
	if !strings.Contains(narration, "The month's report, ") || !strings.Contains(narration, "provisional: the month is open") {
		t.Errorf("the demo does not print the month's report:\n%s", narration)
	}
	checkArtifacts(t, out, narration)

	s, err := scenario.Load(filepath.Join(out, "scenario.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := s.Allocations(attribution.Default())
	if err != nil {
		t.Fatal(err)
	}
	detail, err := truth.Compute(allocs, s.Start, s.End, []string{truth.KeyProject, truth.KeyUser, truth.KeyResource})
	if err != nil {
		t.Fatal(err)
	}
	who := pickPeople(detail)
	for _, want := range []string{who.admin + " ", who.manager + " ", who.researcher + " ", "manager of " + who.project} {
		if !strings.Contains(narration, want) {
			t.Errorf("the demo does not name its user %q:\n%s", want, narration)
		}
	}
	t.Run("curl", func(t *testing.T) { checkCurlExamples(t, narration, who) })
	t.Run("page", func(t *testing.T) { checkPageLogin(t, narration, who, s) })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop after cancel")
	}
}

// checkArtifacts checks the dashboards, the alert rules and the
// Prometheus configuration the demo wrote under out.
func checkArtifacts(t *testing.T, out, narration string) {
	t.Helper()
	for _, spec := range dashboards.All() {
		raw, err := os.ReadFile(filepath.Join(out, "dashboards", spec.FileName()))
		if err != nil {
			t.Errorf("dashboard %s not written: %v", spec.UID, err)
			continue
		}
		var d struct {
			UID string `json:"uid"`
		}
		if err := json.Unmarshal(raw, &d); err != nil || d.UID != spec.UID {
			t.Errorf("dashboard %s: uid %q, %v", spec.FileName(), d.UID, err)
		}
	}
	rulesFile := filepath.Join(out, "alerts", alerts.RuleFileName)
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatalf("rule file not written: %v", err)
	}
	if _, err := alerts.Parse(raw); err != nil {
		t.Errorf("rule file: %v", err)
	}
	if raw, err = os.ReadFile(filepath.Join(out, "alerts", "prometheusrule.yaml")); err != nil {
		t.Fatalf("PrometheusRule not written: %v", err)
	}
	if _, err := alerts.ParsePrometheusRule(raw); err != nil {
		t.Errorf("PrometheusRule: %v", err)
	}
	absDash, err := filepath.Abs(filepath.Join(out, "dashboards"))
	if err != nil {
		t.Fatal(err)
	}
	if raw, err = os.ReadFile(filepath.Join(out, "grafana", "provisioning", "dashboards", "gpuledger.yaml")); err != nil {
		t.Errorf("Grafana dashboard provider not written: %v", err)
	} else if !strings.Contains(string(raw), strconv.Quote(absDash)) {
		t.Errorf("the Grafana provider does not read %s:\n%s", absDash, raw)
	}
	promConfig := filepath.Join(out, "prometheus.yml")
	cfg, err := os.ReadFile(promConfig)
	if err != nil {
		t.Fatal(err)
	}
	absRules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "rule_files:\n  - "+strconv.Quote(absRules)) {
		t.Errorf("prometheus.yml does not load %s:\n%s", absRules, cfg)
	}
	for _, want := range []string{"promtool check rules " + rulesFile, filepath.Join(out, "dashboards"), "provisioning/dashboards"} {
		if !strings.Contains(narration, want) {
			t.Errorf("the demo does not print %q:\n%s", want, narration)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Logf("promtool not found, prometheus.yml not checked by it: %v", err)
		return
	}
	if b, err := exec.Command(promtool, "check", "config", promConfig).CombinedOutput(); err != nil {
		t.Errorf("promtool check config %s: %v\n%s", promConfig, err, b)
	}
}

// curlRE is a curl example the demo prints: the token file and the URL.
var curlRE = regexp.MustCompile(`curl -s -H "Authorization: Bearer \$\(cat (\S+)\)" '([^']+)'`)

// checkCurlExamples sends the printed curl examples with the minted
// tokens, in Go and, when curl is installed, as printed.
func checkCurlExamples(t *testing.T, narration string, who people) {
	var lines []string
	for l := range strings.SplitSeq(narration, "\n") {
		if curlRE.MatchString(l) {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	if len(lines) != 2 || !strings.Contains(lines[0], "/reports/monthly/") || !strings.Contains(lines[1], "/api/v1/usage?group_by=project") {
		t.Fatalf("want the monthly report and the usage by project as curl examples, got %q", lines)
	}
	get := func(line string) (*http.Response, string) {
		m := curlRE.FindStringSubmatch(line)
		tok, err := os.ReadFile(m[1])
		if err != nil {
			t.Fatalf("token file: %v", err)
		}
		req, err := http.NewRequest(http.MethodGet, m[2], nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body)
	}

	// The monthly report, as the manager of the largest project: CSV of
	// that project's rows and the manager's own.
	resp, body := get(lines[0])
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("monthly report: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("monthly report CSV: %v\n%s", err, body)
	}
	if len(rows) < 2 || len(rows[0]) < 2 || rows[0][0] != "project" || rows[0][1] != "user" {
		t.Fatalf("monthly report: want a project,user,… header and rows, got\n%s", body)
	}
	for _, r := range rows[1:] {
		if r[0] != who.project && r[1] != who.manager {
			t.Errorf("the manager of %s sees the row of %s/%s", who.project, r[0], r[1])
		}
	}

	// The usage by project, as the administrator: every project.
	resp, body = get(lines[1])
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"`+who.researcherProject+`"`) || !strings.Contains(body, `"`+who.project+`"`) {
		t.Errorf("usage by project as administrator: %d\n%s", resp.StatusCode, body)
	}

	// The command itself, as a person pastes it.
	if _, err := exec.LookPath("curl"); err != nil {
		t.Logf("curl not found, the printed command not run: %v", err)
		return
	}
	b, err := exec.Command("bash", "-c", lines[0]).Output()
	first, _, _ := strings.Cut(string(b), "\n")
	if err != nil || strings.TrimSuffix(first, "\r") != strings.Join(rows[0], ",") {
		t.Errorf("the printed command %q: %v\n%s", lines[0], err, b)
	}
}

// checkPageLogin logs in to the usage page through the development
// provider's form, as the manager, with a cookie jar.
func checkPageLogin(t *testing.T, narration string, who people, s *scenario.Scenario) {
	m := regexp.MustCompile(`usage page: (http://\S+)/`).FindStringSubmatch(narration)
	if m == nil {
		t.Fatalf("no usage page URL printed:\n%s", narration)
	}
	page := m[1]
	pageURL, err := url.Parse(page)
	if err != nil {
		t.Fatal(err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	fetch := func(resp *http.Response, err error) (*http.Response, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body)
	}

	resp, body := fetch(client.Get(page + "/login"))
	form := resp.Request.URL
	if resp.StatusCode != http.StatusOK || form.Path != "/authorize" || form.Host == pageURL.Host {
		t.Fatalf("/login did not lead to the provider's form: %d at %s\n%s", resp.StatusCode, form, body)
	}
	for _, u := range []string{who.admin, who.manager, who.researcher} {
		if !strings.Contains(body, `value="`+u+`"`) {
			t.Errorf("the login form does not offer %s", u)
		}
	}
	answer := form.Query()
	answer.Set("user", who.manager)
	action := *form
	action.RawQuery = ""
	resp, body = fetch(client.PostForm(action.String(), answer))
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != page+"/" {
		t.Fatalf("after the login: %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	if want := "You see the usage of the projects you manage (" + who.project + ")"; !strings.Contains(body, want) {
		t.Errorf("the page after the manager's login lacks %q:\n%s", want, body)
	}

	// The page's data, with the session cookie alone.
	q := url.Values{"granularity": {"month"}, "group_by": {"project,user"}, "format": {"csv"},
		"from": {s.Start.Truncate(time.Hour).Format(time.RFC3339)}, "to": {s.Start.Truncate(time.Hour).Add(time.Hour).Format(time.RFC3339)}}
	resp, body = fetch(client.Get(page + "/api/v1/usage?" + q.Encode()))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "month,project,user,") {
		t.Errorf("the API with the page's session: %d\n%s", resp.StatusCode, body)
	}
}

func TestPickPeople(t *testing.T) {
	row := func(project, user string, ms int64) truth.Row {
		return truth.Row{Keys: []string{project, user, "gpu"}, AllocatedMilliGPUSeconds: ms}
	}
	for _, tc := range []struct {
		name string
		rows []truth.Row
		want people
	}{
		{"three projects", []truth.Row{
			row("atlas", "ann", 10), row("cms", "bob", 40), row("cms", "cid", 50), row("lhcb", "dan", 30), row("lhcb", "eve", 5),
		}, people{manager: "cid", project: "cms", researcher: "dan", researcherProject: "lhcb", admin: "ann"}},
		{"one project", []truth.Row{row("cms", "bob", 40), row("cms", "cid", 50), row("cms", "dan", 1)},
			people{manager: "cid", project: "cms", researcher: "bob", researcherProject: "cms", admin: "dan"}},
		{"a user in two projects", []truth.Row{row("cms", "bob", 40), row("atlas", "bob", 30)},
			people{manager: "bob", project: "cms", researcher: "demo-researcher", researcherProject: "cms", admin: "demo-admin"}},
		{"no users", []truth.Row{row("cms", "", 40), row("", "x", 1)},
			people{manager: "demo-manager", project: "demo-project", researcher: "demo-researcher", researcherProject: "demo-project", admin: "demo-admin"}},
	} {
		if got := pickPeople(&truth.Report{Rows: tc.rows}); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestShellWord(t *testing.T) {
	for in, want := range map[string]string{
		"demo-out/tokens/admin.token": "demo-out/tokens/admin.token",
		"/tmp/my demo/a.token":        `'/tmp/my demo/a.token'`,
		"it's":                        `'it'\''s'`,
	} {
		if got := shellWord(in); got != want {
			t.Errorf("shellWord(%q) = %s, want %s", in, got, want)
		}
	}
}
