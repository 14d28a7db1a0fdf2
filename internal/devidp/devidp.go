// Package devidp is a small OpenID Connect provider for the demo and for
// development on one machine: NEVER for production. It has no passwords
// and no consent: whoever reaches its login form logs in as any user it
// was given. It therefore listens on loopback addresses only and refuses
// any other.
//
//	GET  /.well-known/openid-configuration  the discovery document
//	GET  /jwks                               its RSA signing key (RS256)
//	GET  /authorize                          a form to pick a user (or, with
//	                                         Options.AutoApprove, no form)
//	POST /authorize                          the form's answer: redirects
//	                                         with an authorization code
//	POST /token                              the code for an ID token and an
//	                                         access token, PKCE (S256) checked
//
// It speaks the authorization code flow with PKCE as the usage page
// (api/web) uses it: every authorization request must carry an S256 code
// challenge, a code serves once and for two minutes, and /token refuses
// a code without the verifier of its challenge. Its tokens are RS256 JWTs
// with preferred_username and groups, as INDIGO IAM's are, so that the
// accounting API's auth.Verifier checks them through discovery like any
// issuer's. Mint signs an access token directly, for curl examples.
package devidp

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults and bounds.
const (
	// DefaultAddr listens on a free loopback port.
	DefaultAddr = "127.0.0.1:0"
	// DefaultTokenLifetime is the lifetime of the tokens /token issues.
	DefaultTokenLifetime = time.Hour
	// CodeLifetime is how long an authorization code may wait for /token.
	CodeLifetime = 2 * time.Minute
	// KeyID names the provider's signing key in its JWKS.
	KeyID = "devidp-rs256"
	// maxFormBytes bounds a POST body.
	maxFormBytes = 64 << 10
)

// ErrNotLoopback is a listen address other than a loopback one.
var ErrNotLoopback = errors.New("devidp: listens on loopback addresses only (it logs anybody in without a password)")

// User is an identity the provider can log in.
type User struct {
	// Name is the preferred_username claim (the ledger's user); the
	// subject is "devidp:" + Name.
	Name string
	// Groups is the groups claim.
	Groups []string
	// Note describes the user on the login form, such as "administrator".
	Note string
}

// Options configure a Provider.
type Options struct {
	// Addr is the listen address: a loopback host (127.0.0.1, ::1,
	// localhost) and a port (default DefaultAddr).
	Addr string
	// ClientID is the one client the provider knows. Required.
	ClientID string
	// ClientSecret, when set, must authenticate the client at /token
	// (client_secret_basic or client_secret_post); empty: a public
	// client, identified by its client_id and its PKCE verifier.
	ClientSecret string
	// RedirectURIs are the client's registered redirect URIs, compared
	// exactly. At least one is required.
	RedirectURIs []string
	// Audience is the aud of the access tokens (default ClientID); ID
	// tokens are always for ClientID.
	Audience string
	// Users are the identities the login form offers. At least one.
	Users []User
	// AutoApprove, when it names one of Users, logs that user in at
	// /authorize at once, without the form.
	AutoApprove string
	// TokenLifetime is the lifetime of the tokens /token issues (default
	// DefaultTokenLifetime).
	TokenLifetime time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives the logins and refusals.
	Logger *slog.Logger
}

// Provider is a running development identity provider.
type Provider struct {
	opts   Options
	log    *slog.Logger
	issuer string
	key    *rsa.PrivateKey
	form   *template.Template
	srv    *http.Server
	done   chan struct{}

	closeOnce sync.Once
	closeErr  error

	mu    sync.Mutex
	codes map[string]grant
}

// grant is what an authorization code was issued for.
type grant struct {
	user                       User
	challenge, nonce, redirect string
	scope                      string
	expires                    time.Time
}

//go:embed templates/authorize.html
var templateFS embed.FS

// Start checks opts, listens on opts.Addr and serves until ctx ends or
// Close is called.
func Start(ctx context.Context, opts Options) (*Provider, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if err := CheckLoopback(opts.Addr); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("devidp: signing key: %w", err)
	}
	form, err := template.ParseFS(templateFS, "templates/authorize.html")
	if err != nil {
		return nil, fmt.Errorf("devidp: template: %w", err)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("devidp: listen on %s: %w", opts.Addr, err)
	}
	// "localhost" may resolve to anything: check where it landed.
	if ap, ok := l.Addr().(*net.TCPAddr); !ok || !ap.IP.IsLoopback() {
		l.Close()
		return nil, fmt.Errorf("%w: %s is %s", ErrNotLoopback, opts.Addr, l.Addr())
	}
	p := &Provider{opts: opts, log: opts.Logger, issuer: "http://" + l.Addr().String(), key: key, form: form,
		done: make(chan struct{}), codes: map[string]grant{}}
	p.srv = &http.Server{Handler: p.routes(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelWarn)}
	go func() {
		defer close(p.done)
		if err := p.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("development identity provider stopped", "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			p.shutdown()
		case <-p.done:
		}
	}()
	p.log.Warn("development identity provider: anybody reaching it logs in as any of its users; never use it in production",
		"issuer", p.issuer, "users", len(opts.Users))
	return p, nil
}

func (o *Options) check() error {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	switch {
	case o.ClientID == "":
		return errors.New("devidp: a client ID is required")
	case len(o.RedirectURIs) == 0:
		return errors.New("devidp: at least one redirect URI is required")
	case len(o.Users) == 0:
		return errors.New("devidp: at least one user is required")
	case o.TokenLifetime < 0:
		return fmt.Errorf("devidp: token lifetime %s is negative", o.TokenLifetime)
	}
	for _, r := range o.RedirectURIs {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
			return fmt.Errorf("devidp: redirect URI %q: want an absolute http(s) URL without fragment", r)
		}
	}
	seen := map[string]bool{}
	for _, u := range o.Users {
		if u.Name == "" || seen[u.Name] {
			return fmt.Errorf("devidp: user %q: names must be non-empty and distinct", u.Name)
		}
		seen[u.Name] = true
	}
	if o.AutoApprove != "" && !seen[o.AutoApprove] {
		return fmt.Errorf("devidp: auto-approved user %q is not one of the users", o.AutoApprove)
	}
	if o.Audience == "" {
		o.Audience = o.ClientID
	}
	if o.TokenLifetime == 0 {
		o.TokenLifetime = DefaultTokenLifetime
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// CheckLoopback returns nil when addr (host:port) names a loopback host:
// 127.0.0.0/8, ::1 or localhost. An empty host (every interface) is
// refused.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("devidp: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrNotLoopback, addr)
}

// Issuer is the provider's issuer URL (iss), "http://127.0.0.1:<port>".
func (p *Provider) Issuer() string { return p.issuer }

// Close stops the provider and waits for its server to end. It may be
// called more than once, and after the context of Start has ended.
func (p *Provider) Close() error {
	p.shutdown()
	<-p.done
	if p.closeErr != nil {
		return fmt.Errorf("devidp: close: %w", p.closeErr)
	}
	return nil
}

// shutdown closes the server once.
func (p *Provider) shutdown() {
	p.closeOnce.Do(func() { p.closeErr = p.srv.Close() })
}

func (p *Provider) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorizeGet)
	mux.HandleFunc("POST /authorize", p.authorizePost)
	mux.HandleFunc("POST /token", p.token)
	return mux
}

func (p *Provider) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.issuer,
		"authorization_endpoint":                p.issuer + "/authorize",
		"token_endpoint":                        p.issuer + "/token",
		"jwks_uri":                              p.issuer + "/jwks",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": p.authMethods(),
		"scopes_supported":                      []string{"openid", "profile", "email", "groups"},
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "nonce", "preferred_username", "groups"},
	})
}

func (p *Provider) authMethods() []string {
	if p.opts.ClientSecret == "" {
		return []string{"none"}
	}
	return []string{"client_secret_basic", "client_secret_post"}
}

func (p *Provider) jwks(w http.ResponseWriter, _ *http.Request) {
	pub := p.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": KeyID,
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// authRequest is an authorization request's parameters.
type authRequest struct {
	ClientID, RedirectURI, ResponseType, Scope, State, Nonce, Challenge, Method string
}

func readAuthRequest(v url.Values) authRequest {
	return authRequest{ClientID: v.Get("client_id"), RedirectURI: v.Get("redirect_uri"), ResponseType: v.Get("response_type"),
		Scope: v.Get("scope"), State: v.Get("state"), Nonce: v.Get("nonce"),
		Challenge: v.Get("code_challenge"), Method: v.Get("code_challenge_method")}
}

// challengeRE is an S256 challenge: 32 bytes in unpadded base64url.
var challengeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// check validates an authorization request. A bad client or redirect URI
// is answered here (redirect is false: never redirect to an unregistered
// address); any other fault is sent back to the client as an error.
func (p *Provider) check(ar authRequest) (code, desc string, redirect bool) {
	switch {
	case ar.ClientID != p.opts.ClientID:
		return "invalid_client", "unknown client_id", false
	case !slices.Contains(p.opts.RedirectURIs, ar.RedirectURI):
		return "invalid_request", "redirect_uri is not registered for this client", false
	case ar.ResponseType != "code":
		return "unsupported_response_type", "only response_type=code is supported", true
	case !slices.Contains(strings.Fields(ar.Scope), "openid"):
		return "invalid_scope", "the openid scope is required", true
	case ar.Challenge == "" || ar.Method != "S256":
		return "invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256", true
	case !challengeRE.MatchString(ar.Challenge):
		return "invalid_request", "code_challenge is not an S256 challenge", true
	}
	return "", "", true
}

// refuse answers a refused authorization request.
func (p *Provider) refuse(w http.ResponseWriter, r *http.Request, ar authRequest, code, desc string, redirect bool) {
	p.log.Info("authorization refused", "error", code, "description", desc)
	if !redirect {
		http.Error(w, "development identity provider: "+code+": "+desc, http.StatusBadRequest)
		return
	}
	v := url.Values{"error": {code}, "error_description": {desc}}
	if ar.State != "" {
		v.Set("state", ar.State)
	}
	http.Redirect(w, r, withQuery(ar.RedirectURI, v), http.StatusFound)
}

// formData is what authorize.html shows.
type formData struct {
	Request authRequest
	Users   []User
}

// authorizeGet starts a login: the form to pick a user, or, with
// AutoApprove, a redirect with a code at once.
func (p *Provider) authorizeGet(w http.ResponseWriter, r *http.Request) {
	ar := readAuthRequest(r.URL.Query())
	if code, desc, redirect := p.check(ar); code != "" {
		p.refuse(w, r, ar, code, desc, redirect)
		return
	}
	if p.opts.AutoApprove != "" {
		p.approve(w, r, ar, p.user(p.opts.AutoApprove), http.StatusFound)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	// Browsers apply form-action to the redirect that follows the POST.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'; "+
		"form-action 'self' "+origin(ar.RedirectURI))
	h.Set("Content-Type", "text/html; charset=utf-8")
	if err := p.form.Execute(w, formData{Request: ar, Users: p.opts.Users}); err != nil {
		p.log.Error("render the login form", "err", err)
	}
}

// authorizePost is the form's answer: the request again, and the user
// picked.
func (p *Provider) authorizePost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "development identity provider: bad form", http.StatusBadRequest)
		return
	}
	ar := readAuthRequest(r.PostForm)
	if code, desc, redirect := p.check(ar); code != "" {
		p.refuse(w, r, ar, code, desc, redirect)
		return
	}
	u := p.user(r.PostForm.Get("user"))
	if u == nil {
		p.refuse(w, r, ar, "access_denied", "no such user", true)
		return
	}
	p.approve(w, r, ar, u, http.StatusSeeOther)
}

func (p *Provider) user(name string) *User {
	for i := range p.opts.Users {
		if p.opts.Users[i].Name == name {
			return &p.opts.Users[i]
		}
	}
	return nil
}

// approve issues a code for u and redirects to the client with it.
func (p *Provider) approve(w http.ResponseWriter, r *http.Request, ar authRequest, u *User, status int) {
	code, err := randomString()
	if err != nil {
		http.Error(w, "development identity provider: "+err.Error(), http.StatusInternalServerError)
		return
	}
	now := p.opts.Now()
	p.mu.Lock()
	for c, g := range p.codes {
		if now.After(g.expires) {
			delete(p.codes, c)
		}
	}
	p.codes[code] = grant{user: *u, challenge: ar.Challenge, nonce: ar.Nonce, redirect: ar.RedirectURI,
		scope: ar.Scope, expires: now.Add(CodeLifetime)}
	p.mu.Unlock()
	p.log.Info("login approved", "user", u.Name)
	v := url.Values{"code": {code}}
	if ar.State != "" {
		v.Set("state", ar.State)
	}
	http.Redirect(w, r, withQuery(ar.RedirectURI, v), status)
}

// verifierRE is a PKCE code verifier (RFC 7636 §4.1).
var verifierRE = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// token exchanges a code for tokens.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.tokenError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	f := r.PostForm
	if !p.clientOK(r) {
		p.tokenError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if f.Get("grant_type") != "authorization_code" {
		p.tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "only authorization_code is supported")
		return
	}
	code := f.Get("code")
	p.mu.Lock()
	g, ok := p.codes[code]
	delete(p.codes, code) // a code serves once, whatever happens next
	p.mu.Unlock()
	verifier := f.Get("code_verifier")
	switch {
	case !ok || p.opts.Now().After(g.expires):
		p.tokenError(w, http.StatusBadRequest, "invalid_grant", "unknown, used or expired code")
		return
	case f.Get("redirect_uri") != g.redirect:
		p.tokenError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri differs from the authorization request's")
		return
	case verifier == "":
		p.tokenError(w, http.StatusBadRequest, "invalid_request", "code_verifier is required (PKCE)")
		return
	case !verifierRE.MatchString(verifier) || subtle.ConstantTimeCompare([]byte(S256(verifier)), []byte(g.challenge)) != 1:
		p.tokenError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge")
		return
	}
	idClaims := p.claims(g.user, p.opts.ClientID, p.opts.TokenLifetime)
	idClaims["azp"] = p.opts.ClientID
	if g.nonce != "" {
		idClaims["nonce"] = g.nonce
	}
	idToken, err := p.sign(idClaims)
	if err != nil {
		p.tokenError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	access, err := p.Mint(g.user.Name, p.opts.TokenLifetime)
	if err != nil {
		p.tokenError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	p.log.Info("tokens issued", "user", g.user.Name)
	writeJSON(w, http.StatusOK, map[string]any{"access_token": access, "token_type": "Bearer",
		"expires_in": int64(p.opts.TokenLifetime / time.Second), "id_token": idToken, "scope": g.scope})
}

// clientOK authenticates the client: its secret when it has one, else
// its client_id.
func (p *Provider) clientOK(r *http.Request) bool {
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != p.opts.ClientID {
		return false
	}
	if p.opts.ClientSecret == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(secret), []byte(p.opts.ClientSecret)) == 1
}

func (p *Provider) tokenError(w http.ResponseWriter, status int, code, desc string) {
	p.log.Info("token refused", "error", code, "description", desc)
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// Mint signs an access token of a configured user for the access tokens'
// audience, valid for ttl: what /token would return after that user's
// login, for command-line examples and tests.
func (p *Provider) Mint(user string, ttl time.Duration) (string, error) {
	u := p.user(user)
	if u == nil {
		return "", fmt.Errorf("devidp: no user %q", user)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("devidp: token lifetime %s is not positive", ttl)
	}
	c := p.claims(*u, p.opts.Audience, ttl)
	c["client_id"] = p.opts.ClientID
	c["scope"] = "openid profile email"
	jti, err := randomString()
	if err != nil {
		return "", err
	}
	c["jti"] = jti
	return p.sign(c)
}

// claims are the claims every token carries.
func (p *Provider) claims(u User, aud string, ttl time.Duration) map[string]any {
	now := p.opts.Now()
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	return map[string]any{"iss": p.issuer, "sub": "devidp:" + u.Name, "aud": aud,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(),
		"preferred_username": u.Name, "groups": groups}
}

// sign writes claims as a compact RS256 JWS.
func (p *Provider) sign(claims map[string]any) (string, error) {
	h, err := json.Marshal(map[string]string{"alg": "RS256", "kid": KeyID, "typ": "JWT"})
	if err != nil {
		return "", fmt.Errorf("devidp: header: %w", err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("devidp: claims: %w", err)
	}
	input := b64(h) + "." + b64(c)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, p.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("devidp: sign: %w", err)
	}
	return input + "." + b64(sig), nil
}

// S256 is the PKCE challenge of a verifier: BASE64URL(SHA-256(verifier)).
func S256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// randomString returns 32 random bytes in base64url.
func randomString() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("devidp: random: %w", err)
	}
	return b64(b), nil
}

// withQuery adds v to the query of a registered redirect URI.
func withQuery(raw string, v url.Values) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw // registered URIs are checked at Start
	}
	q := u.Query()
	for k, vs := range v {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// origin is scheme://host of a registered redirect URI.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
