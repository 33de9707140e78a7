package e2e

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
)

// Disconnect and promote, on SQLite and PostgreSQL with a real broker:
// a disconnected connection keeps its id and bindings, its secret leaves
// Vault, and jobs get a clear error until it is reconnected with new
// credentials; a sandbox connection is promoted to a new production
// connection with a new secret.
func TestDisconnectAndPromote(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) { testDisconnectAndPromote(t, db(t)) })
	}
}

func testDisconnectAndPromote(t *testing.T, database string) {
	e := newRaceEnv(t, database, devstack.Extra{Args: []string{"-replaced-secret-grace=0s"}})
	sandbox := connectionsv1.Environment_ENVIRONMENT_SANDBOX
	created, err := e.a.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: raceWS, Name: "payments",
		Connector: "stripe", Environment: sandbox, AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY, Secret: apiKey("sk_test_one")})
	if err != nil {
		t.Fatal(err)
	}
	c := created.GetConnection()
	jc := e.job(t, c.GetId())
	e.settle(t, jc, c.GetId(), nil, func(k string, _ codes.Code) bool { return k == "sk_test_one" })

	// Disconnect: DISCONNECTED, bindings kept, secret gone from Vault,
	// jobs refused with CONNECTION_NOT_ACTIVE.
	if _, err := e.a.DisconnectConnection(ctxT(t), &connectionsv1.DisconnectConnectionRequest{Id: c.GetId(), Etag: "999"}); status.Code(err) != codes.Aborted {
		t.Errorf("DisconnectConnection with a stale etag = %v, want Aborted", err)
	}
	d, err := e.a.DisconnectConnection(ctxT(t), &connectionsv1.DisconnectConnectionRequest{Id: c.GetId(), Etag: c.GetEtag()})
	if err != nil {
		t.Fatal(err)
	}
	if d.GetConnection().GetStatus() != connectionsv1.ConnectionStatus_CONNECTION_STATUS_DISCONNECTED || d.GetConnection().GetId() != c.GetId() {
		t.Fatalf("DisconnectConnection = %v", d.GetConnection())
	}
	again, err := e.a.DisconnectConnection(ctxT(t), &connectionsv1.DisconnectConnectionRequest{Id: c.GetId()})
	if err != nil || again.GetConnection().GetEtag() != d.GetConnection().GetEtag() {
		t.Errorf("disconnecting again = %v, %v; want the same connection unchanged", again.GetConnection(), err)
	}
	// Until the change reaches the broker it may still serve the
	// acknowledged key: no refused key here, only the wait.
	e.settle(t, jc, c.GetId(), nil, func(_ string, code codes.Code) bool { return code == codes.FailedPrecondition })
	_, err = e.worker.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
	if ei := errorInfo(err); ei.GetReason() != "CONNECTION_NOT_ACTIVE" || ei.GetMetadata()["status"] != "CONNECTION_STATUS_DISCONNECTED" {
		t.Errorf("GetCredential of a disconnected connection: %v (%v), want CONNECTION_NOT_ACTIVE, DISCONNECTED", err, ei)
	}
	usage, err := e.a.ListConnectionUsage(ctxT(t), &connectionsv1.ListConnectionUsageRequest{ConnectionId: c.GetId()})
	if err != nil || len(usage.GetBindings()) != 1 {
		t.Errorf("bindings after disconnect: %v, %v; want the one", usage, err)
	}
	waitFor(t, 30*time.Second, "the disconnected connection's secret to leave Vault", func() bool {
		l, err := e.admin.ListSecrets(ctxT(t), &brokerv1.ListSecretsRequest{ConnectionId: c.GetId()})
		return err == nil && len(l.GetSecrets()) == 0
	})
	// Moving it elsewhere needs its credentials.
	if _, err := e.a.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: c.GetId(),
		Instance: &credentialv1.AppInstance{}}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("moving a disconnected connection without a secret = %v, want FailedPrecondition", err)
	}

	// Reconnect with new credentials: same id, same binding, served again.
	if _, err := e.a.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: c.GetId(), Secret: apiKey("sk_test_two")}); err != nil {
		t.Fatal(err)
	}
	e.settle(t, jc, c.GetId(), []string{"sk_test_one"}, func(k string, _ codes.Code) bool { return k == "sk_test_two" })

	// Promote: a new production connection from the sandbox one's
	// configuration and a new secret; the sandbox one is unchanged.
	if _, err := e.a.PromoteConnection(ctxT(t), &connectionsv1.PromoteConnectionRequest{Id: c.GetId()}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("PromoteConnection without a secret = %v, want InvalidArgument", err)
	}
	p, err := e.a.PromoteConnection(ctxT(t), &connectionsv1.PromoteConnectionRequest{Id: c.GetId(), Name: "payments (live)", Secret: apiKey("sk_live_one")})
	if err != nil {
		t.Fatal(err)
	}
	pc := p.GetConnection()
	if pc.GetId() == c.GetId() || pc.GetEnvironment() != prod || pc.GetStatus() != connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE ||
		pc.GetConnector() != "stripe" || pc.GetName() != "payments (live)" || pc.GetInstance().GetSandbox() {
		t.Errorf("promoted connection %v", pc)
	}
	if _, err := e.a.PromoteConnection(ctxT(t), &connectionsv1.PromoteConnectionRequest{Id: pc.GetId(), Secret: apiKey("sk_live_two")}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("promoting a production connection = %v, want FailedPrecondition", err)
	}
	e.settle(t, e.job(t, pc.GetId()), pc.GetId(), nil, func(k string, _ codes.Code) bool { return k == "sk_live_one" })
	e.settle(t, jc, c.GetId(), nil, func(k string, _ codes.Code) bool { return k == "sk_test_two" })
	// Only a caller who may create connections promotes.
	if _, err := e.a.PromoteConnection(as(t, raceWS, "connections:view", "connections:edit"),
		&connectionsv1.PromoteConnectionRequest{Id: c.GetId(), Secret: apiKey("sk_live_three")}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("PromoteConnection without the create privilege = %v, want PermissionDenied", err)
	}
	e.converged(t, nil)
}
