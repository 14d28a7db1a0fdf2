package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// maxDocumentBytes bounds a discovery document or a key set.
const maxDocumentBytes = 1 << 20

// fetchTimeout bounds one refresh, whatever the request that caused it.
const fetchTimeout = 15 * time.Second

// keySource loads a key set.
type keySource interface {
	fetch(ctx context.Context) (jwk.Set, error)
	String() string
}

// fileKeys reads a local JWKS file.
type fileKeys struct{ path string }

func (f *fileKeys) String() string { return f.path }

func (f *fileKeys) fetch(context.Context) (jwk.Set, error) {
	file, err := os.Open(f.path)
	if err != nil {
		return nil, fmt.Errorf("read JWKS: %w", err)
	}
	defer file.Close()
	b, err := io.ReadAll(io.LimitReader(file, maxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read JWKS %s: %w", f.path, err)
	}
	return parseSet(f.path, b)
}

// discoveryKeys reads the key set named by the issuer's OpenID Connect
// discovery document. The key set's address is remembered once found and
// looked up again after a failure.
type discoveryKeys struct {
	issuer  string
	client  *http.Client
	jwksURI string
}

func (d *discoveryKeys) String() string { return d.issuer }

func (d *discoveryKeys) fetch(ctx context.Context) (jwk.Set, error) {
	if d.jwksURI == "" {
		uri, err := d.discover(ctx)
		if err != nil {
			return nil, err
		}
		d.jwksURI = uri
	}
	b, err := get(ctx, d.client, d.jwksURI)
	if err != nil {
		d.jwksURI = ""
		return nil, err
	}
	set, err := parseSet(d.jwksURI, b)
	if err != nil {
		d.jwksURI = ""
	}
	return set, err
}

// discover reads the issuer's discovery document and returns its jwks_uri.
func (d *discoveryKeys) discover(ctx context.Context) (string, error) {
	where := strings.TrimSuffix(d.issuer, "/") + "/.well-known/openid-configuration"
	b, err := get(ctx, d.client, where)
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", fmt.Errorf("discovery document %s: %w", where, err)
	}
	if doc.Issuer != d.issuer {
		return "", fmt.Errorf("discovery document %s names issuer %q, want %q", where, doc.Issuer, d.issuer)
	}
	u, err := url.Parse(doc.JWKSURI)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && strings.HasPrefix(d.issuer, "http://"))) {
		return "", fmt.Errorf("discovery document %s: jwks_uri %q is not an https URL", where, doc.JWKSURI)
	}
	return doc.JWKSURI, nil
}

// get fetches a small JSON document.
func get(ctx context.Context, client *http.Client, where string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", where, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", where, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch %s: %s", where, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", where, err)
	}
	if len(b) > maxDocumentBytes {
		return nil, fmt.Errorf("fetch %s: larger than %d bytes", where, maxDocumentBytes)
	}
	return b, nil
}

func parseSet(where string, b []byte) (jwk.Set, error) {
	if len(b) > maxDocumentBytes {
		return nil, fmt.Errorf("JWKS %s: larger than %d bytes", where, maxDocumentBytes)
	}
	set, err := jwk.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", where, err)
	}
	if set.Len() == 0 {
		return nil, fmt.Errorf("JWKS %s: no keys", where)
	}
	return set, nil
}

// keySnapshot is a loaded key set and when it was loaded.
type keySnapshot struct {
	set jwk.Set
	at  time.Time
}

// keyCache holds the key set and refreshes it: when a token names a key
// it does not hold, or when the set is older than maxAge, but never twice
// within interval (within retry while no set was ever loaded). Lookups of
// known keys never wait for a refresh.
type keyCache struct {
	src       keySource
	interval  time.Duration
	maxAge    time.Duration
	retry     time.Duration
	now       func() time.Time
	log       *slog.Logger
	onRefresh func(ok bool)

	cur atomic.Pointer[keySnapshot]

	mu          sync.Mutex // serialises refreshes; guards the fields below
	lastAttempt time.Time
	lastErr     error
}

// load fetches the set at start. It does not count as a refresh: the
// first token with an unknown key may still fetch the set once.
func (c *keyCache) load(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refresh(ctx)
	c.lastAttempt = time.Time{}
}

func (c *keyCache) ready() error {
	if c.cur.Load() != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastErr != nil {
		return fmt.Errorf("%w: %v", ErrKeysUnavailable, c.lastErr)
	}
	return ErrKeysUnavailable
}

// lookup returns the key named kid and the key set it is from.
func (c *keyCache) lookup(ctx context.Context, kid string) (jwk.Key, *keySnapshot, error) {
	if snap := c.fresh(); snap != nil {
		if k, ok := snap.set.LookupKeyID(kid); ok {
			return k, snap, nil
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	snap := c.cur.Load()
	stale := snap == nil || c.now().Sub(snap.at) >= c.maxAge
	if snap != nil && !stale {
		// Another request may have refreshed the set meanwhile.
		if k, ok := snap.set.LookupKeyID(kid); ok {
			return k, snap, nil
		}
	}
	if c.mayRefresh() {
		c.refresh(ctx)
		snap = c.cur.Load()
	}
	if snap == nil {
		if c.lastErr != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, c.lastErr)
		}
		return nil, nil, ErrKeysUnavailable
	}
	if k, ok := snap.set.LookupKeyID(kid); ok {
		return k, snap, nil
	}
	return nil, nil, invalid("signing key %q is not among the issuer's keys", kid)
}

// fresh is the key set held, when it is younger than maxAge.
func (c *keyCache) fresh() *keySnapshot {
	if snap := c.cur.Load(); snap != nil && c.now().Sub(snap.at) < c.maxAge {
		return snap
	}
	return nil
}

// mayRefresh says whether the interval since the last fetch has passed.
// c.mu is held.
func (c *keyCache) mayRefresh() bool {
	if c.lastAttempt.IsZero() {
		return true
	}
	wait := c.interval
	if c.cur.Load() == nil {
		wait = min(c.retry, c.interval)
	}
	return c.now().Sub(c.lastAttempt) >= wait
}

// refresh fetches the set; a failure keeps the set held. c.mu is held.
func (c *keyCache) refresh(ctx context.Context) {
	c.lastAttempt = c.now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	set, err := c.src.fetch(ctx)
	if c.onRefresh != nil {
		c.onRefresh(err == nil)
	}
	if err != nil {
		c.lastErr = err
		c.log.Warn("cannot load the token signing keys; keeping the keys held", "source", c.src.String(), "err", err)
		return
	}
	c.lastErr = nil
	c.cur.Store(&keySnapshot{set: set, at: c.now()})
	c.log.Info("token signing keys loaded", "source", c.src.String(), "keys", set.Len())
}
