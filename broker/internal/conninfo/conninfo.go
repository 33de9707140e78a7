// Package conninfo is what the broker knows about connections besides their
// secrets: status, app, workspace, and which runtime user connections stand
// in for a connection. GetCredential checks it on every call, so it is held
// in memory: read from the connection service on first use, then kept
// current by the change stream (each change carries the connection), and not
// trusted past a maximum age, so that a missed change cannot live forever.
package conninfo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	// reading counts the reads of each connection under way: a change that
	// arrives during one is kept (the read's answer is not, see store).
	reading map[string]int
}

type entry struct {
	conn   *connectionsv1.Connection
	stored time.Time
}

type childKey struct{ parent, user string }

// readKey names a runtime user entry in Cache.reading.
func (k childKey) readKey() string { return "r\x00" + k.parent + "\x00" + k.user }

// reads notes a read of key under way until the returned function is called.
func (c *Cache) reads(key string) (done func()) {
	c.mu.Lock()
	c.reading[key]++
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		if c.reading[key]--; c.reading[key] <= 0 {
			delete(c.reading, key)
		}
		c.mu.Unlock()
	}
}

// New returns an empty cache over src whose entries are trusted for maxAge.
func New(src Source, maxAge time.Duration) *Cache {
	return &Cache{src: src, maxAge: maxAge, now: time.Now, conns: map[string]entry{}, children: map[childKey]entry{},
		reading: map[string]int{}}
}

// Connection returns connection id, from memory when it is fresh. The
// returned message is shared: do not modify it. While the connection
// service cannot be reached, an entry past its age is still served: nothing
// can change a connection while its service is down, and the change stream
// catches up when it is back.
func (c *Cache) Connection(ctx context.Context, id string) (*connectionsv1.Connection, error) {
	get := func() (entry, bool) { e, ok := c.conns[id]; return e, ok }
	if e, ok := c.fresh(get); ok {
		return e.conn, nil
	}
	return c.readOrStale(ctx, "c/"+id, get, func(ctx context.Context, gen uint64) (*connectionsv1.Connection, error) {
		defer c.reads(id)()
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
	get := func() (entry, bool) { e, ok := c.children[k]; return e, ok }
	if e, ok := c.fresh(get); ok {
		return e.conn, nil
	}
	return c.readOrStale(ctx, "r/"+parentID+"/"+user, get, func(ctx context.Context, gen uint64) (*connectionsv1.Connection, error) {
		defer c.reads(k.readKey())()
		conn, err := c.src.RuntimeUserConnection(ctx, parentID, user)
		if err != nil {
			return nil, fmt.Errorf("conninfo: runtime user connection of %s: %w", parentID, err)
		}
		c.store(gen, func() { c.children[k] = entry{conn: conn, stored: c.now()} })
		return conn, nil
	})
}

// readOrStale reads key through fetch; when the connection service cannot
// be reached, the entry get finds is served however old it is. A caller
// that has such an entry waits for the service at most staleWait (the read
// goes on for later callers), so an outage does not slow calls down.
func (c *Cache) readOrStale(ctx context.Context, key string, get func() (entry, bool),
	fetch func(context.Context, uint64) (*connectionsv1.Connection, error)) (*connectionsv1.Connection, error) {
	c.mu.RLock()
	stale, ok := get()
	c.mu.RUnlock()
	if !ok {
		return c.read(ctx, key, fetch)
	}
	wctx, cancel := context.WithTimeout(ctx, staleWait)
	defer cancel()
	conn, err := c.read(wctx, key, fetch)
	if err != nil && (Unreachable(err) || errors.Is(err, context.DeadlineExceeded)) {
		return stale.conn, nil
	}
	return conn, err
}

// staleWait is how long a caller holding an old entry waits for the
// connection service before the old entry is served.
const staleWait = 250 * time.Millisecond

// Unreachable reports whether err says the connection service could not be
// reached (as opposed to an answer such as NotFound).
func Unreachable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
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

// Changed applies one change from the stream, which carries the connection
// as it now is (gone: deleted). An entry the cache holds, or is reading, is
// replaced by it, not dropped: a connection the broker was serving stays
// servable through a later outage of the connection service even when a
// change reached the broker just before (a read under way when a change
// arrives is not stored, since it may predate the change; the change's
// connection is). A deleted connection's entry is dropped, so that it is
// never served again. Other connections are not added.
func (c *Cache) Changed(conn *connectionsv1.Connection, gone bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	now := c.now()
	id := conn.GetId()
	if _, held := c.conns[id]; held || c.reading[id] > 0 {
		if gone {
			delete(c.conns, id)
		} else {
			c.conns[id] = entry{conn: conn, stored: now}
		}
	}
	if p := conn.GetParentConnectionId(); p != "" {
		k := childKey{p, conn.GetRuntimeUser()}
		if _, held := c.children[k]; held || c.reading[k.readKey()] > 0 {
			if gone {
				c.children[k] = entry{stored: now} // the user has no connection now
			} else {
				c.children[k] = entry{conn: conn, stored: now}
			}
		}
	}
}

// Forget drops the entry of connection id, and the runtime user entries
// that name it, so that they are read again on next use.
func (c *Cache) Forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.conns, id)
	for k, e := range c.children {
		if k.parent == id || (e.conn != nil && e.conn.GetId() == id) {
			delete(c.children, k)
		}
	}
}

// Resync reads every held entry again from the source, after a gap in the
// change stream (or before the first change is known), and replaces them
// all at once: until it succeeds, what is held keeps being served. It
// returns the ids of connections that changed or are gone, whose cached
// credentials must go too. On any read failure nothing is replaced.
func (c *Cache) Resync(ctx context.Context) (changed []string, err error) {
	c.mu.RLock()
	gen := c.gen
	conns := maps.Clone(c.conns)
	children := maps.Clone(c.children)
	c.mu.RUnlock()

	now := c.now()
	newConns := make(map[string]entry, len(conns))
	for id, old := range conns {
		conn, err := c.src.Connection(ctx, id)
		switch {
		case status.Code(err) == codes.NotFound:
			changed = append(changed, id)
			continue
		case err != nil:
			return nil, fmt.Errorf("conninfo.Resync: %w", err)
		}
		if conn.GetEtag() != old.conn.GetEtag() {
			changed = append(changed, id)
		}
		newConns[id] = entry{conn: conn, stored: now}
	}
	newChildren := make(map[childKey]entry, len(children))
	for k, old := range children {
		conn, err := c.src.RuntimeUserConnection(ctx, k.parent, k.user)
		if err != nil {
			return nil, fmt.Errorf("conninfo.Resync: %w", err)
		}
		if conn.GetId() != old.conn.GetId() || conn.GetEtag() != old.conn.GetEtag() {
			changed = append(changed, k.parent)
			if old.conn != nil {
				changed = append(changed, old.conn.GetId())
			}
		}
		newChildren[k] = entry{conn: conn, stored: now}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if c.gen-1 == gen {
		c.conns, c.children = newConns, newChildren
		return changed, nil
	}
	// Changes arrived meanwhile: keep what they left and forget only what
	// the resync found changed.
	for _, id := range changed {
		delete(c.conns, id)
	}
	for k, e := range newChildren {
		if old, ok := children[k]; ok && (old.conn.GetId() != e.conn.GetId() || old.conn.GetEtag() != e.conn.GetEtag()) {
			delete(c.children, k)
		}
	}
	return changed, nil
}
