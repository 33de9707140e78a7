package e2e

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
)

// A broker stopped with SIGTERM while workers call it: it stops taking
// calls, finishes those in flight, and only then ships its access record for
// the last time, so the record counts exactly the calls that succeeded.
func TestSigtermRecordsEverySuccessfulCall(t *testing.T) {
	cs := connectionsv1.NewConnectionServiceClient(dial(t, stack.ConnectionsAddr))
	ws := fmt.Sprintf("ws-sigterm-%d", time.Now().UnixNano())
	c := mustCreate(t, cs, ws, "github", connectionsv1.Environment_ENVIRONMENT_PRODUCTION, credentialv1.AuthType_AUTH_TYPE_API_KEY)
	b, err := stack.StartBroker(t.Context(), devstack.Extra{LogName: "broker-sigterm.log"})
	if err != nil {
		t.Fatal(err)
	}
	bc := brokerv1.NewCredentialBrokerClient(dial(t, b.Addr))
	ctx := job(t, cs, bc, c.GetId())

	var ok atomic.Int64
	var wg sync.WaitGroup
	started := make(chan struct{})
	var once sync.Once
	for range 8 {
		wg.Go(func() {
			for {
				if _, err := bc.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()}); err != nil {
					return // the broker has stopped taking calls
				}
				if ok.Add(1) >= 200 {
					once.Do(func() { close(started) })
				}
			}
		})
	}
	<-started
	if err := b.Terminate(); err != nil {
		t.Logf("broker exit: %v", err)
	}
	wg.Wait()

	var recorded int64
	resp, err := cs.ListAccessEvents(ctxT(t), &connectionsv1.ListAccessEventsRequest{WorkspaceId: ws, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range resp.GetEvents() {
		if e.GetOperation() == "GetCredential" && e.GetDecision() == connectionsv1.AccessDecision_ACCESS_DECISION_ALLOWED {
			recorded += e.GetCount()
		}
	}
	if recorded != ok.Load() {
		t.Errorf("access record counts %d successful GetCredential calls, workers saw %d (log %s)", recorded, ok.Load(),
			filepath.Join(stack.Dir, "broker-sigterm.log"))
	}
}
