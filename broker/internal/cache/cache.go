// Package cache keeps connection records in memory so that GetCredential
// does not read Vault on every call. Entries are dropped when the connection
// changes (the broker's own admin calls, and the connection service's change
// stream for changes made through other brokers), and are not trusted past a
// maximum age, so that a missed change cannot be served forever.
package cache

import (
	"sync"
	"time"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// Cache maps secret keys (vault.Key: connection id and generation) to
// their last-read records, grouped by connection so that a change drops a
// connection's entries without scanning the others.
type Cache struct {
	maxAge time.Duration
	now    func() time.Time

	mu sync.RWMutex
	m  map[string]map[string]entry // connection id -> generation -> entry
}

type entry struct {
	rec    vault.Record
	stored time.Time
}

// New returns an empty cache whose entries are fresh for maxAge; with
// maxAge 0 nothing is ever fresh (caching off) but Stale still answers.
func New(maxAge time.Duration) *Cache {
	return &Cache{maxAge: maxAge, now: time.Now, m: map[string]map[string]entry{}}
}

// lookup returns the entry for key.
func (c *Cache) lookup(key string) (entry, bool) {
	id, gen := vault.SplitKey(key)
	c.mu.RLock()
	e, ok := c.m[id][gen]
	c.mu.RUnlock()
	return e, ok
}

// Get returns a record if it was stored less than maxAge ago.
func (c *Cache) Get(key string) (vault.Record, bool) {
	e, ok := c.lookup(key)
	if !ok || c.now().Sub(e.stored) >= c.maxAge {
		return vault.Record{}, false
	}
	return e.rec, true
}

// Stale returns a record whatever its age: the fallback while Vault is
// unreachable.
func (c *Cache) Stale(key string) (vault.Record, bool) {
	e, ok := c.lookup(key)
	return e.rec, ok
}

// Put caches a record.
func (c *Cache) Put(key string, r vault.Record) {
	id, gen := vault.SplitKey(key)
	c.mu.Lock()
	gens := c.m[id]
	if gens == nil {
		gens = map[string]entry{}
		c.m[id] = gens
	}
	gens[gen] = entry{rec: r, stored: c.now()}
	c.mu.Unlock()
}

// Drop forgets a connection: every generation of its secret (a change may
// have made another generation live, and the old ones are garbage). Given a
// key (id/generation) it forgets that connection all the same.
func (c *Cache) Drop(idOrKey string) {
	id, _ := vault.SplitKey(idOrKey)
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// Keep handles a change to a connection whose metadata now names secret
// generation gen: every other generation of it is forgotten (garbage), and
// gen's entry, if any, is no longer fresh (the next call reads Vault again)
// but stays as the fallback while Vault is unreachable. Generations never
// change content except through OAuth upkeep, so the entry is still the
// connection's credential, at worst with an older token.
func (c *Cache) Keep(id, gen string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id][gen]
	if !ok {
		delete(c.m, id)
		return
	}
	e.stored = time.Time{}
	c.m[id] = map[string]entry{gen: e}
}

// DropAll forgets everything (after a gap in the change stream).
func (c *Cache) DropAll() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}
