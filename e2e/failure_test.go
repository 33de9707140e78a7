package e2e

import (
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
)

// Workers that get 401 with an OAuth token report it: the broker refreshes
// once, however many report the same token, and each gets a token that works;
// the connection stays active.
func TestReportCredentialFailureRefreshesOnce(t *testing.T) {
	e := newOAuthEnv(t)
	b := brokerv1.NewCredentialBrokerClient(dial(t, refreshBrokers(t, e, 1)[0].Addr))
	c := e.create(t)
	e.authorize(t, c.GetId())
	// The connection shows when its token was obtained and when it expires.
	tokenTimes := func() (refreshed, expires time.Time) {
		t.Helper()
		got, err := e.cs.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: c.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		return got.GetConnection().GetLastRefreshTime().AsTime(), got.GetConnection().GetTokenExpireTime().AsTime()
	}
	authorizedAt, expires := tokenTimes()
	if time.Since(authorizedAt) > time.Minute || !expires.After(time.Now()) {
		t.Errorf("after authorization: token obtained %v, expires %v; want just now and in the future", authorizedAt, expires)
	}
	jc := job(t, e.cs, b, c.GetId())
	first, err := b.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	refused := first.GetCredential().GetOauth2().GetAccessToken()
	e.app.RevokeAccessTokens() // the app ends sessions early
	if e.works(t, refused) {
		t.Fatal("the app still accepts the revoked token")
	}
	before := e.app.Refreshes()
	var wg sync.WaitGroup
	got := make([]string, 10)
	for i := range got {
		wg.Go(func() {
			resp, err := b.ReportCredentialFailure(jc, &brokerv1.ReportCredentialFailureRequest{
				ConnectionId: c.GetId(), HttpStatus: 401, FailedAccessToken: refused})
			if err != nil {
				t.Errorf("report %d: %v", i, err)
				return
			}
			got[i] = resp.GetCredential().GetOauth2().GetAccessToken()
		})
	}
	wg.Wait()
	if n := e.app.Refreshes() - before; n != 1 {
		t.Errorf("%d refreshes for 10 reports of one token, want 1", n)
	}
	for i, tok := range got {
		if tok == "" || tok == refused || !e.works(t, tok) {
			t.Errorf("report %d got no working token", i)
		}
	}
	wantStatus(t, e, c.GetId(), connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE)
	// The broker noted the refresh (shortly: it sends the note after
	// answering).
	waitFor(t, 15*time.Second, "the refresh to reach the connection's token times", func() bool {
		refreshed, _ := tokenTimes()
		return refreshed.After(authorizedAt)
	})
}

// An API key the app refuses cannot be refreshed: the connection turns
// invalid (modified credentials), and more reports of it change nothing.
func TestReportCredentialFailureInvalidates(t *testing.T) {
	e := newOAuthEnv(t)
	b := brokerv1.NewCredentialBrokerClient(dial(t, refreshBrokers(t, e, 1)[0].Addr))
	created, err := e.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-fail", Name: "reports",
		Connector: "acme_key", Environment: prod, AuthType: key, Secret: apiKey("a-key-the-app-no-longer-takes")})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetConnection().GetId()
	jc := job(t, e.cs, b, id)
	report := func() error {
		_, err := b.ReportCredentialFailure(jc, &brokerv1.ReportCredentialFailureRequest{ConnectionId: id, HttpStatus: 401})
		return err
	}
	if err := report(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("report: %v, want FailedPrecondition", err)
	}
	waitFor(t, 10*time.Second, "the invalid status to be recorded", func() bool {
		got, err := e.cs.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: id})
		return err == nil && got.GetConnection().GetStatus() == connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID &&
			got.GetConnection().GetStatusReason() == connectionsv1.StatusReason_STATUS_REASON_MODIFIED_CREDENTIALS
	})
	events := func() int {
		evs, err := e.cs.ListAuditEvents(ctxT(t), &connectionsv1.ListAuditEventsRequest{WorkspaceId: "ws-fail", ConnectionId: id, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs.GetEvents())
	}
	n := events()
	for range 5 {
		_ = report()
	}
	// The broker sends its reports in order, one at a time: once a later
	// report (of another connection) has landed, any the repeats queued
	// have too.
	marker, err := e.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-fail", Name: "marker",
		Connector: "acme_key", Environment: prod, AuthType: key, Secret: apiKey("another-key-the-app-no-longer-takes")})
	if err != nil {
		t.Fatal(err)
	}
	mid := marker.GetConnection().GetId()
	if _, err := b.ReportCredentialFailure(job(t, e.cs, b, mid), &brokerv1.ReportCredentialFailureRequest{ConnectionId: mid, HttpStatus: 401}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("marker report: %v, want FailedPrecondition", err)
	}
	waitFor(t, 10*time.Second, "the marker report to land", func() bool {
		got, err := e.cs.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: mid})
		return err == nil && got.GetConnection().GetStatus() == connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID
	})
	if after := events(); after != n {
		t.Errorf("repeated reports wrote %d more events; the status must not flap", after-n)
	}
}
