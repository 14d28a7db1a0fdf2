// Package web is gpuledger's self-service usage page: researchers, project
// managers and operators log in with the platform's OpenID Connect
// provider (INDIGO IAM on AI_INFN) and see the GPU-hours they may see, by
// month, project and user, as a table and a chart. docs/usage-page.md
// describes it for operators.
//
//	GET  /            the page (a login link without a session)
//	GET  /login       starts the authorization code flow with PKCE (S256)
//	GET  /callback    the provider's redirect: checks state, exchanges the
//	                  code, verifies the ID token and its nonce, opens a session
//	GET  /logout      asks to confirm; POST /logout ends the session
//	GET  /assets/*    the page's script and style sheet, embedded
//
// A session is a cookie holding the verified identity (subject, user and
// groups) and an expiry, signed with HMAC-SHA-256: the server keeps no
// session state, and a replica with the same key accepts it. The page
// reads its numbers from the accounting API (/api/v1/usage) with that
// cookie: UI implements api.SessionAuthenticator, so that what a browser
// sees is decided by the same auth.Policy and the same SQL filters as for
// a bearer token. Every response carries a Content-Security-Policy that
// allows nothing but the server's own embedded assets: no inline script,
// no external source.
package web

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gpuledger/gpuledger/api/auth"
)

// IDTokenVerifier checks an ID token's signature, algorithm, expiry,
// issuer and audience: an *auth.Verifier whose audience is the client ID.
type IDTokenVerifier interface {
	Verify(ctx context.Context, token string) (auth.Identity, error)
}

// Defaults and bounds of Options.
const (
	DefaultSessionMaxAge = 8 * time.Hour
	MaxSessionMaxAge     = 7 * 24 * time.Hour
	// loginMaxAge bounds the time between /login and /callback.
	loginMaxAge = 10 * time.Minute
	// exchangeTimeout bounds the code exchange at the token endpoint.
	exchangeTimeout = 15 * time.Second
)

// DefaultScopes are the scopes the page asks for: the ID token must carry
// the user and groups claims.
var DefaultScopes = []string{"openid", "profile", "email"}

// Options configure a UI.
type Options struct {
	// Issuer is the OIDC issuer, exactly as its ID tokens' iss; its
	// discovery document gives the authorization and token endpoints.
	// Required.
	Issuer string
	// ClientID and ClientSecret are the page's client registration at the
	// provider (no secret: a public client, PKCE only). ClientID is
	// required.
	ClientID, ClientSecret string
	// PublicURL is the page's address as browsers reach it (https, or
	// http on a loopback address); the redirect URI registered at the
	// provider is PublicURL + "/callback". Required.
	PublicURL string
	// Verifier checks the ID tokens: an auth.Verifier for Issuer whose
	// audience is ClientID. Required.
	Verifier IDTokenVerifier
	// Policy maps a session's identity to what it sees, as for the API.
	Policy auth.Policy
	// SessionKey signs the session cookies and seals the login cookies
	// (at least 32 bytes, see LoadSessionKey); nil: a random key, so that
	// sessions end when the process does and replicas do not share them.
	SessionKey []byte
	// SessionMaxAge is how long a session lasts (default 8 h, at most
	// 7 days); groups are those of the login until it ends.
	SessionMaxAge time.Duration
	// InsecureCookies drops the Secure attribute and the __Host- prefix of
	// the cookies: for a PublicURL of http://localhost only.
	InsecureCookies bool
	// Scopes are asked for at login (default DefaultScopes; "openid" is
	// always included).
	Scopes []string
	// HTTPClient reaches the provider (default: a client with a 15 s
	// timeout).
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives logins and their failures.
	Logger *slog.Logger
}

// UI is the usage page. It is an http.Handler for its routes and the
// api.SessionAuthenticator of the API.
type UI struct {
	opts     Options
	log      *slog.Logger
	public   *url.URL
	keys     keys
	cookies  cookieNames
	provider *providerCache
	pages    *template.Template
	assets   http.Handler
	versions map[string]string // asset name → content hash
	mux      *http.ServeMux
}

//go:embed assets
var assetFS embed.FS

//go:embed templates/*.html
var templateFS embed.FS

// New checks opts and builds the page.
func New(opts Options) (*UI, error) {
	public, err := opts.check()
	if err != nil {
		return nil, err
	}
	k, err := deriveKeys(opts.SessionKey)
	if err != nil {
		return nil, err
	}
	u := &UI{opts: opts, log: opts.Logger, public: public, keys: k, cookies: newCookieNames(opts.InsecureCookies)}
	u.provider = &providerCache{issuer: opts.Issuer, client: opts.HTTPClient}
	if err := u.loadAssets(); err != nil {
		return nil, err
	}
	u.pages, err = template.New("").Funcs(template.FuncMap{"asset": u.assetURL}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	u.mux = http.NewServeMux()
	u.mux.HandleFunc("GET /{$}", u.page)
	u.mux.HandleFunc("GET /login", u.login)
	u.mux.HandleFunc("GET /callback", u.callback)
	u.mux.HandleFunc("GET /logout", u.logoutForm)
	u.mux.HandleFunc("POST /logout", u.logout)
	u.mux.Handle("GET /assets/", u.assets)
	if opts.SessionKey == nil {
		u.log.Warn("no session key file: sessions are signed with a random key, " +
			"so they end at restart and replicas do not share them")
	}
	return u, nil
}

// check validates opts and sets the defaults; it returns the public URL.
func (o *Options) check() (*url.URL, error) {
	switch {
	case o.Issuer == "":
		return nil, errors.New("web: the OIDC issuer is required")
	case o.ClientID == "":
		return nil, errors.New("web: the OIDC client ID is required")
	case o.Verifier == nil:
		return nil, errors.New("web: no ID token verifier")
	case o.SessionMaxAge < 0 || o.SessionMaxAge > MaxSessionMaxAge:
		return nil, fmt.Errorf("web: session lifetime %s: want up to %s", o.SessionMaxAge, MaxSessionMaxAge)
	}
	public, err := checkPublicURL(o.PublicURL, o.InsecureCookies)
	if err != nil {
		return nil, err
	}
	if o.SessionMaxAge == 0 {
		o.SessionMaxAge = DefaultSessionMaxAge
	}
	if len(o.Scopes) == 0 {
		o.Scopes = DefaultScopes
	}
	if !slices.Contains(o.Scopes, "openid") {
		o.Scopes = append([]string{"openid"}, o.Scopes...)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: exchangeTimeout}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return public, nil
}

// checkPublicURL parses the page's public address: https, or http on a
// loopback host; cookies without Secure only with the latter.
func checkPublicURL(s string, insecure bool) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("web: the public URL is required (the redirect URI is <public URL>/callback)")
	}
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("web: public URL %q: want scheme://host[:port][/path]", s)
	}
	if u.Path != "" {
		return nil, fmt.Errorf("web: public URL %q: the page must be served at the root of its host (its cookies are host-wide)", s)
	}
	loopback := isLoopback(u.Hostname())
	switch {
	case u.Scheme == "https" && insecure:
		return nil, fmt.Errorf("web: insecure cookies are for a http://localhost public URL only, not %s", s)
	case u.Scheme == "https":
	case u.Scheme == "http" && loopback:
	case u.Scheme == "http":
		return nil, fmt.Errorf("web: public URL %s: session cookies must not travel in clear: use https (http only on localhost)", s)
	default:
		return nil, fmt.Errorf("web: public URL %q: want https", s)
	}
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ServeHTTP answers the page's routes, each with the security headers.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	u.mux.ServeHTTP(w, r)
}

// ContentSecurityPolicy is sent with every page: only the server's own
// scripts, styles, images and connections; no plugins, no framing, forms
// only to the server.
const ContentSecurityPolicy = "default-src 'self'; object-src 'none'; base-uri 'none'; " +
	"frame-ancestors 'none'; form-action 'self'"

// loadAssets prepares the embedded assets: served with a long cache
// lifetime under URLs that carry their content hash.
func (u *UI) loadAssets() error {
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		return fmt.Errorf("web: assets: %w", err)
	}
	u.versions = map[string]string{}
	err = fs.WalkDir(sub, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		u.versions[path] = hex.EncodeToString(sum[:8])
		return nil
	})
	if err != nil {
		return fmt.Errorf("web: assets: %w", err)
	}
	files := http.StripPrefix("/assets/", http.FileServerFS(sub))
	u.assets = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/assets/")
		if _, ok := u.versions[name]; !ok {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		files.ServeHTTP(w, r)
	})
	return nil
}

// assetURL is the address of an embedded asset, with its version.
func (u *UI) assetURL(name string) (string, error) {
	v, ok := u.versions[name]
	if !ok {
		return "", fmt.Errorf("no asset %q", name)
	}
	return "/assets/" + name + "?v=" + v, nil
}

// providerCache holds the provider's endpoints once discovered; a failed
// discovery is tried again at the next login.
type providerCache struct {
	issuer string
	client *http.Client

	mu  sync.Mutex
	cur *provider
}

func (c *providerCache) get(ctx context.Context) (*provider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil {
		return c.cur, nil
	}
	p, err := discover(ctx, c.client, c.issuer)
	if err != nil {
		return nil, err
	}
	c.cur = p
	return p, nil
}
