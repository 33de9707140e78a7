package e2e

import (
	"fmt"
	"os"
	"strconv"
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
	const chunk, workers = 75, 8
	chunks := 8
	if n, err := strconv.Atoi(os.Getenv("INTEGRATIONHUB_BENCH_CHUNKS")); err == nil && n > 0 {
		// e.g. 40: an update phase longer than the replacement grace, so
		// that the replaced generations' destroys run inside it.
		chunks = n
	}
	e := newRaceEnv(t, pgtest.NewDatabase(t), devstack.Extra{})
	type variant struct {
		name             string
		cs               connectionsv1.ConnectionServiceClient
		conns            []*connectionsv1.Connection
		create, update   time.Duration
		createN, updateN int
	}
	// Both variants reach the broker through the same token-adding proxy
	// (the "before" build presents no admin token).
	proxy := adminTokenProxy(t, e.adminAddr)
	after := []string{"-database=" + pgtest.NewDatabase(t), "-broker-admin-addr=" + proxy}
	if g := os.Getenv("INTEGRATIONHUB_BENCH_GRACE"); g != "" { // e.g. 0s: replaced generations destroyed inside the run
		after = append(after, "-replaced-secret-grace="+g)
	}
	vs := []*variant{{name: "after", cs: e.replica(t, devstack.Extra{Args: after})}}
	if b := os.Getenv("INTEGRATIONHUB_BENCH_BEFORE"); b != "" {
		vs = append([]*variant{{name: "before", cs: e.replicaPlain(t, b, proxy)}}, vs...)
	}
	// run does n operations with workers callers and returns how long they took.
	run := func(n int, op func(i int) error) time.Duration {
		var next atomic.Int64
		next.Store(-1)
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1)); i < n; i = int(next.Add(1)) {
					if err := op(i); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	// The variants take turns chunk by chunk, so that the machine's load
	// (other work on it) weighs on both alike.
	for c := range chunks {
		for _, v := range vs {
			made := make([]*connectionsv1.Connection, chunk)
			v.create += run(chunk, func(i int) error {
				resp, err := v.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-bench", Name: "b",
					Connector: "stripe", Environment: prod, AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY, Secret: apiKey(fmt.Sprintf("k-%d-%d", c, i))})
				made[i] = resp.GetConnection()
				return err
			})
			v.createN += chunk
			v.conns = append(v.conns, made...)
		}
	}
	for c := range chunks {
		for _, v := range vs {
			part := v.conns[c*chunk : (c+1)*chunk]
			v.update += run(chunk, func(i int) error {
				_, err := v.cs.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: part[i].GetId(), Etag: part[i].GetEtag(),
					Secret: apiKey(fmt.Sprintf("k2-%d-%d", c, i))})
				return err
			})
			v.updateN += chunk
		}
	}
	for _, v := range vs {
		t.Logf("%-6s CreateConnection %7.1f/s  UpdateConnection %7.1f/s  (%d ops each, %d callers, %d alternating chunks)", v.name,
			float64(v.createN)/v.create.Seconds(), float64(v.updateN)/v.update.Seconds(), v.createN, workers, chunks)
	}
}

// replicaPlain starts a connection service from bin (an older build) on a
// database of its own, writing through brokerAdmin (e's broker, or a proxy
// to it), with only the flags every version knows.
func (e *raceEnv) replicaPlain(t *testing.T, bin, brokerAdmin string) connectionsv1.ConnectionServiceClient {
	t.Helper()
	p, err := stack.StartConnectionService(t.Context(), pgtest.NewDatabase(t), devstack.Extra{Binary: bin,
		LogName: fmt.Sprintf("wp-bench-before-%d.log", time.Now().UnixNano()), Args: []string{"-broker-admin-addr=" + brokerAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	return connectionsv1.NewConnectionServiceClient(dial(t, p.Addr))
}
