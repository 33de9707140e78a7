// Package tokencache remembers bearer tokens that verified, until they
// expire. A caller sends the same token on thousands of calls; with the
// cache, later calls cost a map lookup instead of a signature check and
// JSON parsing. What a cached token still needs checking (a retired key,
// a replaced key set) is the user's to check on each hit.
package tokencache

import (
	"sync"
	"sync/atomic"
	"time"
)

// Cache maps raw tokens to what their verification produced.
type Cache[V any] struct {
	max int64
	m   sync.Map // raw token -> entry[V]
	n   atomic.Int64
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// New returns a cache of about max tokens at most: past that, expired
// tokens are swept, and if too few had expired everything is forgotten
// (each token is then verified once more).
func New[V any](max int) *Cache[V] {
	return &Cache[V]{max: int64(max)}
}

// Get returns what was stored for raw, unless it expired by now (then it is
// forgotten and Get reports false).
func (c *Cache[V]) Get(raw string, now time.Time) (V, bool) {
	var zero V
	e, ok := c.m.Load(raw)
	if !ok {
		return zero, false
	}
	if en := e.(entry[V]); now.Before(en.expires) {
		return en.v, true
	}
	c.m.Delete(raw)
	return zero, false
}

// Put remembers v for raw until expires.
func (c *Cache[V]) Put(raw string, v V, expires, now time.Time) {
	if c.n.Add(1) > c.max {
		c.sweep(now)
	}
	c.m.Store(raw, entry[V]{v: v, expires: expires})
}

// Forget drops raw (its key was retired, say).
func (c *Cache[V]) Forget(raw string) { c.m.Delete(raw) }

// sweep forgets expired tokens, or every token when too few have expired.
func (c *Cache[V]) sweep(now time.Time) {
	var n int64
	c.m.Range(func(k, e any) bool {
		if now.Before(e.(entry[V]).expires) {
			n++
		} else {
			c.m.Delete(k)
		}
		return true
	})
	if n > c.max/2 {
		c.m.Clear()
		n = 0
	}
	c.n.Store(n)
}
