// Package authtest is an OIDC issuer for tests: an HTTP server with a
// discovery document and a JSON Web Key Set, RSA and EC signing keys, and
// a token signer that writes any header and claims, so that tests can
// build valid tokens and every kind of forged one. Tokens are signed here
// with the standard library, independently of the verifier's JWT library.
package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Audience is the audience of the tokens Token signs.
const Audience = "gpuledger-api"

// Key IDs of the issuer's own keys.
const (
	RSAKeyID = "rsa-1"
	ECKeyID  = "ec-1"
)

// Issuer is a test OIDC issuer.
type Issuer struct {
	// URL is the issuer (iss), the server's address with a trailing slash
	// as INDIGO IAM writes it.
	URL string
	// Now is the time the default claims are relative to.
	Now time.Time
	RSA *rsa.PrivateKey
	EC  *ecdsa.PrivateKey

	srv       *httptest.Server
	discovery atomic.Int64
	jwks      atomic.Int64

	mu   sync.Mutex
	keys []map[string]any // the published JWKS
}

// New starts an issuer with one RSA (RS256) and one P-256 (ES256) key;
// it stops at the end of the test.
func New(t testing.TB, now time.Time) *Issuer {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is := &Issuer{Now: now, RSA: rk, EC: ek}
	is.Publish(RSAKeyID, &rk.PublicKey, "RS256")
	is.Publish(ECKeyID, &ek.PublicKey, "ES256")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		is.discovery.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": is.URL, "jwks_uri": is.srv.URL + "/jwk"})
	})
	mux.HandleFunc("GET /jwk", func(w http.ResponseWriter, _ *http.Request) {
		is.jwks.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(is.JWKS())
	})
	is.srv = httptest.NewServer(mux)
	is.URL = is.srv.URL + "/"
	t.Cleanup(is.srv.Close)
	return is
}

// Hits returns how many times the discovery document and the key set
// were fetched.
func (is *Issuer) Hits() (discovery, jwks int64) { return is.discovery.Load(), is.jwks.Load() }

// Publish adds a public key to the published key set (alg "" leaves the
// key's alg out).
func (is *Issuer) Publish(kid string, pub crypto.PublicKey, alg string) {
	k := map[string]any{"kid": kid, "use": "sig"}
	if alg != "" {
		k["alg"] = alg
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		k["kty"], k["n"], k["e"] = "RSA", b64(p.N.Bytes()), b64(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		ecdh, err := p.ECDH()
		if err != nil {
			panic(err) // a generated P-256 key always converts
		}
		raw := ecdh.Bytes() // 0x04 || X || Y
		n := (len(raw) - 1) / 2
		k["kty"], k["crv"], k["x"], k["y"] = "EC", "P-256", b64(raw[1:1+n]), b64(raw[1+n:])
	}
	is.mu.Lock()
	is.keys = append(is.keys, k)
	is.mu.Unlock()
}

// Withdraw removes a key from the published set.
func (is *Issuer) Withdraw(kid string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	out := is.keys[:0]
	for _, k := range is.keys {
		if k["kid"] != kid {
			out = append(out, k)
		}
	}
	is.keys = out
}

// JWKS returns the published key set.
func (is *Issuer) JWKS() []byte {
	is.mu.Lock()
	defer is.mu.Unlock()
	b, err := json.Marshal(map[string]any{"keys": is.keys})
	if err != nil {
		panic(err) // strings only
	}
	return b
}

// WriteJWKS writes the published key set to path.
func (is *Issuer) WriteJWKS(t testing.TB, path string) {
	t.Helper()
	if err := os.WriteFile(path, is.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Claims returns the claims of a valid token of user with groups:
// iss, aud, sub, preferred_username, groups, iat, nbf, and exp an hour
// after Now.
func (is *Issuer) Claims(user string, groups ...string) map[string]any {
	c := map[string]any{
		"iss": is.URL, "aud": Audience, "sub": "sub-" + user, "preferred_username": user,
		"iat": is.Now.Unix(), "nbf": is.Now.Unix(), "exp": is.Now.Add(time.Hour).Unix(),
	}
	if groups != nil {
		c["groups"] = groups
	}
	return c
}

// Token returns a valid RS256 token of user with groups.
func (is *Issuer) Token(user string, groups ...string) string {
	return is.Sign(map[string]any{"alg": "RS256", "kid": RSAKeyID, "typ": "JWT"}, is.Claims(user, groups...), is.RSA)
}

// Sign writes a compact JWS of claims with header, signed by key as the
// header's alg says: RS256 (an *rsa.PrivateKey), ES256 (an
// *ecdsa.PrivateKey), HS256 (a []byte secret) or none (no signature);
// any other alg gets a signature of junk bytes.
func (is *Issuer) Sign(header, claims map[string]any, key any) string {
	h, err := json.Marshal(header)
	if err != nil {
		panic(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	input := b64(h) + "." + b64(c)
	return input + "." + b64(signature(header["alg"], input, key))
}

func signature(alg any, input string, key any) []byte {
	sum := sha256.Sum256([]byte(input))
	switch alg {
	case "RS256":
		s, err := rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, sum[:])
		if err != nil {
			panic(err)
		}
		return s
	case "ES256":
		r, s, err := ecdsa.Sign(rand.Reader, key.(*ecdsa.PrivateKey), sum[:])
		if err != nil {
			panic(err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	case "HS256":
		m := hmac.New(sha256.New, key.([]byte))
		m.Write([]byte(input))
		return m.Sum(nil)
	case "none":
		return nil
	}
	return []byte("not a signature")
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
