package alerts

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// binary finds a Debian-packaged tool at /usr/bin, else on the PATH.
// Without it the test fails in CI, which installs the packages, and is
// skipped elsewhere.
func binary(t testing.TB, name, pkg string) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/" + name); err == nil {
		return "/usr/bin/" + name
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found at /usr/bin/%s or on the PATH: install the Debian package %s", name, name, pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func loadRules(t testing.TB) *RuleFile {
	t.Helper()
	f, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// testFiles are the promtool unit test files, tests/*.yaml.
func testFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("tests", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no promtool test files under tests/")
	}
	return files
}

func TestPromtoolCheckRules(t *testing.T) {
	promtool := binary(t, "promtool", "prometheus")
	out, err := exec.Command(promtool, "check", "rules", RuleFileName).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", RuleFileName, err, out)
	}
	n := len(loadRules(t).Alerts())
	if want := fmt.Sprintf("SUCCESS: %d rules found", n); !strings.Contains(string(out), want) {
		t.Errorf("promtool check rules: want %q in\n%s", want, out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	promtool := binary(t, "promtool", "prometheus")
	for _, file := range testFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			out, err := exec.Command(promtool, "test", "rules", file).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool test rules %s: %v\n%s", file, err, out)
			}
			if !strings.Contains(string(out), "SUCCESS") {
				t.Errorf("promtool test rules %s: no SUCCESS in\n%s", file, out)
			}
		})
	}
}

// The parts of a promtool unit test file the coverage test reads.
type unitTestFile struct {
	RuleFiles []string   `yaml:"rule_files"`
	Tests     []unitTest `yaml:"tests"`
}

type unitTest struct {
	AlertRuleTests []struct {
		EvalTime  string `yaml:"eval_time"`
		Alertname string `yaml:"alertname"`
		ExpAlerts []struct {
			ExpLabels      map[string]string `yaml:"exp_labels"`
			ExpAnnotations map[string]string `yaml:"exp_annotations"`
		} `yaml:"exp_alerts"`
	} `yaml:"alert_rule_test"`
}

func readUnitTests(t *testing.T, path string) unitTestFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f unitTestFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

// groupTestFile is the promtool test file of a group: gpuledger-<x> is
// tested by tests/<x>.yaml.
func groupTestFile(group string) string {
	return filepath.Join("tests", strings.TrimPrefix(group, "gpuledger-")+".yaml")
}

// TestEveryAlertTested checks that each group has its test file, loading the
// rule file, and that every alert of the group has there at least one
// positive case (an expected alert carrying the alert's own labels and
// every annotation) and one negative case (no alert expected).
func TestEveryAlertTested(t *testing.T) {
	rules := loadRules(t)
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		path := groupTestFile(g.Name)
		seen[path] = true
		t.Run(g.Name, func(t *testing.T) {
			f := readUnitTests(t, path)
			if !slices.Contains(f.RuleFiles, "../"+RuleFileName) {
				t.Errorf("%s: rule_files %v does not load ../%s", path, f.RuleFiles, RuleFileName)
			}
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				pos, neg := 0, 0
				for _, tc := range f.Tests {
					for _, at := range tc.AlertRuleTests {
						if at.Alertname != r.Alert {
							continue
						}
						if len(at.ExpAlerts) == 0 {
							neg++
							continue
						}
						pos++
						for _, ea := range at.ExpAlerts {
							for k, v := range r.Labels {
								if ea.ExpLabels[k] != v {
									t.Errorf("%s: %s at %s: exp_labels %s=%q, the rule sets %q", path, r.Alert, at.EvalTime, k, ea.ExpLabels[k], v)
								}
							}
							for k := range r.Annotations {
								if _, ok := ea.ExpAnnotations[k]; !ok {
									t.Errorf("%s: %s at %s: exp_annotations lack %s", path, r.Alert, at.EvalTime, k)
								}
							}
						}
					}
				}
				if pos == 0 {
					t.Errorf("%s: no positive case (exp_alerts) for %s", path, r.Alert)
				}
				if neg == 0 {
					t.Errorf("%s: no negative case (no exp_alerts) for %s", path, r.Alert)
				}
			}
		})
	}
	for _, file := range testFiles(t) {
		if !seen[file] {
			t.Errorf("%s tests no group of %s", file, RuleFileName)
		}
	}
}

// githubAnchor is the anchor GitHub gives a Markdown heading: lower case,
// punctuation other than '-' and '_' dropped, spaces as '-'.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestGitHubAnchor(t *testing.T) {
	for heading, want := range map[string]string{
		"GPULedgerGPUAllocatedIdle": "gpuledgergpuallocatedidle",
		"Routing by project":        "routing-by-project",
		"What `for:` means":         "what-for-means",
		"Exporter down (5 min)":     "exporter-down-5-min",
	} {
		if got := githubAnchor(heading); got != want {
			t.Errorf("githubAnchor(%q) = %q, want %q", heading, got, want)
		}
	}
}

// markdownHeadings returns the level-2 headings of a Markdown file.
func markdownHeadings(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			out = append(out, strings.TrimSpace(h))
		}
	}
	return out
}

// TestEveryAlertHasRunbook checks that every alert's runbook_url points to
// its own section of docs/runbooks.md, a level-2 heading named after the
// alert, and that the runbooks describe no alert the rules lack.
func TestEveryAlertHasRunbook(t *testing.T) {
	const doc = "../docs/runbooks.md"
	headings := markdownHeadings(t, doc)
	alerts := map[string]bool{}
	for _, a := range loadRules(t).Alerts() {
		alerts[a.Alert] = true
		if !slices.Contains(headings, a.Alert) {
			t.Errorf("%s: no section \"## %s\"", doc, a.Alert)
		}
		want := RunbookBase + "#" + githubAnchor(a.Alert)
		if got := a.Annotations["runbook_url"]; got != want {
			t.Errorf("%s: runbook_url %q, want %q", a.Alert, got, want)
		}
		for _, k := range []string{"summary", "description"} {
			if a.Annotations[k] == "" {
				t.Errorf("%s: no %s annotation", a.Alert, k)
			}
		}
		if a.Labels["severity"] == "" {
			t.Errorf("%s: no severity label", a.Alert)
		}
	}
	for _, h := range headings {
		if strings.HasPrefix(h, "GPULedger") && !alerts[h] {
			t.Errorf("%s: section %q describes no alert of %s", doc, h, RuleFileName)
		}
	}
}

// TestEveryAlertDocumented checks that docs/alerts.md lists every alert in
// a table row.
func TestEveryAlertDocumented(t *testing.T) {
	data, err := os.ReadFile("../docs/alerts.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range loadRules(t).Alerts() {
		if !bytes.Contains(data, []byte("| `"+a.Alert+"` |")) {
			t.Errorf("docs/alerts.md: no table row for `%s`", a.Alert)
		}
	}
}

// pendingFamilies are metric families other work adds to the exporters
// while these rules are written; the rules may use them before
// docs/metrics.md lists them.
var pendingFamilies = map[string]bool{
	"gpuledger_attribution_available":            true,
	"gpuledger_kueue_clusterqueue_nominal_quota": true,
}

var metricName = regexp.MustCompile(`\bgpuledger_[a-z0-9_]+\b`)

// TestMetricNamesExist checks every gpuledger_ name the rules use (in
// expressions and in annotation queries) against docs/metrics.md (the
// exporters), the aggregator's own metrics, and pendingFamilies.
func TestMetricNamesExist(t *testing.T) {
	docs, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	agg, err := os.ReadFile("../aggregator/aggregator.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range loadRules(t).Alerts() {
		text := a.Expr
		for _, v := range a.Annotations {
			text += "\n" + v
		}
		names := metricName.FindAllString(text, -1)
		if len(names) == 0 && !strings.Contains(a.Expr, "up{") {
			t.Errorf("%s: no metric found in %q", a.Alert, a.Expr)
		}
		slices.Sort(names)
		for _, name := range slices.Compact(names) {
			documented := bytes.Contains(docs, []byte("| `"+name+"` |"))
			aggregator := bytes.Contains(agg, []byte(`Name: "`+name+`"`))
			switch {
			case documented && pendingFamilies[name]:
				t.Logf("%s is now in docs/metrics.md: it can leave pendingFamilies", name)
			case documented || aggregator || pendingFamilies[name]:
			default:
				t.Errorf("%s uses %s: not in docs/metrics.md, not an aggregator metric, not pending", a.Alert, name)
			}
		}
	}
}

// TestPrometheusRuleUpToDate fails when prometheusrule.yaml is not what
// go generate writes from the rule file.
func TestPrometheusRuleUpToDate(t *testing.T) {
	want, err := PrometheusRule(loadRules(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("prometheusrule.yaml drifted from %s: run go generate ./alerts and commit", RuleFileName)
	}
}

// TestPrometheusRuleRoundTrip decodes the committed PrometheusRule, checks
// that its groups are the rule file's, and has promtool check them as a
// rule file of their own.
func TestPrometheusRuleRoundTrip(t *testing.T) {
	data, err := os.ReadFile("prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte(GeneratedHeader)) {
		t.Errorf("prometheusrule.yaml does not start with %q", GeneratedHeader)
	}
	spec, err := ParsePrometheusRule(data)
	if err != nil {
		t.Fatal(err)
	}
	a, err := spec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadRules(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("the PrometheusRule's groups differ from %s:\n%s\n---\n%s", RuleFileName, a, b)
	}
	promtool := binary(t, "promtool", "prometheus")
	path := filepath.Join(t.TempDir(), "spec.yaml")
	if err := os.WriteFile(path, a, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the PrometheusRule's groups: %v\n%s", err, out)
	}
}

func TestAlertmanagerExampleValid(t *testing.T) {
	amtool := binary(t, "amtool", "prometheus-alertmanager")
	out, err := exec.Command(amtool, "check-config", "alertmanager-example.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("amtool check-config alertmanager-example.yaml: %v\n%s", err, out)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"empty", "", "empty rule file"},
		{"no groups", "groups: []\n", "no rule groups"},
		{"unknown field", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        fro: 5m\n", "field fro not found"},
		{"unnamed group", "groups:\n  - rules:\n      - alert: A\n        expr: up\n", "groups[0]: no name"},
		{"group twice", "groups:\n  - name: g\n    rules: [{alert: A, expr: up}]\n  - name: g\n    rules: [{alert: B, expr: up}]\n", `group "g" given twice`},
		{"no rules", "groups:\n  - name: g\n", `group "g": no rules`},
		{"neither", "groups:\n  - name: g\n    rules: [{expr: up}]\n", "neither alert nor record"},
		{"both", "groups:\n  - name: g\n    rules: [{alert: A, record: r, expr: up}]\n", "both alert A and record r"},
		{"no expr", "groups:\n  - name: g\n    rules: [{alert: A}]\n", "no expr"},
		{"record with for", "groups:\n  - name: g\n    rules: [{record: r, expr: up, for: 5m}]\n", "for and annotations belong to alerts"},
		{"alert twice", "groups:\n  - name: g\n    rules: [{alert: A, expr: up}]\n  - name: h\n    rules: [{alert: A, expr: up}]\n", `alert A already defined in group "g"`},
		{"two documents", "groups:\n  - name: g\n    rules: [{alert: A, expr: up}]\n---\ngroups: []\n", "more than one YAML document"},
		{"not YAML", "groups: [\n", "decode rule file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseRoundTrip(t *testing.T) {
	f := loadRules(t)
	data, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse(Marshal(rules)): %v\n%s", err, data)
	}
	again, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, again) {
		t.Errorf("Marshal is not stable across Parse:\n%s\n---\n%s", data, again)
	}
	if len(g.Alerts()) != len(f.Alerts()) || len(f.Alerts()) == 0 {
		t.Errorf("alerts after the round trip: %d, before: %d", len(g.Alerts()), len(f.Alerts()))
	}
}

func TestParsePrometheusRuleRejectsOtherKinds(t *testing.T) {
	_, err := ParsePrometheusRule([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nspec: {groups: []}\n"))
	if err == nil || !strings.Contains(err.Error(), "got v1 ConfigMap") {
		t.Fatalf("ParsePrometheusRule(ConfigMap): error %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(RuleFileYAML())
	f.Add([]byte("groups:\n  - name: g\n    rules: [{alert: A, expr: up, for: 5m}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rf, err := Parse(data)
		if err != nil {
			return
		}
		out, err := rf.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed file: %v", err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("Parse(Marshal(Parse(data))): %v\n%s", err, out)
		}
	})
}
