package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/gpuledger/gpuledger/api/auth"
)

// maxDocumentBytes bounds the provider's discovery document.
const maxDocumentBytes = 1 << 20

// provider is what the page needs of the provider's discovery document.
type provider struct {
	endpoint oauth2.Endpoint
}

// discover reads the issuer's discovery document: its issuer must be the
// configured one, its endpoints https (http only for an http issuer), and
// when it lists its PKCE methods, S256 must be among them.
func discover(ctx context.Context, client *http.Client, issuer string) (*provider, error) {
	where := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return nil, fmt.Errorf("discovery %s: %w", where, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discovery %s: %s", where, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("discovery %s: %w", where, err)
	}
	if len(b) > maxDocumentBytes {
		return nil, fmt.Errorf("discovery %s: larger than %d bytes", where, maxDocumentBytes)
	}
	var doc struct {
		Issuer        string   `json:"issuer"`
		Authorization string   `json:"authorization_endpoint"`
		Token         string   `json:"token_endpoint"`
		PKCEMethods   []string `json:"code_challenge_methods_supported"`
		AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("discovery %s: %w", where, err)
	}
	if doc.Issuer != issuer {
		return nil, fmt.Errorf("discovery %s names issuer %q, want %q", where, doc.Issuer, issuer)
	}
	for _, e := range []struct{ name, v string }{{"authorization_endpoint", doc.Authorization}, {"token_endpoint", doc.Token}} {
		u, err := url.Parse(e.v)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && strings.HasPrefix(issuer, "http://"))) {
			return nil, fmt.Errorf("discovery %s: %s %q is not an https URL", where, e.name, e.v)
		}
	}
	if len(doc.PKCEMethods) > 0 && !slices.Contains(doc.PKCEMethods, "S256") {
		return nil, fmt.Errorf("discovery %s: the provider does not support PKCE with S256 (it lists %s)",
			where, strings.Join(doc.PKCEMethods, ", "))
	}
	p := &provider{endpoint: oauth2.Endpoint{AuthURL: doc.Authorization, TokenURL: doc.Token}}
	switch {
	case slices.Contains(doc.AuthMethods, "client_secret_basic"):
		p.endpoint.AuthStyle = oauth2.AuthStyleInHeader
	case slices.Contains(doc.AuthMethods, "client_secret_post"):
		p.endpoint.AuthStyle = oauth2.AuthStyleInParams
	}
	return p, nil
}

// config is the OAuth 2 client of the page.
func (u *UI) config(p *provider) *oauth2.Config {
	ep := p.endpoint
	if u.opts.ClientSecret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams // a public client sends its ID only
	}
	return &oauth2.Config{ClientID: u.opts.ClientID, ClientSecret: u.opts.ClientSecret, Endpoint: ep,
		RedirectURL: u.redirectURL(), Scopes: u.opts.Scopes}
}

// redirectURL is the redirect URI registered at the provider.
func (u *UI) redirectURL() string { return u.public.String() + "/callback" }

// randomString returns 32 random bytes in base64url.
func randomString() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return b64.EncodeToString(b), nil
}

// login starts the authorization code flow: a fresh state, nonce and
// PKCE verifier, sealed in the login cookie, and a redirect to the
// provider with the state, the nonce and the verifier's S256 challenge.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	p, err := u.provider.get(r.Context())
	if err != nil {
		u.log.Error("cannot reach the OIDC provider", "err", err)
		u.fail(w, r, http.StatusBadGateway, "The identity provider cannot be reached. Try again in a moment.")
		return
	}
	ls := loginState{Verifier: oauth2.GenerateVerifier(), Expires: u.opts.Now().Add(loginMaxAge).Unix()}
	if ls.State, err = randomString(); err == nil {
		ls.Nonce, err = randomString()
	}
	var sealed string
	if err == nil {
		sealed, err = u.keys.seal(u.cookies.login, ls)
	}
	if err != nil {
		u.log.Error("cannot start a login", "err", err)
		u.fail(w, r, http.StatusInternalServerError, "The login could not be started.")
		return
	}
	http.SetCookie(w, u.cookies.cookie(u.cookies.login, sealed, loginMaxAge))
	w.Header().Set("Cache-Control", "no-store")
	to := u.config(p).AuthCodeURL(ls.State, oauth2.S256ChallengeOption(ls.Verifier), oauth2.SetAuthURLParam("nonce", ls.Nonce))
	http.Redirect(w, r, to, http.StatusFound)
}

// callback ends the flow: the login cookie must be there and its state
// equal the one returned; the code is exchanged with the PKCE verifier;
// the ID token must pass the verifier and carry the login's nonce. Only
// then is a session opened. The login cookie is deleted whatever happens:
// it serves once.
func (u *UI) callback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	q := r.URL.Query()
	var ls loginState
	ck, err := r.Cookie(u.cookies.login)
	if err == nil {
		ls, err = u.keys.open(u.cookies.login, ck.Value, u.opts.Now())
	}
	http.SetCookie(w, u.cookies.cookie(u.cookies.login, "", -1))
	if err != nil {
		u.log.Info("login refused", "reason", "login state", "err", err)
		u.fail(w, r, http.StatusBadRequest, "This login has expired or was started elsewhere. Please log in again.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(ls.State)) != 1 {
		u.log.Warn("login refused: the state returned is not the login's (a forged or replayed callback)")
		u.fail(w, r, http.StatusBadRequest, "This login does not match the one started by this browser. Please log in again.")
		return
	}
	if e := q.Get("error"); e != "" {
		u.log.Info("login refused by the provider", "error", e, "description", q.Get("error_description"))
		u.fail(w, r, http.StatusForbidden, "The identity provider refused the login ("+e+").")
		return
	}
	code := q.Get("code")
	if code == "" {
		u.fail(w, r, http.StatusBadRequest, "The identity provider returned no authorization code.")
		return
	}
	id, status, msg := u.exchange(r.Context(), code, ls)
	if status != 0 {
		u.fail(w, r, status, msg)
		return
	}
	if err := u.openSession(w, id); err != nil {
		u.log.Error("cannot open a session", "user", id.User, "err", err)
		u.fail(w, r, http.StatusInternalServerError, "The session could not be opened: "+err.Error()+".")
		return
	}
	u.log.Info("logged in", "user", id.User, "subject", id.Subject, "groups", len(id.Groups))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// exchange trades the code for tokens and verifies the ID token; a
// failure is an HTTP status and a message for the browser.
func (u *UI) exchange(ctx context.Context, code string, ls loginState) (auth.Identity, int, string) {
	p, err := u.provider.get(ctx)
	if err != nil {
		u.log.Error("cannot reach the OIDC provider", "err", err)
		return auth.Identity{}, http.StatusBadGateway, "The identity provider cannot be reached. Try again in a moment."
	}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, u.opts.HTTPClient), exchangeTimeout)
	defer cancel()
	tok, err := u.config(p).Exchange(ctx, code, oauth2.VerifierOption(ls.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			u.log.Warn("the provider refused the authorization code", "error", re.ErrorCode, "description", re.ErrorDescription)
			return auth.Identity{}, http.StatusBadRequest, "The identity provider refused this login. Please log in again."
		}
		u.log.Error("code exchange failed", "err", err)
		return auth.Identity{}, http.StatusBadGateway, "The identity provider could not complete the login. Try again in a moment."
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		u.log.Error("the token response holds no ID token (is the openid scope allowed for the client?)")
		return auth.Identity{}, http.StatusBadGateway, "The identity provider returned no ID token."
	}
	id, err := u.verifyIDToken(ctx, raw, ls.Nonce)
	if err != nil {
		u.log.Warn("ID token refused", "err", err)
		if errors.Is(err, auth.ErrKeysUnavailable) {
			return auth.Identity{}, http.StatusServiceUnavailable, "The identity provider's signing keys are not available. Try again in a moment."
		}
		return auth.Identity{}, http.StatusUnauthorized, "The identity provider's ID token was refused. Please log in again."
	}
	return id, 0, ""
}

// errNonce is an ID token whose nonce is not the login's.
var errNonce = errors.New("the ID token's nonce is not the login's")

// verifyIDToken checks the ID token with the verifier (signature,
// algorithm, expiry, issuer, audience), then the claims the verifier does
// not know: the nonce must be the login's, and an authorized party, when
// named, must be this client.
func (u *UI) verifyIDToken(ctx context.Context, raw, nonce string) (auth.Identity, error) {
	id, err := u.opts.Verifier.Verify(ctx, raw)
	if err != nil {
		return auth.Identity{}, err
	}
	// The signature is verified: the payload can be read as it is.
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return auth.Identity{}, errors.New("the ID token is not a compact JWS")
	}
	p, err := b64.DecodeString(parts[1])
	if err != nil {
		return auth.Identity{}, fmt.Errorf("the ID token's payload: %w", err)
	}
	var claims struct {
		Nonce *string `json:"nonce"`
		AZP   *string `json:"azp"`
	}
	if err := json.Unmarshal(p, &claims); err != nil {
		return auth.Identity{}, fmt.Errorf("the ID token's payload: %w", err)
	}
	if claims.Nonce == nil || subtle.ConstantTimeCompare([]byte(*claims.Nonce), []byte(nonce)) != 1 {
		return auth.Identity{}, errNonce
	}
	if claims.AZP != nil && *claims.AZP != u.opts.ClientID {
		return auth.Identity{}, fmt.Errorf("the ID token is for the authorized party %q, not this client", *claims.AZP)
	}
	return id, nil
}

// openSession sets the session cookie of id. The groups that make the
// cookie too large for a browser are narrowed to those the policy names.
func (u *UI) openSession(w http.ResponseWriter, id auth.Identity) error {
	now := u.opts.Now()
	s := session{Subject: id.Subject, User: id.User, Groups: id.Groups, Issued: now.Unix(),
		Expires: now.Add(u.opts.SessionMaxAge).Unix()}
	v, err := encodeSession(u.keys.session, s)
	if err != nil {
		s.Groups = u.policyGroups(id.Groups)
		u.log.Warn("the login's groups do not fit a cookie: keeping those the policy names",
			"user", id.User, "groups", len(id.Groups), "kept", len(s.Groups))
		if v, err = encodeSession(u.keys.session, s); err != nil {
			return err
		}
	}
	http.SetCookie(w, u.cookies.cookie(u.cookies.session, v, u.opts.SessionMaxAge))
	return nil
}

// policyGroups are the groups of groups that the policy names.
func (u *UI) policyGroups(groups []string) []string {
	var out []string
	for _, g := range groups {
		keep := g == auth.NormalizeGroup(u.opts.Policy.AdminGroup)
		for _, gs := range u.opts.Policy.Managers {
			keep = keep || slices.Contains(gs, g)
		}
		if keep {
			out = append(out, g)
		}
	}
	return out
}

// Session returns the identity of r's session cookie: found is false
// without one; err wraps ErrSessionExpired or ErrSessionInvalid for one
// that is refused. It implements api.SessionAuthenticator.
func (u *UI) Session(r *http.Request) (id auth.Identity, found bool, err error) {
	ck, err := r.Cookie(u.cookies.session)
	if err != nil {
		return auth.Identity{}, false, nil
	}
	s, err := decodeSession(u.keys.session, ck.Value, u.opts.Now(), u.opts.SessionMaxAge)
	if err != nil {
		return auth.Identity{}, true, err
	}
	return auth.Identity{Subject: s.Subject, User: s.User, Groups: s.Groups, Expiry: time.Unix(s.Expires, 0).UTC()}, true, nil
}

// logoutForm asks to confirm the logout: a logout changes state, so it is
// a POST, never a link another site could make the browser follow.
func (u *UI) logoutForm(w http.ResponseWriter, r *http.Request) {
	u.render(w, r, http.StatusOK, "logout.html", nil)
}

// logout ends the session: the cookie is deleted. A POST from another
// site (by its Origin or Sec-Fetch-Site) is refused.
func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	if !u.sameOrigin(r) {
		u.fail(w, r, http.StatusForbidden, "A logout must come from this site.")
		return
	}
	if id, found, err := u.Session(r); found && err == nil {
		u.log.Info("logged out", "user", id.User, "subject", id.Subject)
	}
	http.SetCookie(w, u.cookies.cookie(u.cookies.session, "", -1))
	http.Redirect(w, r, "/?logged_out=1", http.StatusSeeOther)
}

// sameOrigin says whether a state-changing request comes from the page
// itself: Sec-Fetch-Site, else Origin, must say so when the browser sends
// them.
func (u *UI) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		return origin == u.public.Scheme+"://"+u.public.Host
	}
	return true
}
