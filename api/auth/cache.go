package auth

import (
	"slices"
	"sync"
	"time"
)

// maxCachedTokens bounds the tokens a Verifier remembers.
const maxCachedTokens = 10000

// tokenCache remembers the identities of verified tokens, by the SHA-256
// of the token, each until its time and only while the key set that
// verified it is the key set held and fresh: a refreshed or stale key set
// (keys withdrawn, KeysMaxAge passed) sends every token through full
// verification again. It is safe for concurrent use.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	entries map[[32]byte]cachedToken
}

type cachedToken struct {
	id    Identity
	keys  *keySnapshot
	until time.Time
}

func newTokenCache(maxEntries int) *tokenCache {
	return &tokenCache{max: maxEntries, entries: map[[32]byte]cachedToken{}}
}

// get returns the identity remembered for the token whose hash is sum,
// when it was verified with keys (the key set held, nil when none is
// fresh) and its time has not passed at now.
func (c *tokenCache) get(sum [32]byte, keys *keySnapshot, now time.Time) (Identity, bool) {
	if keys == nil {
		return Identity{}, false
	}
	c.mu.Lock()
	e, ok := c.entries[sum]
	c.mu.Unlock()
	if !ok || e.keys != keys || !now.Before(e.until) {
		return Identity{}, false
	}
	id := e.id
	id.Groups = slices.Clone(e.id.Groups) // the caller's to change
	return id, true
}

// put remembers id for the token whose hash is sum, verified with keys,
// until until. When the cache is full it first forgets the entries whose
// time has passed, then, if none had, every entry: the bound holds and a
// burst of new tokens costs a verification each, as without the cache.
func (c *tokenCache) put(sum [32]byte, id Identity, keys *keySnapshot, until, now time.Time) {
	if keys == nil || !now.Before(until) {
		return
	}
	id.Groups = slices.Clone(id.Groups)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[sum]; !ok && len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[sum] = cachedToken{id: id, keys: keys, until: until}
}
