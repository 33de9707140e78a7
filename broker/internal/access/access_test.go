package access

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
)

// sink collects what the recorder ships, failing while fail is set.
type sink struct {
	got  []*connectionsv1.AccessEvent
	fail bool
}

func (s *sink) store(_ context.Context, evs []*connectionsv1.AccessEvent) error {
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
		{"a failed shipment is kept and merged with later repeats", 10, true,
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
			if len(s.got) != len(tt.wantCounts) {
				t.Errorf("%d events shipped, want one per distinct access (%d)", len(s.got), len(tt.wantCounts))
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
	r = New(func(_ context.Context, evs []*connectionsv1.AccessEvent) error {
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
