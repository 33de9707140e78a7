package api_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/privilege"

	"github.com/integrationhub/connections/services/connections/internal/store"
)

// wantInvalid fails unless err is InvalidArgument naming field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), field) {
		t.Errorf("got %v, want InvalidArgument naming %s", err, field)
	}
}

// An editor cannot point a connection where its credential may not go: a
// base_url on a connector without one, a host outside the connector's
// allowed hosts, a production connection on a sandbox instance, or a move
// without the secret. Refusals change nothing; both stores alike.
func TestConnectionsStayWhereTheyPoint(t *testing.T) {
	bothStores(t, func(t *testing.T, ts *testService, st store.Store) {
		ctx := ts.admin(t)
		editor := ts.as(ctxT(t), t, "ws", privilege.EditConnections)

		gh := oauthReq("ws", "gh")
		gh.Connector = "github"
		gh.Instance = &credentialv1.AppInstance{BaseUrl: "https://attacker.test"}
		_, err := ts.CreateConnection(ctx, gh)
		wantInvalid(t, err, "instance.base_url")

		sbx := oauthReq("ws", "sf")
		sbx.Instance = &credentialv1.AppInstance{Sandbox: true}
		_, err = ts.CreateConnection(ctx, sbx)
		wantInvalid(t, err, "instance.sandbox")

		// A GitHub API-key connection, stored as the broker would have
		// activated it (the broker is not running in these tests).
		key := &store.Connection{ID: uuid.NewString(), WorkspaceID: "ws", Name: "gh key", Connector: "github",
			Environment: "production", AuthType: "api_key", Status: store.StatusActive}
		if err := st.Create(ctx, "tester", key); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, field string
			inst        *credentialv1.AppInstance
		}{
			{"base_url on a connector without one", "instance.base_url", &credentialv1.AppInstance{BaseUrl: "https://attacker.test"}},
			{"sandbox on a production connection", "instance.sandbox", &credentialv1.AppInstance{Sandbox: true}},
			{"a move without the secret", "secret", &credentialv1.AppInstance{OrgId: "other-org"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := ts.UpdateConnection(editor, &connectionsv1.UpdateConnectionRequest{Id: key.ID, Instance: tc.inst})
				wantInvalid(t, err, tc.field)
			})
		}
		if got, _ := st.Get(ctx, key.ID); got.Version != key.Version || got.Instance != key.Instance {
			t.Errorf("a refused update changed the connection: %+v", got)
		}

		// An OAuth connection that moves loses its authorization: it waits,
		// pending, for the user to authorize it for the new instance.
		sf, err := ts.CreateConnection(ctx, oauthReq("ws", "sf"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Update(ctx, "tester", sf.GetConnection().GetId(), 0, func(c *store.Connection) error {
			c.Status, c.StatusReason, c.AuthorizedAs = store.StatusActive, "", "alice@acme.test"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		moved, err := ts.UpdateConnection(editor, &connectionsv1.UpdateConnectionRequest{Id: sf.GetConnection().GetId(),
			Instance: &credentialv1.AppInstance{BaseUrl: "https://other.my.salesforce.com"}})
		if err != nil {
			t.Fatal(err)
		}
		if c := moved.GetConnection(); c.GetStatus() != connectionsv1.ConnectionStatus_CONNECTION_STATUS_PENDING ||
			c.GetStatusReason() != connectionsv1.StatusReason_STATUS_REASON_AUTHORIZATION_REQUIRED || c.GetAuthorizedAs() != "" {
			t.Errorf("moved OAuth connection: %s (%s) as %q, want pending, authorization required", c.GetStatus(), c.GetStatusReason(), c.GetAuthorizedAs())
		}
	})
}
