package api

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/internal/tabular"
)

// query reads a request's query parameters, refusing parameters the
// route does not know (a misspelt filter must not silently widen the
// answer).
type query struct {
	v url.Values
}

func newQuery(r *http.Request, known ...string) (query, *Problem) {
	v := r.URL.Query()
	for name := range v {
		if !slices.Contains(known, name) {
			slices.Sort(known)
			return query{}, badParam(probBadParameter, name, "unknown parameter %q (this route knows: %s)",
				name, strings.Join(known, ", "))
		}
	}
	return query{v: v}, nil
}

// one returns a parameter given at most once.
func (q query) one(name string) (string, *Problem) {
	vs := q.v[name]
	if len(vs) > 1 {
		return "", badParam(probBadParameter, name, "%s is given %d times", name, len(vs))
	}
	if len(vs) == 0 {
		return "", nil
	}
	return vs[0], nil
}

// list returns a filter's values: the parameter may repeat, and each
// value may hold several, comma-separated. Empty values are refused.
func (q query) list(name string) ([]string, *Problem) {
	var out []string
	for _, v := range q.v[name] {
		for x := range strings.SplitSeq(v, ",") {
			x = strings.TrimSpace(x)
			if x == "" {
				return nil, badParam(probBadParameter, name, "%s has an empty value", name)
			}
			if !slices.Contains(out, x) {
				out = append(out, x)
			}
		}
	}
	return out, nil
}

// hour parses a whole UTC hour in RFC 3339.
func (q query) hour(name string) (time.Time, *Problem) {
	s, p := q.one(name)
	if p != nil || s == "" {
		return time.Time{}, p
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, badParam(probBadTime, name, "%s %q is not an RFC 3339 time such as 2026-11-02T08:00:00Z", name, s)
	}
	if t.Unix()%3600 != 0 || t.Nanosecond() != 0 {
		return time.Time{}, badParam(probBadTime, name, "%s %s is not a whole UTC hour (the ledger is hourly)", name, s)
	}
	return t.UTC(), nil
}

// window parses from and to: both required unless optional, in which
// case both or neither may be given (ok false: neither).
func (q query) window(optional bool, maxRange time.Duration) (from, to time.Time, ok bool, p *Problem) {
	if from, p = q.hour("from"); p != nil {
		return
	}
	if to, p = q.hour("to"); p != nil {
		return
	}
	switch {
	case from.IsZero() && to.IsZero() && optional:
		return from, to, false, nil
	case from.IsZero():
		return from, to, false, badParam(probBadTime, "from", "from is required (a whole UTC hour, RFC 3339)")
	case to.IsZero():
		return from, to, false, badParam(probBadTime, "to", "to is required (a whole UTC hour, RFC 3339, excluded)")
	case !to.After(from):
		return from, to, false, badParam(probEmptyRange, "to", "to %s is not after from %s",
			to.Format(time.RFC3339), from.Format(time.RFC3339))
	case to.Sub(from) > maxRange:
		return from, to, false, badParam(probLongRange, "to", "the range from %s to %s is %s long; the longest allowed here is %s",
			from.Format(time.RFC3339), to.Format(time.RFC3339), days(to.Sub(from)), days(maxRange))
	}
	return from, to, true, nil
}

// days writes a duration in days and hours.
func days(d time.Duration) string {
	h := int64(d / time.Hour)
	if h%24 == 0 {
		return strconv.FormatInt(h/24, 10) + " days"
	}
	return fmt.Sprintf("%d days %d hours", h/24, h%24)
}

// groupBy parses group_by, def when absent.
func (q query) groupBy(def []string) ([]string, *Problem) {
	if !q.v.Has("group_by") {
		return def, nil
	}
	s, p := q.one("group_by")
	if p != nil {
		return nil, p
	}
	gb, err := ledger.ParseGroupBy(s)
	if err != nil {
		return nil, badParam(probGroupKey, "group_by", "%s", strings.TrimPrefix(err.Error(), ledger.ErrBadQuery.Error()+": "))
	}
	return gb, nil
}

// granularity parses granularity ("" when absent).
func (q query) granularity() (string, *Problem) {
	g, p := q.one("granularity")
	if p != nil || g == "" {
		return "", p
	}
	if !slices.Contains(ledger.Granularities(), g) {
		return "", badParam(probBadParameter, "granularity", "granularity %q: want %s", g, strings.Join(ledger.Granularities(), ", "))
	}
	return g, nil
}

// resources parses the resource filter: resource classes.
func (q query) resources() ([]string, *Problem) {
	rs, p := q.list("resource")
	if p != nil {
		return nil, p
	}
	for _, c := range rs {
		if !slices.Contains(ledger.Classes(), c) {
			return nil, badParam(probBadParameter, "resource", "resource %q is not a resource class (known: %s)",
				c, strings.Join(ledger.Classes(), ", "))
		}
	}
	return rs, nil
}

// limit parses limit, def when absent.
func (q query) limit(def, most int) (int, *Problem) {
	s, p := q.one("limit")
	if p != nil || s == "" {
		return def, p
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > most {
		return 0, badParam(probBadParameter, "limit", "limit %q: want a whole number from 1 to %d", s, most)
	}
	return n, nil
}

// format picks the answer's format: the format parameter, else CSV when
// the Accept header asks for text/csv before JSON, else JSON.
func (q query) format(r *http.Request) (string, *Problem) {
	f, p := q.one("format")
	if p != nil {
		return "", p
	}
	switch f {
	case tabular.FormatCSV, tabular.FormatJSON:
		return f, nil
	case "":
	default:
		return "", badParam(probBadParameter, "format", "format %q: want csv or json", f)
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "text/csv":
			return tabular.FormatCSV, nil
		case "application/json":
			return tabular.FormatJSON, nil
		}
	}
	return tabular.FormatJSON, nil
}
