package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
)

// sink collects what the recorder ships, failing while fail is set.
type sink struct {
	got  []*connectionsv1.AccessEvent
	fail bool
}

func (s *sink) store(_ context.Context, _ string, evs []*connectionsv1.AccessEvent) error {
	if s.fail {
		return errors.New("connection service unreachable")
	}
	s.got = append(s.got, evs...)
	return nil
}

func TestRecorder(t *testing.T) {
	get := Event{Workspace: "ws", Operation: "GetCredential", Job: "j1", Recipe: "r1", Requested: "c1", Resolved: "c1", Allowed: true, Code: "OK"}
	denied := Event{Workspace: "ws", Operation: "GetCredential", Job: "j1", Recipe: "r1", Requested: "c2", Code: "PermissionDenied", Reason: "not bound"}
	tests := []struct {
		name       string
		max        int
		failFirst  bool // the first flush fails, the second succeeds
		record     []Event
		wantCounts map[string]int64 // by requested connection
	}{
		{"repeats are counted, not stored one by one", 10, false,
			[]Event{get, get, get, denied}, map[string]int64{"c1": 3, "c2": 1}},
		{"a failed shipment is sent again as it was, later repeats in the next", 10, true,
			[]Event{get, get, denied}, map[string]int64{"c1": 2, "c2": 1}},
		{"past the bound, new distinct events are dropped, repeats still counted", 1, false,
			[]Event{get, denied, get}, map[string]int64{"c1": 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &sink{fail: tt.failFirst}
			r := New(s.store, "broker-0", time.Hour, tt.max, slog.New(slog.DiscardHandler))
			for i, e := range tt.record {
				r.Record(e)
				if tt.failFirst && i == 0 {
					r.Flush(t.Context()) // fails: the event must survive
					s.fail = false
				}
			}
			r.Flush(t.Context())
			got := map[string]int64{}
			for _, e := range s.got {
				got[e.GetRequestedConnectionId()] += e.GetCount()
				if e.GetBroker() != "broker-0" || e.GetFirstTime() == nil || e.GetLastTime().AsTime().Before(e.GetFirstTime().AsTime()) {
					t.Errorf("event %v lacks its broker or times", e)
				}
			}
			if len(got) != len(tt.wantCounts) {
				t.Fatalf("shipped %v, want %v", got, tt.wantCounts)
			}
			for k, v := range tt.wantCounts {
				if got[k] != v {
					t.Errorf("count for %s = %d, want %d", k, got[k], v)
				}
			}
			want := len(tt.wantCounts) // one per distinct access per shipment
			if tt.failFirst {
				want++ // the failed shipment's event, and its repeat in the next
			}
			if len(s.got) != want {
				t.Errorf("%d events shipped, want %d", len(s.got), want)
			}
		})
	}
}

// At the bound, a failed shipment put back wins over events recorded while
// it was out: the newest are dropped, as New documents, never the older ones.
func TestRequeueKeepsOlderEvents(t *testing.T) {
	ev := func(c string) Event {
		return Event{Workspace: "ws", Operation: "GetCredential", Requested: c, Code: "OK", Allowed: true}
	}
	var r *Recorder
	var shipped []string
	fail := true
	r = New(func(_ context.Context, _ string, evs []*connectionsv1.AccessEvent) error {
		if fail {
			r.Record(ev("new")) // recorded while the shipment is out
			return errors.New("connection service unreachable")
		}
		for _, e := range evs {
			shipped = append(shipped, e.GetRequestedConnectionId())
		}
		return nil
	}, "broker-0", time.Hour, 2, slog.New(slog.DiscardHandler))
	r.Record(ev("old-1"))
	r.Record(ev("old-2"))
	r.Flush(t.Context())
	fail = false
	r.Flush(t.Context())
	slices.Sort(shipped)
	if got := strings.Join(shipped, ","); got != "old-1,old-2" {
		t.Errorf("shipped %s, want the two older events (the newest dropped at the bound)", got)
	}
}

// refusingSink stores batches like the connection service: whole or not at
// all, refusing with InvalidArgument a batch holding an event it rejects.
type refusingSink struct {
	got    []*connectionsv1.AccessEvent
	calls  int
	reject func(*connectionsv1.AccessEvent) bool
}

func (s *refusingSink) store(_ context.Context, _ string, evs []*connectionsv1.AccessEvent) error {
	s.calls++
	for _, e := range evs {
		if s.reject(e) {
			return status.Error(codes.InvalidArgument, "events: invalid")
		}
	}
	s.got = append(s.got, evs...)
	return nil
}

// Bad events are set aside and counted, whether the broker spots them
// (a NUL byte, an oversized field) or only the connection service does; every
// other event of the batch is recorded, and nothing waits for a next try.
func TestBadEventsSetAside(t *testing.T) {
	s := &refusingSink{reject: func(e *connectionsv1.AccessEvent) bool { return e.GetJobId() == "refused-by-the-service" }}
	logs := &strings.Builder{}
	r := New(s.store, "broker-0", time.Hour, 100, slog.New(slog.NewTextHandler(logs, nil)))
	good := 0
	for i := range 40 {
		r.Record(Event{Workspace: "ws", Operation: "GetCredential", Job: fmt.Sprintf("job-%d", i), Allowed: true, Code: "OK"})
		good++
	}
	r.Record(Event{Workspace: "ws", Operation: "MintJobToken", Job: "job\x00canary-nul", Code: "OK"})
	r.Record(Event{Workspace: "ws", Operation: "GetCredential", Job: "a\xffb", Code: "OK"})
	r.Record(Event{Workspace: strings.Repeat("w", 65), Operation: "GetCredential", Job: "j", Code: "OK"})
	r.Record(Event{Workspace: "ws", Operation: "GetCredential", Job: "refused-by-the-service", Code: "OK"})
	r.Flush(t.Context())
	if len(s.got) != good {
		t.Errorf("recorded %d events, want the %d good ones", len(s.got), good)
	}
	for _, e := range s.got {
		if !strings.HasPrefix(e.GetJobId(), "job-") {
			t.Errorf("a bad event was recorded: %q", e.GetJobId())
		}
	}
	if n := r.SetAsideTotal.Load(); n != 4 {
		t.Errorf("set aside %d events, want 4", n)
	}
	if !strings.Contains(logs.String(), "set_aside=4") || strings.Contains(logs.String(), "canary-nul") {
		t.Errorf("log should count the events set aside without their content:\n%s", logs)
	}
	calls := s.calls
	r.Flush(t.Context())
	if s.calls != calls {
		t.Errorf("a later flush shipped again (%d calls): the bad event was kept for a next try", s.calls-calls)
	}
}

// A connection service that is down keeps every event for the next try,
// including events of a batch half stored before it went down.
func TestShipKeepsUnstoredHalf(t *testing.T) {
	down, wentDown := false, false
	var got []*connectionsv1.AccessEvent
	stored := map[string]bool{} // batch ids, as the connection service keeps them
	sinkFn := func(_ context.Context, id string, evs []*connectionsv1.AccessEvent) error {
		if down {
			return status.Error(codes.Unavailable, "down")
		}
		if stored[id] {
			return nil
		}
		for _, e := range evs {
			if e.GetJobId() == "bad" {
				return status.Error(codes.InvalidArgument, "invalid")
			}
		}
		got = append(got, evs...)
		stored[id] = true
		// The first stored half takes the service down (once: the second
		// flush is after it came back, whatever order the batch is in).
		if !wentDown {
			down, wentDown = true, true
		}
		return nil
	}
	r := New(sinkFn, "b", time.Hour, 100, slog.New(slog.DiscardHandler))
	for _, j := range []string{"j1", "j2", "j3", "bad"} {
		r.Record(Event{Workspace: "ws", Operation: "GetCredential", Job: j, Code: "OK"})
	}
	r.Flush(t.Context())
	first := len(got)
	down = false
	r.Flush(t.Context())
	seen := map[string]int{}
	for _, e := range got {
		seen[e.GetJobId()]++
	}
	if first == 0 || seen["j1"] != 1 || seen["j2"] != 1 || seen["j3"] != 1 || seen["bad"] != 0 {
		t.Errorf("after an outage mid-batch: recorded %v (first flush %d), want j1..j3 once each", seen, first)
	}
}

// A shipment whose answer was lost (the service stored it, the call still
// failed) is sent again under the same id and nothing newer goes first; a
// sink that keeps ids, as the connection service does, records it once.
func TestLostAnswerResentUnderSameID(t *testing.T) {
	var ids []string
	stored := map[string]int64{}
	lose := true
	r := New(func(_ context.Context, id string, evs []*connectionsv1.AccessEvent) error {
		ids = append(ids, id)
		if _, ok := stored[id]; !ok {
			for _, e := range evs {
				stored[id] += e.GetCount()
			}
		}
		if lose {
			lose = false
			return status.Error(codes.DeadlineExceeded, "the answer was lost")
		}
		return nil
	}, "broker-0", time.Hour, 100, slog.New(slog.DiscardHandler))
	ev := Event{Workspace: "ws", Operation: "GetCredential", Requested: "c1", Code: "OK", Allowed: true}
	r.Record(ev)
	r.Record(ev)
	r.Flush(t.Context())
	r.Record(ev) // recorded while the first shipment is unacknowledged
	r.Flush(t.Context())
	if len(ids) != 3 || ids[0] != ids[1] || ids[2] == ids[0] {
		t.Fatalf("shipment ids %v, want the first sent twice, then a new one", ids)
	}
	var total int64
	for _, n := range stored {
		total += n
	}
	if total != 3 {
		t.Errorf("recorded %d calls, want 3 (2 + 1, the resend counted once)", total)
	}
}
