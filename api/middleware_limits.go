package api

import (
	"context"
	"net/http"
)

// limits refuses oversized requests before any work: a query string over
// maxQueryBytes (414) or a body over maxBodyBytes (413; every route is a
// GET). The headers are bounded by the http.Server (MaxHeaderBytes).
func (s *Server) limits(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.RawQuery) > maxQueryBytes {
			writeProblem(w, r, problemf(http.StatusRequestURITooLong, probTooLarge,
				"the query string is %d bytes; at most %d are accepted", len(r.URL.RawQuery), maxQueryBytes))
			return
		}
		if r.ContentLength > maxBodyBytes {
			writeProblem(w, r, problemf(http.StatusRequestEntityTooLarge, probTooLarge,
				"the request body is %d bytes; at most %d are accepted", r.ContentLength, maxBodyBytes))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// timeout bounds a request's work by Options.RequestTimeout: its context
// ends then, which ends its database query; a handler that has not
// answered yet answers 504.
func (s *Server) timeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// bound answers at most Options.MaxInFlight API requests at once: one
// more is refused at once with 503 and Retry-After rather than queued
// behind the others (and the database's few connections), so that the
// answers given keep their latency when clients ask for more than the
// server can give, and clients back off.
func (s *Server) bound(next http.Handler) http.Handler {
	slots := make(chan struct{}, s.opts.MaxInFlight)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
		default:
			s.metrics.overload.Inc()
			p := problemf(http.StatusServiceUnavailable, probUnavailable,
				"the server is answering %d requests already; retry shortly", s.opts.MaxInFlight)
			p.header = http.Header{"Retry-After": {"1"}}
			writeProblem(w, r, p)
			return
		}
		s.metrics.inFlight.Inc()
		defer func() {
			s.metrics.inFlight.Dec()
			<-slots
		}()
		next.ServeHTTP(w, r)
	})
}
