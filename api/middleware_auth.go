package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gpuledger/gpuledger/api/auth"
)

// realm is the WWW-Authenticate realm.
const realm = "gpuledger"

// authenticate verifies the request's bearer token and puts the caller's
// principal in its context. No token: 401 with a bare Bearer challenge
// (RFC 6750 §3); a refused token: 401 with error="invalid_token"; keys
// that could never be loaded: 503. A request without a token may instead
// carry a browser session (Options.Sessions). With Options.NoAuth every
// request is an administrator's.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.NoAuth {
			next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), auth.Unauthenticated())))
			return
		}
		token, ok := bearer(r)
		if !ok && s.opts.Sessions != nil {
			if id, found, err := s.opts.Sessions.Session(r); found {
				s.serveSession(w, r, next, id, err)
				return
			}
		}
		if !ok {
			s.metrics.authFailures.WithLabelValues("no_token").Inc()
			p := problemf(http.StatusUnauthorized, probNoToken, "send an OIDC access token: Authorization: Bearer <token>")
			p.header = http.Header{"Www-Authenticate": {`Bearer realm="` + realm + `"`}}
			writeProblem(w, r, p)
			return
		}
		id, err := s.opts.Authenticator.Verify(r.Context(), token)
		switch {
		case errors.Is(err, auth.ErrKeysUnavailable):
			s.metrics.authFailures.WithLabelValues("keys_unavailable").Inc()
			s.log.Warn("cannot check tokens", "err", err)
			p := problemf(http.StatusServiceUnavailable, probUnavailable, "the token issuer's signing keys are not available; retry shortly")
			p.header = http.Header{"Retry-After": {"10"}}
			writeProblem(w, r, p)
			return
		case err != nil:
			s.metrics.authFailures.WithLabelValues("invalid_token").Inc()
			s.log.Debug("token refused", "err", err)
			desc := headerSafe(strings.TrimPrefix(err.Error(), auth.ErrInvalidToken.Error()+": "))
			p := problemf(http.StatusUnauthorized, probBadToken, "%s", desc)
			p.header = http.Header{"Www-Authenticate": {`Bearer realm="` + realm + `", error="invalid_token", error_description="` + desc + `"`}}
			writeProblem(w, r, p)
			return
		}
		pr := s.opts.Policy.Principal(id)
		s.log.Debug("request", "path", r.URL.Path, "user", pr.User, "admin", pr.Admin, "manages", pr.Manages)
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), pr)))
	})
}

// serveSession serves a request authenticated by its browser session
// (Options.Sessions): a refused session is a 401 that sends the browser
// back to the login page.
func (s *Server) serveSession(w http.ResponseWriter, r *http.Request, next http.Handler, id auth.Identity, err error) {
	if err != nil {
		s.metrics.authFailures.WithLabelValues("invalid_session").Inc()
		s.log.Debug("session refused", "err", err)
		p := problemf(http.StatusUnauthorized, probNoToken, "%s: log in again at /login", headerSafe(err.Error()))
		p.header = http.Header{"Www-Authenticate": {`Bearer realm="` + realm + `"`}}
		writeProblem(w, r, p)
		return
	}
	pr := s.opts.Policy.Principal(id)
	s.log.Debug("request", "path", r.URL.Path, "user", pr.User, "admin", pr.Admin, "manages", pr.Manages, "session", true)
	next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), pr)))
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// principal returns the request's caller; the routes that call it are
// behind authenticate.
func principal(r *http.Request) auth.Principal {
	p, ok := auth.PrincipalFrom(r.Context())
	if !ok {
		return auth.Principal{} // sees nothing
	}
	return p
}

// headerSafe makes s fit an error_description: printable ASCII without
// '"' or '\' (RFC 6750 §3).
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\' || r < 0x20 || r > 0x7e:
			return '?'
		}
		return r
	}, s)
}
