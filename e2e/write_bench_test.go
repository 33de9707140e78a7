package e2e

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/pgtest"
)

// TestWriteThroughput is a load run, not a check: CreateConnection and
// UpdateConnection (with a new secret) throughput on PostgreSQL through real
// processes (connection service, broker, Vault), for the connection service
// built from this tree ("after") and, when INTEGRATIONHUB_BENCH_BEFORE names
// one, a binary built from before the write protocol ("before"), in the same
// run against the same broker. scripts/bench-write-protocol.sh builds that
// binary and runs this. Skipped unless INTEGRATIONHUB_BENCH_WRITE is set.
func TestWriteThroughput(t *testing.T) {
	if os.Getenv("INTEGRATIONHUB_BENCH_WRITE") == "" {
		t.Skip("a load run: set INTEGRATIONHUB_BENCH_WRITE=1 (scripts/bench-write-protocol.sh)")
	}
	const ops, workers = 600, 8
	e := newRaceEnv(t, pgtest.NewDatabase(t), devstack.Extra{})
	variants := []struct{ name, bin string }{{"after", ""}}
	if b := os.Getenv("INTEGRATIONHUB_BENCH_BEFORE"); b != "" {
		variants = append([]struct{ name, bin string }{{"before", b}}, variants...)
	}
	// Two rounds, alternating, so that neither variant always runs on a
	// colder machine.
	for round := range 2 {
		for _, v := range variants {
			var cs connectionsv1.ConnectionServiceClient
			if v.bin != "" {
				// The older binary knows none of the new flags.
				cs = e.replicaPlain(t, v.bin)
			} else {
				cs = e.replica(t, devstack.Extra{Args: []string{"-database=" + pgtest.NewDatabase(t)}})
			}
			ids := make([]*connectionsv1.Connection, ops)
			var next atomic.Int64
			run := func(op func(i int) error) float64 {
				next.Store(-1)
				var wg sync.WaitGroup
				start := time.Now()
				for range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := int(next.Add(1)); i < ops; i = int(next.Add(1)) {
							if err := op(i); err != nil {
								t.Errorf("%s: %v", v.name, err)
								return
							}
						}
					}()
				}
				wg.Wait()
				return float64(ops) / time.Since(start).Seconds()
			}
			ws := fmt.Sprintf("ws-bench-%s-%d", v.name, round)
			create := run(func(i int) error {
				resp, err := cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: ws, Name: "b",
					Connector: "stripe", Environment: prod, AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY, Secret: apiKey(fmt.Sprintf("k-%d", i))})
				ids[i] = resp.GetConnection()
				return err
			})
			update := run(func(i int) error {
				_, err := cs.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: ids[i].GetId(), Etag: ids[i].GetEtag(),
					Secret: apiKey(fmt.Sprintf("k2-%d", i))})
				return err
			})
			t.Logf("round %d %-6s CreateConnection %7.1f/s  UpdateConnection %7.1f/s  (%d ops, %d callers)", round, v.name, create, update, ops, workers)
		}
	}
}

// replicaPlain starts a connection service from bin (an older build) on a
// database of its own, writing through e's broker, with only the flags
// every version knows.
func (e *raceEnv) replicaPlain(t *testing.T, bin string) connectionsv1.ConnectionServiceClient {
	t.Helper()
	p, err := stack.StartConnectionService(t.Context(), pgtest.NewDatabase(t), devstack.Extra{Binary: bin,
		LogName: fmt.Sprintf("wp-bench-before-%d.log", time.Now().UnixNano()), Args: []string{"-broker-admin-addr=" + e.adminAddr}})
	if err != nil {
		t.Fatal(err)
	}
	return connectionsv1.NewConnectionServiceClient(dial(t, p.Addr))
}
