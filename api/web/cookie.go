package web

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// MinSessionKeyBytes is the least key material a session key file holds.
const MinSessionKeyBytes = 32

// maxCookieBytes bounds a cookie value this package writes or reads
// (browsers keep about 4 KiB per cookie, name and attributes included).
const maxCookieBytes = 3800

// Errors of a cookie that is present but refused.
var (
	// ErrSessionExpired is a session past its expiry.
	ErrSessionExpired = errors.New("the session has expired")
	// ErrSessionInvalid is a cookie that is malformed, tampered with or
	// signed with another key.
	ErrSessionInvalid = errors.New("the session cookie is not valid")
)

// LoadSessionKey reads a session key file: at least 32 bytes of secret
// (surrounding white space is ignored), e.g. from
// `openssl rand -base64 48`.
func LoadSessionKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < MinSessionKeyBytes {
		return nil, fmt.Errorf("session key %s: %d bytes; at least %d are needed (openssl rand -base64 48 > %s)",
			path, len(b), MinSessionKeyBytes, path)
	}
	return b, nil
}

// keys are the keys derived from the session key: one signs sessions,
// the other seals the login state, so neither can stand for the other.
type keys struct {
	session []byte
	login   cipher.AEAD
}

func deriveKeys(secret []byte) (keys, error) {
	if secret == nil {
		secret = make([]byte, MinSessionKeyBytes)
		if _, err := rand.Read(secret); err != nil {
			return keys{}, fmt.Errorf("web: random session key: %w", err)
		}
	}
	if len(secret) < MinSessionKeyBytes {
		return keys{}, fmt.Errorf("web: session key of %d bytes: at least %d are needed", len(secret), MinSessionKeyBytes)
	}
	session, err := hkdf.Key(sha256.New, secret, nil, "gpuledger web session v1", 32)
	if err != nil {
		return keys{}, fmt.Errorf("web: derive keys: %w", err)
	}
	login, err := hkdf.Key(sha256.New, secret, nil, "gpuledger web login v1", 32)
	if err != nil {
		return keys{}, fmt.Errorf("web: derive keys: %w", err)
	}
	block, err := aes.NewCipher(login)
	if err != nil {
		return keys{}, fmt.Errorf("web: login cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return keys{}, fmt.Errorf("web: login cipher: %w", err)
	}
	return keys{session: session, login: aead}, nil
}

// cookieNames are the names of the session and login cookies: with the
// __Host- prefix, which browsers only accept Secure, host-only and for
// the whole site, unless the cookies are insecure.
type cookieNames struct {
	session, login string
	secure         bool
}

func newCookieNames(insecure bool) cookieNames {
	if insecure {
		return cookieNames{session: "gpuledger_session", login: "gpuledger_login"}
	}
	return cookieNames{session: "__Host-gpuledger_session", login: "__Host-gpuledger_login", secure: true}
}

// cookie is a cookie of this package: HttpOnly, SameSite=Lax, Secure
// unless insecure, for the whole host; maxAge < 0 deletes it.
func (c cookieNames) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	ck := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: c.secure,
		SameSite: http.SameSiteLaxMode}
	if maxAge < 0 {
		ck.MaxAge = -1
	} else {
		ck.MaxAge = int(maxAge / time.Second)
	}
	return ck
}

// session is what a session cookie holds: the verified identity of the
// login and the session's time span (Unix seconds).
type session struct {
	Subject string   `json:"sub"`
	User    string   `json:"usr,omitempty"`
	Groups  []string `json:"grp,omitempty"`
	Issued  int64    `json:"iat"`
	Expires int64    `json:"exp"`
}

// sessionVersion starts every session cookie; a change of format changes
// it, and older cookies are then refused.
const sessionVersion = "v1"

// b64 writes cookie values; b64Strict reads them, refusing the
// non-canonical forms that would let one value have several spellings.
var (
	b64       = base64.RawURLEncoding
	b64Strict = base64.RawURLEncoding.Strict()
)

// encodeSession writes a session cookie value: v1.<payload>.<mac>, the
// payload base64url JSON and the mac HMAC-SHA-256 of "v1.<payload>".
func encodeSession(key []byte, s session) (string, error) {
	p, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("encode session: %w", err)
	}
	signed := sessionVersion + "." + b64.EncodeToString(p)
	v := signed + "." + b64.EncodeToString(sessionMAC(key, signed))
	if len(v) > maxCookieBytes {
		return "", fmt.Errorf("a session of %d bytes exceeds the %d a browser keeps", len(v), maxCookieBytes)
	}
	return v, nil
}

func sessionMAC(key []byte, signed string) []byte {
	m := hmac.New(sha256.New, key)
	io.WriteString(m, signed)
	return m.Sum(nil)
}

// decodeSession checks a session cookie value's signature, then its
// expiry at now; a session whose span exceeds maxAge is refused too.
// Errors wrap ErrSessionInvalid or ErrSessionExpired.
func decodeSession(key []byte, v string, now time.Time, maxAge time.Duration) (session, error) {
	if len(v) > maxCookieBytes {
		return session{}, fmt.Errorf("%w: too long", ErrSessionInvalid)
	}
	signed, mac, ok := cutLast(v, ".")
	version, payload, ok2 := strings.Cut(signed, ".")
	if !ok || !ok2 || version != sessionVersion {
		return session{}, fmt.Errorf("%w: malformed", ErrSessionInvalid)
	}
	got, err := b64Strict.DecodeString(mac)
	if err != nil || !hmac.Equal(got, sessionMAC(key, signed)) {
		return session{}, fmt.Errorf("%w: bad signature", ErrSessionInvalid)
	}
	p, err := b64Strict.DecodeString(payload)
	if err != nil {
		return session{}, fmt.Errorf("%w: malformed payload", ErrSessionInvalid)
	}
	var s session
	if err := json.Unmarshal(p, &s); err != nil {
		return session{}, fmt.Errorf("%w: malformed payload", ErrSessionInvalid)
	}
	switch {
	case s.Expires <= s.Issued || time.Duration(s.Expires-s.Issued)*time.Second > maxAge:
		return session{}, fmt.Errorf("%w: its lifetime exceeds %s", ErrSessionInvalid, maxAge)
	case now.Unix() >= s.Expires:
		return session{}, ErrSessionExpired
	}
	return s, nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// loginState is what the login cookie holds between /login and
// /callback: the state and nonce sent to the provider, the PKCE verifier
// and the cookie's expiry (Unix seconds). It is sealed (AES-GCM): the
// browser can neither read the verifier nor change any of it.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Expires  int64  `json:"e"`
}

// errLoginState is a login cookie that is malformed, not sealed with the
// login key or expired.
var errLoginState = errors.New("the login state is missing, expired or not valid")

// seal writes a login cookie value: v1.<base64url(nonce ‖ ciphertext)>,
// with the cookie's name as additional data.
func (k keys) seal(name string, ls loginState) (string, error) {
	p, err := json.Marshal(ls)
	if err != nil {
		return "", fmt.Errorf("encode login state: %w", err)
	}
	nonce := make([]byte, k.login.NonceSize(), k.login.NonceSize()+len(p)+k.login.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("login state nonce: %w", err)
	}
	return sessionVersion + "." + b64.EncodeToString(k.login.Seal(nonce, nonce, p, []byte(name))), nil
}

// open reads a login cookie value sealed by seal.
func (k keys) open(name, v string, now time.Time) (loginState, error) {
	version, body, ok := strings.Cut(v, ".")
	if !ok || version != sessionVersion || len(v) > maxCookieBytes {
		return loginState{}, errLoginState
	}
	b, err := b64Strict.DecodeString(body)
	if err != nil || len(b) < k.login.NonceSize()+k.login.Overhead() {
		return loginState{}, errLoginState
	}
	p, err := k.login.Open(nil, b[:k.login.NonceSize()], b[k.login.NonceSize():], []byte(name))
	if err != nil {
		return loginState{}, errLoginState
	}
	var ls loginState
	if err := json.Unmarshal(p, &ls); err != nil || ls.State == "" || ls.Nonce == "" || ls.Verifier == "" {
		return loginState{}, errLoginState
	}
	if now.Unix() >= ls.Expires {
		return loginState{}, fmt.Errorf("%w: the login took longer than %s", errLoginState, loginMaxAge)
	}
	return ls, nil
}
