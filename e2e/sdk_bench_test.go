package e2e

import (
	"testing"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/sdk/go/worker"
)

// BenchmarkSDKCredential compares, in one run against the local stack's
// broker (real process, loopback TCP): the GetCredential RPC a worker would
// make by hand (served from the broker's memory, job token checked), and
// the SDK's Credential, served from the client's memory within MaxAge.
//
//	go test -run '^$' -bench SDKCredential -benchtime 3s ./e2e/
func BenchmarkSDKCredential(b *testing.B) {
	cs := connectionsv1.NewConnectionServiceClient(dial(b, stack.ConnectionsAddr))
	br := brokerv1.NewCredentialBrokerClient(dial(b, stack.BrokerAddr))
	created, err := cs.CreateConnection(ctxT(b), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-bench-sdk", Name: "bench",
		Connector: "http", Environment: prod, AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY,
		Instance: &credentialv1.AppInstance{BaseUrl: "https://api.example.com"}, Secret: apiKey("bench-key")})
	if err != nil {
		b.Fatal(err)
	}
	id := created.GetConnection().GetId()
	jc := job(b, cs, br, id)
	b.Run("rpc", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := br.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: id}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("sdk-cached", func(b *testing.B) {
		c, err := worker.New(b.Context(), worker.Options{Address: stack.BrokerAddr, Token: tokenOf(jc)})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Credential(b.Context(), id); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
