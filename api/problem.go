package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/api/auth"
)

// Problem is an RFC 9457 problem document: what went wrong, for people
// (title, detail) and for programs (type, status, invalid_params).
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// InvalidParams names the query parameters at fault.
	InvalidParams []InvalidParam `json:"invalid_params,omitempty"`

	// header holds response headers the problem needs
	// (WWW-Authenticate, Retry-After).
	header http.Header
}

// InvalidParam is one query parameter at fault.
type InvalidParam struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// ProblemContentType is the media type of problem documents.
const ProblemContentType = "application/problem+json"

// problemBase prefixes the problem types: each names a section of the
// API's documentation.
const problemBase = "https://github.com/gpuledger/gpuledger/blob/main/docs/api.md#"

// problemKind is a type of problem and its title.
type problemKind struct{ slug, title string }

// The problems the API answers with (docs/api.md lists them).
var (
	probBadParameter = problemKind{"bad-parameter", "Invalid parameter"}
	probBadTime      = problemKind{"bad-time", "Invalid time"}
	probGroupKey     = problemKind{"unknown-group-key", "Unknown group-by key"}
	probEmptyRange   = problemKind{"empty-range", "Empty time range"}
	probLongRange    = problemKind{"range-too-long", "Time range too long"}
	probNoToken      = problemKind{"unauthorized", "Authentication required"}
	probBadToken     = problemKind{"invalid-token", "Invalid token"}
	probForbidden    = problemKind{"forbidden", "Forbidden"}
	probNotFound     = problemKind{"not-found", "Not found"}
	probMethod       = problemKind{"method-not-allowed", "Method not allowed"}
	probTooLarge     = problemKind{"request-too-large", "Request too large"}
	probTimeout      = problemKind{"timeout", "Request timed out"}
	probUnavailable  = problemKind{"unavailable", "Service unavailable"}
	probInternal     = problemKind{"internal", "Internal error"}
)

// problemf returns a problem of kind with a detail.
func problemf(status int, kind problemKind, format string, args ...any) *Problem {
	return &Problem{Type: problemBase + kind.slug, Title: kind.title, Status: status, Detail: fmt.Sprintf(format, args...)}
}

// badParam is a 400 problem about one query parameter.
func badParam(kind problemKind, name, format string, args ...any) *Problem {
	p := problemf(http.StatusBadRequest, kind, format, args...)
	p.InvalidParams = []InvalidParam{{Name: name, Reason: p.Detail}}
	return p
}

// Error makes a Problem an error.
func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

// writeProblem answers with p.
func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	for k, vs := range p.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", ProblemContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Del("Content-Disposition")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p) // a client gone is not an error of ours
}

// errorProblem maps an error of a handler (the ledger's, the
// authorization's, the context's) to a problem, logging what the client
// is not told.
func (s *Server) errorProblem(ctx context.Context, err error) *Problem {
	var p *Problem
	switch {
	case errors.As(err, &p):
		return p
	case errors.Is(err, ledger.ErrBadQuery):
		return problemf(http.StatusBadRequest, probBadParameter, "%v", err)
	case errors.Is(err, auth.ErrForbidden):
		return problemf(http.StatusForbidden, probForbidden, "%v", err)
	case errors.Is(err, context.DeadlineExceeded):
		return problemf(http.StatusGatewayTimeout, probTimeout,
			"the request took longer than %s; narrow the range or the grouping", s.opts.RequestTimeout)
	case ledger.IsTransient(err):
		s.log.Warn("ledger unavailable", "err", err)
		p := problemf(http.StatusServiceUnavailable, probUnavailable, "the ledger database is unavailable; retry shortly")
		p.header = http.Header{"Retry-After": {strconv.Itoa(5)}}
		return p
	}
	s.log.ErrorContext(ctx, "request failed", "err", err)
	return problemf(http.StatusInternalServerError, probInternal, "the request failed; the server's log says why")
}

// logRequestError logs an error met after the answer had started.
func (s *Server) logRequestError(r *http.Request, rows int, err error) {
	level := slog.LevelError
	if errors.Is(err, context.Canceled) {
		level = slog.LevelDebug // the client went away
	}
	s.log.Log(r.Context(), level, "answer cut short", "path", r.URL.Path, "rows", rows, "err", err)
}
