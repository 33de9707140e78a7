package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/integrationhub/connections/services/connections/internal/store"
	"github.com/integrationhub/connections/services/connections/internal/store/storesqlite"
)

// fakePruner returns the queued results in turn, then 0, and records calls.
type fakePruner struct {
	mu      sync.Mutex
	results []pruneResult
	calls   []pruneCall
	called  chan struct{}
}

type pruneResult struct {
	n   int64
	err error
}

type pruneCall struct {
	Before time.Time
	Limit  int
}

func (f *fakePruner) PruneAccessEvents(_ context.Context, before time.Time, limit int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, pruneCall{before, limit})
	if f.called != nil {
		select {
		case f.called <- struct{}{}:
		default:
		}
	}
	if len(f.results) == 0 {
		return 0, nil
	}
	r := f.results[0]
	f.results = f.results[1:]
	return r.n, r.err
}

func testRetention(p accessPruner, logs *bytes.Buffer) *accessRetention {
	r := newAccessRetention(p, 24*time.Hour, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	r.batch = 10
	r.now = func() time.Time { return time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC) }
	return r
}

func TestAccessRetentionRound(t *testing.T) {
	boom := errors.New("database is down")
	tests := []struct {
		name      string
		results   []pruneResult
		wantCalls int
		wantTotal int64
		wantLog   string // the level and message logged, "" for nothing
	}{
		{"nothing to delete", nil, 1, 0, ""},
		{"one short batch", []pruneResult{{n: 3}}, 1, 3, "level=INFO msg=\"access log pruned\" deleted=3"},
		{"full batches until a short one", []pruneResult{{n: 10}, {n: 10}, {n: 4}}, 3, 24,
			"level=INFO msg=\"access log pruned\" deleted=24"},
		{"full batches until an empty one", []pruneResult{{n: 10}, {n: 0}}, 2, 10,
			"level=INFO msg=\"access log pruned\" deleted=10"},
		{"an error ends the round", []pruneResult{{n: 10}, {err: boom}, {n: 5}}, 2, 10,
			"level=WARN msg=\"pruning the access log failed; retrying next round\" error=\"database is down\" deleted=10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			f := &fakePruner{results: tt.results}
			r := testRetention(f, &logs)
			if got := r.prune(t.Context()); got != tt.wantTotal {
				t.Errorf("prune = %d, want %d", got, tt.wantTotal)
			}
			want := make([]pruneCall, tt.wantCalls)
			for i := range want {
				want[i] = pruneCall{Before: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), Limit: 10}
			}
			if diff := cmp.Diff(want, f.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			switch {
			case tt.wantLog == "" && logs.Len() != 0:
				t.Errorf("logged %q, want nothing", logs.String())
			case tt.wantLog != "" && !strings.Contains(logs.String(), tt.wantLog):
				t.Errorf("logged %q, want %q", logs.String(), tt.wantLog)
			}
		})
	}
}

// A round cut short by shutdown is not a failure worth a warning.
func TestAccessRetentionShutdownQuiet(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var logs bytes.Buffer
	r := testRetention(&fakePruner{results: []pruneResult{{err: context.Canceled}}}, &logs)
	r.prune(ctx)
	if logs.Len() != 0 {
		t.Errorf("logged %q on shutdown, want nothing", logs.String())
	}
}

// The loop prunes shortly after start, then every interval, and stops with
// its context.
func TestAccessRetentionLoop(t *testing.T) {
	f := &fakePruner{called: make(chan struct{}, 1)}
	r := testRetention(f, &bytes.Buffer{})
	r.first, r.interval = time.Millisecond, 5*time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		r.run(ctx)
		close(done)
	}()
	for range 3 {
		select {
		case <-f.called:
		case <-time.After(10 * time.Second):
			t.Fatal("no prune round")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not stop with its context")
	}
}

// Against a real store: old events go, recent ones stay, in batches.
func TestAccessRetentionSQLite(t *testing.T) {
	st, err := storesqlite.Open(t.Context(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
	var evs []store.AccessEvent
	for i := range 25 {
		last := now.Add(-48 * time.Hour)
		if i%5 == 0 {
			last = now.Add(-time.Hour)
		}
		evs = append(evs, store.AccessEvent{Operation: "GetCredential", Decision: store.AccessAllowed, Count: 1,
			FirstTime: last, LastTime: last})
	}
	if err := st.RecordAccess(t.Context(), "", evs); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r := testRetention(st, &logs)
	r.batch = 7
	if n := r.prune(t.Context()); n != 20 {
		t.Errorf("prune = %d, want 20; logs:\n%s", n, logs.String())
	}
	left, err := st.AccessEvents(t.Context(), store.AccessQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 5 {
		t.Errorf("%d events left, want the 5 recent ones", len(left))
	}
	for _, e := range left {
		if !e.LastTime.Equal(now.Add(-time.Hour)) {
			t.Errorf("event %d (last access %v) kept, want it pruned", e.Seq, e.LastTime)
		}
	}
}
