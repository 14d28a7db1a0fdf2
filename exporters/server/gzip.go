package server

import (
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// /metrics answers are compressed here rather than by promhttp, with one
// gzip compressor for the whole process: a request that finds it busy is
// answered uncompressed, which every scraper accepts. Prometheus asks for
// gzip on every scrape, and a compressor holds about 800 kB. promhttp
// keeps one per concurrent scrape in a sync.Pool, whose per-processor
// slots each end up holding one, so that on a node with many cores the
// idle compressors could outweigh everything else the exporter keeps in
// memory; with one compressor the exporter's live heap does not depend on
// the number of cores or of scrapers (docs/performance.md, P1 on the real
// code path).
var compressor = make(chan *gzip.Writer, 1)

func init() { compressor <- nil } // allocated on first use

// acceptsGzip reports whether the request's Accept-Encoding allows gzip:
// a gzip or * coding with a non-zero quality.
func acceptsGzip(r *http.Request) bool {
	for _, h := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(h, ",") {
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding != "gzip" && coding != "*" {
				continue
			}
			q := 1.0
			if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
			if q > 0 {
				return true
			}
		}
	}
	return false
}

// gzipped compresses h's answers to the requests that accept gzip, while
// the compressor is free.
func gzipped(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Accept-Encoding")
		if !acceptsGzip(r) {
			h.ServeHTTP(w, r)
			return
		}
		var zw *gzip.Writer
		select {
		case zw = <-compressor:
		default: // busy with another answer
			h.ServeHTTP(w, r)
			return
		}
		if zw == nil {
			zw = gzip.NewWriter(w)
		} else {
			zw.Reset(w)
		}
		defer func() {
			zw.Reset(io.Discard) // let go of w
			compressor <- zw
		}()
		w.Header().Set("Content-Encoding", "gzip")
		h.ServeHTTP(&gzipWriter{ResponseWriter: w, zw: zw}, r)
		_ = zw.Close() // a write error is the client's: nothing to answer it with
	})
}

// gzipWriter sends what is written through the compressor.
type gzipWriter struct {
	http.ResponseWriter
	zw *gzip.Writer
}

func (w *gzipWriter) WriteHeader(code int) {
	w.Header().Del("Content-Length") // of the uncompressed text
	w.ResponseWriter.WriteHeader(code)
}

func (w *gzipWriter) Write(b []byte) (int, error) { return w.zw.Write(b) }
