package api_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/grpcserver"
	"github.com/integrationhub/connections/internal/grpctest"
	"github.com/integrationhub/connections/internal/jwtauth"
	"github.com/integrationhub/connections/internal/privilege"

	"github.com/integrationhub/connections/services/connections/internal/api"
	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/catalog"
	"github.com/integrationhub/connections/services/connections/internal/store"
	"github.com/integrationhub/connections/services/connections/internal/store/storesqlite"
)

const (
	issuer   = "https://issuer.test"
	audience = "connections"
)

// testService is ConnectionService over bufconn, with its issuer.
type testService struct {
	connectionsv1.ConnectionServiceClient
	cc     *grpc.ClientConn
	issuer *jwtauth.Signer
}

// as returns ctx carrying a token for subject in workspace with privileges.
func (ts *testService) as(ctx context.Context, t testing.TB, workspace string, privileges ...string) context.Context {
	t.Helper()
	tok, err := ts.issuer.Mint(audience, "tester", workspace, privileges, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// newService serves ConnectionService over bufconn with the production
// interceptors (authentication included) and a real SQLite store. The broker
// address is a loopback port nothing listens on: these tests cover what
// happens before or without the broker; e2e/ covers the real broker.
func newService(t testing.TB) *testService {
	t.Helper()
	st, err := storesqlite.Open(t.Context(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return serveStore(t, st)
}

// serveStore serves ConnectionService on st.
func serveStore(t testing.TB, st store.Store) *testService {
	t.Helper()
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}

	signer, err := jwtauth.NewSigner(issuer)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := signer.JWKS()
	jwksPath := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksPath, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	verifier, err := jwtauth.NewVerifier(t.Context(), jwksPath, issuer, audience)
	if err != nil {
		t.Fatal(err)
	}
	unaryAuth, streamAuth := authz.Interceptors(verifier)
	logger := slog.New(slog.DiscardHandler)
	srv, err := grpcserver.New(grpcserver.Config{Logger: logger,
		Unary: []grpc.UnaryServerInterceptor{unaryAuth}, Stream: []grpc.StreamServerInterceptor{streamAuth}})
	if err != nil {
		t.Fatal(err)
	}
	connectionsv1.RegisterConnectionServiceServer(srv, api.New(api.Deps{Store: st, Catalog: cat,
		Broker: api.DeadBroker(t), Logger: logger, WatchPoll: 20 * time.Millisecond}))
	cc, _, _ := grpctest.Serve(t, srv)
	return &testService{ConnectionServiceClient: connectionsv1.NewConnectionServiceClient(cc), cc: cc, issuer: signer}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// admin is a context with every privilege in every workspace.
func (ts *testService) admin(t *testing.T) context.Context {
	return ts.as(ctxT(t), t, jwtauth.AllWorkspaces, privilege.All...)
}

func oauthReq(ws, name string) *connectionsv1.CreateConnectionRequest {
	return &connectionsv1.CreateConnectionRequest{
		WorkspaceId: ws, Name: name, Connector: "salesforce",
		Environment: connectionsv1.Environment_ENVIRONMENT_PRODUCTION,
		AuthType:    credentialv1.AuthType_AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE,
	}
}

// With the broker down, creating a secret-bearing connection fails with
// Unavailable and leaves nothing behind: no connection, no audit record, no
// change event. A delete is acknowledged (the tombstone makes it final at
// once); destroying the secrets waits for the reconciler, whose pass fails
// while the broker is down.
func TestBrokerDown(t *testing.T) {
	cs := newService(t)
	ctx := cs.admin(t)
	audit := func() int {
		t.Helper()
		evs, err := cs.ListAuditEvents(ctx, &connectionsv1.ListAuditEventsRequest{WorkspaceId: "ws"})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs.GetEvents())
	}
	_, err := cs.CreateConnection(ctx, &connectionsv1.CreateConnectionRequest{
		WorkspaceId: "ws", Name: "key", Connector: "stripe",
		Environment: connectionsv1.Environment_ENVIRONMENT_PRODUCTION,
		AuthType:    credentialv1.AuthType_AUTH_TYPE_API_KEY,
		Secret:      &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: "k"}}},
	})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("CreateConnection with the broker down: %v, want Unavailable", err)
	}
	list, err := cs.ListConnections(ctx, &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetConnections()); n != 0 {
		t.Errorf("a failed create left %d connections behind", n)
	}
	if n := audit(); n != 0 {
		t.Errorf("a refused create left %d audit records (and change events)", n)
	}

	created, err := cs.CreateConnection(ctx, oauthReq("ws", "oauth"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.DeleteConnection(ctx, &connectionsv1.DeleteConnectionRequest{Id: created.GetConnection().GetId()}); err != nil {
		t.Errorf("DeleteConnection with the broker down: %v, want OK (tombstoned)", err)
	}
	if _, err := cs.GetConnection(ctx, &connectionsv1.GetConnectionRequest{Id: created.GetConnection().GetId()}); status.Code(err) != codes.NotFound {
		t.Errorf("the deleted connection is still served: %v", err)
	}
	if _, err := cs.Reconcile(ctx, &connectionsv1.ReconcileRequest{DryRun: true}); status.Code(err) != codes.Unavailable {
		t.Errorf("Reconcile with the broker down: %v, want Unavailable", err)
	}
}

// OAuth connections take no secret at creation: they wait, pending, for a
// user to authorize them.
func TestCreateOAuthPending(t *testing.T) {
	cs := newService(t)
	got, err := cs.CreateConnection(cs.admin(t), oauthReq("ws", "sf"))
	if err != nil {
		t.Fatal(err)
	}
	c := got.GetConnection()
	if c.GetStatus() != connectionsv1.ConnectionStatus_CONNECTION_STATUS_PENDING ||
		c.GetStatusReason() != connectionsv1.StatusReason_STATUS_REASON_AUTHORIZATION_REQUIRED {
		t.Errorf("status %s (%s), want PENDING (AUTHORIZATION_REQUIRED)", c.GetStatus(), c.GetStatusReason())
	}
	if c.GetId() == "" || c.GetEtag() == "" || c.GetCreateTime() == nil {
		t.Errorf("server-set fields missing: %v", c)
	}
}

func TestListConnectionsPagingAndFilters(t *testing.T) {
	cs := newService(t)
	ctx := cs.admin(t)
	var want []string
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		r, err := cs.CreateConnection(ctx, oauthReq("ws", name))
		if err != nil {
			t.Fatal(err)
		}
		want = append([]string{r.GetConnection().GetName()}, want...)
	}
	var got []string
	req := &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws", PageSize: 2}
	for range 10 {
		resp, err := cs.ListConnections(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range resp.GetConnections() {
			got = append(got, c.GetName())
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("names over pages = %v, want %v (newest first)", got, want)
	}

	tests := []struct {
		name string
		req  *connectionsv1.ListConnectionsRequest
		want int
	}{
		{"status pending", &connectionsv1.ListConnectionsRequest{Status: connectionsv1.ConnectionStatus_CONNECTION_STATUS_PENDING}, 5},
		{"status active", &connectionsv1.ListConnectionsRequest{Status: connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE}, 0},
		{"connector", &connectionsv1.ListConnectionsRequest{Connector: "salesforce"}, 5},
		{"other connector", &connectionsv1.ListConnectionsRequest{Connector: "zendesk"}, 0},
		{"environment", &connectionsv1.ListConnectionsRequest{Environment: connectionsv1.Environment_ENVIRONMENT_SANDBOX}, 0},
		{"auth type", &connectionsv1.ListConnectionsRequest{AuthType: credentialv1.AuthType_AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE}, 5},
		{"other auth type", &connectionsv1.ListConnectionsRequest{AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY}, 0},
		{"name contains, any case", &connectionsv1.ListConnectionsRequest{NameContains: "C"}, 1},
		{"at the workspace root", &connectionsv1.ListConnectionsRequest{ProjectId: proto.String("")}, 5},
		{"in a project", &connectionsv1.ListConnectionsRequest{ProjectId: proto.String("p-1")}, 0},
		{"another owner", &connectionsv1.ListConnectionsRequest{Owner: "someone-else"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.WorkspaceId = "ws"
			resp, err := cs.ListConnections(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(resp.GetConnections()); n != tt.want {
				t.Errorf("%d connections, want %d", n, tt.want)
			}
		})
	}
}

func TestListConnectors(t *testing.T) {
	cs := newService(t)
	ctx := cs.admin(t)
	var names []string
	req := &connectionsv1.ListConnectorsRequest{PageSize: 3}
	for range 10 {
		resp, err := cs.ListConnectors(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range resp.GetConnectors() {
			names = append(names, c.GetName())
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	for _, want := range []string{"github", "http", "hubspot", "jira", "salesforce", "slack", "stripe", "trello", "zendesk"} {
		if !slices.Contains(names, want) {
			t.Errorf("catalog lacks %s: %v", want, names)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("connectors not ordered by name: %v", names)
	}
	if _, err := cs.ListConnectors(ctx, &connectionsv1.ListConnectorsRequest{PageToken: "x"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("forged page token: %v, want InvalidArgument", err)
	}
}

// CreateConnection's bind is refused up front where it cannot apply: without
// the recipes privilege, and for a connection that needs authorization
// first. Nothing is created.
func TestCreateWithBindRefusals(t *testing.T) {
	cs := newService(t)
	noRecipes := cs.as(ctxT(t), t, "ws", privilege.CreateConnections, privilege.ViewConnections)
	withBind := func(req *connectionsv1.CreateConnectionRequest) *connectionsv1.CreateConnectionRequest {
		req.Bind = &connectionsv1.RecipeStep{RecipeId: "r-1", Step: "trigger"}
		return req
	}
	if _, err := cs.CreateConnection(noRecipes, withBind(oauthReq("ws", "x"))); status.Code(err) != codes.PermissionDenied ||
		!strings.Contains(status.Convert(err).Message(), privilege.ManageRecipes) {
		t.Errorf("bind without the recipes privilege: %v, want PermissionDenied naming it", err)
	}
	if _, err := cs.CreateConnection(cs.admin(t), withBind(oauthReq("ws", "x"))); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bind of an OAuth connection: %v, want InvalidArgument", err)
	}
	list, err := cs.ListConnections(cs.admin(t), &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws"})
	if err != nil || len(list.GetConnections()) != 0 {
		t.Errorf("after the refusals: %d connections, %v; want none", len(list.GetConnections()), err)
	}
}

// A status report about a secret generation the connection no longer names
// is refused and changes nothing; one about the current generation, or one
// that names none, is recorded.
func TestReportOfReplacedCredentials(t *testing.T) {
	cs := newService(t)
	ctx := cs.admin(t)
	created, err := cs.CreateConnection(ctx, oauthReq("ws", "r"))
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetConnection().GetId() // pending, no generation yet
	report := func(gen *string, reason connectionsv1.StatusReason) error {
		_, err := cs.ReportConnectionStatus(ctx, &connectionsv1.ReportConnectionStatusRequest{ConnectionId: id,
			Status: connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID, Reason: reason, LastError: "x", SecretGeneration: gen})
		return err
	}
	if err := report(proto.String("g-replaced"), connectionsv1.StatusReason_STATUS_REASON_REVOKED); status.Code(err) != codes.Aborted {
		t.Errorf("report about a replaced generation: %v, want Aborted", err)
	}
	got, err := cs.GetConnection(ctx, &connectionsv1.GetConnectionRequest{Id: id})
	if err != nil || got.GetConnection().GetStatus() != connectionsv1.ConnectionStatus_CONNECTION_STATUS_PENDING {
		t.Errorf("after the refused report: %v, %v; want still PENDING", got.GetConnection().GetStatus(), err)
	}
	if err := report(proto.String(""), connectionsv1.StatusReason_STATUS_REASON_REVOKED); err != nil {
		t.Errorf("report about the current generation: %v", err)
	}
	if err := report(nil, connectionsv1.StatusReason_STATUS_REASON_MODIFIED_CREDENTIALS); err != nil {
		t.Errorf("report naming no generation: %v", err)
	}
}

// Listing by runtime user shows runtime users' connections: it needs the
// privilege to view them, beside the privilege to view connections.
func TestListConnectionsByRuntimeUserNeedsItsPrivilege(t *testing.T) {
	cs := newService(t)
	req := &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws", RuntimeUser: "alice"}
	if _, err := cs.ListConnections(cs.as(ctxT(t), t, "ws", privilege.ViewConnections), req); status.Code(err) != codes.PermissionDenied {
		t.Errorf("without %s: %v, want PermissionDenied", privilege.ViewRuntimeUserConnections, err)
	}
	resp, err := cs.ListConnections(cs.as(ctxT(t), t, "ws", privilege.ViewConnections, privilege.ViewRuntimeUserConnections), req)
	if err != nil || len(resp.GetConnections()) != 0 {
		t.Errorf("with it: %v, %v; want an empty list", resp, err)
	}
}
