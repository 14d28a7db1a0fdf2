package web

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/api/auth/authtest"
)

// testIdP is an OpenID Connect provider for tests: a discovery document,
// the key set of an authtest.Issuer, an /authorize endpoint that approves
// its configured user at once and redirects with a code, and a /token
// endpoint that checks the client, the redirect URI and the PKCE verifier
// before it returns an ID token signed with the issuer's RSA key.
type testIdP struct {
	URL          string // the issuer, with a trailing slash
	ClientID     string
	ClientSecret string
	keys         *authtest.Issuer
	srv          *httptest.Server

	mu       sync.Mutex
	user     string
	groups   []string
	redirect string // the registered redirect URI
	codes    map[string]grant
	// mutate, when set, changes the ID token's header and claims.
	mutate func(header, claims map[string]any)
	// noIDToken leaves the ID token out of the token response.
	noIDToken bool
	// deny makes /authorize refuse the login (error=access_denied).
	deny          bool
	authRequests  []url.Values
	tokenRequests int
	tokenErrors   []string
}

// grant is an authorization code's request.
type grant struct {
	challenge, nonce, redirect, user string
	groups                           []string
}

func newTestIdP(t *testing.T) *testIdP {
	t.Helper()
	p := &testIdP{ClientID: "gpuledger-page", ClientSecret: "s3cret", keys: authtest.New(t, time.Now()),
		user: "alice", codes: map[string]grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer": p.URL, "authorization_endpoint": p.srv.URL + "/authorize", "token_endpoint": p.srv.URL + "/token",
			"jwks_uri": p.srv.URL + "/jwk", "code_challenge_methods_supported": []string{"plain", "S256"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_basic"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwk", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(p.keys.JWKS())
	})
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	p.URL = p.srv.URL + "/"
	return p
}

// setUser sets who /authorize logs in.
func (p *testIdP) setUser(user string, groups ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.user, p.groups = user, groups
}

func (p *testIdP) set(fn func(p *testIdP)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(p)
}

func (p *testIdP) stats() (auths []url.Values, tokens int, errs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.authRequests), p.tokenRequests, slices.Clone(p.tokenErrors)
}

func (p *testIdP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.authRequests = append(p.authRequests, q)
	scopes := strings.Fields(q.Get("scope"))
	switch {
	case q.Get("client_id") != p.ClientID:
		http.Error(w, "unknown client", http.StatusBadRequest)
		return
	case q.Get("redirect_uri") != p.redirect:
		http.Error(w, "redirect_uri is not registered", http.StatusBadRequest)
		return
	case q.Get("response_type") != "code" || !slices.Contains(scopes, "openid"):
		http.Error(w, "want response_type=code and the openid scope", http.StatusBadRequest)
		return
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		http.Error(w, "PKCE with S256 is required", http.StatusBadRequest)
		return
	}
	back, _ := url.Parse(p.redirect)
	v := url.Values{"state": {q.Get("state")}}
	if p.deny {
		v.Set("error", "access_denied")
	} else {
		code := randomCode()
		p.codes[code] = grant{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: p.redirect,
			user: p.user, groups: p.groups}
		v.Set("code", code)
	}
	back.RawQuery = v.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func randomCode() string {
	s, err := randomString()
	if err != nil {
		panic(err)
	}
	return s
}

func (p *testIdP) token(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokenRequests++
	refuse := func(status int, code, desc string) {
		p.tokenErrors = append(p.tokenErrors, code+": "+desc)
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
	}
	if err := r.ParseForm(); err != nil {
		refuse(http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok || id != p.ClientID || secret != p.ClientSecret {
		refuse(http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		refuse(http.StatusBadRequest, "unsupported_grant_type", r.PostForm.Get("grant_type"))
		return
	}
	g, ok := p.codes[r.PostForm.Get("code")]
	delete(p.codes, r.PostForm.Get("code")) // a code serves once
	verifier := r.PostForm.Get("code_verifier")
	switch {
	case !ok:
		refuse(http.StatusBadRequest, "invalid_grant", "unknown or used code")
		return
	case r.PostForm.Get("redirect_uri") != g.redirect:
		refuse(http.StatusBadRequest, "invalid_grant", "redirect_uri differs")
		return
	case verifier == "":
		refuse(http.StatusBadRequest, "invalid_request", "code_verifier is required")
		return
	case s256(verifier) != g.challenge:
		refuse(http.StatusBadRequest, "invalid_grant", "code_verifier does not match the challenge")
		return
	}
	now := time.Now()
	claims := map[string]any{"iss": p.URL, "aud": p.ClientID, "sub": "sub-" + g.user, "preferred_username": g.user,
		"iat": now.Unix(), "exp": now.Add(20 * time.Minute).Unix(), "nonce": g.nonce, "azp": p.ClientID}
	if g.groups != nil {
		claims["groups"] = g.groups
	}
	header := map[string]any{"alg": "RS256", "kid": authtest.RSAKeyID, "typ": "JWT"}
	if p.mutate != nil {
		p.mutate(header, claims)
	}
	var key any = p.keys.RSA
	if header["alg"] == "HS256" {
		key = []byte(p.ClientSecret)
	}
	resp := map[string]any{"access_token": "opaque-" + g.user, "token_type": "Bearer", "expires_in": 3600}
	if !p.noIDToken {
		resp["id_token"] = p.keys.Sign(header, claims, key)
	}
	writeJSON(w, http.StatusOK, resp)
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
