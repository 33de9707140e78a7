package e2e

import (
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
)

// errorInfo returns the ErrorInfo in err's details, if any.
func errorInfo(err error) *errdetails.ErrorInfo {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei
		}
	}
	return nil
}

// A job token lets a worker use only the connections its recipe is bound to,
// only while they are active, and every access, allowed or denied, is on
// record at the connection service.
func TestJobTokenScopesConnections(t *testing.T) {
	cs, br := connections(t), broker(t)
	const ws = "ws-scope"
	a, b := mustCreate(t, cs, ws, "stripe", prod, key), mustCreate(t, cs, ws, "zendesk", prod, basic)
	jobA, jobB := job(t, cs, br, a.GetId()), job(t, cs, br, b.GetId())

	if got, err := br.GetCredential(jobA, &brokerv1.GetCredentialRequest{ConnectionId: a.GetId()}); err != nil ||
		got.GetConnectionId() != a.GetId() || got.GetCredential().GetApiKey().GetKey() != "k-stripe" {
		t.Fatalf("recipe A's job, A's connection: %v, %v", got, err)
	}
	if _, err := br.GetCredential(jobB, &brokerv1.GetCredentialRequest{ConnectionId: b.GetId()}); err != nil {
		t.Fatalf("recipe B's job, B's connection: %v", err)
	}
	refusals := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"GetCredential of B's connection with A's token", func() error {
			_, err := br.GetCredential(jobA, &brokerv1.GetCredentialRequest{ConnectionId: b.GetId()})
			return err
		}, codes.PermissionDenied},
		{"ReportCredentialFailure of B's connection with A's token", func() error {
			_, err := br.ReportCredentialFailure(jobA, &brokerv1.ReportCredentialFailureRequest{ConnectionId: b.GetId(), HttpStatus: 401})
			return err
		}, codes.PermissionDenied},
		{"SignRequest of B's connection with A's token", func() error {
			_, err := br.SignRequest(jobA, &brokerv1.SignRequestRequest{ConnectionId: b.GetId(), Method: "GET", Url: "https://acme.test/x"})
			return err
		}, codes.PermissionDenied},
		{"no token", func() error {
			_, err := br.GetCredential(t.Context(), &brokerv1.GetCredentialRequest{ConnectionId: a.GetId()})
			return err
		}, codes.Unauthenticated},
		{"a platform token instead of a job token", func() error {
			_, err := br.GetCredential(ctxT(t), &brokerv1.GetCredentialRequest{ConnectionId: a.GetId()})
			return err
		}, codes.Unauthenticated},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); status.Code(err) != tt.want {
				t.Errorf("got %v, want %s", err, tt.want)
			}
		})
	}

	// A connection that stops working is refused to the job that may use it,
	// as soon as the change reaches the broker.
	if _, err := cs.ReportConnectionStatus(ctxT(t), &connectionsv1.ReportConnectionStatusRequest{ConnectionId: a.GetId(),
		Status: connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID, Reason: connectionsv1.StatusReason_STATUS_REASON_REVOKED,
		LastError: "revoked at the app"}); err != nil {
		t.Fatal(err)
	}
	var err error
	waitFor(t, 10*time.Second, "the change to reach the broker", func() bool {
		_, err = br.GetCredential(jobA, &brokerv1.GetCredentialRequest{ConnectionId: a.GetId()})
		return status.Code(err) == codes.FailedPrecondition
	})
	if ei := errorInfo(err); ei.GetReason() != "CONNECTION_NOT_ACTIVE" || ei.GetMetadata()["connection_id"] != a.GetId() {
		t.Errorf("invalid connection refused with %v (details %v), want CONNECTION_NOT_ACTIVE naming it", err, ei)
	}

	// The record: allowed and denied accesses with job, recipe, connections
	// and reason, for this workspace's auditors.
	var events []*connectionsv1.AccessEvent
	waitFor(t, 10*time.Second, "the access record", func() bool {
		resp, err := cs.ListAccessEvents(ctxT(t), &connectionsv1.ListAccessEventsRequest{WorkspaceId: ws, PageSize: 1000})
		if err != nil {
			t.Fatalf("ListAccessEvents: %v", err)
		}
		events = resp.GetEvents()
		var allowedA, deniedB, deniedInvalid bool
		for _, e := range events {
			switch {
			case e.GetOperation() == "GetCredential" && e.GetDecision() == connectionsv1.AccessDecision_ACCESS_DECISION_ALLOWED &&
				e.GetResolvedConnectionId() == a.GetId() && e.GetJobId() != "" && e.GetRecipeId() != "":
				allowedA = true
			case e.GetOperation() == "GetCredential" && e.GetDecision() == connectionsv1.AccessDecision_ACCESS_DECISION_DENIED &&
				e.GetRequestedConnectionId() == b.GetId() && e.GetCode() == "PermissionDenied" && e.GetReason() != "":
				deniedB = true
			case e.GetRequestedConnectionId() == a.GetId() && e.GetCode() == "FailedPrecondition":
				deniedInvalid = true
			}
		}
		return allowedA && deniedB && deniedInvalid
	})
	// The connections show when a worker last got their credential (to the
	// minute); one only ever refused shows none.
	for _, tc := range []struct {
		id   string
		want bool
	}{{a.GetId(), true}, {b.GetId(), true}} {
		got, err := cs.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: tc.id})
		if err != nil {
			t.Fatal(err)
		}
		at := got.GetConnection().GetLastUseTime()
		if (at != nil) != tc.want || at != nil && (time.Since(at.AsTime()) > 10*time.Minute || at.AsTime().Second() != 0) {
			t.Errorf("connection %s: last use %v, want a recent time to the minute: %t", tc.id, at, tc.want)
		}
	}
	never := mustCreate(t, cs, ws, "stripe", prod, key)
	list, err := cs.ListConnections(ctxT(t), &connectionsv1.ListConnectionsRequest{WorkspaceId: ws})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.GetConnections() {
		if used := c.GetLastUseTime() != nil; used != (c.GetId() != never.GetId()) {
			t.Errorf("listed connection %s: last use %v", c.GetId(), c.GetLastUseTime())
		}
	}
	mints := 0
	for _, e := range events {
		if e.GetOperation() == "MintJobToken" && e.GetDecision() == connectionsv1.AccessDecision_ACCESS_DECISION_ALLOWED {
			mints++
		}
	}
	if mints < 2 {
		t.Errorf("%d MintJobToken events recorded, want the two jobs' tokens", mints)
	}
	// Another workspace's auditor sees none of it.
	other := as(t, "ws-elsewhere", "audit:view")
	if resp, err := cs.ListAccessEvents(other, &connectionsv1.ListAccessEventsRequest{WorkspaceId: ws}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("another workspace's auditor: %v, %v; want PermissionDenied", resp, err)
	}
}

// A callable recipe running for a runtime user gets the user's own
// connection for the app; a user without one is asked to connect (or, where
// the recipe allows it, the recipe's own connection is used).
func TestRuntimeUserSwap(t *testing.T) {
	cs, br := connections(t), broker(t)
	const ws = "ws-swap"
	parent := mustCreate(t, cs, ws, "http", prod, key)
	bob, err := cs.CreateRuntimeUserConnection(ctxT(t), &connectionsv1.CreateRuntimeUserConnectionRequest{
		ParentConnectionId: parent.GetId(), RuntimeUser: "bob@acme.test", Secret: apiKey("bobs-own-key")})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*connectionsv1.RegisterRecipeRequest{
		{RecipeId: "r-swap", WorkspaceId: ws, Environment: prod, Callable: true, RuntimeUserConnections: true},
		{RecipeId: "r-swap-fallback", WorkspaceId: ws, Environment: prod, Callable: true, RuntimeUserConnections: true, RuntimeUserFallback: true},
	} {
		if _, err := cs.RegisterRecipe(ctxT(t), r); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.BindConnection(ctxT(t), &connectionsv1.BindConnectionRequest{RecipeId: r.GetRecipeId(), Step: "action-1",
			ConnectionId: parent.GetId()}); err != nil {
			t.Fatal(err)
		}
	}
	runAs := func(recipe, user string) func() (*brokerv1.GetCredentialResponse, error) {
		ctx := jobFor(t, br, &brokerv1.MintJobTokenRequest{WorkspaceId: ws, RecipeId: recipe, JobId: "job-" + user, RuntimeUser: user})
		return func() (*brokerv1.GetCredentialResponse, error) {
			return br.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: parent.GetId()})
		}
	}

	t.Run("swap", func(t *testing.T) {
		got, err := runAs("r-swap", "bob@acme.test")()
		if err != nil || got.GetCredential().GetApiKey().GetKey() != "bobs-own-key" ||
			got.GetConnectionId() != bob.GetConnection().GetId() || got.GetRuntimeUser() != "bob@acme.test" {
			t.Errorf("bob's job = %v, %v; want bob's key from his connection, on his behalf", got, err)
		}
	})
	t.Run("missing runtime connection", func(t *testing.T) {
		get := runAs("r-swap", "alice@acme.test")
		_, err := get()
		ei := errorInfo(err)
		if status.Code(err) != codes.FailedPrecondition || ei.GetReason() != "RUNTIME_USER_CONNECTION_MISSING" ||
			ei.GetMetadata()["connector"] != "http" || ei.GetMetadata()["runtime_user"] != "alice@acme.test" {
			t.Fatalf("alice without a connection: %v (details %v); want FailedPrecondition naming the app and alice", err, ei)
		}
		// Once alice connects, the same job gets her connection.
		alice, err := cs.CreateRuntimeUserConnection(ctxT(t), &connectionsv1.CreateRuntimeUserConnectionRequest{
			ParentConnectionId: parent.GetId(), RuntimeUser: "alice@acme.test", Secret: apiKey("alices-key")})
		if err != nil {
			t.Fatal(err)
		}
		var got *brokerv1.GetCredentialResponse
		waitFor(t, 10*time.Second, "the change to reach the broker", func() bool { got, err = get(); return err == nil })
		if got.GetConnectionId() != alice.GetConnection().GetId() || got.GetCredential().GetApiKey().GetKey() != "alices-key" {
			t.Errorf("after alice connected: %v", got)
		}
	})
	t.Run("fallback allowed by the recipe", func(t *testing.T) {
		got, err := runAs("r-swap-fallback", "carol@acme.test")()
		if err != nil || got.GetConnectionId() != parent.GetId() || got.GetRuntimeUser() != "" ||
			got.GetCredential().GetApiKey().GetKey() != "k-http" {
			t.Errorf("carol, with fallback: %v, %v; want the recipe's own connection, not on carol's behalf", got, err)
		}
		// A user who has a connection still gets theirs.
		if got, err := runAs("r-swap-fallback", "bob@acme.test")(); err != nil || got.GetConnectionId() != bob.GetConnection().GetId() {
			t.Errorf("bob, with fallback: %v, %v; want his own connection", got, err)
		}
	})
	t.Run("the runtime connection only through the swap", func(t *testing.T) {
		ctx := jobFor(t, br, &brokerv1.MintJobTokenRequest{WorkspaceId: ws, RecipeId: "r-swap", JobId: "job-direct", RuntimeUser: "bob@acme.test"})
		if _, err := br.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: bob.GetConnection().GetId()}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("GetCredential naming bob's connection directly: %v, want PermissionDenied", err)
		}
		// Nor can bob's job report (and so refresh or invalidate) the
		// recipe's own connection, which it is never given.
		for _, code := range []int32{401, 403} {
			_, err := br.ReportCredentialFailure(ctx, &brokerv1.ReportCredentialFailureRequest{ConnectionId: parent.GetId(), HttpStatus: code,
				FailedAccessToken: "made-up"})
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("bob's job reporting %d on the recipe's connection: %v, want PermissionDenied", code, err)
			}
		}
		// Reporting a failure of what GetCredential handed out is allowed:
		// the app refused bob's key. The broker cannot check this connector
		// itself (no test request), so the first job's report is noted and
		// a second job's turns his connection invalid; his jobs are told so.
		_, err := br.ReportCredentialFailure(ctx, &brokerv1.ReportCredentialFailureRequest{ConnectionId: bob.GetConnection().GetId(), HttpStatus: 403})
		if errorInfo(err).GetReason() != "FAILURE_REPORT_NOTED" {
			t.Fatalf("first job reporting bob's connection: %v, want FailedPrecondition FAILURE_REPORT_NOTED", err)
		}
		ctx2 := jobFor(t, br, &brokerv1.MintJobTokenRequest{WorkspaceId: ws, RecipeId: "r-swap", JobId: "job-direct-2", RuntimeUser: "bob@acme.test"})
		_, err = br.ReportCredentialFailure(ctx2, &brokerv1.ReportCredentialFailureRequest{ConnectionId: bob.GetConnection().GetId(), HttpStatus: 403})
		if status.Code(err) != codes.FailedPrecondition || errorInfo(err).GetReason() != "" {
			t.Fatalf("second job reporting bob's connection: %v, want FailedPrecondition (the connection no longer works)", err)
		}
		waitFor(t, 10*time.Second, "the change to reach the broker", func() bool {
			_, err := br.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: parent.GetId()})
			return errorInfo(err).GetReason() == "CONNECTION_NOT_ACTIVE"
		})
	})
}
