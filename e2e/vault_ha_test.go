package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/privilege"
	"github.com/integrationhub/connections/internal/vaultproc"
)

// A broker on a three-node Vault cluster (integrated raft storage) given
// every node's address, under load: when the active node steps down, and
// when it is killed, every cached GetCredential is served (none waits on
// Vault), writes and job-token minting work again within five seconds of
// the new leader, every error on the way is Unavailable, and nothing is
// restarted.
func TestVaultFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Vault cluster")
	}
	dir := t.TempDir()
	logs, err := os.Create(filepath.Join(stack.Dir, "vault-cluster.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cluster, err := vaultproc.StartCluster(t.Context(), dir, 3, logs)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Stop()
	if err := devstack.EnableTransit(t.Context(), cluster.Nodes[0].Addr, cluster.Token); err != nil {
		t.Fatal(err)
	}

	b, err := stack.StartBroker(t.Context(), devstack.Extra{LogName: "broker-ha.log",
		Env: []string{"VAULT_TOKEN=" + cluster.Token}, Args: []string{"-vault-addr=" + cluster.Addrs(), "-vault-timeout=5s"}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := stack.StartConnectionService(t.Context(), "sqlite:"+filepath.Join(dir, "c.db"), devstack.Extra{LogName: "connections-ha.log",
		Args: []string{"-broker-admin-addr=" + b.AdminAddr}})
	if err != nil {
		t.Fatal(err)
	}
	// The broker follows this test's connection service (restarted on the
	// same ports with that flag, as an operator's config would have it).
	if err := b.Terminate(); err != nil {
		t.Logf("broker exit: %v", err)
	}
	if _, err = stack.StartBroker(t.Context(), devstack.Extra{LogName: "broker-ha2.log",
		Env: []string{"VAULT_TOKEN=" + cluster.Token}, Args: []string{"-vault-addr=" + cluster.Addrs(), "-vault-timeout=5s",
			"-connections-addr=" + svc.Addr, "-listen=" + b.Addr, "-admin-listen=" + b.AdminAddr}, Probe: b.Addr}); err != nil {
		t.Fatal(err)
	}
	cs := connectionsv1.NewConnectionServiceClient(dial(t, svc.Addr))
	bc := brokerv1.NewCredentialBrokerClient(dial(t, b.Addr))
	c := mustCreate(t, cs, "ws-ha", "github", connectionsv1.Environment_ENVIRONMENT_PRODUCTION, credentialv1.AuthType_AUTH_TYPE_API_KEY)
	ctx := job(t, cs, bc, c.GetId())
	if _, err := bc.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()}); err != nil {
		t.Fatal(err)
	}

	// Load: cached reads all the while.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var served, failed atomic.Int64
	var codesMu sync.Mutex
	failedCodes := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				// A call that waited on Vault would take up to the 5 s Vault
				// timeout; 2 s leaves room for a busy machine, not for that.
				cctx, cancel := context.WithTimeout(loadCtx, 2*time.Second)
				_, err := bc.GetCredential(cctx, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
				cancel()
				switch {
				case err == nil:
					served.Add(1)
				case loadCtx.Err() == nil:
					failed.Add(1)
					codesMu.Lock()
					failedCodes[status.Code(err).String()]++
					codesMu.Unlock()
				}
			}
		})
	}

	// Writes go to another connection: a change drops the changed
	// connection's cached credential, and the load must stay cached.
	w := mustCreate(t, cs, "ws-ha", "github", connectionsv1.Environment_ENVIRONMENT_PRODUCTION, credentialv1.AuthType_AUTH_TYPE_API_KEY)
	write := func(i int) error {
		got, err := cs.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: w.GetId()})
		if err != nil {
			return err
		}
		_, err = cs.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: w.GetId(), Etag: got.GetConnection().GetEtag(),
			Secret: apiKey(fmt.Sprintf("k-ha-%d", i))})
		return err
	}
	mint := func() error {
		_, err := bc.MintJobToken(scheduler(t, privilege.MintJobTokens), &brokerv1.MintJobTokenRequest{WorkspaceId: "ws-ha",
			RecipeId: recipeOf(t, cs, c.GetId()), JobId: "job-ha"})
		return err
	}
	killed := map[int]bool{}
	// backWithin waits for a new active node, then for writes and minting
	// to work, and checks that every failure meanwhile was Unavailable.
	backWithin := func(event string, old int, oldSince time.Time) {
		t.Helper()
		var alive []int
		for i := range cluster.Nodes {
			if !killed[i] {
				alive = append(alive, i)
			}
		}
		var leader int
		waitFor(t, 60*time.Second, "a new active node after "+event, func() bool {
			l, since, err := cluster.Leader(t.Context(), alive...)
			leader = l
			return err == nil && (l != old || !since.Equal(oldSince)) // a new term, maybe of the same node
		})
		elected := time.Now()
		for i, op := range []func() error{func() error { return write(int(time.Now().UnixNano())) }, mint} {
			for {
				err := op()
				if err == nil {
					break
				}
				if code := status.Code(err); code != codes.Unavailable {
					t.Errorf("%s: operation %d failed with %v, want only Unavailable while Vault fails over", event, i, err)
				}
				if time.Since(elected) > 5*time.Second {
					t.Fatalf("%s: operation %d still failing %v after node %d became active: %v", event, i, time.Since(elected).Round(time.Millisecond), leader, err)
				}
				time.Sleep(100 * time.Millisecond) // retry pacing, as a client would
			}
		}
		t.Logf("%s: node %d active; writes and minting back %v later", event, leader, time.Since(elected).Round(time.Millisecond))
	}

	leader, since, err := cluster.Leader(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.StepDown(t.Context(), leader); err != nil {
		t.Fatal(err)
	}
	backWithin("step-down", leader, since)

	leader, since, err = cluster.Leader(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// When the active node is the broker's first address (node 0), the
	// broker's requests must move to another node; otherwise its node, a
	// standby, forwards them to the new active one.
	t.Logf("killing node %d (the broker's first address is node 0)", leader)
	cluster.Kill(leader)
	killed[leader] = true
	backWithin("kill", leader, since)

	stopLoad()
	wg.Wait()
	if failed.Load() > 0 || served.Load() == 0 {
		t.Errorf("cached GetCredential under load: %d served, %d failed (%v); want none failed", served.Load(), failed.Load(), failedCodes)
	}
}

// recipeOf returns the recipe a connection is bound to (the one job made).
func recipeOf(t *testing.T, cs connectionsv1.ConnectionServiceClient, id string) string {
	t.Helper()
	resp, err := cs.ListConnectionUsage(ctxT(t), &connectionsv1.ListConnectionUsageRequest{ConnectionId: id})
	if err != nil || len(resp.GetBindings()) == 0 {
		t.Fatalf("ListConnectionUsage: %v", err)
	}
	return resp.GetBindings()[0].GetRecipeId()
}
