package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/api/auth"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestSessionCodec(t *testing.T) {
	k, err := deriveKeys(testKey)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	valid := session{Subject: "sub-alice", User: "alice", Groups: []string{"cms"}, Issued: now.Unix(),
		Expires: now.Add(time.Hour).Unix()}
	v, err := encodeSession(k.session, valid)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(s session) string {
		v, err := encodeSession(k.session, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	signed, mac, _ := cutLast(v, ".")
	cases := []struct {
		name  string
		value string
		at    time.Time
		want  error
	}{
		{"valid", v, now, nil},
		{"valid to the last second", v, now.Add(time.Hour - time.Second), nil},
		{"expired", v, now.Add(time.Hour), ErrSessionExpired},
		{"empty", "", now, ErrSessionInvalid},
		{"no signature", signed, now, ErrSessionInvalid},
		{"empty signature", signed + ".", now, ErrSessionInvalid},
		{"signature of junk", signed + ".!!!", now, ErrSessionInvalid},
		{"another version", "v2" + strings.TrimPrefix(v, "v1"), now, ErrSessionInvalid},
		{"truncated signature", signed + "." + mac[:20], now, ErrSessionInvalid},
		{"payload changed", flip(v, 4), now, ErrSessionInvalid},
		{"too long", v + strings.Repeat("A", maxCookieBytes), now, ErrSessionInvalid},
		{"lifetime over the maximum", sign(session{Subject: "x", Issued: now.Unix(), Expires: now.Add(25 * time.Hour).Unix()}), now, ErrSessionInvalid},
		{"ends before it starts", sign(session{Subject: "x", Issued: now.Unix(), Expires: now.Unix() - 1}), now, ErrSessionInvalid},
		{"JSON that is not a session", signedRaw(k.session, `["a"]`), now, ErrSessionInvalid},
		{"not JSON", signedRaw(k.session, `alice`), now, ErrSessionInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeSession(k.session, c.value, c.at, 24*time.Hour)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if c.want == nil && (got.User != "alice" || got.Subject != "sub-alice" || strings.Join(got.Groups, ",") != "cms") {
				t.Errorf("decoded %+v", got)
			}
		})
	}
}

// signedRaw signs an arbitrary payload as encodeSession would.
func signedRaw(key []byte, payload string) string {
	signed := sessionVersion + "." + b64.EncodeToString([]byte(payload))
	return signed + "." + b64.EncodeToString(sessionMAC(key, signed))
}

func TestSessionTooLarge(t *testing.T) {
	k, err := deriveKeys(testKey)
	if err != nil {
		t.Fatal(err)
	}
	groups := make([]string, 400)
	for i := range groups {
		groups[i] = fmt.Sprintf("experiment-%03d/members", i)
	}
	if _, err := encodeSession(k.session, session{Subject: "x", Groups: groups, Issued: 1, Expires: 2}); err == nil {
		t.Fatal("a session of 400 groups fits a cookie?")
	}
	// Logging in with them keeps the groups the policy names.
	u := &UI{opts: Options{Policy: testPolicy, SessionMaxAge: time.Hour, Now: time.Now}, keys: k, cookies: newCookieNames(false),
		log: discard()}
	rec := httptest.NewRecorder()
	id := auth.Identity{Subject: "sub-carol", User: "carol", Groups: append(groups, atlasManager, adminGroup)}
	if err := u.openSession(rec, id); err != nil {
		t.Fatal(err)
	}
	req := &http.Request{Header: http.Header{"Cookie": {rec.Header().Get("Set-Cookie")}}}
	got, found, err := u.Session(req)
	if !found || err != nil {
		t.Fatalf("session %v %v", found, err)
	}
	if strings.Join(got.Groups, ",") != atlasManager+","+adminGroup {
		t.Errorf("groups kept %v", got.Groups)
	}
	if p := testPolicy.Principal(got); !p.Admin || !p.ManagesProject("atlas") {
		t.Errorf("principal %+v", p)
	}
}

func TestLoginStateSeal(t *testing.T) {
	k, err := deriveKeys(testKey)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	ls := loginState{State: "s", Nonce: "n", Verifier: "v", Expires: now.Add(loginMaxAge).Unix()}
	v, err := k.seal("login", ls)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.open("login", v, now); err != nil || got != ls {
		t.Fatalf("open: %+v %v", got, err)
	}
	empty, err := k.seal("login", loginState{Expires: ls.Expires})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		name, value string
		at          time.Time
	}{
		"expired":          {"login", v, now.Add(loginMaxAge)},
		"another name":     {"session", v, now},
		"tampered":         {"login", flip(v, len(v)-5), now},
		"truncated":        {"login", v[:20], now},
		"no version":       {"login", strings.TrimPrefix(v, "v1."), now},
		"empty state":      {"login", empty, now},
		"not base64":       {"login", "v1.***", now},
		"session as login": {"login", signedRaw(k.session, `{"s":"s","n":"n","v":"v","e":9999999999}`), now},
	} {
		if _, err := k.open(c.name, c.value, c.at); !errors.Is(err, errLoginState) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestLoadSessionKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "  "+strings.Repeat("k", 40)+"\n")
	if k, err := LoadSessionKey(good); err != nil || len(k) != 40 {
		t.Errorf("good key: %d bytes, %v", len(k), err)
	}
	if _, err := LoadSessionKey(write("short", strings.Repeat("k", 31)+"\n\n")); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("short key: %v", err)
	}
	if _, err := LoadSessionKey(filepath.Join(dir, "absent")); err == nil {
		t.Error("absent key file accepted")
	}
	if _, err := deriveKeys([]byte("short")); err == nil {
		t.Error("a short key accepted by deriveKeys")
	}
}

type nopVerifier struct{}

func (nopVerifier) Verify(context.Context, string) (auth.Identity, error) {
	return auth.Identity{}, nil
}

func TestNewOptions(t *testing.T) {
	ok := Options{Issuer: "https://iam.example/", ClientID: "c", PublicURL: "https://gpuledger.example", Verifier: nopVerifier{}}
	cases := []struct {
		name   string
		change func(*Options)
		err    string
	}{
		{"valid", func(*Options) {}, ""},
		{"trailing slash", func(o *Options) { o.PublicURL += "/" }, ""},
		{"localhost http", func(o *Options) { o.PublicURL = "http://localhost:8080" }, ""},
		{"loopback insecure", func(o *Options) { o.PublicURL, o.InsecureCookies = "http://127.0.0.1:8080", true }, ""},
		{"ipv6 loopback insecure", func(o *Options) { o.PublicURL, o.InsecureCookies = "http://[::1]:8080", true }, ""},
		{"no issuer", func(o *Options) { o.Issuer = "" }, "issuer is required"},
		{"no client", func(o *Options) { o.ClientID = "" }, "client ID is required"},
		{"no verifier", func(o *Options) { o.Verifier = nil }, "no ID token verifier"},
		{"no public URL", func(o *Options) { o.PublicURL = "" }, "public URL is required"},
		{"http elsewhere", func(o *Options) { o.PublicURL = "http://gpuledger.example" }, "must not travel in clear"},
		{"insecure https", func(o *Options) { o.InsecureCookies = true }, "http://localhost public URL only"},
		{"insecure elsewhere", func(o *Options) { o.PublicURL, o.InsecureCookies = "http://gpuledger.example", true }, "must not travel in clear"},
		{"a path", func(o *Options) { o.PublicURL += "/gpuledger" }, "root of its host"},
		{"a query", func(o *Options) { o.PublicURL += "?x=1" }, "want scheme"},
		{"no host", func(o *Options) { o.PublicURL = "https://" }, "want scheme"},
		{"ftp", func(o *Options) { o.PublicURL = "ftp://gpuledger.example" }, "want https"},
		{"long session", func(o *Options) { o.SessionMaxAge = MaxSessionMaxAge + time.Hour }, "session lifetime"},
		{"short key", func(o *Options) { o.SessionKey = []byte("short") }, "at least 32"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := ok
			c.change(&o)
			u, err := New(o)
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasSuffix(u.redirectURL(), "/callback") || strings.Contains(u.redirectURL(), "//callback") {
					t.Errorf("redirect URL %s", u.redirectURL())
				}
				if u.cookies.secure == o.InsecureCookies {
					t.Errorf("secure cookies %v with InsecureCookies %v", u.cookies.secure, o.InsecureCookies)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("error %v, want %q", err, c.err)
			}
		})
	}
}

func TestInsecureCookies(t *testing.T) {
	e := newEnv(t, &recordingLedger{}, func(o *Options) { o.InsecureCookies = true })
	sc := e.login(t)
	if sc.Name != "gpuledger_session" || sc.Secure || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode {
		t.Errorf("insecure session cookie %+v", sc)
	}
	if resp, body := get(t, e.url+usagePath, sc); resp.StatusCode != http.StatusOK {
		t.Errorf("usage: %d %s", resp.StatusCode, body)
	}
}

// TestDiscoveryRefused: a provider whose discovery document is wrong
// makes /login fail cleanly, and a later good one is picked up.
func TestDiscoveryRefused(t *testing.T) {
	cases := []struct {
		name string
		doc  string
	}{
		{"another issuer", `{"issuer":"https://evil.example/","authorization_endpoint":"%[1]s/a","token_endpoint":"%[1]s/t"}`},
		{"no S256", `{"issuer":"%[1]s/","authorization_endpoint":"%[1]s/a","token_endpoint":"%[1]s/t","code_challenge_methods_supported":["plain"]}`},
		{"no token endpoint", `{"issuer":"%[1]s/","authorization_endpoint":"%[1]s/a"}`},
		{"not JSON", `<html>`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var url string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprintf(w, c.doc, url)
			}))
			defer srv.Close()
			url = srv.URL
			u, err := New(Options{Issuer: srv.URL + "/", ClientID: "c", PublicURL: "http://localhost:1", Verifier: nopVerifier{}})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			u.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/login", nil))
			if rec.Code != http.StatusBadGateway || rec.Header().Get("Set-Cookie") != "" {
				t.Errorf("%d %v", rec.Code, rec.Header())
			}
		})
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
