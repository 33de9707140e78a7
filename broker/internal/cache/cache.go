// Package cache keeps connection records in memory so that GetCredential
// does not read Vault on every call. Entries are dropped when the connection
// changes (the broker's own admin calls, and the connection service's change
// stream for changes made through other brokers), and are not trusted past a
// maximum age, so that a missed change cannot be served forever.
package cache

import (
	"strings"
	"sync"
	"time"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// Cache maps connection ids to their last-read records.
type Cache struct {
	maxAge time.Duration
	now    func() time.Time

	mu sync.RWMutex
	m  map[string]entry
}

type entry struct {
	rec    vault.Record
	stored time.Time
}

// New returns an empty cache whose entries are fresh for maxAge; with
// maxAge 0 nothing is ever fresh (caching off) but Stale still answers.
func New(maxAge time.Duration) *Cache {
	return &Cache{maxAge: maxAge, now: time.Now, m: map[string]entry{}}
}

// Get returns a connection's record if it was stored less than maxAge ago.
func (c *Cache) Get(id string) (vault.Record, bool) {
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if !ok || c.now().Sub(e.stored) >= c.maxAge {
		return vault.Record{}, false
	}
	return e.rec, true
}

// Stale returns a connection's record whatever its age: the fallback while
// Vault is unreachable.
func (c *Cache) Stale(id string) (vault.Record, bool) {
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	return e.rec, ok
}

// Put caches a record.
func (c *Cache) Put(id string, r vault.Record) {
	c.mu.Lock()
	c.m[id] = entry{rec: r, stored: c.now()}
	c.mu.Unlock()
}

// Drop forgets a connection.
func (c *Cache) Drop(id string) {
	c.mu.Lock()
	delete(c.m, id)
	// Records are cached by secret generation (id/generation): a change may
	// have made another generation live, and the old ones are garbage.
	for k := range c.m {
		if strings.HasPrefix(k, id+"/") {
			delete(c.m, k)
		}
	}
	c.mu.Unlock()
}

// DropAll forgets everything (after a gap in the change stream).
func (c *Cache) DropAll() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}
