package e2e

import (
	"context"
	"testing"
	"time"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/pgtest"
)

// Two connection-service processes on one PostgreSQL: a change made through
// one reaches a WatchConnections client of the other, in order, and a watch
// resumed from a cursor continues without repeats or gaps.
func TestWatchAcrossReplicas(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	replicaA, err := stack.StartConnectionService(t.Context(), dsn, devstack.Extra{LogName: "replica-a.log"})
	if err != nil {
		t.Fatal(err)
	}
	replicaB, err := stack.StartConnectionService(t.Context(), dsn, devstack.Extra{LogName: "replica-b.log"})
	if err != nil {
		t.Fatal(err)
	}
	a := connectionsv1.NewConnectionServiceClient(dial(t, replicaA.Addr))
	b := connectionsv1.NewConnectionServiceClient(dial(t, replicaB.Addr))
	const ws = "ws-watch"

	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	watch, err := b.WatchConnections(ctx, &connectionsv1.WatchConnectionsRequest{WorkspaceId: ws, Bookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	// The watch starts "from now" once the server has read the cursor, which
	// its first bookmark says; only then is anything changed.
	if ev, err := recvAny(watch, 10*time.Second); err != nil || ev.GetType() != connectionsv1.ChangeType_CHANGE_TYPE_BOOKMARK {
		t.Fatalf("first message of a watch with bookmarks: %v, %v; want a bookmark", ev, err)
	}

	c := mustCreate(t, a, ws, "http", prod, key)
	renamed := "renamed on replica A"
	if _, err := a.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: c.GetId(), Name: &renamed}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, a, "other-ws", "http", prod, key) // not in the watched workspace

	// Create (active at once: the secret was written first), rename.
	want := []connectionsv1.ChangeType{connectionsv1.ChangeType_CHANGE_TYPE_CREATED,
		connectionsv1.ChangeType_CHANGE_TYPE_UPDATED}
	var cursors []string
	for i, typ := range want {
		ev, err := recvWithin(watch, 10*time.Second)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ev.GetType() != typ || ev.GetConnection().GetId() != c.GetId() {
			t.Fatalf("event %d = %s of %s, want %s of %s", i, ev.GetType(), ev.GetConnection().GetId(), typ, c.GetId())
		}
		cursors = append(cursors, ev.GetCursor())
	}
	// Resume on the other replica from the first cursor: the same two
	// updates follow, with the same cursors.
	resumed, err := a.WatchConnections(ctx, &connectionsv1.WatchConnectionsRequest{WorkspaceId: ws, Cursor: cursors[0]})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range cursors[1:] {
		ev, err := recvWithin(resumed, 10*time.Second)
		if err != nil {
			t.Fatalf("resumed event %d: %v", i, err)
		}
		if ev.GetCursor() != want {
			t.Errorf("resumed event %d has cursor %s, want %s", i, ev.GetCursor(), want)
		}
		if i == len(cursors)-2 && ev.GetConnection().GetName() != renamed {
			t.Errorf("last update carries name %q, want %q", ev.GetConnection().GetName(), renamed)
		}
	}
	// A delete through B reaches both watchers.
	if _, err := b.DeleteConnection(ctxT(t), &connectionsv1.DeleteConnectionRequest{Id: c.GetId()}); err != nil {
		t.Fatal(err)
	}
	for name, w := range map[string]connectionsv1.ConnectionService_WatchConnectionsClient{"B": watch, "A (resumed)": resumed} {
		ev, err := recvWithin(w, 10*time.Second)
		if err != nil || ev.GetType() != connectionsv1.ChangeType_CHANGE_TYPE_DELETED || ev.GetConnection().GetId() != c.GetId() {
			t.Errorf("watcher on %s: %v, %v; want DELETED of %s", name, ev, err, c.GetId())
		}
	}
}

// recvWithin returns the next change on w (bookmarks, which only move the
// cursor, are skipped), or DeadlineExceeded after d.
func recvWithin(w connectionsv1.ConnectionService_WatchConnectionsClient, d time.Duration) (*connectionsv1.WatchConnectionsResponse, error) {
	deadline := time.Now().Add(d)
	for {
		ev, err := recvAny(w, time.Until(deadline))
		if err != nil || ev.GetType() != connectionsv1.ChangeType_CHANGE_TYPE_BOOKMARK {
			return ev, err
		}
	}
}

// recvAny returns the next message on w, bookmark or change, or
// DeadlineExceeded after d.
func recvAny(w connectionsv1.ConnectionService_WatchConnectionsClient, d time.Duration) (*connectionsv1.WatchConnectionsResponse, error) {
	type result struct {
		ev  *connectionsv1.WatchConnectionsResponse
		err error
	}
	ch := make(chan result, 1)
	go func() { ev, err := w.Recv(); ch <- result{ev, err} }()
	select {
	case r := <-ch:
		return r.ev, r.err
	case <-time.After(d):
		return nil, context.DeadlineExceeded
	}
}
