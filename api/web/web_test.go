package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/aggregator/ledger"
	"github.com/gpuledger/gpuledger/api"
	"github.com/gpuledger/gpuledger/api/auth"
	"github.com/gpuledger/gpuledger/api/auth/authtest"
)

// UI is the API's session authenticator.
var _ api.SessionAuthenticator = (*UI)(nil)

// The test policy.
const (
	adminGroup   = "gpuledger-admins"
	atlasManager = "atlas/managers"
)

var testPolicy = auth.Policy{AdminGroup: adminGroup, Managers: map[string][]string{"atlas": {atlasManager}}}

// clock is the page's clock: the wall clock moved by an offset.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// recordingLedger is an api.Ledger that answers one usage row and keeps
// the last usage query, to see what the API asked for a session.
type recordingLedger struct {
	mu   sync.Mutex
	last *ledger.UsageQuery
}

func (l *recordingLedger) Usage(_ context.Context, q ledger.UsageQuery, fn func(ledger.UsageRow) error) error {
	l.mu.Lock()
	l.last = &q
	l.mu.Unlock()
	keys := make([]string, len(q.GroupBy))
	for i := range keys {
		keys[i] = "k"
	}
	return fn(ledger.UsageRow{Start: q.From, ReportRow: ledger.ReportRow{Keys: keys, AllocatedMilliGPUSeconds: 3_600_000}})
}

func (l *recordingLedger) lastQuery() *ledger.UsageQuery {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

func (l *recordingLedger) Idle(context.Context, ledger.UsageQuery, int, func(ledger.ReportRow) error) error {
	return nil
}

func (l *recordingLedger) Projects(context.Context, string, ledger.Visibility) ([]ledger.ProjectSummary, error) {
	return nil, nil
}

func (l *recordingLedger) MonthClosed(context.Context, string, time.Time) (bool, error) {
	return false, nil
}

func (l *recordingLedger) LatestHour(context.Context, string) (time.Time, bool, error) {
	return time.Time{}, false, nil
}

func (l *recordingLedger) QuotaUsage(context.Context, ledger.QuotaQuery) ([]ledger.QuotaRow, error) {
	return nil, nil
}

func (l *recordingLedger) Ping(context.Context) error { return nil }

// env is the API with the page mounted, a test provider and a clock.
type env struct {
	idp   *testIdP
	ui    *UI
	url   string
	clock *clock
	// apiTokens signs bearer tokens for the API (another audience).
	apiTokens *authtest.Issuer
}

// newEnv starts the API server with the page on l; change edits the
// page's options before it is built.
func newEnv(t *testing.T, l api.Ledger, change func(*Options)) *env {
	t.Helper()
	idp := newTestIdP(t)
	hs := httptest.NewUnstartedServer(nil)
	e := &env{idp: idp, url: "http://" + hs.Listener.Addr().String(), clock: &clock{}}
	idp.redirect = e.url + "/callback"
	ctx := context.Background()
	idv, err := auth.NewVerifier(ctx, auth.Options{Issuer: idp.URL, Audience: idp.ClientID})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Issuer: idp.URL, ClientID: idp.ClientID, ClientSecret: idp.ClientSecret, PublicURL: e.url,
		Verifier: idv, Policy: testPolicy, Now: e.clock.now,
		SessionKey: []byte("0123456789abcdef0123456789abcdef-test")}
	if change != nil {
		change(&opts)
	}
	e.ui, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	// Bearer tokens for the API come from another issuer and audience.
	e.apiTokens = authtest.New(t, time.Now().Truncate(time.Second))
	av, err := auth.NewVerifier(ctx, auth.Options{Issuer: e.apiTokens.URL, Audience: authtest.Audience})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Options{Ledger: l, Authenticator: av, Policy: testPolicy, Sessions: e.ui, Web: e.ui})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	t.Cleanup(hs.Close)
	return e
}

// noRedirects is a client that returns redirects instead of following
// them, and keeps no cookies: each test sends the cookies it means to.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// do sends a request with cookies and returns the response and its body.
func do(t *testing.T, method, target string, header http.Header, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func get(t *testing.T, target string, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	return do(t, http.MethodGet, target, nil, cookies...)
}

// setCookie returns the response's Set-Cookie of name, or nil.
func setCookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// startLogin calls /login and returns the login cookie and the
// authorization request's URL.
func (e *env) startLogin(t *testing.T) (*http.Cookie, *url.URL) {
	t.Helper()
	resp, _ := get(t, e.url+"/login")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("/login: %d, want 302", resp.StatusCode)
	}
	lc := setCookie(resp, e.ui.cookies.login)
	if lc == nil {
		t.Fatal("/login set no login cookie")
	}
	to, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return lc, to
}

// authorize follows the authorization request to the provider and
// returns the callback URL it redirects to.
func (e *env) authorize(t *testing.T, to *url.URL) *url.URL {
	t.Helper()
	resp, body := get(t, to.String())
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %d %s", resp.StatusCode, body)
	}
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// login runs the whole flow for the provider's current user and returns
// the session cookie.
func (e *env) login(t *testing.T) *http.Cookie {
	t.Helper()
	lc, to := e.startLogin(t)
	back := e.authorize(t, to)
	resp, body := get(t, back.String(), lc)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("callback: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	sc := setCookie(resp, e.ui.cookies.session)
	if sc == nil {
		t.Fatal("the callback set no session cookie")
	}
	return sc
}

// usagePath is an API usage request of the page's kind.
const usagePath = "/api/v1/usage?granularity=month&group_by=project,user&from=2026-10-01T00:00:00Z&to=2026-12-01T00:00:00Z"

func TestLoginFlow(t *testing.T) {
	l := &recordingLedger{}
	e := newEnv(t, l, nil)
	lc, to := e.startLogin(t)

	// The login cookie: sealed, short-lived, HttpOnly, Secure, Lax, host-only.
	if lc.Name != "__Host-gpuledger_login" || !lc.HttpOnly || !lc.Secure || lc.SameSite != http.SameSiteLaxMode ||
		lc.Path != "/" || lc.Domain != "" || lc.MaxAge != int(loginMaxAge/time.Second) {
		t.Errorf("login cookie %+v", lc)
	}
	// The authorization request: code flow, PKCE S256, state and nonce.
	q := to.Query()
	if got := to.Scheme + "://" + to.Host + to.Path; got != e.idp.srv.URL+"/authorize" {
		t.Errorf("authorization endpoint %s", got)
	}
	for k, want := range map[string]string{"response_type": "code", "client_id": e.idp.ClientID,
		"redirect_uri": e.url + "/callback", "code_challenge_method": "S256", "scope": "openid profile email"} {
		if q.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, q.Get(k), want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 43 {
			t.Errorf("%s %q: want at least 256 random bits", k, q.Get(k))
		}
	}
	if strings.Contains(lc.Value, q.Get("state")) || strings.Contains(lc.Value, q.Get("nonce")) {
		t.Error("the login cookie shows its state or nonce: it must be sealed")
	}
	ls, err := e.ui.keys.open(e.ui.cookies.login, lc.Value, e.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	if ls.State != q.Get("state") || ls.Nonce != q.Get("nonce") || s256(ls.Verifier) != q.Get("code_challenge") {
		t.Errorf("the login cookie holds %+v, not the request's state, nonce and verifier", ls)
	}

	back := e.authorize(t, to)
	resp, _ := get(t, back.String(), lc)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("callback %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	sc := setCookie(resp, "__Host-gpuledger_session")
	if sc == nil || !sc.HttpOnly || !sc.Secure || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" ||
		sc.Domain != "" || sc.MaxAge != int(DefaultSessionMaxAge/time.Second) {
		t.Fatalf("session cookie %+v", sc)
	}
	if del := setCookie(resp, lc.Name); del == nil || del.MaxAge >= 0 {
		t.Errorf("the callback did not delete the login cookie: %+v", del)
	}
	if _, tokens, errs := e.idp.stats(); tokens != 1 || len(errs) != 0 {
		t.Errorf("token requests %d, errors %v", tokens, errs)
	}

	// The page knows alice; the API serves her rows, and only hers.
	resp, body := get(t, e.url+"/", sc)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<span id="user">alice</span>`) ||
		!strings.Contains(body, "You see your own usage.") {
		t.Fatalf("page %d:\n%s", resp.StatusCode, body)
	}
	resp, body = get(t, e.url+usagePath, sc)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("usage with the session: %d %s", resp.StatusCode, body)
	}
	got := l.lastQuery()
	if got == nil || got.Visible.All || got.Visible.User != "alice" || len(got.Visible.Projects) != 0 {
		t.Errorf("visibility %+v, want alice's rows only", got)
	}
	resp, body = get(t, e.url+usagePath+"&user=bob", sc)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("alice asking for bob: %d %s", resp.StatusCode, body)
	}
}

// TestRoles: the session of a manager and of an administrator see what
// their bearer tokens would, through the same policy.
func TestRoles(t *testing.T) {
	cases := []struct {
		user   string
		groups []string
		scope  string
		want   ledger.Visibility
	}{
		{"carol", []string{"/" + atlasManager}, "projects you manage (atlas)", ledger.Visibility{Projects: []string{"atlas"}, User: "carol"}},
		{"root", []string{adminGroup}, "every project and user", ledger.Visibility{All: true, User: "root"}},
		{"", nil, "no usage is yours", ledger.Visibility{}},
	}
	for _, c := range cases {
		t.Run(c.user, func(t *testing.T) {
			l := &recordingLedger{}
			e := newEnv(t, l, nil)
			e.idp.setUser(c.user, c.groups...)
			sc := e.login(t)
			_, body := get(t, e.url+"/", sc)
			if !strings.Contains(body, c.scope) {
				t.Errorf("the page does not say %q:\n%s", c.scope, body)
			}
			resp, body := get(t, e.url+usagePath, sc)
			if c.user == "" {
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("a login without user or project: %d %s", resp.StatusCode, body)
				}
				return
			}
			got := l.lastQuery()
			if resp.StatusCode != http.StatusOK || got == nil || got.Visible.All != c.want.All ||
				got.Visible.User != c.want.User || strings.Join(got.Visible.Projects, ",") != strings.Join(c.want.Projects, ",") {
				t.Errorf("%d: visibility %+v, want %+v", resp.StatusCode, got, c.want)
			}
		})
	}
}

// TestCallbackRefused: every callback that is not the end of this
// browser's own login, with a valid code, a matching PKCE verifier and a
// valid ID token carrying the login's nonce, opens no session.
func TestCallbackRefused(t *testing.T) {
	otherKeys, err := deriveKeys([]byte("another key, another deployment, 32+ bytes"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		// prepare may change the provider before the login.
		prepare func(e *env)
		// callback turns the login cookie and the callback URL into the
		// request sent.
		callback func(t *testing.T, e *env, lc *http.Cookie, back *url.URL) (*http.Cookie, *url.URL)
		status   int
		// exchanged says whether the code reaches the token endpoint.
		exchanged bool
		message   string
	}{
		{name: "state mismatch", status: http.StatusBadRequest, message: "does not match",
			callback: func(_ *testing.T, _ *env, lc *http.Cookie, back *url.URL) (*http.Cookie, *url.URL) {
				q := back.Query()
				q.Set("state", "forged-"+q.Get("state"))
				back.RawQuery = q.Encode()
				return lc, back
			}},
		{name: "no state", status: http.StatusBadRequest, message: "does not match",
			callback: func(_ *testing.T, _ *env, lc *http.Cookie, back *url.URL) (*http.Cookie, *url.URL) {
				q := back.Query()
				q.Del("state")
				back.RawQuery = q.Encode()
				return lc, back
			}},
		{name: "no login cookie", status: http.StatusBadRequest, message: "expired or was started elsewhere",
			callback: func(_ *testing.T, _ *env, _ *http.Cookie, back *url.URL) (*http.Cookie, *url.URL) {
				return nil, back
			}},
		{name: "tampered login cookie", status: http.StatusBadRequest, message: "expired or was started elsewhere",
			callback: func(_ *testing.T, _ *env, lc *http.Cookie, back *url.URL) (*http.Cookie, *url.URL) {
				return &http.Cookie{Name: lc.Name, Value: flip(lc.Value, len(lc.Value)/2)}, back
			}},
		{name: "expired login cookie", status: http.StatusBadRequest, message: "expired or was started elsewhere",
			callback: func(_ *testing.T, e *env, lc *http.Cookie, back *url.URL) (*http.Cookie, *url.URL) {
				e.clock.advance(loginMaxAge + time.Second)
				return lc, back
			}},
		{name: "login cookie of another key", status: http.StatusBadRequest, message: "expired or was started elsewhere",
			callback: func(t *testing.T, e *env, lc *http.Cookie, back *url.URL) (*http.Cookie, *url.URL) {
				ls, err := e.ui.keys.open(lc.Name, lc.Value, e.clock.now())
				if err != nil {
					t.Fatal(err)
				}
				v, err := otherKeys.seal(lc.Name, ls)
				if err != nil {
					t.Fatal(err)
				}
				return &http.Cookie{Name: lc.Name, Value: v}, back
			}},
		{name: "wrong PKCE verifier", status: http.StatusBadRequest, exchanged: true, message: "refused this login",
			callback: func(t *testing.T, e *env, lc *http.Cookie, back *url.URL) (*http.Cookie, *url.URL) {
				ls, err := e.ui.keys.open(lc.Name, lc.Value, e.clock.now())
				if err != nil {
					t.Fatal(err)
				}
				ls.Verifier = "a-verifier-that-was-never-challenged-0123456789ab"
				v, err := e.ui.keys.seal(lc.Name, ls)
				if err != nil {
					t.Fatal(err)
				}
				return &http.Cookie{Name: lc.Name, Value: v}, back
			}},
		{name: "code replayed", status: http.StatusBadRequest, exchanged: true, message: "refused this login",
			callback: func(t *testing.T, e *env, lc *http.Cookie, back *url.URL) (*http.Cookie, *url.URL) {
				if resp, body := get(t, back.String(), lc); resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("first callback: %d %s", resp.StatusCode, body)
				}
				return lc, back
			}},
		{name: "provider refuses", status: http.StatusForbidden, message: "access_denied",
			prepare: func(e *env) { e.idp.set(func(p *testIdP) { p.deny = true }) }},
		{name: "no code", status: http.StatusBadRequest, message: "no authorization code",
			callback: func(_ *testing.T, _ *env, lc *http.Cookie, back *url.URL) (*http.Cookie, *url.URL) {
				q := back.Query()
				q.Del("code")
				back.RawQuery = q.Encode()
				return lc, back
			}},
		{name: "nonce mismatch", status: http.StatusUnauthorized, exchanged: true, message: "ID token was refused",
			prepare: mutate(func(_, c map[string]any) { c["nonce"] = "another-login" })},
		{name: "no nonce", status: http.StatusUnauthorized, exchanged: true, message: "ID token was refused",
			prepare: mutate(func(_, c map[string]any) { delete(c, "nonce") })},
		{name: "another audience", status: http.StatusUnauthorized, exchanged: true, message: "ID token was refused",
			prepare: mutate(func(_, c map[string]any) { c["aud"] = "another-client" })},
		{name: "another authorized party", status: http.StatusUnauthorized, exchanged: true, message: "ID token was refused",
			prepare: mutate(func(_, c map[string]any) { c["aud"] = []string{"gpuledger-page", "x"}; c["azp"] = "x" })},
		{name: "another issuer", status: http.StatusUnauthorized, exchanged: true, message: "ID token was refused",
			prepare: mutate(func(_, c map[string]any) { c["iss"] = "https://evil.example/" })},
		{name: "expired ID token", status: http.StatusUnauthorized, exchanged: true, message: "ID token was refused",
			prepare: mutate(func(_, c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })},
		{name: "HS256 with the client secret", status: http.StatusUnauthorized, exchanged: true, message: "ID token was refused",
			prepare: mutate(func(h, _ map[string]any) { h["alg"] = "HS256" })},
		{name: "alg none", status: http.StatusUnauthorized, exchanged: true, message: "ID token was refused",
			prepare: mutate(func(h, _ map[string]any) { h["alg"] = "none" })},
		{name: "no ID token", status: http.StatusBadGateway, exchanged: true, message: "no ID token",
			prepare: func(e *env) { e.idp.set(func(p *testIdP) { p.noIDToken = true }) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, &recordingLedger{}, nil)
			if c.prepare != nil {
				c.prepare(e)
			}
			lc, to := e.startLogin(t)
			back := e.authorize(t, to)
			if c.callback != nil {
				lc, back = c.callback(t, e, lc, back)
			}
			_, before, _ := e.idp.stats()
			var cookies []*http.Cookie
			if lc != nil {
				cookies = append(cookies, lc)
			}
			resp, body := get(t, back.String(), cookies...)
			if resp.StatusCode != c.status || !strings.Contains(body, c.message) {
				t.Errorf("callback: %d, want %d with %q:\n%s", resp.StatusCode, c.status, c.message, body)
			}
			if sc := setCookie(resp, e.ui.cookies.session); sc != nil {
				t.Errorf("a refused login set a session cookie: %+v", sc)
			}
			if _, after, _ := e.idp.stats(); (after > before) != c.exchanged {
				t.Errorf("token requests %d → %d; exchanged should be %v", before, after, c.exchanged)
			}
			if resp.Header.Get("Content-Security-Policy") != ContentSecurityPolicy {
				t.Error("the error page has no Content-Security-Policy")
			}
		})
	}
}

func mutate(fn func(header, claims map[string]any)) func(e *env) {
	return func(e *env) { e.idp.set(func(p *testIdP) { p.mutate = fn }) }
}

// flip changes the character at i of a base64url value.
func flip(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// TestProviderRequiresPKCE checks the test provider itself: a code
// redeemed without its verifier is refused, so that the login flow's
// success proves the page sends it.
func TestProviderRequiresPKCE(t *testing.T) {
	e := newEnv(t, &recordingLedger{}, nil)
	_, to := e.startLogin(t)
	back := e.authorize(t, to)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
		"redirect_uri": {e.url + "/callback"}}
	req, err := http.NewRequest(http.MethodPost, e.idp.srv.URL+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(e.idp.ClientID, e.idp.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "code_verifier is required") {
		t.Errorf("a code without its verifier: %d %s", resp.StatusCode, b)
	}
}

// TestSessionRefused: an expired, tampered or foreign session cookie is
// no session, for the page (which deletes it) and for the API (401).
func TestSessionRefused(t *testing.T) {
	other, err := deriveKeys([]byte("another key, another deployment, 32+ bytes"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		change func(e *env, sc *http.Cookie) *http.Cookie
		notice string
	}{
		{"expired", func(e *env, sc *http.Cookie) *http.Cookie {
			e.clock.advance(DefaultSessionMaxAge + time.Second)
			return sc
		}, "Your session has expired."},
		{"tampered payload", func(_ *env, sc *http.Cookie) *http.Cookie {
			return &http.Cookie{Name: sc.Name, Value: flip(sc.Value, 5)}
		}, "no longer valid"},
		{"tampered signature", func(_ *env, sc *http.Cookie) *http.Cookie {
			return &http.Cookie{Name: sc.Name, Value: flip(sc.Value, len(sc.Value)-3)}
		}, "no longer valid"},
		{"signed with another key", func(e *env, sc *http.Cookie) *http.Cookie {
			s, err := decodeSession(e.ui.keys.session, sc.Value, e.clock.now(), DefaultSessionMaxAge)
			if err != nil {
				panic(err)
			}
			s.User, s.Groups = "root", []string{adminGroup}
			v, err := encodeSession(other.session, s)
			if err != nil {
				panic(err)
			}
			return &http.Cookie{Name: sc.Name, Value: v}
		}, "no longer valid"},
		{"lifetime stretched", func(e *env, sc *http.Cookie) *http.Cookie {
			s, err := decodeSession(e.ui.keys.session, sc.Value, e.clock.now(), DefaultSessionMaxAge)
			if err != nil {
				panic(err)
			}
			s.Expires += int64(DefaultSessionMaxAge / time.Second)
			v, err := encodeSession(e.ui.keys.session, s)
			if err != nil {
				panic(err)
			}
			return &http.Cookie{Name: sc.Name, Value: v}
		}, "no longer valid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := &recordingLedger{}
			e := newEnv(t, l, nil)
			sc := c.change(e, e.login(t))
			resp, body := get(t, e.url+"/", sc)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, c.notice) || !strings.Contains(body, `href="/login"`) {
				t.Errorf("page: %d, want the login page saying %q:\n%s", resp.StatusCode, c.notice, body)
			}
			if del := setCookie(resp, sc.Name); del == nil || del.MaxAge >= 0 {
				t.Errorf("the refused session cookie was not deleted: %+v", del)
			}
			resp, body = get(t, e.url+usagePath, sc)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "log in again") ||
				resp.Header.Get("Www-Authenticate") == "" {
				t.Errorf("API: %d %v %s", resp.StatusCode, resp.Header, body)
			}
			if l.lastQuery() != nil {
				t.Error("a refused session reached the ledger")
			}
			if _, m := get(t, e.url+"/metrics"); !strings.Contains(m, `gpuledger_api_auth_failures_total{reason="invalid_session"} 1`) {
				t.Errorf("the refusal is not counted:\n%s", m)
			}
			// A bearer token is still honoured (it comes first).
			req := http.Header{"Authorization": {"Bearer " + e.apiTokens.Token("dave")}}
			if resp, body := do(t, http.MethodGet, e.url+usagePath, req, sc); resp.StatusCode != http.StatusOK {
				t.Errorf("bearer beside a bad cookie: %d %s", resp.StatusCode, body)
			}
		})
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, &recordingLedger{}, nil)
	sc := e.login(t)
	resp, body := get(t, e.url+"/logout", sc)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<form method="post" action="/logout">`) {
		t.Errorf("GET /logout: %d %s", resp.StatusCode, body)
	}
	if setCookie(resp, sc.Name) != nil {
		t.Error("GET /logout changed the session")
	}
	for _, h := range []http.Header{{"Sec-Fetch-Site": {"cross-site"}}, {"Sec-Fetch-Site": {"same-site"}},
		{"Origin": {"https://evil.example"}}} {
		resp, _ := do(t, http.MethodPost, e.url+"/logout", h, sc)
		if resp.StatusCode != http.StatusForbidden || setCookie(resp, sc.Name) != nil {
			t.Errorf("cross-site logout %v: %d", h, resp.StatusCode)
		}
	}
	resp, _ = do(t, http.MethodPost, e.url+"/logout", http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {e.url}}, sc)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/?logged_out=1" {
		t.Errorf("logout: %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if del := setCookie(resp, sc.Name); del == nil || del.MaxAge >= 0 || del.Value != "" {
		t.Errorf("logout did not delete the session cookie: %+v", del)
	}
	if _, body := get(t, e.url+"/?logged_out=1"); !strings.Contains(body, "You are logged out.") {
		t.Errorf("after logout:\n%s", body)
	}
}

// TestSecurityHeaders: every page, error and asset carries the CSP, and
// the page has no inline script, inline style or outside source.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, &recordingLedger{}, nil)
	sc := e.login(t)
	for _, path := range []string{"/", "/login", "/callback", "/logout", "/assets/usage.js", "/assets/nope"} {
		resp, _ := get(t, e.url+path, sc)
		h := resp.Header
		if h.Get("Content-Security-Policy") != ContentSecurityPolicy || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: %d, headers %v", path, resp.StatusCode, h)
		}
	}
	if !strings.Contains(ContentSecurityPolicy, "default-src 'self'") || strings.Contains(ContentSecurityPolicy, "unsafe") {
		t.Errorf("CSP %q", ContentSecurityPolicy)
	}
	resp, body := get(t, e.url+"/", sc)
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("the page may be cached: %q", resp.Header.Get("Cache-Control"))
	}
	checkMarkup(t, body)
	_, landing := get(t, e.url+"/")
	checkMarkup(t, landing)
}

// checkMarkup fails on inline scripts, inline styles, event handler
// attributes and resources from elsewhere.
func checkMarkup(t *testing.T, body string) {
	t.Helper()
	lower := strings.ToLower(body)
	for i := 0; ; {
		j := strings.Index(lower[i:], "<script")
		if j < 0 {
			break
		}
		tag := lower[i+j : i+j+strings.Index(lower[i+j:], ">")]
		if !strings.Contains(tag, `src="/assets/`) {
			t.Errorf("inline or outside script: %s", tag)
		}
		i += j + len(tag)
	}
	for _, bad := range []string{" style=", "<style", " onclick=", " onload=", " onerror=", `src="http`, `href="http`,
		`src="//`, `href="//`, "javascript:"} {
		if strings.Contains(lower, bad) {
			t.Errorf("the markup holds %q", bad)
		}
	}
}

func TestAssets(t *testing.T) {
	e := newEnv(t, &recordingLedger{}, nil)
	sc := e.login(t)
	_, page := get(t, e.url+"/", sc)
	for _, name := range []string{"usage.js", "usage.css"} {
		ref, err := e.ui.assetURL(name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(page, ref) {
			t.Errorf("the page does not reference %s", ref)
		}
		resp, body := get(t, e.url+ref)
		if resp.StatusCode != http.StatusOK || len(body) < 100 || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age") {
			t.Errorf("%s: %d %v", ref, resp.StatusCode, resp.Header)
		}
	}
	if resp, _ := get(t, e.url+"/assets/usage.js"); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("usage.js is served as %q", resp.Header.Get("Content-Type"))
	}
	for _, path := range []string{"/assets/", "/assets/nope.js", "/assets/templates/page.html"} {
		if resp, _ := get(t, e.url+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
	// A path climbing out of the assets is cleaned into one that is not an asset.
	if resp, body := get(t, e.url+"/assets/../web.go"); resp.StatusCode == http.StatusOK || strings.Contains(body, "package web") {
		t.Errorf("/assets/../web.go: %d", resp.StatusCode)
	}
}

func TestPageRange(t *testing.T) {
	e := newEnv(t, &recordingLedger{}, nil)
	sc := e.login(t)
	resp, body := get(t, e.url+"/?from=2026-10&to=2026-11", sc)
	want := `data-src="/api/v1/usage?format=json&amp;from=2026-10-01T00%3A00%3A00Z&amp;granularity=month&amp;group_by=project%2Cuser&amp;to=2026-12-01T00%3A00%3A00Z"`
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
		t.Errorf("%d: want %s in\n%s", resp.StatusCode, want, body)
	}
	resp, body = get(t, e.url+"/?from=2026-13", sc)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `id="range-error"`) {
		t.Errorf("a bad month: %d\n%s", resp.StatusCode, body)
	}
}

func TestMonthRange(t *testing.T) {
	now := time.Date(2026, 11, 29, 19, 0, 0, 0, time.UTC)
	cases := []struct {
		query    string
		from, to string
		err      string
	}{
		{"", "2025-12", "2026-11", ""},
		{"from=2026-01&to=2026-03", "2026-01", "2026-03", ""},
		{"from=2026-01", "2026-01", "2026-12", ""},
		{"to=2026-06", "2025-07", "2026-06", ""},
		{"from=2026-05&to=2026-05", "2026-05", "2026-05", ""},
		{"from=2025-01&to=2025-12", "2025-01", "2025-12", ""},
		{"from=2025-01&to=2026-01", "", "", "spans 13 months"},
		{"from=2026-03&to=2026-01", "", "", "ends (2026-01) before it starts"},
		{"from=2026-13", "", "", "not a month"},
		{"to=26-01", "", "", "not a month"},
		{"from=1999-12", "", "", "not a month"},
		{"from=2026-01-01", "", "", "not a month"},
	}
	for _, c := range cases {
		q, _ := url.ParseQuery(c.query)
		from, to, err := monthRange(q, now)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.query, err, c.err)
			}
		case err != nil:
			t.Errorf("%q: %v", c.query, err)
		case from.Format(monthLayout) != c.from || to.Format(monthLayout) != c.to:
			t.Errorf("%q: %s to %s, want %s to %s", c.query, from.Format(monthLayout), to.Format(monthLayout), c.from, c.to)
		}
	}
}
