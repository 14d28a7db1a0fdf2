package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
