package devidp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/api/auth"
)

const (
	clientID = "demo-page"
	redirect = "http://127.0.0.1:9/callback"
	// verifier is a valid PKCE code verifier (43 characters).
	verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)

var users = []User{
	{Name: "alice", Groups: []string{"gpuledger-admins"}, Note: "administrator"},
	{Name: "bob", Groups: []string{"cms-managers"}},
	{Name: "carol"},
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func start(t *testing.T, mutate func(*Options)) *Provider {
	t.Helper()
	opts := Options{ClientID: clientID, RedirectURIs: []string{redirect}, Audience: "gpuledger-api", Users: users}
	if mutate != nil {
		mutate(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Start(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// noFollow is a client that returns redirects instead of following them.
var noFollow = &http.Client{Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func authParams(challenge string) url.Values {
	return url.Values{"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid profile"}, "state": {"st-1"}, "nonce": {"n-1"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
}

// authorize sends GET /authorize and returns the redirect's query (nil
// when there is no redirect) and the response.
func authorize(t *testing.T, p *Provider, q url.Values) (url.Values, *http.Response, string) {
	t.Helper()
	resp, err := noFollow.Get(p.Issuer() + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	return redirectQuery(t, resp)
}

func redirectQuery(t *testing.T, resp *http.Response) (url.Values, *http.Response, string) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, resp, string(body)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != redirect {
		t.Fatalf("redirected to %s, not the registered redirect URI", loc)
	}
	return u.Query(), resp, string(body)
}

type tokenAnswer struct {
	status int
	body   map[string]any
}

func exchange(t *testing.T, p *Provider, form url.Values) tokenAnswer {
	t.Helper()
	resp, err := http.PostForm(p.Issuer()+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token response: %v", err)
	}
	return tokenAnswer{resp.StatusCode, body}
}

func tokenForm(code, v string) url.Values {
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "client_id": {clientID}}
	if v != "" {
		f.Set("code_verifier", v)
	}
	return f
}

func verifier4(t *testing.T, p *Provider, aud string) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(context.Background(), auth.Options{Issuer: p.Issuer(), Audience: aud})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Ready(); err != nil {
		t.Fatalf("the verifier could not load the provider's keys through discovery: %v", err)
	}
	return v
}

func TestCheckLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:0", true},
		{"127.0.0.2:8080", true},
		{"[::1]:0", true},
		{"localhost:9999", true},
		{":0", false},
		{"0.0.0.0:0", false},
		{"[::]:0", false},
		{"192.0.2.10:80", false},
		{"example.org:80", false},
		{"127.0.0.1", false}, // no port
	} {
		err := CheckLoopback(tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("CheckLoopback(%q) = %v, want ok %v", tc.addr, err, tc.ok)
		}
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0"} {
		_, err := Start(context.Background(), Options{Addr: addr, ClientID: clientID, RedirectURIs: []string{redirect}, Users: users})
		if !errors.Is(err, ErrNotLoopback) {
			t.Errorf("Start on %s: %v, want ErrNotLoopback", addr, err)
		}
	}
}

func TestOptionsRefused(t *testing.T) {
	for name, mutate := range map[string]func(*Options){
		"no client":           func(o *Options) { o.ClientID = "" },
		"no redirect":         func(o *Options) { o.RedirectURIs = nil },
		"relative redirect":   func(o *Options) { o.RedirectURIs = []string{"/callback"} },
		"no users":            func(o *Options) { o.Users = nil },
		"duplicate user":      func(o *Options) { o.Users = []User{{Name: "a"}, {Name: "a"}} },
		"unnamed user":        func(o *Options) { o.Users = []User{{}} },
		"unknown auto user":   func(o *Options) { o.AutoApprove = "mallory" },
		"negative token life": func(o *Options) { o.TokenLifetime = -time.Second },
	} {
		opts := Options{ClientID: clientID, RedirectURIs: []string{redirect}, Users: users}
		mutate(&opts)
		if p, err := Start(context.Background(), opts); err == nil {
			p.Close()
			t.Errorf("%s: Start accepted %+v", name, opts)
		}
	}
}

// TestAutoApprovedLogin runs the whole flow and checks both tokens with
// the accounting API's own verifier, through discovery.
func TestAutoApprovedLogin(t *testing.T) {
	p := start(t, func(o *Options) { o.AutoApprove = "bob" })
	q, resp, body := authorize(t, p, authParams(S256(verifier)))
	if q == nil || q.Get("code") == "" || q.Get("state") != "st-1" {
		t.Fatalf("authorize: status %d, no code and state in the redirect: %v %s", resp.StatusCode, q, body)
	}
	ans := exchange(t, p, tokenForm(q.Get("code"), verifier))
	if ans.status != http.StatusOK {
		t.Fatalf("token: %d %v", ans.status, ans.body)
	}
	if ans.body["token_type"] != "Bearer" {
		t.Errorf("token_type %v", ans.body["token_type"])
	}
	idTok, _ := ans.body["id_token"].(string)
	id, err := verifier4(t, p, clientID).Verify(context.Background(), idTok)
	if err != nil {
		t.Fatalf("ID token refused: %v", err)
	}
	if id.User != "bob" || !slices.Equal(id.Groups, []string{"cms-managers"}) || id.Subject != "devidp:bob" {
		t.Errorf("ID token identity %+v", id)
	}
	if c := payload(t, idTok); c["nonce"] != "n-1" || c["azp"] != clientID {
		t.Errorf("ID token nonce %v azp %v, want n-1 and %s", c["nonce"], c["azp"], clientID)
	}
	access, _ := ans.body["access_token"].(string)
	if _, err := verifier4(t, p, clientID).Verify(context.Background(), access); err == nil {
		t.Error("the access token passes for the client's audience; it is for the API's")
	}
	aid, err := verifier4(t, p, "gpuledger-api").Verify(context.Background(), access)
	if err != nil || aid.User != "bob" {
		t.Errorf("access token: %+v %v", aid, err)
	}
}

func payload(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", jwt)
	}
	b, err := b64Decode(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPKCERequired(t *testing.T) {
	p := start(t, func(o *Options) { o.AutoApprove = "carol" })
	for name, mutate := range map[string]func(url.Values){
		"no challenge":     func(q url.Values) { q.Del("code_challenge") },
		"no method":        func(q url.Values) { q.Del("code_challenge_method") },
		"plain method":     func(q url.Values) { q.Set("code_challenge_method", "plain") },
		"short challenge":  func(q url.Values) { q.Set("code_challenge", "abc") },
		"no openid scope":  func(q url.Values) { q.Set("scope", "profile") },
		"implicit flow":    func(q url.Values) { q.Set("response_type", "token") },
		"challenge is raw": func(q url.Values) { q.Set("code_challenge", verifier+"!") },
	} {
		params := authParams(S256(verifier))
		mutate(params)
		q, resp, body := authorize(t, p, params)
		if q == nil || q.Get("code") != "" || q.Get("error") == "" || q.Get("state") != "st-1" {
			t.Errorf("%s: status %d, redirect query %v %s: want an error sent back with the state and no code",
				name, resp.StatusCode, q, body)
		}
	}
}

func TestUnregisteredClientOrRedirectNotRedirected(t *testing.T) {
	p := start(t, func(o *Options) { o.AutoApprove = "carol" })
	for name, mutate := range map[string]func(url.Values){
		"other redirect": func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:9/elsewhere") },
		"other client":   func(q url.Values) { q.Set("client_id", "intruder") },
	} {
		params := authParams(S256(verifier))
		mutate(params)
		resp, err := noFollow.Get(p.Issuer() + "/authorize?" + params.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("%s: status %d, Location %q; want 400 and no redirect", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

func TestWrongVerifierRefused(t *testing.T) {
	p := start(t, func(o *Options) { o.AutoApprove = "carol" })
	code := func() string {
		q, _, body := authorize(t, p, authParams(S256(verifier)))
		if q.Get("code") == "" {
			t.Fatalf("no code: %v %s", q, body)
		}
		return q.Get("code")
	}
	other := strings.Repeat("x", 43)
	for _, tc := range []struct {
		name, verifier, err string
	}{
		{"no verifier", "", "invalid_request"},
		{"wrong verifier", other, "invalid_grant"},
		{"challenge as verifier", S256(verifier), "invalid_grant"},
	} {
		c := code()
		ans := exchange(t, p, tokenForm(c, tc.verifier))
		if ans.status != http.StatusBadRequest || ans.body["error"] != tc.err || ans.body["id_token"] != nil {
			t.Errorf("%s: %d %v, want 400 %s", tc.name, ans.status, ans.body, tc.err)
		}
		// The refused code is spent: the right verifier comes too late.
		if ans := exchange(t, p, tokenForm(c, verifier)); ans.status != http.StatusBadRequest || ans.body["error"] != "invalid_grant" {
			t.Errorf("%s: the code still serves after a refusal: %d %v", tc.name, ans.status, ans.body)
		}
	}
}

func TestCodeServesOnceAndExpires(t *testing.T) {
	clk := &clock{t: time.Now()}
	p := start(t, func(o *Options) { o.AutoApprove = "carol"; o.Now = clk.now })
	q, _, _ := authorize(t, p, authParams(S256(verifier)))
	if ans := exchange(t, p, tokenForm(q.Get("code"), verifier)); ans.status != http.StatusOK {
		t.Fatalf("first use: %d %v", ans.status, ans.body)
	}
	if ans := exchange(t, p, tokenForm(q.Get("code"), verifier)); ans.body["error"] != "invalid_grant" {
		t.Errorf("replayed code: %d %v", ans.status, ans.body)
	}
	q, _, _ = authorize(t, p, authParams(S256(verifier)))
	clk.add(CodeLifetime + time.Second)
	if ans := exchange(t, p, tokenForm(q.Get("code"), verifier)); ans.body["error"] != "invalid_grant" {
		t.Errorf("expired code: %d %v", ans.status, ans.body)
	}
	q, _, _ = authorize(t, p, authParams(S256(verifier)))
	f := tokenForm(q.Get("code"), verifier)
	f.Set("redirect_uri", "http://127.0.0.1:9/other")
	if ans := exchange(t, p, f); ans.body["error"] != "invalid_grant" {
		t.Errorf("another redirect_uri at /token: %d %v", ans.status, ans.body)
	}
}

func TestClientSecret(t *testing.T) {
	p := start(t, func(o *Options) { o.AutoApprove = "carol"; o.ClientSecret = "s3cret" })
	for _, tc := range []struct {
		name   string
		secret string
		status int
	}{
		{"no secret", "", http.StatusUnauthorized},
		{"wrong secret", "guess", http.StatusUnauthorized},
		{"right secret", "s3cret", http.StatusOK},
	} {
		q, _, _ := authorize(t, p, authParams(S256(verifier)))
		f := tokenForm(q.Get("code"), verifier)
		if tc.secret != "" {
			f.Set("client_secret", tc.secret)
		}
		if ans := exchange(t, p, f); ans.status != tc.status {
			t.Errorf("%s: %d %v, want %d", tc.name, ans.status, ans.body, tc.status)
		}
	}
}

// TestLoginForm picks a user on the form, as a browser would post it.
func TestLoginForm(t *testing.T) {
	p := start(t, func(o *Options) {
		o.Users = append(slices.Clone(users), User{Name: `<script>x</script>`})
	})
	q, resp, body := authorize(t, p, authParams(S256(verifier)))
	if q != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("without auto-approval /authorize must show the form: %d %v", resp.StatusCode, q)
	}
	for _, want := range []string{`value="alice"`, `value="bob"`, `value="carol"`, "administrator", "cms-managers",
		`name="code_challenge" value="` + S256(verifier) + `"`, `id="warning"`, "&lt;script&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("the form lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<script>") {
		t.Error("a user name reaches the form unescaped")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' http://127.0.0.1:9") {
		t.Errorf("CSP %q does not allow the form's redirect to the client", csp)
	}

	post := func(user string) url.Values {
		f := authParams(S256(verifier))
		f.Set("user", user)
		resp, err := noFollow.PostForm(p.Issuer()+"/authorize", f)
		if err != nil {
			t.Fatal(err)
		}
		q, _, body := redirectQuery(t, resp)
		if q == nil {
			t.Fatalf("POST /authorize as %q: %d, no redirect: %s", user, resp.StatusCode, body)
		}
		return q
	}
	q = post("alice")
	ans := exchange(t, p, tokenForm(q.Get("code"), verifier))
	if ans.status != http.StatusOK {
		t.Fatalf("token after the form: %d %v", ans.status, ans.body)
	}
	if c := payload(t, ans.body["id_token"].(string)); c["preferred_username"] != "alice" {
		t.Errorf("logged in as %v, picked alice", c["preferred_username"])
	}
	if q := post("mallory"); q.Get("error") != "access_denied" || q.Get("code") != "" {
		t.Errorf("an unknown user: %v, want access_denied", q)
	}
}

func TestMint(t *testing.T) {
	p := start(t, nil)
	tok, err := p.Mint("alice", 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := verifier4(t, p, "gpuledger-api").Verify(context.Background(), tok)
	if err != nil || id.User != "alice" || !slices.Equal(id.Groups, []string{"gpuledger-admins"}) {
		t.Errorf("minted token: %+v %v", id, err)
	}
	if d := time.Until(id.Expiry); d < 11*time.Hour || d > 12*time.Hour+time.Minute {
		t.Errorf("minted token expires in %s, want 12h", d)
	}
	for _, tc := range []struct {
		user string
		ttl  time.Duration
	}{{"mallory", time.Hour}, {"alice", 0}} {
		if _, err := p.Mint(tc.user, tc.ttl); err == nil {
			t.Errorf("Mint(%q, %s) succeeded", tc.user, tc.ttl)
		}
	}
}

func TestDiscovery(t *testing.T) {
	p := start(t, nil)
	resp, err := http.Get(p.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer  string   `json:"issuer"`
		Auth    string   `json:"authorization_endpoint"`
		Token   string   `json:"token_endpoint"`
		JWKS    string   `json:"jwks_uri"`
		Methods []string `json:"code_challenge_methods_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != p.Issuer() || doc.Auth != p.Issuer()+"/authorize" || doc.Token != p.Issuer()+"/token" ||
		doc.JWKS != p.Issuer()+"/jwks" || !slices.Equal(doc.Methods, []string{"S256"}) {
		t.Errorf("discovery document %+v", doc)
	}
}

func b64Decode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
