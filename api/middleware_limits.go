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
