package api_test

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/pgtest"

	"github.com/integrationhub/connections/services/connections/internal/store"
	"github.com/integrationhub/connections/services/connections/internal/store/storepostgres"
	"github.com/integrationhub/connections/services/connections/internal/store/storesqlite"
)

// bothStores runs fn against the service on SQLite and on PostgreSQL.
func bothStores(t *testing.T, fn func(t *testing.T, ts *testService, st store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := storesqlite.Open(t.Context(), filepath.Join(t.TempDir(), "c.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, serveStore(t, st), st)
	})
	t.Run("postgres", func(t *testing.T) {
		st, err := storepostgres.Open(t.Context(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, serveStore(t, st), st)
	})
}

// A NUL byte or invalid UTF-8 in any string a caller sends is InvalidArgument
// naming the field, alike on both stores, and changes nothing. (Invalid
// UTF-8 in a proto3 string does not even decode: it is refused as a
// malformed message.)
func TestBadTextRefusedOnBothStores(t *testing.T) {
	bothStores(t, func(t *testing.T, ts *testService, st store.Store) {
		ctx := ts.admin(t)
		conn, err := ts.CreateConnection(ctx, oauthReq("ws", "sf"))
		if err != nil {
			t.Fatal(err)
		}
		id := conn.GetConnection().GetId()
		seq, _ := st.LastEventSeq(ctx)
		const nul = "x\x00canary-nul"
		tests := []struct {
			name, field string
			call        func(context.Context) error
		}{
			{"CreateConnection.name", "name", func(ctx context.Context) error {
				r := oauthReq("ws", nul)
				_, err := ts.CreateConnection(ctx, r)
				return err
			}},
			{"CreateConnection.instance.org_id", "instance.org_id", func(ctx context.Context) error {
				r := oauthReq("ws", "n")
				r.Instance = &credentialv1.AppInstance{OrgId: nul}
				_, err := ts.CreateConnection(ctx, r)
				return err
			}},
			{"CreateRuntimeUserConnection.runtime_user", "runtime_user", func(ctx context.Context) error {
				_, err := ts.CreateRuntimeUserConnection(ctx, &connectionsv1.CreateRuntimeUserConnectionRequest{ParentConnectionId: id, RuntimeUser: nul})
				return err
			}},
			{"RegisterRecipe.name", "name", func(ctx context.Context) error {
				_, err := ts.RegisterRecipe(ctx, &connectionsv1.RegisterRecipeRequest{RecipeId: "r1", WorkspaceId: "ws", Name: nul,
					Environment: connectionsv1.Environment_ENVIRONMENT_PRODUCTION})
				return err
			}},
			{"RegisterOAuthClient.client_id", "client_id", func(ctx context.Context) error {
				_, err := ts.RegisterOAuthClient(ctx, &connectionsv1.RegisterOAuthClientRequest{Connector: "salesforce", ClientId: nul, ClientSecret: "s"})
				return err
			}},
			{"ReportConnectionStatus.last_error", "last_error", func(ctx context.Context) error {
				_, err := ts.ReportConnectionStatus(ctx, &connectionsv1.ReportConnectionStatusRequest{ConnectionId: id,
					Status: connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID, LastError: nul})
				return err
			}},
			{"StartAuthorization.scopes", "scopes[1]", func(ctx context.Context) error {
				_, err := ts.StartAuthorization(ctx, &connectionsv1.StartAuthorizationRequest{ConnectionId: id, Scopes: []string{"ok", nul}})
				return err
			}},
			{"RecordAccess.job_id", "events[1].job_id", func(ctx context.Context) error {
				_, err := ts.RecordAccess(ts.broker(t), &connectionsv1.RecordAccessRequest{Events: []*connectionsv1.AccessEvent{
					accessEvent("ws", "fine", connectionsv1.AccessDecision_ACCESS_DECISION_ALLOWED),
					accessEvent("ws", nul, connectionsv1.AccessDecision_ACCESS_DECISION_ALLOWED)}})
				return err
			}},
			{"ListAuditEvents.actor", "actor", func(ctx context.Context) error {
				_, err := ts.ListAuditEvents(ctx, &connectionsv1.ListAuditEventsRequest{WorkspaceId: "ws", Actor: nul})
				return err
			}},
			{"ListRuntimeUserConnections.runtime_user", "runtime_user", func(ctx context.Context) error {
				_, err := ts.ListRuntimeUserConnections(ctx, &connectionsv1.ListRuntimeUserConnectionsRequest{ParentConnectionId: id, RuntimeUser: nul})
				return err
			}},
			{"ListAccessEvents.job_id", "job_id", func(ctx context.Context) error {
				_, err := ts.ListAccessEvents(ctx, &connectionsv1.ListAccessEventsRequest{JobId: nul})
				return err
			}},
			{"ListAccessEvents.recipe_id", "recipe_id", func(ctx context.Context) error {
				_, err := ts.ListAccessEvents(ctx, &connectionsv1.ListAccessEventsRequest{RecipeId: nul})
				return err
			}},
			{"ListConnections.name_contains", "name_contains", func(ctx context.Context) error {
				_, err := ts.ListConnections(ctx, &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws", NameContains: nul})
				return err
			}},
			{"ListConnections.owner", "owner", func(ctx context.Context) error {
				_, err := ts.ListConnections(ctx, &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws", Owner: nul})
				return err
			}},
			{"ListConnections.page_token NUL", "page_token", func(ctx context.Context) error {
				_, err := ts.ListConnections(ctx, &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws", PageToken: nul})
				return err
			}},
			{"ListConnections.page_token decoding to NUL", "page_token", func(ctx context.Context) error {
				tok := base64.RawURLEncoding.EncodeToString([]byte("1700000000000000000/a\x00b"))
				_, err := ts.ListConnections(ctx, &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws", PageToken: tok})
				return err
			}},
			{"ListConnections.page_token decoding to invalid UTF-8", "page_token", func(ctx context.Context) error {
				tok := base64.RawURLEncoding.EncodeToString([]byte("1700000000000000000/a\xffb"))
				_, err := ts.ListConnections(ctx, &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws", PageToken: tok})
				return err
			}},
			{"UpdateWorkspaceSettings.settings.workspace_id 1 MB", "settings.workspace_id", func(ctx context.Context) error {
				_, err := ts.UpdateWorkspaceSettings(ctx, &connectionsv1.UpdateWorkspaceSettingsRequest{Settings: &connectionsv1.WorkspaceSettings{
					WorkspaceId: strings.Repeat("w", 1<<20-64)}})
				return err
			}},
			{"UpdateWorkspaceSettings.settings.workspace_id injection", "settings.workspace_id", func(ctx context.Context) error {
				_, err := ts.UpdateWorkspaceSettings(ctx, &connectionsv1.UpdateWorkspaceSettingsRequest{Settings: &connectionsv1.WorkspaceSettings{
					WorkspaceId: "' OR 1=1 --"}})
				return err
			}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := tc.call(ctx)
				if status.Code(err) != codes.InvalidArgument {
					t.Fatalf("got %v, want InvalidArgument", err)
				}
				if !strings.Contains(err.Error(), tc.field) || strings.Contains(err.Error(), "canary-nul") {
					t.Errorf("error %q should name %s and not echo the value", err, tc.field)
				}
			})
		}
		if after, _ := st.LastEventSeq(ctx); after != seq {
			t.Errorf("the refused calls wrote %d audit events", after-seq)
		}
		if evs, _ := st.AccessEvents(ctx, store.AccessQuery{Limit: 10}); len(evs) != 0 {
			t.Errorf("the refused RecordAccess stored %d events", len(evs))
		}
	})
}
