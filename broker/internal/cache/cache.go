// Package cache keeps connection records in memory so that GetCredential
// does not read Vault on every call. Entries are dropped when the connection
// changes (the broker's own admin calls, and the connection service's change
// stream for changes made through other brokers).
package cache

import (
	"sync"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// Cache maps connection ids to their last-read records.
type Cache struct {
	mu sync.RWMutex
	m  map[string]vault.Record
}

// New returns an empty cache.
func New() *Cache { return &Cache{m: map[string]vault.Record{}} }

// Get returns the cached record of a connection.
func (c *Cache) Get(id string) (vault.Record, bool) {
	c.mu.RLock()
	r, ok := c.m[id]
	c.mu.RUnlock()
	return r, ok
}

// Put caches a record.
func (c *Cache) Put(id string, r vault.Record) {
	c.mu.Lock()
	c.m[id] = r
	c.mu.Unlock()
}

// Drop forgets a connection.
func (c *Cache) Drop(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// DropAll forgets everything (after a gap in the change stream).
func (c *Cache) DropAll() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}
