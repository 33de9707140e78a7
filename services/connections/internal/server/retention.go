package server

import (
	"context"
	"log/slog"
	"time"
)

// How the access log is pruned: a first round shortly after start, then
// one an hour, each deleting in batches until a batch comes back short.
const (
	pruneFirstDelay = time.Minute
	pruneInterval   = time.Hour
	pruneBatch      = 10_000
)

// accessPruner is the part of store.Store the retention loop uses.
type accessPruner interface {
	PruneAccessEvents(ctx context.Context, before time.Time, limit int) (int64, error)
}

// accessRetention deletes access events whose last access is older than
// retention. Every replica runs one; rounds that overlap on a shared
// database only find less to delete.
type accessRetention struct {
	store           accessPruner
	retention       time.Duration
	first, interval time.Duration
	batch           int
	logger          *slog.Logger
	now             func() time.Time
}

func newAccessRetention(st accessPruner, retention time.Duration, logger *slog.Logger) *accessRetention {
	return &accessRetention{store: st, retention: retention, first: pruneFirstDelay, interval: pruneInterval,
		batch: pruneBatch, logger: logger, now: time.Now}
}

// run prunes until ctx ends.
func (r *accessRetention) run(ctx context.Context) {
	t := time.NewTimer(r.first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.prune(ctx)
		t.Reset(r.interval)
	}
}

// prune runs one round and returns how many events it deleted.
func (r *accessRetention) prune(ctx context.Context) int64 {
	before := r.now().Add(-r.retention)
	var total int64
	for {
		n, err := r.store.PruneAccessEvents(ctx, before, r.batch)
		total += n
		if err != nil {
			if ctx.Err() == nil {
				r.logger.Warn("pruning the access log failed; retrying next round", "error", err,
					"deleted", total, "before", before)
			}
			return total
		}
		if n < int64(r.batch) || ctx.Err() != nil {
			break
		}
	}
	if total > 0 {
		r.logger.Info("access log pruned", "deleted", total, "before", before, "retention", r.retention)
	}
	return total
}
