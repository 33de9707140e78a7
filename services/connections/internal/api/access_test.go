package api_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/jwtauth"
	"github.com/integrationhub/connections/internal/privilege"
)

// accessEvent is an access by job in workspace ws.
func accessEvent(ws, job string, d connectionsv1.AccessDecision) *connectionsv1.AccessEvent {
	now := time.Now()
	return &connectionsv1.AccessEvent{
		WorkspaceId: ws, Operation: "GetCredential", JobId: job, RecipeId: "r-1",
		RequestedConnectionId: "6c1b4d3e-0000-4000-8000-000000000001",
		Decision:              d, Code: "OK", Count: 1,
		FirstTime: timestamppb.New(now.Add(-time.Second)), LastTime: timestamppb.New(now), Broker: "broker-0",
	}
}

// broker is the credential broker's service token: report status, every
// workspace.
func (ts *testService) broker(t *testing.T) context.Context {
	return ts.as(ctxT(t), t, jwtauth.AllWorkspaces, privilege.ReportStatus)
}

// jobs lists the job ids of the access events a request returns over all
// its pages.
func jobs(t *testing.T, ts *testService, ctx context.Context, req *connectionsv1.ListAccessEventsRequest) []string {
	t.Helper()
	var got []string
	for range 20 {
		resp, err := ts.ListAccessEvents(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetEvents() {
			got = append(got, e.GetJobId())
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			return got
		}
	}
	t.Fatal("paging does not end")
	return nil
}

// Only a token for every workspace with connections:report_status records
// access events; a refused batch stores nothing.
func TestRecordAccessNeedsBrokerToken(t *testing.T) {
	ts := newService(t)
	tests := []struct {
		name string
		ctx  context.Context
		want codes.Code
	}{
		{"workspace token", ts.as(ctxT(t), t, "ws-a", privilege.ReportStatus), codes.PermissionDenied},
		{"every privilege but report_status", ts.as(ctxT(t), t, jwtauth.AllWorkspaces,
			slices.DeleteFunc(slices.Clone(privilege.All), func(p string) bool { return p == privilege.ReportStatus })...), codes.PermissionDenied},
		{"broker", ts.broker(t), codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ts.RecordAccess(tt.ctx, &connectionsv1.RecordAccessRequest{Events: []*connectionsv1.AccessEvent{
				accessEvent("ws-a", tt.name, connectionsv1.AccessDecision_ACCESS_DECISION_ALLOWED)}})
			if status.Code(err) != tt.want {
				t.Fatalf("RecordAccess: %v, want %s", err, tt.want)
			}
			got := jobs(t, ts, ts.admin(t), &connectionsv1.ListAccessEventsRequest{JobId: tt.name})
			if stored := len(got) == 1; stored != (tt.want == codes.OK) {
				t.Errorf("stored %d events", len(got))
			}
		})
	}
}

// A workspace token sees its own workspace's access events and nothing else;
// a token for every workspace sees them all, with those refused before a
// workspace was known.
func TestListAccessEventsWorkspaces(t *testing.T) {
	ts := newService(t)
	allowed, refused := connectionsv1.AccessDecision_ACCESS_DECISION_ALLOWED, connectionsv1.AccessDecision_ACCESS_DECISION_DENIED
	if _, err := ts.RecordAccess(ts.broker(t), &connectionsv1.RecordAccessRequest{Events: []*connectionsv1.AccessEvent{
		accessEvent("ws-a", "a-1", allowed), accessEvent("ws-b", "b-1", allowed), accessEvent("ws-a", "a-2", refused),
		accessEvent("", "unverified", refused), accessEvent("ws-a", "a-3", allowed),
	}}); err != nil {
		t.Fatal(err)
	}
	wsA := ts.as(ctxT(t), t, "ws-a", privilege.ViewAudit)
	all := ts.as(ctxT(t), t, jwtauth.AllWorkspaces, privilege.ViewAudit)
	tests := []struct {
		name    string
		ctx     context.Context
		req     *connectionsv1.ListAccessEventsRequest
		want    []string
		wantErr string // in the PermissionDenied message
	}{
		{"own workspace", wsA, &connectionsv1.ListAccessEventsRequest{WorkspaceId: "ws-a"}, []string{"a-1", "a-2", "a-3"}, ""},
		{"own workspace, one per page", wsA, &connectionsv1.ListAccessEventsRequest{WorkspaceId: "ws-a", PageSize: 1}, []string{"a-1", "a-2", "a-3"}, ""},
		{"own workspace, denied", wsA, &connectionsv1.ListAccessEventsRequest{WorkspaceId: "ws-a", Decision: refused}, []string{"a-2"}, ""},
		{"another workspace", wsA, &connectionsv1.ListAccessEventsRequest{WorkspaceId: "ws-b"}, nil, "not permitted in this workspace"},
		{"every workspace from a workspace token", wsA, &connectionsv1.ListAccessEventsRequest{}, nil, "token for every workspace"},
		{"every workspace", all, &connectionsv1.ListAccessEventsRequest{PageSize: 2}, []string{"a-1", "b-1", "a-2", "unverified", "a-3"}, ""},
		{"every workspace, denied", all, &connectionsv1.ListAccessEventsRequest{Decision: refused}, []string{"a-2", "unverified"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantErr != "" {
				_, err := ts.ListAccessEvents(tt.ctx, tt.req)
				if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), tt.wantErr) {
					t.Errorf("ListAccessEvents: %v, want PermissionDenied saying %q", err, tt.wantErr)
				}
				return
			}
			if got := jobs(t, ts, tt.ctx, tt.req); !slices.Equal(got, tt.want) {
				t.Errorf("jobs = %v, want %v (oldest first)", got, tt.want)
			}
		})
	}
}
