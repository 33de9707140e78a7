// Package conninfo is what the broker knows about connections besides their
// secrets: status, app, workspace, and which runtime user connections stand
// in for a connection. GetCredential checks it on every call, so it is held
// in memory: read from the connection service on first use, then kept
// current by the change stream (each change carries the connection), and not
// trusted past a maximum age, so that a missed change cannot live forever.
package conninfo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
)

// Source reads connections from the connection service.
type Source interface {
	// Connection returns a connection; a NotFound status when there is none.
	Connection(ctx context.Context, id string) (*connectionsv1.Connection, error)
	// RuntimeUserConnection returns the runtime user's connection under
	// parent, or nil when the user has none.
	RuntimeUserConnection(ctx context.Context, parentID, runtimeUser string) (*connectionsv1.Connection, error)
}

// Cache holds connections read from a Source.
type Cache struct {
	src    Source
	maxAge time.Duration
	now    func() time.Time
	group  singleflight.Group

	mu sync.RWMutex
	// gen counts invalidations, so that a read that started before a change
	// does not store what it read.
	gen      uint64
	conns    map[string]entry   // by connection id
	children map[childKey]entry // runtime user connection (nil: none) by parent and user
}

type entry struct {
	conn   *connectionsv1.Connection
	stored time.Time
}

type childKey struct{ parent, user string }

// New returns an empty cache over src whose entries are trusted for maxAge.
func New(src Source, maxAge time.Duration) *Cache {
	return &Cache{src: src, maxAge: maxAge, now: time.Now, conns: map[string]entry{}, children: map[childKey]entry{}}
}

// Connection returns connection id, from memory when it is fresh. The
// returned message is shared: do not modify it.
func (c *Cache) Connection(ctx context.Context, id string) (*connectionsv1.Connection, error) {
	if e, ok := c.fresh(func() (entry, bool) { e, ok := c.conns[id]; return e, ok }); ok {
		return e.conn, nil
	}
	return c.read(ctx, "c/"+id, func(ctx context.Context, gen uint64) (*connectionsv1.Connection, error) {
		conn, err := c.src.Connection(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("conninfo: connection %s: %w", id, err)
		}
		c.store(gen, func() { c.conns[id] = entry{conn: conn, stored: c.now()} })
		return conn, nil
	})
}

// RuntimeUserConnection returns the runtime user's connection standing in
// for parentID, or nil when the user has none.
func (c *Cache) RuntimeUserConnection(ctx context.Context, parentID, user string) (*connectionsv1.Connection, error) {
	k := childKey{parentID, user}
	if e, ok := c.fresh(func() (entry, bool) { e, ok := c.children[k]; return e, ok }); ok {
		return e.conn, nil
	}
	return c.read(ctx, "r/"+parentID+"/"+user, func(ctx context.Context, gen uint64) (*connectionsv1.Connection, error) {
		conn, err := c.src.RuntimeUserConnection(ctx, parentID, user)
		if err != nil {
			return nil, fmt.Errorf("conninfo: runtime user connection of %s: %w", parentID, err)
		}
		c.store(gen, func() { c.children[k] = entry{conn: conn, stored: c.now()} })
		return conn, nil
	})
}

// readTimeout bounds a read from the connection service.
const readTimeout = 10 * time.Second

// read runs fetch once for all concurrent callers of key in the current
// generation: a caller that starts after a change does not join a read begun
// before it. The read is not tied to any one caller's context, so a caller
// that gives up does not fail the others; each waits only as long as its own
// context allows.
func (c *Cache) read(ctx context.Context, key string, fetch func(context.Context, uint64) (*connectionsv1.Connection, error)) (*connectionsv1.Connection, error) {
	gen := c.generation()
	ch := c.group.DoChan(fmt.Sprintf("%d/%s", gen, key), func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
		defer cancel()
		return fetch(rctx, gen)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*connectionsv1.Connection), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Cache) fresh(get func() (entry, bool)) (entry, bool) {
	c.mu.RLock()
	e, ok := get()
	c.mu.RUnlock()
	return e, ok && c.now().Sub(e.stored) < c.maxAge
}

func (c *Cache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// maxEntries bounds each map; past it, the map is cleared (entries are
// read again on next use).
const maxEntries = 100_000

// store runs put unless the cache changed since gen was read.
func (c *Cache) store(gen uint64, put func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.conns) >= maxEntries {
		clear(c.conns)
	}
	if len(c.children) >= maxEntries {
		clear(c.children)
	}
	put()
}

// Changed applies one change from the stream: the connection's entry, and
// its parent's runtime user entry when it is a runtime user connection, are
// forgotten, to be read again on next use.
func (c *Cache) Changed(conn *connectionsv1.Connection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.conns, conn.GetId())
	if p := conn.GetParentConnectionId(); p != "" {
		delete(c.children, childKey{p, conn.GetRuntimeUser()})
	}
}

// DropAll forgets everything (after a gap in the change stream).
func (c *Cache) DropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.conns)
	clear(c.children)
}
