package access

import (
	"context"
	"errors"
	"log/slog"
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
