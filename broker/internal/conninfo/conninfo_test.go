package conninfo

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
)

// source answers like the connection service: the current status, after
// waiting for release when gate is set (a slow read).
type source struct {
	status atomic.Int32
	reads  atomic.Int32
	gate   chan struct{}
}

func (s *source) Connection(ctx context.Context, id string) (*connectionsv1.Connection, error) {
	st := connectionsv1.ConnectionStatus(s.status.Load()) // what the service would read now
	s.reads.Add(1)
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &connectionsv1.Connection{Id: id, Status: st}, nil
}

func (s *source) RuntimeUserConnection(context.Context, string, string) (*connectionsv1.Connection, error) {
	return nil, nil
}

const (
	active  = connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE
	invalid = connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID
)

// A change that arrives while a read is under way is not hidden by it:
// calls after the change read again and see it.
func TestChangeDuringRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &source{gate: make(chan struct{})}
		src.status.Store(int32(active))
		c := New(src, time.Hour)
		before := make(chan *connectionsv1.Connection)
		go func() {
			conn, _ := c.Connection(context.Background(), "c1")
			before <- conn
		}()
		synctest.Wait() // the read is under way, held at the gate
		// The connection turns invalid; the stream tells the cache.
		src.status.Store(int32(invalid))
		c.Changed(&connectionsv1.Connection{Id: "c1", Status: invalid}, false)
		after := make(chan *connectionsv1.Connection)
		go func() {
			conn, _ := c.Connection(context.Background(), "c1")
			after <- conn
		}()
		synctest.Wait() // the later call has reached a read (new, or joined)
		close(src.gate)
		if got := (<-before).GetStatus(); got != active {
			t.Errorf("the read begun before the change = %v, want the old status", got)
		}
		if got := (<-after).GetStatus(); got != invalid {
			t.Errorf("a call after the change = %v, want INVALID (it must not join the older read)", got)
		}
		if got, _ := c.Connection(context.Background(), "c1"); got.GetStatus() != invalid {
			t.Errorf("cached after the change = %v, want INVALID (the older read must not be stored)", got.GetStatus())
		}
	})
}

// A caller that gives up does not fail the others waiting on the same read.
func TestCallerCancelDoesNotFailOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &source{gate: make(chan struct{})}
		src.status.Store(int32(active))
		c := New(src, time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		first := make(chan error)
		go func() { _, err := c.Connection(ctx, "c1"); first <- err }()
		synctest.Wait() // the read is under way, held at the gate
		second := make(chan error)
		go func() { _, err := c.Connection(context.Background(), "c1"); second <- err }()
		synctest.Wait() // the second caller has joined the read
		cancel()
		if err := <-first; err == nil {
			t.Error("the cancelled caller got an answer, want its context's error")
		}
		close(src.gate)
		if err := <-second; err != nil {
			t.Errorf("the other caller: %v, want the connection", err)
		}
		if n := src.reads.Load(); n != 1 {
			t.Errorf("%d reads, want 1 shared read", n)
		}
	})
}

// downSource is a connection service that can go down (Unavailable) and
// whose connections carry an etag that changes with them.
type downSource struct {
	down  atomic.Bool
	etag  atomic.Int32
	reads atomic.Int32
}

func (s *downSource) Connection(_ context.Context, id string) (*connectionsv1.Connection, error) {
	s.reads.Add(1)
	if s.down.Load() {
		return nil, status.Error(codes.Unavailable, "connection refused")
	}
	return &connectionsv1.Connection{Id: id, Status: active, Etag: strconv.Itoa(int(s.etag.Load()))}, nil
}

func (s *downSource) RuntimeUserConnection(context.Context, string, string) (*connectionsv1.Connection, error) {
	if s.down.Load() {
		return nil, status.Error(codes.Unavailable, "connection refused")
	}
	return nil, nil
}

// While the connection service is down, entries past their age are still
// served (nothing can change meanwhile); what it never held is Unavailable.
func TestServesStaleWhileSourceDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &downSource{}
		c := New(src, time.Second)
		if _, err := c.Connection(t.Context(), "c1"); err != nil {
			t.Fatal(err)
		}
		src.down.Store(true)
		time.Sleep(time.Minute) // far past the entry's age
		if conn, err := c.Connection(t.Context(), "c1"); err != nil || conn.GetId() != "c1" {
			t.Errorf("held entry while the source is down: %v, %v; want it served", conn, err)
		}
		if _, err := c.Connection(t.Context(), "c2"); status.Code(err) != codes.Unavailable {
			t.Errorf("unknown entry while the source is down: %v, want Unavailable", err)
		}
		src.down.Store(false)
		reads := src.reads.Load()
		if _, err := c.Connection(t.Context(), "c1"); err != nil || src.reads.Load() == reads {
			t.Errorf("after the source is back: %v (reads %d -> %d), want the old entry read again", err, reads, src.reads.Load())
		}
	})
}

// A resync that cannot reach the source changes nothing; one that can
// replaces the entries at once and names the connections that changed.
func TestResyncReplacesAtomically(t *testing.T) {
	src := &downSource{}
	c := New(src, time.Hour)
	for _, id := range []string{"c1", "c2"} {
		if _, err := c.Connection(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	src.down.Store(true)
	if _, err := c.Resync(t.Context()); err == nil {
		t.Fatal("resync with the source down succeeded")
	}
	if conn, err := c.Connection(t.Context(), "c1"); err != nil || conn == nil {
		t.Fatalf("after a failed resync the entry is gone: %v", err)
	}
	src.down.Store(false)
	src.etag.Store(7) // both changed meanwhile
	changed, err := c.Resync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(changed)
	if strings.Join(changed, ",") != "c1,c2" {
		t.Errorf("resync reported %v changed, want c1,c2", changed)
	}
	reads := src.reads.Load()
	if conn, _ := c.Connection(t.Context(), "c1"); conn.GetEtag() != "7" || src.reads.Load() != reads {
		t.Errorf("after resync: etag %q, %d extra reads; want the new entry served from memory", conn.GetEtag(), src.reads.Load()-reads)
	}
}

// A change that reaches the broker replaces what it holds instead of
// dropping it, so a connection it serves stays servable through an outage
// that starts right after the change; a deleted connection is dropped; a
// change to a connection it never held adds nothing.
func TestChangeReplacesHeldEntry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &downSource{}
		c := New(src, time.Second)
		for _, id := range []string{"c1", "c2"} {
			if _, err := c.Connection(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}
		c.Changed(&connectionsv1.Connection{Id: "c1", Status: invalid, Etag: "9"}, false)
		c.Changed(&connectionsv1.Connection{Id: "c2"}, true)
		c.Changed(&connectionsv1.Connection{Id: "c3", Status: active}, false)
		src.down.Store(true)
		time.Sleep(time.Minute) // far past the entries' age
		if conn, err := c.Connection(t.Context(), "c1"); err != nil || conn.GetEtag() != "9" || conn.GetStatus() != invalid {
			t.Errorf("changed entry during the outage: %v, %v; want the change's connection", conn, err)
		}
		for _, id := range []string{"c2", "c3"} {
			if _, err := c.Connection(t.Context(), id); status.Code(err) != codes.Unavailable {
				t.Errorf("%s during the outage: %v, want Unavailable (deleted, or never held)", id, err)
			}
		}
	})
}

// Forget drops an entry: the next call reads it again.
func TestForget(t *testing.T) {
	src := &downSource{}
	c := New(src, time.Hour)
	if _, err := c.Connection(t.Context(), "c1"); err != nil {
		t.Fatal(err)
	}
	c.Forget("c1")
	reads := src.reads.Load()
	if _, err := c.Connection(t.Context(), "c1"); err != nil || src.reads.Load() != reads+1 {
		t.Errorf("after Forget: %v, %d reads; want one new read", err, src.reads.Load()-reads)
	}
}

// A change that arrives while the first read of a connection is under way
// is kept (the read's answer, which may predate it, is not), so the
// connection is servable through an outage that starts right after.
func TestChangeDuringFirstReadIsKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &source{gate: make(chan struct{})}
		src.status.Store(int32(active))
		c := New(src, time.Second)
		first := make(chan *connectionsv1.Connection)
		go func() {
			conn, _ := c.Connection(context.Background(), "c1")
			first <- conn
		}()
		synctest.Wait() // the first read is under way
		c.Changed(&connectionsv1.Connection{Id: "c1", Status: invalid, Etag: "2"}, false)
		close(src.gate)
		<-first
		// The source goes away: only what the cache holds can answer.
		down := &downSource{}
		down.down.Store(true)
		c.src = down
		time.Sleep(time.Minute) // synctest clock: past the entries' age
		if conn, err := c.Connection(context.Background(), "c1"); err != nil || conn.GetEtag() != "2" {
			t.Errorf("during the outage: %v, %v; want the change's connection", conn, err)
		}
	})
}
