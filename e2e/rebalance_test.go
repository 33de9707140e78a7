package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
)

// connCounter counts the transports a client opens.
type connCounter struct{ opened atomic.Int64 }

func (c *connCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (c *connCounter) HandleRPC(context.Context, stats.RPCStats)                         {}
func (c *connCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c *connCounter) HandleConn(_ context.Context, s stats.ConnStats) {
	if _, ok := s.(*stats.ConnBegin); ok {
		c.opened.Add(1)
	}
}

// A broker with -max-connection-age closes each worker connection after
// that long (GOAWAY), so that workers spread over replicas added since; the
// workers' calls meanwhile all succeed (the client moves to a new
// connection without failing a call).
func TestMaxConnectionAgeRebalances(t *testing.T) {
	cs := connectionsv1.NewConnectionServiceClient(dial(t, stack.ConnectionsAddr))
	ws := fmt.Sprintf("ws-conn-age-%d", time.Now().UnixNano())
	c := mustCreate(t, cs, ws, "github", connectionsv1.Environment_ENVIRONMENT_PRODUCTION, credentialv1.AuthType_AUTH_TYPE_API_KEY)
	b, err := stack.StartBroker(t.Context(), devstack.Extra{LogName: "broker-conn-age.log", Args: []string{"-max-connection-age=1s"}})
	if err != nil {
		t.Fatal(err)
	}
	counter := &connCounter{}
	cc, err := grpc.NewClient(b.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithStatsHandler(counter))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	bc := brokerv1.NewCredentialBrokerClient(cc)
	ctx := job(t, cs, bc, c.GetId())

	stop := make(chan struct{})
	var served atomic.Int64
	var mu sync.Mutex
	failures := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := bc.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()}); err != nil {
					mu.Lock()
					failures[status.Code(err).String()]++
					mu.Unlock()
					continue
				}
				served.Add(1)
			}
		})
	}
	waitFor(t, 30*time.Second, "the worker's connection replaced twice", func() bool { return counter.opened.Load() >= 3 })
	close(stop)
	wg.Wait()
	if len(failures) > 0 || served.Load() == 0 {
		t.Errorf("across %d connections: %d calls served, failures by code %v; want none failed", counter.opened.Load(), served.Load(), failures)
	}
}
