package e2e

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/privilege"
)

// A runtime user's connection lives under its parent with the user's own
// secret, is listed and deleted under the runtime-connection privileges, and
// its secret leaves Vault with it.
func TestRuntimeUserConnections(t *testing.T) {
	cs := connections(t)
	ctx := ctxT(t)
	parent := mustCreate(t, cs, "ws-ru", "http", prod, key)
	created, err := cs.CreateRuntimeUserConnection(ctx, &connectionsv1.CreateRuntimeUserConnectionRequest{
		ParentConnectionId: parent.GetId(), RuntimeUser: "bob@acme.test", Secret: apiKey("bobs-own-key"),
	})
	if err != nil {
		t.Fatal(err)
	}
	child := created.GetConnection()
	if child.GetParentConnectionId() != parent.GetId() || child.GetRuntimeUser() != "bob@acme.test" ||
		child.GetConnector() != "http" || child.GetStatus() != connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE {
		t.Errorf("runtime user connection = %v", child)
	}
	// Workers get it through a job token naming bob: see TestRuntimeUserSwap.
	if _, err := cs.CreateRuntimeUserConnection(ctx, &connectionsv1.CreateRuntimeUserConnectionRequest{
		ParentConnectionId: parent.GetId(), RuntimeUser: "bob@acme.test", Secret: apiKey("again"),
	}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("second connection for bob: %v, want AlreadyExists", err)
	}

	// Listed under the parent with only the view privilege, not among the
	// workspace's ordinary connections.
	viewer := as(t, "ws-ru", privilege.ViewRuntimeUserConnections)
	list, err := cs.ListRuntimeUserConnections(viewer, &connectionsv1.ListRuntimeUserConnectionsRequest{ParentConnectionId: parent.GetId()})
	if err != nil || len(list.GetConnections()) != 1 {
		t.Errorf("ListRuntimeUserConnections = %v, %v; want bob's", list, err)
	}
	top, _ := cs.ListConnections(ctx, &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws-ru"})
	for _, c := range top.GetConnections() {
		if c.GetId() == child.GetId() {
			t.Error("a runtime user connection is listed among the workspace's connections")
		}
	}
	if _, err := cs.DeleteConnection(ctx, &connectionsv1.DeleteConnectionRequest{Id: child.GetId()}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("DeleteConnection on a runtime user connection: %v, want InvalidArgument pointing to DeleteRuntimeUserConnection", err)
	}
	editor := as(t, "ws-ru", privilege.EditRuntimeUserConnections)
	if _, err := cs.DeleteRuntimeUserConnection(editor, &connectionsv1.DeleteRuntimeUserConnectionRequest{Id: child.GetId()}); err != nil {
		t.Fatal(err)
	}
	if code, _ := vaultRead(t, child.GetId()); code != 404 {
		t.Errorf("runtime user secret after delete: status %d, want 404", code)
	}
	if code, _ := vaultRead(t, parent.GetId()); code != 200 {
		t.Errorf("parent secret after child delete: status %d, want 200", code)
	}
}
