package server

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	cases := map[string]bool{
		"":                        false,
		"gzip":                    true,
		"GZIP":                    true,
		"deflate, gzip;q=0.5":     true,
		"gzip;q=0":                false,
		"gzip; q=0.0, identity":   false,
		"*":                       true,
		"zstd, br":                false,
		"gzip;q=1.0, identity;q=": true,
		"identity":                false,
	}
	for header, want := range cases {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if header != "" {
			r.Header.Set("Accept-Encoding", header)
		}
		if got := acceptsGzip(r); got != want {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", header, got, want)
		}
	}
}

// scrape asks h for /metrics, with gzip or not, and returns the answer
// inflated.
func scrape(h http.Handler, gz bool) (*http.Response, string, error) {
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if gz {
		r.Header.Set("Accept-Encoding", "gzip")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	resp := rec.Result()
	body := io.Reader(resp.Body)
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return resp, "", err
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	return resp, string(b), err
}

func get(t *testing.T, h http.Handler, gz bool) (*http.Response, string) {
	t.Helper()
	resp, body, err := scrape(h, gz)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestGzipped(t *testing.T) {
	s, err := New(Options{Gatherer: staticGatherer()})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	plainResp, plain := get(t, h, false)
	if plainResp.Header.Get("Content-Encoding") != "" || !strings.Contains(plain, "test_value_ratio 0.5") {
		t.Fatalf("without gzip: encoding %q, body %q", plainResp.Header.Get("Content-Encoding"), plain)
	}
	resp, body := get(t, h, true)
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Content-Length") != "" ||
		!strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("gzip answer headers: %v", resp.Header)
	}
	if body != plain {
		t.Errorf("gzip answer inflates to %q, want %q", body, plain)
	}

	// While the compressor is busy, answers go out uncompressed.
	zw := <-compressor
	resp, body = get(t, h, true)
	compressor <- zw
	if resp.Header.Get("Content-Encoding") != "" || body != plain {
		t.Errorf("compressor busy: encoding %q, body %q", resp.Header.Get("Content-Encoding"), body)
	}

	// Concurrent scrapes all get the exposition, compressed or not, and
	// the compressor is back at the end.
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, body, err := scrape(h, true); err != nil || body != plain {
				t.Errorf("concurrent scrape: %q, %v", body, err)
			}
		})
	}
	wg.Wait()
	if len(compressor) != 1 {
		t.Errorf("the compressor was not given back (%d free)", len(compressor))
	}
}
