package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
)

// injections are SQL-injection attempts: quotes closing a literal,
// stacked statements, unions, comments, casts, placeholders and a delay.
var injections = []string{
	`' OR '1'='1`,
	`cms' OR 'x'='x`,
	`cms'; DROP TABLE ledger_hourly; --`,
	`cms" OR ""="`,
	`1) OR (1=1`,
	`cms' UNION SELECT usename, passwd FROM pg_shadow --`,
	`$1`,
	`\'; SELECT pg_sleep(10); --`,
	`cms'::text --`,
	`cms/*`,
	`%' OR user_name LIKE '%`,
	`ARRAY['cms','atlas']`,
}

// openAPIParams are the parameters of every GET operation of the OpenAPI
// document under /api/v1, by path.
func openAPIParams(t *testing.T) map[string][]struct{ name, in string } {
	t.Helper()
	doc := loadOpenAPI(t)
	out := map[string][]struct{ name, in string }{}
	for path, ops := range doc.Paths {
		op, ok := ops["get"]
		if !ok || !strings.HasPrefix(path, "/api/v1/") || path == "/api/v1/openapi.json" {
			continue
		}
		for _, p := range op.Parameters {
			if ref, ok := p["$ref"].(string); ok {
				raw := doc.Components["parameters"][strings.TrimPrefix(ref, "#/components/parameters/")]
				p = map[string]any{}
				if err := json.Unmarshal(raw, &p); err != nil {
					t.Fatalf("%s: parameter %s: %v", path, ref, err)
				}
			}
			name, _ := p["name"].(string)
			in, _ := p["in"].(string)
			if name == "" || in == "" {
				t.Fatalf("%s: parameter without a name or a place: %v", path, p)
			}
			out[path] = append(out[path], struct{ name, in string }{name, in})
		}
	}
	return out
}

// TestSQLInjection sends every injection in every parameter of every
// /api/v1 operation of the OpenAPI document, as the administrator, to a
// server on a real ledger. Each is refused as an invalid parameter (400,
// a problem naming it; 404 for the month in the path) or taken as the
// plain value it is, which names nothing in the ledger (200, no rows);
// none reaches the database as SQL (no 500) and the ledger is the same
// afterwards. A user who sees only their own rows cannot widen them.
func TestSQLInjection(t *testing.T) {
	store := newLedger(t)
	e := newEnv(t, store, nil)
	r := e.roles()
	ctx := context.Background()
	count := func() (n int64) {
		t.Helper()
		if err := store.Pool().QueryRow(ctx, "SELECT (SELECT count(*) FROM ledger_hourly) + (SELECT count(*) FROM ledger_monthly)").Scan(&n); err != nil {
			t.Fatalf("the ledger after the attempts: %v", err)
		}
		return n
	}
	before := count()

	// Values that make each route answer; the parameter under test replaces
	// its own.
	valid := map[string]url.Values{
		"/api/v1/usage":                   {"from": {"2026-11-01T00:00:00Z"}, "to": {"2026-12-01T00:00:00Z"}},
		"/api/v1/reports/monthly/{month}": {},
		"/api/v1/projects":                {},
		"/api/v1/idle":                    {"from": {"2026-11-01T00:00:00Z"}, "to": {"2026-12-01T00:00:00Z"}},
		"/api/v1/quota":                   {"from": {"2026-11-01T00:00:00Z"}, "to": {"2026-12-01T00:00:00Z"}},
	}
	params := openAPIParams(t)
	paths := make([]string, 0, len(params))
	for p := range params {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	sent, statuses := 0, map[int]int{}
	for _, path := range paths {
		q0, ok := valid[path]
		if !ok {
			t.Errorf("%s: no valid request for this test; add one", path)
			continue
		}
		// The valid request answers 200.
		month := "2026-11"
		if resp, b := e.get(t, r.admin, strings.Replace(path, "{month}", month, 1)+"?"+q0.Encode()); resp.StatusCode != 200 {
			t.Fatalf("%s: the valid request answers %d: %s", path, resp.StatusCode, b)
		}
		for _, p := range params[path] {
			for _, inj := range injections {
				q := url.Values{}
				for k, v := range q0 {
					q[k] = v
				}
				target := path
				switch p.in {
				case "path":
					target = strings.Replace(path, "{"+p.name+"}", url.PathEscape(inj), 1)
				case "query":
					q.Set(p.name, inj)
				default:
					t.Fatalf("%s: parameter %s in %s", path, p.name, p.in)
				}
				target = strings.Replace(target, "{month}", month, 1)
				sent++
				resp, b := e.get(t, r.admin, target+"?"+q.Encode())
				statuses[resp.StatusCode]++
				switch resp.StatusCode {
				case http.StatusOK:
					if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
						t.Errorf("%s %s=%q: 200 with %s", path, p.name, inj, ct)
						continue
					}
					if _, rows := jsonRows(t, b); len(rows) != 0 {
						t.Errorf("%s %s=%q: %d rows; the value names nothing in the ledger", path, p.name, inj, len(rows))
					}
				case http.StatusBadRequest:
					if pr := problemOf(t, resp, b); len(pr.InvalidParams) > 0 && pr.InvalidParams[0].Name != p.name {
						t.Errorf("%s %s=%q: the problem names %q", path, p.name, inj, pr.InvalidParams[0].Name)
					}
				case http.StatusNotFound:
					if p.in != "path" {
						t.Errorf("%s %s=%q: 404", path, p.name, inj)
					}
				default:
					t.Errorf("%s %s=%q: status %d: %s", path, p.name, inj, resp.StatusCode, b)
				}
			}
		}
	}
	if sent < 250 {
		t.Errorf("only %d attempts: the OpenAPI document lists fewer parameters than expected", sent)
	}

	// bob sees his own rows only: an injection in user or project is
	// refused, not read as a wider filter.
	for _, name := range []string{"user", "project"} {
		for _, inj := range []string{`bob' OR '1'='1`, `cms' OR '1'='1`, `' OR user_name <> '`} {
			q := url.Values{"from": {"2026-11-01T00:00:00Z"}, "to": {"2026-12-01T00:00:00Z"}, "group_by": {"project,user"}}
			q.Set(name, inj)
			resp, b := e.get(t, r.bob, "/api/v1/usage?"+q.Encode())
			switch resp.StatusCode {
			case http.StatusForbidden, http.StatusBadRequest:
				problemOf(t, resp, b)
			case http.StatusOK:
				_, rows := jsonRows(t, b)
				for _, row := range rows {
					if row["user"] != "bob" {
						t.Errorf("bob, %s=%q: a row of %v", name, inj, row["user"])
					}
				}
			default:
				t.Errorf("bob, %s=%q: status %d: %s", name, inj, resp.StatusCode, b)
			}
		}
	}
	if after := count(); after != before {
		t.Errorf("the ledger had %d rows, now %d", before, after)
	}
	t.Logf("%d injection attempts in %d operations: status → count %v", sent, len(paths), statuses)
	if statuses[http.StatusOK] == 0 || statuses[http.StatusBadRequest] == 0 {
		t.Errorf("statuses %v: want both plain values answered (200) and invalid ones refused (400)", statuses)
	}
}
