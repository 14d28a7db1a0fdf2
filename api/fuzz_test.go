package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
)

// FuzzUsageQuery: any query string gets a table or a problem document,
// never a panic, and a table only for a query the ledger accepts.
func FuzzUsageQuery(f *testing.F) {
	l := &fakeLedger{usage: func(_ context.Context, q ledger.UsageQuery, fn func(ledger.UsageRow) error) error {
		if err := q.Validate(); err != nil {
			return err
		}
		return fn(ledger.UsageRow{ReportRow: ledger.ReportRow{Keys: make([]string, len(q.GroupBy))}})
	}}
	s, err := New(Options{Ledger: l, NoAuth: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("from=2026-11-02T08:00:00Z&to=2026-11-02T10:00:00Z"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/usage", nil)
		req.URL.RawQuery = string(raw)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusRequestURITooLong:
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != rec.Code || p.Title == "" {
				t.Fatalf("query %q: %d with body %q", raw, rec.Code, rec.Body)
			}
		default:
			t.Fatalf("query %q: status %d: %s", raw, rec.Code, rec.Body)
		}
	})
}

// FuzzRouteParams: the other /api/v1 routes' parameters — the month in the
// monthly report's path, idle's limit and range, quota's range, projects'
// cluster — get an answer or a problem document for any input, never a
// panic or a server error.
func FuzzRouteParams(f *testing.F) {
	s, err := New(Options{Ledger: &fakeLedger{}, NoAuth: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(0), "2026-11", []byte("format=csv"))
	f.Add(uint8(1), "", []byte("limit=10&from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z"))
	f.Add(uint8(2), "", []byte("from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z&project=cms"))
	f.Add(uint8(3), "", []byte("cluster=ai-infn"))
	f.Add(uint8(0), "2026-13", []byte(""))
	f.Add(uint8(1), "", []byte("limit=99999999999999999999"))
	f.Fuzz(func(t *testing.T, route uint8, segment string, raw []byte) {
		target := [...]string{"/api/v1/reports/monthly/", "/api/v1/idle", "/api/v1/quota", "/api/v1/projects"}[route%4]
		if route%4 == 0 {
			target += url.PathEscape(segment)
		}
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.URL.RawQuery = string(raw)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestURITooLong:
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != rec.Code || p.Title == "" {
				t.Fatalf("%s?%q: %d with body %q", target, raw, rec.Code, rec.Body)
			}
		default:
			t.Fatalf("%s?%q: status %d: %s", target, raw, rec.Code, rec.Body)
		}
	})
}
