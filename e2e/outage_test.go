package e2e

import (
	"strings"
	"testing"
	"time"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
)

// A quiet broker (no change has reached it yet) keeps serving cached
// credentials while its connection service is down, past its cache age, and
// follows changes again once the service is back, without a restart and
// without dropping what it holds.
func TestBrokerServesThroughConnectionServiceOutage(t *testing.T) {
	db := "sqlite:" + sqlitePath(t)
	name := strings.ReplaceAll(t.Name(), "/", "-")
	svc, err := stack.StartConnectionService(t.Context(), db, devstack.Extra{LogName: name + "-svc.log"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := stack.StartBroker(t.Context(), devstack.Extra{LogName: name + "-broker.log",
		Args: []string{"-connections-addr=" + svc.Addr, "-cache-ttl=1s"}})
	if err != nil {
		t.Fatal(err)
	}
	cs := connectionsv1.NewConnectionServiceClient(dial(t, svc.Addr))
	bc := brokerv1.NewCredentialBrokerClient(dial(t, b.Addr))
	c := mustCreate(t, cs, "ws-outage", "github", connectionsv1.Environment_ENVIRONMENT_PRODUCTION, credentialv1.AuthType_AUTH_TYPE_API_KEY)
	ctx := job(t, cs, bc, c.GetId())
	get := func() error {
		_, err := bc.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
		return err
	}
	if err := get(); err != nil {
		t.Fatal(err)
	}

	svc.Kill()
	calls, failed := 0, 0
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); calls++ {
		if err := get(); err != nil {
			failed++
			if failed == 1 {
				t.Errorf("GetCredential during the outage: %v", err)
			}
		}
		time.Sleep(20 * time.Millisecond) // pacing: about 200 calls over an outage four times the cache age
	}
	if failed > 0 {
		t.Errorf("%d of %d calls failed while the connection service was down", failed, calls)
	}

	// Back at the same address, on the same database.
	if _, err := stack.StartConnectionService(t.Context(), db, devstack.Extra{LogName: name + "-svc2.log",
		Args: []string{"-listen=" + svc.Addr, "-http-listen=" + svc.HTTPAddr}, Probe: svc.Addr}); err != nil {
		t.Fatal(err)
	}
	if err := get(); err != nil {
		t.Fatalf("GetCredential after the service came back: %v", err)
	}
	// The stream resumed: a change made now reaches the broker.
	if _, err := cs.ReportConnectionStatus(ctxT(t), &connectionsv1.ReportConnectionStatusRequest{ConnectionId: c.GetId(),
		Status: connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID,
		Reason: connectionsv1.StatusReason_STATUS_REASON_MODIFIED_CREDENTIALS, LastError: "test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the broker to refuse the invalidated connection", func() bool { return get() != nil })
}
