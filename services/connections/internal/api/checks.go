package api

import (
	"context"
	"hash/fnv"
	"time"

	"golang.org/x/time/rate"

	"github.com/integrationhub/connections/services/connections/internal/store"
)

// ChecksConfig tunes the scheduled checks.
type ChecksConfig struct {
	// Period is how often the leader looks for connections due.
	Period time.Duration
	// Interval is how often an active connection is verified, unless its
	// connector's check_interval says otherwise.
	Interval time.Duration
	// Rate bounds the checks per second sent to one app (connector).
	Rate float64
}

// checkActor names the scheduled checks in the audit log.
const checkActor = "system:scheduled-check"

// checkBatch bounds the connections one pass looks at.
const checkBatch = 200

// RunChecks verifies active connections with their connector's test
// request, each about once per its interval, so that a connection breaks in
// a check rather than in a customer's recipe run. Only the replica holding
// the reconciler's lock checks, one pass per period. Each connection's due
// time is spread by up to a tenth of the interval (from its id), so that
// connections made together are not all checked together; checks to one
// app are rate-limited. A check whose app could not be reached leaves the
// connection active and is tried again after a tenth of the interval.
// Outcomes are recorded as TestConnection records them, by
// "system:scheduled-check" in the audit log.
func (s *Server) RunChecks(ctx context.Context) {
	cfg := s.checks
	if cfg.Period <= 0 {
		return
	}
	s.runAsLeader(ctx, "scheduled checks", cfg.Period, store.LockReconciler, nil, newChecker(s, cfg).pass)
}

func newChecker(s *Server, cfg ChecksConfig) *checker {
	return &checker{s: s, cfg: cfg, batch: checkBatch, limits: map[string]*rate.Limiter{}, tried: map[string]time.Time{}, now: time.Now}
}

type checker struct {
	s      *Server
	cfg    ChecksConfig
	batch  int                      // connections checked (and read per page) at most in a pass
	limits map[string]*rate.Limiter // by connector
	tried  map[string]time.Time     // connection id -> last attempt that recorded no verification
	now    func() time.Time
}

// pass checks the connections due now.
func (c *checker) pass(ctx context.Context) error {
	now := c.now()
	// The shortest interval any connector has bounds what can be due.
	shortest := c.cfg.Interval
	for _, conn := range c.s.catalog.All() {
		if interval, ok := c.s.checkInterval(conn.Name); ok && interval < shortest {
			shortest = interval
		}
	}
	for id, at := range c.tried {
		if now.Sub(at) > c.cfg.Interval {
			delete(c.tried, id)
		}
	}
	// Pages through what may be due, so that connections never checked
	// (their connector has no test request, or check_interval 0s), which
	// sort first, cannot hide the others; a pass checks at most c.batch
	// and reads at most checkScanPages pages.
	checked := 0
	var last *store.Connection
	for scanned := 0; checked < c.batch && scanned < checkScanPages*c.batch; scanned += c.batch {
		page, err := c.s.store.DueForCheck(ctx, now.Add(-shortest), last, c.batch)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		last = page[len(page)-1]
		n, err := c.checkPage(ctx, now, page, c.batch-checked)
		checked += n
		if err != nil {
			return nil // ctx ended
		}
	}
	if checked > 0 {
		c.s.logger.InfoContext(ctx, "scheduled checks", "checked", checked)
	}
	return nil
}

// checkScanPages bounds the pages one pass reads looking for due ones.
const checkScanPages = 20

// checkPage checks the connections of page that are due, at most max;
// it returns how many it checked, and an error only when ctx ended.
func (c *checker) checkPage(ctx context.Context, now time.Time, page []*store.Connection, max int) (int, error) {
	checked := 0
	for _, conn := range page {
		if checked >= max {
			break
		}
		interval, _ := c.s.checkInterval(conn.Connector)
		due, ok := c.s.dueAt(conn.ID, conn.Connector, conn.CreateTime, conn.LastVerifyTime)
		if !ok || now.Before(due) {
			continue
		}
		if at, ok := c.tried[conn.ID]; ok && now.Sub(at) < interval/10 {
			continue
		}
		if err := c.limiter(conn.Connector).Wait(ctx); err != nil {
			return checked, err
		}
		after, _, err := c.s.verify(ctx, checkActor, conn)
		checked++
		if err != nil || after.LastVerifyTime.Equal(conn.LastVerifyTime) {
			c.tried[conn.ID] = now
		}
		if err != nil && ctx.Err() == nil {
			c.s.logger.InfoContext(ctx, "scheduled check not done", "connection_id", conn.ID, "err", err)
		}
	}
	return checked, ctx.Err()
}

// checkInterval is how often a connection to connector is checked; false
// when never (its connector says 0, has no test request, or is gone from
// the catalog).
//
// A connector whose refresh tokens expire when idle is checked at least
// every half of that time (the check refreshes the token: see verify).
func (s *Server) checkInterval(connector string) (time.Duration, bool) {
	cat, ok := s.catalog.Get(connector)
	if !ok || cat.TestRequest == nil {
		return 0, false
	}
	interval, ok := s.checks.Interval, true
	if cat.CheckInterval != nil {
		interval, ok = *cat.CheckInterval, *cat.CheckInterval > 0
	}
	if idle := cat.RefreshTokenIdleTTL; idle != nil && (!ok || *idle/2 < interval) {
		interval, ok = *idle/2, true
	}
	return interval, ok
}

// dueAt is when an active connection made at made and last verified at
// verified is next due for its scheduled check; false when it never is.
func (s *Server) dueAt(id, connector string, made, verified time.Time) (time.Time, bool) {
	if s.checks.Period <= 0 {
		return time.Time{}, false
	}
	interval, ok := s.checkInterval(connector)
	if !ok {
		return time.Time{}, false
	}
	// A connection is first checked an interval after it was made: a
	// person has just set it up.
	last := verified
	if made.After(last) {
		last = made
	}
	return last.Add(interval + spread(id, interval)), true
}

func (c *checker) limiter(connector string) *rate.Limiter {
	l, ok := c.limits[connector]
	if !ok {
		l = rate.NewLimiter(rate.Limit(c.cfg.Rate), 1)
		c.limits[connector] = l
	}
	return l
}

// spread is connection id's share of a tenth of interval: the same for the
// same connection on every replica and pass.
func spread(id string, interval time.Duration) time.Duration {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return time.Duration(h.Sum64() % uint64(interval/10+1))
}
