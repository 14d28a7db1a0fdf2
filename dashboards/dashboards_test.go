package dashboards

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the committed JSON under generated/ from the code")

// The JSON model the tests read: what Grafana reads of a generated file.
type jsonDashboard struct {
	UID         string `json:"uid"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Timezone    string `json:"timezone"`
	Templating  struct {
		List []jsonVar `json:"list"`
	} `json:"templating"`
	Panels []jsonPanel `json:"panels"`
}

type jsonRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type jsonVar struct {
	Type       string   `json:"type"`
	Name       string   `json:"name"`
	Query      any      `json:"query"`
	Datasource *jsonRef `json:"datasource"`
	Multi      bool     `json:"multi"`
	IncludeAll bool     `json:"includeAll"`
	AllValue   string   `json:"allValue"`
}

type jsonPanel struct {
	Type        string       `json:"type"`
	ID          *uint32      `json:"id"`
	Title       string       `json:"title"`
	Description string       `json:"description"`
	Datasource  *jsonRef     `json:"datasource"`
	Targets     []jsonTarget `json:"targets"`
	GridPos     struct {
		H, W, X, Y int
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
		Overrides []struct {
			Properties []struct {
				ID    string `json:"id"`
				Value any    `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
	Panels []jsonPanel `json:"panels"` // a collapsed row's
}

type jsonTarget struct {
	RefID      string   `json:"refId"`
	Datasource *jsonRef `json:"datasource"`
	Expr       string   `json:"expr"`
	RawSQL     string   `json:"rawSql"`
	Format     string   `json:"format"`
	Instant    *bool    `json:"instant"`
	Range      *bool    `json:"range"`
}

// built is one dashboard as generated, decoded.
type built struct {
	spec Spec
	raw  []byte
	d    jsonDashboard
}

func buildAll(t testing.TB) []built {
	t.Helper()
	var out []built
	for _, s := range All() {
		raw, err := s.JSON()
		if err != nil {
			t.Fatal(err)
		}
		var d jsonDashboard
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: decode the generated JSON: %v", s.UID, err)
		}
		out = append(out, built{spec: s, raw: raw, d: d})
	}
	return out
}

// panels lists every panel of a dashboard, rows and the panels of
// collapsed rows included.
func (d *jsonDashboard) panels() []jsonPanel {
	var out []jsonPanel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// target is one query of a panel.
type target struct {
	dashboard string
	panel     jsonPanel
	jsonTarget
}

// key names a target as the no-data exceptions do: uid/panel-id/refId.
func (t target) key() string {
	return t.dashboard + "/" + itoa(*t.panel.ID) + "/" + t.RefID
}

func itoa(n uint32) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func (b *built) targets() []target {
	var out []target
	for _, p := range b.d.panels() {
		for _, q := range p.Targets {
			out = append(out, target{dashboard: b.d.UID, panel: p, jsonTarget: q})
		}
	}
	return out
}

// TestDashboardsGenerated: the committed JSON is what the code generates.
// With -update it rewrites generated/ instead.
func TestDashboardsGenerated(t *testing.T) {
	if *update {
		if _, err := Write(GeneratedDir); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{}
	for _, b := range buildAll(t) {
		want[b.spec.FileName()] = true
		path := filepath.Join(GeneratedDir, b.spec.FileName())
		committed, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v: run go generate ./dashboards", err)
			continue
		}
		if !bytes.Equal(committed, b.raw) {
			t.Errorf("%s differs from what the code generates: run go generate ./dashboards (or go test ./dashboards -run TestDashboardsGenerated -update) and commit it", path)
		}
	}
	entries, err := os.ReadDir(GeneratedDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") && !want[e.Name()] {
			t.Errorf("%s: no dashboard generates it any more: remove it", filepath.Join(GeneratedDir, e.Name()))
		}
	}
}

// TestDashboardsStable: building twice gives the same bytes (no map order,
// no clock in the output).
func TestDashboardsStable(t *testing.T) {
	for _, s := range All() {
		a, err := s.JSON()
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.JSON()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two builds differ", s.UID)
		}
	}
}

// Grafana's built-in variables the dashboards may use.
var builtinVars = map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}

// varRef finds template variable references: $name, ${name} and
// ${name:format}. $1 (a label_replace group) is not one.
var varRef = regexp.MustCompile(`\$\{([a-zA-Z_]\w*)(?::\w+)?\}|\$([a-zA-Z_]\w*)`)

// sqlMacro finds Grafana's SQL macros, $__name(args).
var sqlMacro = regexp.MustCompile(`\$(__\w+)\(`)

// TestDashboardsStructure checks what Grafana and the people reading the
// dashboards rely on: unique UIDs and panel IDs, a title, a description and
// a unit on every panel, queries on the data source variables, and every
// variable a query uses defined before it.
func TestDashboardsStructure(t *testing.T) {
	uids := map[string]bool{}
	for _, b := range buildAll(t) {
		d := &b.d
		t.Run(d.UID, func(t *testing.T) {
			if d.UID != b.spec.UID || len(d.UID) > 40 || uids[d.UID] {
				t.Errorf("uid %q: want %q, at most 40 characters, unique", d.UID, b.spec.UID)
			}
			uids[d.UID] = true
			if d.Title == "" || d.Description == "" || d.Timezone != "utc" {
				t.Errorf("title %q, description %q, timezone %q: want a title, a description and UTC", d.Title, d.Description, d.Timezone)
			}
			checkVariables(t, d)
			ids := map[uint32]string{}
			usesLedger := false
			for _, p := range d.panels() {
				if p.ID == nil || *p.ID == 0 {
					t.Errorf("panel %q has no id", p.Title)
					continue
				}
				if other, dup := ids[*p.ID]; dup {
					t.Errorf("panels %q and %q share id %d", other, p.Title, *p.ID)
				}
				ids[*p.ID] = p.Title
				if p.Type == "row" {
					continue
				}
				checkPanel(t, d, p)
				usesLedger = usesLedger || p.Datasource.UID == "${ledger}"
			}
			hasLedgerVar := slices.ContainsFunc(d.Templating.List, func(v jsonVar) bool { return v.Name == "ledger" })
			if usesLedger != hasLedgerVar {
				t.Errorf("ledger panels %v, ledger data source variable %v: want both or neither", usesLedger, hasLedgerVar)
			}
		})
	}
}

// checkVariables: the data source variables are of the right plugin, and a
// variable refers only to variables defined before it.
func checkVariables(t *testing.T, d *jsonDashboard) {
	t.Helper()
	defined := map[string]bool{}
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			want := map[string]string{"datasource": PrometheusType, "ledger": PostgresType}[v.Name]
			if v.Query != want {
				t.Errorf("data source variable %s: plugin %v, want %q", v.Name, v.Query, want)
			}
		case "query":
			q, _ := v.Query.(string)
			if q == "" || v.Datasource == nil {
				t.Errorf("variable %s: no query or no data source", v.Name)
				break
			}
			if !defined[strings.Trim(v.Datasource.UID, "${}")] {
				t.Errorf("variable %s: its data source %s is not a variable defined before it", v.Name, v.Datasource.UID)
			}
			for _, name := range referencedVars(q) {
				if !defined[name] {
					t.Errorf("variable %s refers to $%s, not defined before it", v.Name, name)
				}
			}
			if v.Datasource.Type == PrometheusType && v.IncludeAll && v.AllValue != ".*" {
				t.Errorf("variable %s: a Prometheus variable with All wants the all value .*", v.Name)
			}
			if v.Datasource.Type == PostgresType && v.AllValue != "" {
				t.Errorf("variable %s: a ledger variable's All must expand to its values (no custom all value): SQL lists them", v.Name)
			}
		default:
			t.Errorf("variable %s: unexpected type %s", v.Name, v.Type)
		}
		defined[v.Name] = true
	}
}

// referencedVars lists the template variables a query uses, built-ins and
// SQL macros left out.
func referencedVars(q string) []string {
	var out []string
	for _, m := range varRef.FindAllStringSubmatch(sqlMacro.ReplaceAllString(q, "("), -1) {
		name := m[1] + m[2]
		if !builtinVars[name] {
			out = append(out, name)
		}
	}
	return out
}

func checkPanel(t *testing.T, d *jsonDashboard, p jsonPanel) {
	t.Helper()
	if p.Title == "" || len(p.Description) < 20 {
		t.Errorf("panel %d %q: want a title and a description", *p.ID, p.Title)
	}
	if p.Type != "table" && p.FieldConfig.Defaults.Unit == "" {
		t.Errorf("panel %d %q: no unit", *p.ID, p.Title)
	}
	if p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > fullWidth {
		t.Errorf("panel %d %q: grid position %+v", *p.ID, p.Title, p.GridPos)
	}
	if p.Datasource == nil {
		t.Errorf("panel %d %q: no data source", *p.ID, p.Title)
		return
	}
	wantType := map[string]string{"${datasource}": PrometheusType, "${ledger}": PostgresType}[p.Datasource.UID]
	if wantType == "" || p.Datasource.Type != wantType {
		t.Errorf("panel %d %q: data source %+v, want a data source variable", *p.ID, p.Title, *p.Datasource)
	}
	if len(p.Targets) == 0 {
		t.Errorf("panel %d %q: no query", *p.ID, p.Title)
	}
	defined := map[string]bool{}
	for _, v := range d.Templating.List {
		defined[v.Name] = true
	}
	refs := map[string]bool{}
	for _, q := range p.Targets {
		if q.Datasource == nil || *q.Datasource != *p.Datasource {
			t.Errorf("panel %d %q query %s: data source %v, want the panel's", *p.ID, p.Title, q.RefID, q.Datasource)
		}
		if q.RefID == "" || refs[q.RefID] {
			t.Errorf("panel %d %q: query refId %q empty or repeated", *p.ID, p.Title, q.RefID)
		}
		refs[q.RefID] = true
		text := q.Expr
		switch p.Datasource.Type {
		case PrometheusType:
			if q.Expr == "" || q.RawSQL != "" {
				t.Errorf("panel %d %q query %s: want PromQL only", *p.ID, p.Title, q.RefID)
			}
			if !strings.Contains(q.Expr, `cluster=~"$cluster"`) {
				t.Errorf("panel %d %q query %s: not restricted to $cluster", *p.ID, p.Title, q.RefID)
			}
			// A table shows one row per series; a stat or bar gauge one
			// value per series (a table frame would reduce to one); a time
			// series panel wants range queries.
			instant := q.Instant != nil && *q.Instant
			if (p.Type == "table") != (q.Format == "table") || (p.Type == "timeseries") == instant {
				t.Errorf("panel %d %q (%s) query %s: format %q, instant %v", *p.ID, p.Title, p.Type, q.RefID, q.Format, instant)
			}
		case PostgresType:
			text = q.RawSQL
			if q.RawSQL == "" || q.Expr != "" || (q.Format != "table" && q.Format != "time_series") {
				t.Errorf("panel %d %q query %s: want SQL only, as a table or time series", *p.ID, p.Title, q.RefID)
			}
		}
		for _, name := range referencedVars(text) {
			if !defined[name] {
				t.Errorf("panel %d %q query %s: $%s is not a variable of the dashboard", *p.ID, p.Title, q.RefID, name)
			}
		}
	}
}

// TestDashboardsSQLQueryValidate: a ledger query without SQL or with an
// unknown format does not build.
func TestDashboardsSQLQueryValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    *SQLQueryBuilder
		ok   bool
	}{
		{"table", NewSQLQueryBuilder("SELECT 1"), true},
		{"time series", NewSQLQueryBuilder("SELECT 1").Format(SQLFormatTimeSeries), true},
		{"empty", NewSQLQueryBuilder(""), false},
		{"bad format", NewSQLQueryBuilder("SELECT 1").Format("heatmap"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := tc.b.Build()
			if (err == nil) != tc.ok {
				t.Fatalf("Build: %v, want ok %v", err, tc.ok)
			}
			if tc.ok && (q.DataqueryType() != PostgresType || !q.Equals(q) || q.Equals(SQLQuery{})) {
				t.Errorf("query %+v: wrong type or equality", q)
			}
		})
	}
}

// TestDashboardsDocumented: docs/dashboards.md has a section per dashboard
// (its UID in the heading) listing every panel as "| id | title | …",
// and no panel that is not there.
func TestDashboardsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/dashboards.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]map[string]bool{} // uid → "id | title"
	var current map[string]bool
	heading := regexp.MustCompile("^### .*\\(`([a-z0-9-]+)`\\)$")
	row := regexp.MustCompile(`^\| (\d+) \| ([^|]+) \|`)
	for _, line := range strings.Split(string(doc), "\n") {
		if m := heading.FindStringSubmatch(line); m != nil {
			current = map[string]bool{}
			sections[m[1]] = current
			continue
		}
		if strings.HasPrefix(line, "## ") {
			current = nil
		}
		if m := row.FindStringSubmatch(line); m != nil && current != nil {
			current[m[1]+" | "+strings.TrimSpace(m[2])] = true
		}
	}
	for _, b := range buildAll(t) {
		documented, ok := sections[b.d.UID]
		if !ok {
			t.Errorf("docs/dashboards.md has no section \"### … (`%s`)\"", b.d.UID)
			continue
		}
		for _, p := range b.d.panels() {
			if p.Type == "row" {
				if !strings.Contains(string(doc), "**"+p.Title+"**") {
					t.Errorf("%s: row %q is not in docs/dashboards.md", b.d.UID, p.Title)
				}
				continue
			}
			key := itoa(*p.ID) + " | " + p.Title
			if !documented[key] {
				t.Errorf("%s: panel %q is not in docs/dashboards.md", b.d.UID, key)
			}
			delete(documented, key)
		}
		for key := range documented {
			t.Errorf("%s: docs/dashboards.md lists panel %q, which the dashboard does not have", b.d.UID, key)
		}
	}
}
