package dashboards

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What Grafana does to a query before it reaches the data source, for the
// tests: template variables replaced by chosen values, formatted as Grafana
// formats them for each data source, Grafana's built-in interval variables
// for PromQL, and the PostgreSQL data source's macros for SQL.

// The small scenario's cluster (testdata/scenarios/small.yaml) and the
// variable values the queries are run with: several values per multi-value
// variable, so that the formatting of lists is exercised. Node values differ
// by dashboard: the GPU nodes for device health, the FPGA node for FPGAs.
var (
	scenarioFile = "../testdata/scenarios/small.yaml"
	varValues    = map[string][]string{
		"cluster": {"ai-infn-small"},
		"project": {"cms-gpu", "ml-infn", "ml-infn-gpu"},
		"user":    {"bob", "carol", "grace", "heidi"},
		"node":    {"a100-mig-01", "a30-01", "t4-01"},
	}
	varValuesByDashboard = map[string]map[string][]string{
		"gpuledger-device-health": {"node": {"a100-mig-01", "a30-01"}},
		"gpuledger-fpga":          {"node": {"t4-01"}},
	}
)

// values returns the value of each variable of dashboard d.
func values(d *jsonDashboard) map[string][]string {
	out := map[string][]string{}
	for _, v := range d.Templating.List {
		if vals, ok := varValuesByDashboard[d.UID][v.Name]; ok {
			out[v.Name] = vals
		} else if vals, ok := varValues[v.Name]; ok {
			out[v.Name] = vals
		}
	}
	return out
}

// promRegexEscape escapes a value for a regex matcher inside a PromQL
// string, as Grafana's Prometheus data source does for multi-value
// variables (a backslash before each regex metacharacter, doubled for the
// string literal).
func promRegexEscape(v string) string {
	var b strings.Builder
	for _, r := range v {
		switch r {
		case '\\':
			b.WriteString(`\\\\`)
		case '$', '^', '*', '{', '}', '[', ']', '\'', '+', '?', '.', '(', ')', '|':
			b.WriteString(`\\`)
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// sqlQuote is Grafana's sqlstring format of one value.
func sqlQuote(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// interpolate replaces the template variables of q as Grafana's frontend
// does for a query of the given data source type: dashboard variables with
// vals, Prometheus's built-in interval variables with builtins. Names
// starting with __ that are not built-ins are left for the data source (the
// SQL macros). An unknown variable is an error.
func interpolate(q, dsType string, vars []jsonVar, vals map[string][]string, builtins map[string]string) (string, error) {
	byName := map[string]jsonVar{}
	for _, v := range vars {
		byName[v.Name] = v
	}
	var firstErr error
	out := varRef.ReplaceAllStringFunc(q, func(m string) string {
		sub := varRef.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		format := ""
		if sub[1] != "" {
			if i := strings.Index(m, ":"); i >= 0 {
				format = strings.TrimSuffix(m[i+1:], "}")
			}
		}
		if b, ok := builtins[name]; ok {
			return b
		}
		if strings.HasPrefix(name, "__") {
			return m
		}
		v, ok := byName[name]
		vs := vals[name]
		if !ok || len(vs) == 0 {
			if firstErr == nil {
				firstErr = fmt.Errorf("variable $%s: not defined or no test value", name)
			}
			return m
		}
		multi := v.Multi || v.IncludeAll
		switch {
		case format == "sqlstring":
			quoted := make([]string, len(vs))
			for i, x := range vs {
				quoted[i] = sqlQuote(x)
			}
			return strings.Join(quoted, ",")
		case format != "":
			if firstErr == nil {
				firstErr = fmt.Errorf("variable $%s: format %q not handled by the test", name, format)
			}
			return m
		case dsType == PostgresType:
			// The SQL data sources quote multi-value variables.
			if !multi {
				return vs[0]
			}
			quoted := make([]string, len(vs))
			for i, x := range vs {
				quoted[i] = sqlQuote(x)
			}
			return strings.Join(quoted, ",")
		default:
			if !multi {
				return vs[0]
			}
			esc := make([]string, len(vs))
			for i, x := range vs {
				esc[i] = promRegexEscape(x)
			}
			if len(esc) == 1 {
				return esc[0]
			}
			return "(" + strings.Join(esc, "|") + ")"
		}
	})
	return out, firstErr
}

// grafanaMacro is the PostgreSQL data source's macro syntax.
var grafanaMacro = regexp.MustCompile(`\$([_a-zA-Z0-9]+)\(([^\)]*)\)`)

// expandSQLMacros does what Grafana's PostgreSQL data source does to the
// interpolated SQL for the time range [from, to] and interval: the
// sqleng replacements, then the macros.
func expandSQLMacros(sql string, from, to time.Time, interval time.Duration) (string, error) {
	sql = strings.ReplaceAll(sql, "$__interval_ms", strconv.FormatInt(interval.Milliseconds(), 10))
	sql = strings.ReplaceAll(sql, "$__interval", interval.String())
	sql = strings.ReplaceAll(sql, "$__unixEpochFrom()", strconv.FormatInt(from.UTC().Unix(), 10))
	sql = strings.ReplaceAll(sql, "$__unixEpochTo()", strconv.FormatInt(to.UTC().Unix(), 10))
	var firstErr error
	sql = grafanaMacro.ReplaceAllStringFunc(sql, func(m string) string {
		sub := grafanaMacro.FindStringSubmatch(m)
		args := strings.Split(sub[2], ",")
		for i := range args {
			args[i] = strings.TrimSpace(args[i])
		}
		fromS, toS := from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano)
		switch sub[1] {
		case "__time":
			return args[0] + ` AS "time"`
		case "__timeEpoch":
			return `extract(epoch from ` + args[0] + `) as "time"`
		case "__timeFilter":
			return fmt.Sprintf("%s BETWEEN '%s' AND '%s'", args[0], fromS, toS)
		case "__timeFrom":
			return "'" + fromS + "'"
		case "__timeTo":
			return "'" + toS + "'"
		case "__unixEpochFilter":
			return fmt.Sprintf("%s >= %d AND %s <= %d", args[0], from.Unix(), args[0], to.Unix())
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("macro %s: not one the test expands", m)
		}
		return m
	})
	if firstErr != nil {
		return "", firstErr
	}
	if strings.Contains(sql, "$") {
		return "", fmt.Errorf("a $ is left after interpolation:\n%s", sql)
	}
	return sql, nil
}

// TestDashboardsInterpolate checks the test's own Grafana emulation.
func TestDashboardsInterpolate(t *testing.T) {
	vars := []jsonVar{{Name: "cluster"}, {Name: "project", Multi: true, IncludeAll: true}}
	vals := map[string][]string{"cluster": {"c1"}, "project": {"a.b", "o'k"}}
	from := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	to := from.Add(6 * time.Hour)
	for _, tc := range []struct {
		in, ds, want string
		sql, err     bool
	}{
		{in: `x{cluster=~"$cluster", project=~"$project"}[$__rate_interval]`, ds: PrometheusType,
			want: `x{cluster=~"c1", project=~"(a\\.b|o\\'k)"}[75s]`},
		{in: `label_replace(x, "a", "$1", "b", "(.+)")`, ds: PrometheusType, want: `label_replace(x, "a", "$1", "b", "(.+)")`},
		{in: `$nope`, ds: PrometheusType, err: true},
		{in: `WHERE cluster IN (${cluster:sqlstring}) AND project IN (${project:sqlstring}) AND $__timeFilter(hour)`, ds: PostgresType, sql: true,
			want: `WHERE cluster IN ('c1') AND project IN ('a.b','o''k') AND hour BETWEEN '2026-11-02T08:00:00Z' AND '2026-11-02T14:00:00Z'`},
		{in: `p IN ($project) AND t >= $__unixEpochFrom() AND t < $__timeTo()`, ds: PostgresType, sql: true,
			want: `p IN ('a.b','o''k') AND t >= 1793606400 AND t < '2026-11-02T14:00:00Z'`},
		{in: `$__timeGroup(hour, '1h')`, ds: PostgresType, sql: true, err: true},
	} {
		got, err := interpolate(tc.in, tc.ds, vars, vals, map[string]string{"__rate_interval": "75s"})
		if err == nil && tc.sql {
			got, err = expandSQLMacros(got, from, to, time.Minute)
		}
		if (err != nil) != tc.err {
			t.Errorf("%s: error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !tc.err && got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}
