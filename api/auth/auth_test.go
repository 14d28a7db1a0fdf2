package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/api/auth/authtest"
	"github.com/gpuledger/gpuledger/sim/clock"
)

var t0 = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)

func newVerifier(t *testing.T, is *authtest.Issuer, change func(*Options)) (*Verifier, *clock.Manual) {
	t.Helper()
	clk := clock.NewManual(t0)
	opts := Options{Issuer: is.URL, Audience: authtest.Audience, Now: clk.Now}
	if change != nil {
		change(&opts)
	}
	v, err := NewVerifier(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return v, clk
}

func TestVerifyAccepts(t *testing.T) {
	is := authtest.New(t, t0)
	v, _ := newVerifier(t, is, nil)
	if err := v.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	ctx := context.Background()

	id, err := v.Verify(ctx, is.Token("bob", "cms", "/atlas/managers"))
	if err != nil {
		t.Fatalf("RS256: %v", err)
	}
	if id.User != "bob" || id.Subject != "sub-bob" || !slices.Equal(id.Groups, []string{"cms", "atlas/managers"}) ||
		!id.Expiry.Equal(t0.Add(time.Hour)) {
		t.Errorf("identity %+v", id)
	}

	claims := is.Claims("carol", "cms")
	es := is.Sign(map[string]any{"alg": "ES256", "kid": authtest.ECKeyID}, claims, is.EC)
	if id, err := v.Verify(ctx, es); err != nil || id.User != "carol" {
		t.Errorf("ES256: %+v, %v", id, err)
	}

	// Within the skew: expired 30 s ago, valid in 30 s, issued in 30 s.
	for _, change := range []func(map[string]any){
		func(c map[string]any) { c["exp"] = t0.Add(-30 * time.Second).Unix() },
		func(c map[string]any) { c["nbf"] = t0.Add(30 * time.Second).Unix() },
		func(c map[string]any) { c["iat"] = t0.Add(30 * time.Second).Unix() },
		func(c map[string]any) { c["aud"] = []string{"other", authtest.Audience} },
		func(c map[string]any) { delete(c, "groups") },
		func(c map[string]any) { c["groups"] = "cms" },
	} {
		c := is.Claims("dave", "cms")
		change(c)
		if _, err := v.Verify(ctx, is.Sign(map[string]any{"alg": "RS256", "kid": authtest.RSAKeyID}, c, is.RSA)); err != nil {
			t.Errorf("claims %v: %v", c, err)
		}
	}

	// The WLCG profile's groups.
	w, _ := newVerifier(t, is, func(o *Options) { o.GroupsClaim = "wlcg.groups"; o.UserClaim = "sub" })
	c := is.Claims("erin")
	c["wlcg.groups"] = []string{"/cms", "/cms/managers"}
	id, err = w.Verify(ctx, is.Sign(map[string]any{"alg": "RS256", "kid": authtest.RSAKeyID}, c, is.RSA))
	if err != nil || id.User != "sub-erin" || !slices.Equal(id.Groups, []string{"cms", "cms/managers"}) {
		t.Errorf("wlcg.groups: %+v, %v", id, err)
	}
}

// TestVerifyRejects is the security table: every forged, stale or
// misdirected token is refused with ErrInvalidToken and a reason.
func TestVerifyRejects(t *testing.T) {
	is := authtest.New(t, t0)
	v, _ := newVerifier(t, is, func(o *Options) { o.MaxTokenBytes = 4096 })
	ctx := context.Background()
	rs := map[string]any{"alg": "RS256", "kid": authtest.RSAKeyID}
	signRS := func(change func(map[string]any)) string {
		c := is.Claims("bob", "cms")
		change(c)
		return is.Sign(rs, c, is.RSA)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&is.RSA.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	valid := is.Token("bob", "cms")
	parts := strings.Split(valid, ".")
	tampered := func() string {
		c := is.Claims("bob", "cms", "gpuledger-admins")
		b, _ := json.Marshal(c)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	}()
	big := signRS(func(c map[string]any) { c["padding"] = strings.Repeat("x", 5000) })

	cases := []struct {
		name, token, reason string
	}{
		{"alg none", is.Sign(map[string]any{"alg": "none", "kid": authtest.RSAKeyID}, is.Claims("bob"), nil), `"none" is not accepted`},
		{"alg none without signature part", strings.Join(strings.Split(is.Sign(map[string]any{"alg": "none"}, is.Claims("bob"), nil), ".")[:2], ".") + ".", "not accepted"},
		{"HS256 with the RSA public key (PEM) as secret", is.Sign(map[string]any{"alg": "HS256", "kid": authtest.RSAKeyID}, is.Claims("bob"), pubPEM), `"HS256" is not accepted`},
		{"HS256 with the RSA modulus as secret", is.Sign(map[string]any{"alg": "HS256", "kid": authtest.RSAKeyID}, is.Claims("bob"), is.RSA.N.Bytes()), `"HS256" is not accepted`},
		{"RS384", is.Sign(map[string]any{"alg": "RS384", "kid": authtest.RSAKeyID}, is.Claims("bob"), nil), `"RS384" is not accepted`},
		{"PS256", is.Sign(map[string]any{"alg": "PS256", "kid": authtest.RSAKeyID}, is.Claims("bob"), nil), `"PS256" is not accepted`},
		{"no alg", is.Sign(map[string]any{"kid": authtest.RSAKeyID}, is.Claims("bob"), nil), "none given"},
		{"ES256 naming the RSA key", is.Sign(map[string]any{"alg": "ES256", "kid": authtest.RSAKeyID}, is.Claims("bob"), otherEC), "is for RS256"},
		{"RS256 naming the EC key", is.Sign(map[string]any{"alg": "RS256", "kid": authtest.ECKeyID}, is.Claims("bob"), other), "is for ES256"},
		{"expired", signRS(func(c map[string]any) { c["exp"] = t0.Add(-2 * time.Minute).Unix() }), "expired"},
		{"not yet valid", signRS(func(c map[string]any) { c["nbf"] = t0.Add(2 * time.Minute).Unix() }), "not valid yet"},
		{"issued in the future", signRS(func(c map[string]any) { c["iat"] = t0.Add(2 * time.Minute).Unix() }), "future"},
		{"no exp", signRS(func(c map[string]any) { delete(c, "exp") }), "not valid"},
		{"wrong issuer", signRS(func(c map[string]any) { c["iss"] = "https://evil.example/" }), "another issuer"},
		{"issuer without the trailing slash", signRS(func(c map[string]any) { c["iss"] = strings.TrimSuffix(is.URL, "/") }), "another issuer"},
		{"wrong audience", signRS(func(c map[string]any) { c["aud"] = "another-service" }), "another audience"},
		{"no audience", signRS(func(c map[string]any) { delete(c, "aud") }), "another audience"},
		{"tampered payload", tampered, "bad signature"},
		{"another key under the issuer's kid", is.Sign(rs, is.Claims("bob", "cms"), other), "bad signature"},
		{"another EC key under the issuer's kid", is.Sign(map[string]any{"alg": "ES256", "kid": authtest.ECKeyID}, is.Claims("bob"), otherEC), "bad signature"},
		{"oversized", big, "exceeds the limit of 4096"},
		{"no kid", is.Sign(map[string]any{"alg": "RS256"}, is.Claims("bob"), is.RSA), "no signing key"},
		{"not a JWT", "not-a-token", "compact"},
		{"JSON serialization", `{"payload":"` + parts[1] + `","signatures":[{"protected":"` + parts[0] + `","signature":"` + parts[2] + `"}]}`, "compact"},
		{"groups not strings", signRS(func(c map[string]any) { c["groups"] = []any{"cms", 7} }), "not a list of strings"},
		{"groups an object", signRS(func(c map[string]any) { c["groups"] = map[string]any{"cms": true} }), "not a list of strings"},
		{"user not a string", signRS(func(c map[string]any) { c["preferred_username"] = []string{"bob"} }), "not a string"},
	}
	if _, err := v.Verify(ctx, valid); err != nil {
		t.Fatalf("the valid token: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := v.Verify(ctx, c.token)
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", id, err)
			}
			if !strings.Contains(err.Error(), c.reason) {
				t.Errorf("error %q does not say %q", err, c.reason)
			}
		})
	}
	if _, err := v.Verify(ctx, ""); !errors.Is(err, ErrNoToken) {
		t.Errorf("empty token: %v", err)
	}
}

// TestUnknownKeyRefreshesOnce: a token signed with a key the set does not
// hold makes one fetch of the key set; more such tokens within the
// refresh interval make none, and are refused.
func TestUnknownKeyRefreshesOnce(t *testing.T) {
	is := authtest.New(t, t0)
	v, clk := newVerifier(t, is, nil)
	ctx := context.Background()
	hits := func(wantDiscovery, wantJWKS int64) {
		t.Helper()
		if d, j := is.Hits(); d != wantDiscovery || j != wantJWKS {
			t.Errorf("fetches: discovery %d, key set %d; want %d, %d", d, j, wantDiscovery, wantJWKS)
		}
	}
	hits(1, 1) // loaded at start

	rotated, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tok := is.Sign(map[string]any{"alg": "RS256", "kid": "rsa-2"}, is.Claims("bob"), rotated)
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), `"rsa-2" is not among`) {
		t.Fatalf("unknown kid: %v", err)
	}
	hits(1, 2) // one refresh

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kid := "rsa-2"
			if i%2 == 1 {
				kid = "junk-" + string(rune('a'+i))
			}
			if _, err := v.Verify(ctx, is.Sign(map[string]any{"alg": "RS256", "kid": kid}, is.Claims("bob"), rotated)); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("unknown kid %s: %v", kid, err)
			}
		}()
	}
	wg.Wait()
	hits(1, 2) // no more within the interval

	// The issuer rotates: the new key is picked up once the interval has passed.
	is.Publish("rsa-2", &rotated.PublicKey, "RS256")
	clk.Advance(DefaultRefreshInterval - time.Second)
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("before the interval: %v", err)
	}
	hits(1, 2)
	clk.Advance(time.Second)
	if id, err := v.Verify(ctx, tok); err != nil || id.User != "bob" {
		t.Errorf("after rotation: %+v %v", id, err)
	}
	hits(1, 3)
	// Known keys never cause a fetch.
	for range 5 {
		if _, err := v.Verify(ctx, is.Token("bob")); err != nil {
			t.Fatal(err)
		}
	}
	hits(1, 3)
}

// TestWithdrawnKey: a key the issuer no longer publishes stops being
// accepted once the set is older than KeysMaxAge.
func TestWithdrawnKey(t *testing.T) {
	is := authtest.New(t, t0)
	v, clk := newVerifier(t, is, func(o *Options) { o.KeysMaxAge = 30 * time.Minute })
	ctx := context.Background()
	is.Withdraw(authtest.RSAKeyID)
	clk.Advance(29 * time.Minute)
	is.Now = clk.Now()
	if _, err := v.Verify(ctx, is.Token("bob")); err != nil {
		t.Fatalf("before the max age: %v", err)
	}
	clk.Advance(time.Minute)
	is.Now = clk.Now()
	if _, err := v.Verify(ctx, is.Token("bob")); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("withdrawn key after the max age: %v", err)
	}
	if _, j := is.Hits(); j != 2 {
		t.Errorf("key set fetched %d times, want 2", j)
	}
}

func TestJWKSFile(t *testing.T) {
	is := authtest.New(t, t0)
	path := filepath.Join(t.TempDir(), "jwks.json")
	v, clk := newVerifier(t, is, func(o *Options) { o.JWKSFile = path; o.Issuer = "https://iam.example.org/" })
	ctx := context.Background()
	if err := v.Ready(); !errors.Is(err, ErrKeysUnavailable) {
		t.Errorf("Ready without the file: %v", err)
	}
	c := is.Claims("bob")
	c["iss"] = "https://iam.example.org/"
	tok := is.Sign(map[string]any{"alg": "RS256", "kid": authtest.RSAKeyID}, c, is.RSA)
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrKeysUnavailable) {
		t.Errorf("Verify without keys: %v", err)
	}
	is.WriteJWKS(t, path)
	clk.Advance(keysRetry - time.Second)
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrKeysUnavailable) {
		t.Errorf("retried before %s: %v", keysRetry, err)
	}
	clk.Advance(time.Second)
	if id, err := v.Verify(ctx, tok); err != nil || id.User != "bob" {
		t.Errorf("with the file: %+v %v", id, err)
	}
	if err := v.Ready(); err != nil {
		t.Errorf("Ready: %v", err)
	}
	if _, d := is.Hits(); d != 0 {
		t.Errorf("the key set was fetched over HTTP %d times", d)
	}
}

func TestDiscoveryFailures(t *testing.T) {
	is := authtest.New(t, t0)
	// The discovery document names is.URL; an issuer spelt without the
	// trailing slash is another issuer.
	v, _ := newVerifier(t, is, func(o *Options) { o.Issuer = strings.TrimSuffix(is.URL, "/") })
	if err := v.Ready(); !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), "names issuer") {
		t.Errorf("issuer mismatch: %v", err)
	}
	down, _ := newVerifier(t, is, func(o *Options) { o.Issuer = "http://127.0.0.1:1/" })
	if _, err := down.Verify(context.Background(), is.Token("bob")); !errors.Is(err, ErrKeysUnavailable) {
		t.Errorf("issuer down: %v", err)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{Audience: "a"},
		{Issuer: "https://i/"},
		{Issuer: "https://i/", Audience: "a", Skew: 10 * time.Minute},
		{Issuer: "https://i/", Audience: "a", Skew: -time.Second},
		{Issuer: "iam.example.org", Audience: "a"},
	} {
		if _, err := NewVerifier(context.Background(), o); err == nil {
			t.Errorf("NewVerifier(%+v) accepted", o)
		}
	}
}

// TestTokenCache checks the remembered identities: used before any
// parsing while the key set that verified them is held and fresh, never
// past their time, their exp or a change of key set, and handed out as
// copies.
func TestTokenCache(t *testing.T) {
	is := authtest.New(t, t0)
	v, clk := newVerifier(t, is, func(o *Options) { o.CacheTTL = 45 * time.Minute; o.KeysMaxAge = 30 * time.Minute })
	ctx := context.Background()
	tok := is.Token("bob", "cms")
	id, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	id.Groups[0] = "changed by the caller"
	if id, err := v.Verify(ctx, tok); err != nil || !slices.Equal(id.Groups, []string{"cms"}) {
		t.Fatalf("second verification: %+v, %v", id, err)
	}
	if n := len(v.cache.entries); n != 1 {
		t.Errorf("%d tokens remembered, want 1", n)
	}

	// A remembered token is answered before it is parsed: an entry put
	// under the hash of a string that is no token at all answers for it,
	// until its time.
	junk := "not a token"
	sum := sha256.Sum256([]byte(junk))
	v.cache.put(sum, Identity{User: "eve"}, v.keys.fresh(), clk.Now().Add(time.Minute), clk.Now())
	if id, err := v.Verify(ctx, junk); err != nil || id.User != "eve" {
		t.Errorf("remembered entry: %+v, %v", id, err)
	}
	clk.Advance(time.Minute)
	if _, err := v.Verify(ctx, junk); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("entry past its time: %v", err)
	}

	// A key the issuer withdrew stops being accepted when the key set is
	// older than KeysMaxAge, though the token's cache time has not passed.
	is.Withdraw(authtest.RSAKeyID)
	clk.Advance(28 * time.Minute)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("remembered, key set fresh: %v", err)
	}
	clk.Advance(time.Minute)
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("withdrawn key, key set past its max age: %v", err)
	}
	if _, j := is.Hits(); j != 2 {
		t.Errorf("key set fetched %d times, want 2", j)
	}

	// Never past the token's exp (an hour after it was issued).
	is2 := authtest.New(t, t0)
	v2, clk2 := newVerifier(t, is2, func(o *Options) { o.CacheTTL = 2 * time.Hour; o.Skew = time.Second })
	tok2 := is2.Token("carol")
	if _, err := v2.Verify(ctx, tok2); err != nil {
		t.Fatal(err)
	}
	clk2.Advance(time.Hour + 2*time.Second)
	if _, err := v2.Verify(ctx, tok2); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("past exp: %v", err)
	}
}

// TestTokenCacheBound checks that the cache never holds more than its
// bound: expired entries go first, then all.
func TestTokenCacheBound(t *testing.T) {
	c := newTokenCache(3)
	keys := &keySnapshot{at: t0}
	put := func(i byte, until time.Duration) {
		c.put([32]byte{i}, Identity{User: string('a' + rune(i))}, keys, t0.Add(until), t0)
	}
	put(1, time.Second)
	put(2, time.Hour)
	put(3, time.Hour)
	now := t0.Add(time.Minute)
	c.put([32]byte{4}, Identity{User: "d"}, keys, now.Add(time.Hour), now) // 1 has expired: it goes
	if len(c.entries) != 3 {
		t.Fatalf("%d entries, want 3", len(c.entries))
	}
	if _, ok := c.get([32]byte{2}, keys, now); !ok {
		t.Error("entry 2 forgotten while an expired one was there")
	}
	c.put([32]byte{5}, Identity{User: "e"}, keys, now.Add(time.Hour), now) // none expired: all go
	if len(c.entries) != 1 {
		t.Errorf("%d entries after a full cache without expired ones, want 1", len(c.entries))
	}
	if id, ok := c.get([32]byte{5}, keys, now); !ok || id.User != "e" {
		t.Errorf("entry 5: %+v %v", id, ok)
	}
	if _, ok := c.get([32]byte{5}, &keySnapshot{at: now}, now); ok {
		t.Error("entry answered for another key set")
	}
	if _, ok := c.get([32]byte{5}, nil, now); ok {
		t.Error("entry answered without a fresh key set")
	}
}
