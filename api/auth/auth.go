// Package auth authenticates and authorizes callers of the accounting API.
//
// Authentication: OIDC bearer tokens as INDIGO IAM issues them (JWT access
// tokens signed by the issuer's keys). A Verifier checks a token's
// signature with the issuer's JSON Web Key Set — from the issuer's
// discovery document or a local file — and only with RS256 or ES256; its
// exp and nbf (iat too) within a bounded clock skew; its iss and aud. A
// token signed with a key ID the set does not hold makes the Verifier
// fetch the set again, at most once per refresh interval, so rotated keys
// are picked up and unknown key IDs cannot make it hammer the issuer.
//
// Authorization: a Policy turns a verified Identity into a Principal. The
// administrators' group sees everything, the managers of a project (a
// mapping of project to groups) see the project's rows, and everybody
// sees their own rows, by the user claim matched to the ledger's user.
package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// Errors of Verify, to test with errors.Is.
var (
	// ErrNoToken is a request without a bearer token.
	ErrNoToken = errors.New("no bearer token")
	// ErrInvalidToken is a token that is not accepted: malformed, badly
	// signed, signed with an unknown key or a refused algorithm, expired,
	// not yet valid, for another issuer or audience, or too large.
	ErrInvalidToken = errors.New("invalid token")
	// ErrKeysUnavailable means the issuer's keys could never be loaded:
	// no token can be checked (the service is unavailable, the token may
	// be fine).
	ErrKeysUnavailable = errors.New("signing keys unavailable")
)

// Defaults of Options.
const (
	DefaultSkew            = 60 * time.Second
	MaxSkew                = 5 * time.Minute
	DefaultRefreshInterval = 5 * time.Minute
	DefaultKeysMaxAge      = time.Hour
	// DefaultCacheTTL is the command's default for Options.CacheTTL.
	DefaultCacheTTL      = 30 * time.Second
	DefaultMaxTokenBytes = 16 << 10
	DefaultGroupsClaim   = "groups"
	DefaultUserClaim     = "preferred_username"
	// keysRetry is how soon a key set that could never be loaded is asked
	// for again.
	keysRetry = 10 * time.Second
)

// Algorithms are the only signature algorithms a Verifier accepts.
var Algorithms = []string{"RS256", "ES256"}

// Options configure a Verifier.
type Options struct {
	// Issuer is the token issuer, exactly as the tokens' iss claim spells
	// it (INDIGO IAM: with the trailing slash). Required.
	Issuer string
	// Audience must be one of the tokens' aud values. Required.
	Audience string
	// JWKSFile, when set, is a local JSON Web Key Set read instead of the
	// issuer's discovery document; a refresh reads the file again.
	JWKSFile string
	// HTTPClient fetches the discovery document and the key set (default:
	// a client with a 10 s timeout).
	HTTPClient *http.Client
	// Skew is the clock skew allowed on exp, nbf and iat (default 60 s,
	// at most MaxSkew).
	Skew time.Duration
	// RefreshInterval is the least time between two fetches of the key
	// set (default 5 min).
	RefreshInterval time.Duration
	// KeysMaxAge is how long a fetched key set is trusted before the next
	// token makes the Verifier fetch it again, so that keys the issuer
	// withdrew stop being accepted (default 1 h).
	KeysMaxAge time.Duration
	// CacheTTL, when positive, is how long the identity of a verified
	// token is remembered (never past its exp, and only while the key set
	// that verified it is the one held): a client's next requests with the
	// same token skip parsing it and checking its signature. 0: every
	// request's token is verified.
	CacheTTL time.Duration
	// MaxTokenBytes bounds a token's size (default 16 KiB).
	MaxTokenBytes int
	// GroupsClaim names the claim holding the caller's groups (default
	// "groups"; "wlcg.groups" reads the WLCG profile's "/group" paths).
	GroupsClaim string
	// UserClaim names the claim matched to the ledger's user (default
	// "preferred_username").
	UserClaim string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives key refreshes and their failures.
	Logger *slog.Logger
	// OnRefresh, when set, is called after each fetch of the key set with
	// its outcome (for metrics).
	OnRefresh func(ok bool)
}

// Identity is what a verified token says about its bearer.
type Identity struct {
	Subject string
	// User is the user claim's value ("" when the token has none).
	User string
	// Groups are the groups claim's values, each without a leading "/".
	Groups []string
	Expiry time.Time
}

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	opts  Options
	keys  *keyCache
	log   *slog.Logger
	cache *tokenCache // nil without Options.CacheTTL
}

// NewVerifier checks opts and returns a Verifier. It loads the key set
// once; a failure is logged, not returned (the issuer may come up later:
// Ready says whether keys are loaded, and tokens are refused with
// ErrKeysUnavailable until they are).
func NewVerifier(ctx context.Context, opts Options) (*Verifier, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	var src keySource
	if opts.JWKSFile != "" {
		src = &fileKeys{path: opts.JWKSFile}
	} else {
		src = &discoveryKeys{issuer: opts.Issuer, client: opts.HTTPClient}
	}
	v := &Verifier{opts: opts, log: opts.Logger}
	v.keys = &keyCache{src: src, interval: opts.RefreshInterval, maxAge: opts.KeysMaxAge, retry: keysRetry,
		now: opts.Now, log: opts.Logger, onRefresh: opts.OnRefresh}
	if opts.CacheTTL > 0 {
		v.cache = newTokenCache(maxCachedTokens)
	}
	v.keys.load(ctx)
	return v, nil
}

func (o *Options) setDefaults() error {
	switch {
	case o.Issuer == "":
		return errors.New("auth: the OIDC issuer is required")
	case o.Audience == "":
		return errors.New("auth: the token audience is required")
	case o.Skew < 0 || o.Skew > MaxSkew:
		return fmt.Errorf("auth: clock skew %s: want 0 to %s", o.Skew, MaxSkew)
	case o.RefreshInterval < 0, o.KeysMaxAge < 0, o.MaxTokenBytes < 0, o.CacheTTL < 0:
		return errors.New("auth: negative refresh interval, key age, token size or cache time")
	}
	if o.JWKSFile == "" && !strings.HasPrefix(o.Issuer, "https://") && !strings.HasPrefix(o.Issuer, "http://") {
		return fmt.Errorf("auth: issuer %q is not an http(s) URL (needed for discovery; or give a JWKS file)", o.Issuer)
	}
	if o.Skew == 0 {
		o.Skew = DefaultSkew
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	if o.KeysMaxAge == 0 {
		o.KeysMaxAge = DefaultKeysMaxAge
	}
	o.KeysMaxAge = max(o.KeysMaxAge, o.RefreshInterval)
	if o.MaxTokenBytes == 0 {
		o.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if o.GroupsClaim == "" {
		o.GroupsClaim = DefaultGroupsClaim
	}
	if o.UserClaim == "" {
		o.UserClaim = DefaultUserClaim
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Ready returns nil once a key set is loaded.
func (v *Verifier) Ready() error { return v.keys.ready() }

// invalid is an ErrInvalidToken with a reason.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, fmt.Sprintf(format, args...))
}

// Verify checks a bearer token (the credentials after "Bearer ") and
// returns its bearer's identity. Errors wrap ErrNoToken, ErrInvalidToken
// or ErrKeysUnavailable.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrNoToken
	}
	if len(token) > v.opts.MaxTokenBytes {
		return Identity{}, invalid("token of %d bytes exceeds the limit of %d", len(token), v.opts.MaxTokenBytes)
	}
	var sum [sha256.Size]byte
	if v.cache != nil {
		sum = sha256.Sum256([]byte(token))
		if id, ok := v.cache.get(sum, v.keys.fresh(), v.opts.Now()); ok {
			return id, nil
		}
	}
	msg, err := jws.Parse([]byte(token), jws.WithCompact())
	if err != nil {
		return Identity{}, invalid("not a signed JWT in compact form")
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 || sigs[0].ProtectedHeaders() == nil {
		return Identity{}, invalid("want exactly one signature")
	}
	hdr := sigs[0].ProtectedHeaders()
	alg, ok := hdr.Algorithm()
	if !ok || !allowedAlgorithm(alg.String()) {
		name := "none given"
		if ok {
			name = alg.String()
		}
		return Identity{}, invalid("signature algorithm %q is not accepted (accepted: %s)", name, strings.Join(Algorithms, ", "))
	}
	kid, ok := hdr.KeyID()
	if !ok || kid == "" {
		return Identity{}, invalid("the token names no signing key (kid)")
	}
	key, snap, err := v.keys.lookup(ctx, kid)
	if err != nil {
		return Identity{}, err
	}
	if err := keyFits(key, alg); err != nil {
		return Identity{}, err
	}
	tok, err := jwt.Parse([]byte(token), jwt.WithKey(alg, key), jwt.WithValidate(true),
		jwt.WithAcceptableSkew(v.opts.Skew), jwt.WithClock(jwt.ClockFunc(v.opts.Now)),
		jwt.WithIssuer(v.opts.Issuer), jwt.WithAudience(v.opts.Audience), jwt.WithRequiredClaim(jwt.ExpirationKey))
	if err != nil {
		return Identity{}, invalid("%s", claimError(err))
	}
	id, err := v.identity(tok)
	if err == nil && v.cache != nil {
		now := v.opts.Now()
		until := now.Add(v.opts.CacheTTL)
		if id.Expiry.Before(until) {
			until = id.Expiry
		}
		v.cache.put(sum, id, snap, until, now)
	}
	return id, err
}

// claimError names why jwt.Parse refused a token, without echoing it.
func claimError(err error) string {
	switch {
	case errors.Is(err, jwt.TokenExpiredError()):
		return "the token has expired"
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return "the token is not valid yet"
	case errors.Is(err, jwt.InvalidIssuerError()):
		return "the token is from another issuer"
	case errors.Is(err, jwt.InvalidAudienceError()):
		return "the token is for another audience"
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return "the token is issued in the future"
	case errors.Is(err, jwt.ValidateError()):
		return "the token's claims are not valid"
	}
	return "bad signature or malformed token"
}

func allowedAlgorithm(alg string) bool {
	for _, a := range Algorithms {
		if a == alg {
			return true
		}
	}
	return false
}

// keyFits checks that key may verify alg: RS256 needs an RSA key, ES256
// a P-256 key; a key that names another algorithm or an encryption use
// is refused.
func keyFits(key jwk.Key, alg jwa.SignatureAlgorithm) error {
	if use, ok := key.KeyUsage(); ok && use != "sig" {
		return invalid("key %q is for %q, not signatures", kidOf(key), use)
	}
	if ka, ok := key.Algorithm(); ok && ka.String() != alg.String() {
		return invalid("key %q is for %s, the token says %s", kidOf(key), ka, alg)
	}
	switch alg.String() {
	case "RS256":
		if key.KeyType() != jwa.RSA() {
			return invalid("key %q is not an RSA key (the token says RS256)", kidOf(key))
		}
	case "ES256":
		crv, ok := key.(jwk.ECDSAPublicKey)
		if !ok {
			return invalid("key %q is not an EC public key (the token says ES256)", kidOf(key))
		}
		if c, ok := crv.Crv(); !ok || c != jwa.P256() {
			return invalid("key %q is not on P-256 (the token says ES256)", kidOf(key))
		}
	}
	return nil
}

func kidOf(key jwk.Key) string {
	kid, _ := key.KeyID()
	return kid
}

// identity reads the subject, user and groups of a verified token.
func (v *Verifier) identity(tok jwt.Token) (Identity, error) {
	var id Identity
	id.Subject, _ = tok.Subject()
	id.Expiry, _ = tok.Expiration()
	if tok.Has(v.opts.UserClaim) {
		var raw any
		if err := tok.Get(v.opts.UserClaim, &raw); err != nil {
			return Identity{}, invalid("claim %q: %v", v.opts.UserClaim, err)
		}
		s, ok := raw.(string)
		if !ok {
			return Identity{}, invalid("claim %q is not a string", v.opts.UserClaim)
		}
		id.User = s
	}
	if tok.Has(v.opts.GroupsClaim) {
		var raw any
		if err := tok.Get(v.opts.GroupsClaim, &raw); err != nil {
			return Identity{}, invalid("claim %q: %v", v.opts.GroupsClaim, err)
		}
		groups, err := groupList(raw)
		if err != nil {
			return Identity{}, invalid("claim %q: %v", v.opts.GroupsClaim, err)
		}
		id.Groups = groups
	}
	return id, nil
}

// groupList reads a groups claim: a list of strings (or one string),
// each normalised by NormalizeGroup.
func groupList(raw any) ([]string, error) {
	switch g := raw.(type) {
	case string:
		return []string{NormalizeGroup(g)}, nil
	case []string:
		out := make([]string, len(g))
		for i, s := range g {
			out[i] = NormalizeGroup(s)
		}
		return out, nil
	case []any:
		out := make([]string, 0, len(g))
		for _, x := range g {
			s, ok := x.(string)
			if !ok {
				return nil, errors.New("not a list of strings")
			}
			out = append(out, NormalizeGroup(s))
		}
		return out, nil
	}
	return nil, errors.New("not a list of strings")
}

// NormalizeGroup returns a group name without the leading "/" of the
// WLCG profile's wlcg.groups paths, so that "/cms/managers" and
// "cms/managers" name the same group.
func NormalizeGroup(g string) string { return strings.TrimPrefix(strings.TrimSpace(g), "/") }
