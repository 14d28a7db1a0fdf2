package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
)

// health is /healthz (the process answers) and /readyz (the ledger
// database answers and, with authentication, the token signing keys are
// loaded).
type health struct{ s *Server }

// Routes registers the resource.
func (h health) Routes(r chi.Router) {
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { plain(w, http.StatusOK, "ok") })
	r.Get("/readyz", h.ready)
}

func (h health) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	var failed []string
	if err := h.s.opts.Ledger.Ping(ctx); err != nil {
		failed = append(failed, "ledger: "+err.Error())
	}
	if h.s.opts.Authenticator != nil && !h.s.opts.NoAuth {
		if err := h.s.opts.Authenticator.Ready(); err != nil {
			failed = append(failed, "authentication: "+err.Error())
		}
	}
	if len(failed) > 0 {
		writeProblem(w, r, problemf(http.StatusServiceUnavailable, probUnavailable, "not ready: %s", strings.Join(failed, "; ")))
		return
	}
	plain(w, http.StatusOK, "ok")
}

func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}
