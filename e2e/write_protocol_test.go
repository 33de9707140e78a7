package e2e

// The write protocol between metadata and Vault (docs/write-protocol.md),
// against real processes: two connection-service replicas sharing one
// database (SQLite file or PostgreSQL), a broker of their own with a Vault
// path prefix of its own (so that their reconciler sees only their
// secrets), and the stack's Vault.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/loopback"
	"github.com/integrationhub/connections/internal/pgtest"
	"github.com/integrationhub/connections/internal/vaultproc"
)

// raceEnv is a pair of connection-service replicas on one database and the
// broker they write through.
type raceEnv struct {
	database   string
	prefix     string
	a, b       connectionsv1.ConnectionServiceClient
	replicaA   *devstack.Proc
	admin      brokerv1.BrokerAdminClient
	adminAddr  string
	worker     brokerv1.CredentialBrokerClient
	brokerProc *devstack.Proc
	brokerLog  string
	// vault, when set, is the broker's own Vault instead of the stack's.
	vault *vaultproc.Server
}

var envSeq int

// newRaceEnv starts the replicas (with extra args and environment for the
// first) and their broker. The reconciler is off: tests run it through the
// Reconcile RPC, so that "after one pass" means exactly that.
func newRaceEnv(t *testing.T, database string, extraA devstack.Extra) *raceEnv {
	return newRaceEnvOn(t, database, extraA, nil)
}

// newRaceEnvOn is newRaceEnv with the broker on a Vault of its own (vs, nil
// for the stack's).
func newRaceEnvOn(t *testing.T, database string, extraA devstack.Extra, vs *vaultproc.Server) *raceEnv {
	t.Helper()
	envSeq++
	e := &raceEnv{database: database, prefix: fmt.Sprintf("wp-%d-%d", os.Getpid(), envSeq), vault: vs}
	addrs, err := loopback.FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	e.adminAddr = addrs[0]
	args := []string{"-broker-admin-addr=" + e.adminAddr, "-reconcile-period=0", "-secret-write-timeout=1s", "-watch-poll=50ms"}
	extraA.LogName = fmt.Sprintf("wp-%d-a.log", envSeq)
	extraA.Args = append(append([]string{}, args...), extraA.Args...)
	e.replicaA, err = stack.StartConnectionService(t.Context(), database, extraA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := stack.StartConnectionService(t.Context(), database, devstack.Extra{LogName: fmt.Sprintf("wp-%d-b.log", envSeq), Args: args})
	if err != nil {
		t.Fatal(err)
	}
	e.startBroker(t, nil)
	e.a = connectionsv1.NewConnectionServiceClient(dial(t, e.replicaA.Addr))
	e.b = connectionsv1.NewConnectionServiceClient(dial(t, b.Addr))
	e.admin = brokerv1.NewBrokerAdminClient(dialAdmin(t, e.adminAddr))
	return e
}

// startBroker (re)starts the replicas' broker on its admin address.
func (e *raceEnv) startBroker(t *testing.T, env []string) {
	t.Helper()
	// A killed broker's admin port may take a moment to be free again.
	waitFor(t, 10*time.Second, "the admin port "+e.adminAddr+" to be free", func() bool {
		l, err := net.Listen("tcp", e.adminAddr)
		if err == nil {
			l.Close()
		}
		return err == nil
	})
	e.brokerLog = fmt.Sprintf("wp-%d-broker-%d.log", envSeq, time.Now().UnixNano())
	args := []string{"-admin-listen=" + e.adminAddr, "-connections-addr=" + e.replicaA.Addr, "-vault-path-prefix=" + e.prefix}
	if e.vault != nil {
		args = append(args, "-vault-addr="+e.vault.Addr, "-vault-timeout=5s")
		env = append(env, "VAULT_TOKEN="+e.vault.Token)
	}
	p, err := stack.StartBroker(t.Context(), devstack.Extra{LogName: e.brokerLog, Args: args, Env: env, Probe: e.adminAddr})
	if err != nil {
		t.Fatal(err)
	}
	e.brokerProc = p
	e.worker = brokerv1.NewCredentialBrokerClient(dial(t, p.Addr))
}

// databases are the stores the protocol is tested on.
func databases(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + sqlitePath(t) },
		"postgres": func(t *testing.T) string { return pgtest.NewDatabase(t) },
	}
}

// trials is how often each race runs (INTEGRATIONHUB_RACE_TRIALS, default 40).
func trials() int {
	if n, err := strconv.Atoi(os.Getenv("INTEGRATIONHUB_RACE_TRIALS")); err == nil && n > 0 {
		return n
	}
	return 40
}

const raceWS = "ws-race"

// create makes an API-key connection whose key is key.
func (e *raceEnv) create(t *testing.T, cs connectionsv1.ConnectionServiceClient, key string) *connectionsv1.Connection {
	t.Helper()
	resp, err := cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: raceWS, Name: "race",
		Connector: "stripe", Environment: prod, AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY, Secret: apiKey(key)})
	if err != nil {
		t.Fatalf("CreateConnection: %v", err)
	}
	return resp.GetConnection()
}

// job binds the connection to a new recipe and returns a worker context for it.
func (e *raceEnv) job(t *testing.T, id string) context.Context {
	t.Helper()
	return job(t, e.a, e.worker, id)
}

// served returns the key GetCredential serves now ("" and the code when it
// serves none).
func (e *raceEnv) served(jc context.Context, id string) (string, codes.Code) {
	resp, err := e.worker.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: id})
	if err != nil {
		return "", status.Code(err)
	}
	return resp.GetCredential().GetApiKey().GetKey(), codes.OK
}

// settle reads the served key until want holds (change-stream delay),
// failing if a refused key is ever served.
func (e *raceEnv) settle(t *testing.T, jc context.Context, id string, refused []string, want func(string, codes.Code) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, code := e.served(jc, id)
		for _, r := range refused {
			if got == r {
				t.Fatalf("connection %s serves a secret whose write was refused", id)
			}
		}
		if want(got, code) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection %s: still serving %q (%v) 15s after the race", id, got, code)
		}
		time.Sleep(20 * time.Millisecond) // polling pace, bounded by the deadline
	}
}

// race runs f and g at once.
func race(f, g func()) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); f() }()
	go func() { defer wg.Done(); g() }()
	wg.Wait()
}

// converged runs one repairing reconciler pass, then checks with a dry run
// that nothing is left: no orphaned generation, no unfinished delete, no
// connection whose secret is missing, and that Vault holds no secret of the
// deleted connections.
func (e *raceEnv) converged(t *testing.T, deleted map[string]bool) {
	t.Helper()
	ctx := ctxT(t)
	if _, err := e.a.Reconcile(ctx, &connectionsv1.ReconcileRequest{}); err != nil {
		logInternalErrors(t)
		t.Fatalf("Reconcile: %v", err)
	}
	r, err := e.b.Reconcile(ctx, &connectionsv1.ReconcileRequest{DryRun: true})
	if err != nil {
		logInternalErrors(t)
		t.Fatalf("Reconcile dry run: %v", err)
	}
	if n := len(r.GetOrphanedSecrets()) + len(r.GetUnfinishedDeleteConnectionIds()) + len(r.GetMissingSecretConnectionIds()) +
		len(r.GetOrphanedOauthClients()); n != 0 {
		t.Errorf("after one reconciler pass: %d orphaned secrets, %d unfinished deletes, %d connections missing their secret, "+
			"%d orphaned OAuth client secrets", len(r.GetOrphanedSecrets()), len(r.GetUnfinishedDeleteConnectionIds()),
			len(r.GetMissingSecretConnectionIds()), len(r.GetOrphanedOauthClients()))
	}
	left := 0
	for _, id := range e.secretOwners(t) {
		if deleted[id] {
			left++
		}
	}
	if left != 0 {
		t.Errorf("%d secret generations of acknowledged deletes are still in Vault after reconciliation", left)
	}
}

// secretOwners lists the connection id of every secret generation in this
// environment's Vault path, one entry per generation.
func (e *raceEnv) secretOwners(t *testing.T) []string {
	t.Helper()
	var out []string
	for tok := ""; ; {
		page, err := e.admin.ListSecrets(ctxT(t), &brokerv1.ListSecretsRequest{PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.GetSecrets() {
			out = append(out, s.GetConnectionId())
		}
		if tok = page.GetNextPageToken(); tok == "" {
			return out
		}
	}
}

func TestWriteProtocolRaces(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			e := newRaceEnv(t, db(t), devstack.Extra{})
			deleted := map[string]bool{}
			n := trials()
			// outcomes shows that both orders of each race happened.
			outcomes := map[string]int{}
			defer func() { t.Logf("outcomes over %d trials each: %v", n, outcomes) }()

			t.Run("SameEtagUpdates", func(t *testing.T) {
				for i := range n {
					c := e.create(t, e.a, fmt.Sprintf("k0-%d", i))
					jc := e.job(t, c.GetId())
					ka, kb := fmt.Sprintf("ka-%d", i), fmt.Sprintf("kb-%d", i)
					var errA, errB error
					race(func() {
						_, errA = e.a.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: c.GetId(), Etag: c.GetEtag(), Secret: apiKey(ka)})
					}, func() {
						_, errB = e.b.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: c.GetId(), Etag: c.GetEtag(), Secret: apiKey(kb)})
					})
					win, lose := ka, kb
					switch {
					case errA == nil && errB == nil:
						t.Fatalf("trial %d: both updates with one etag answered OK", i)
					case errA == nil && status.Code(errB) == codes.Aborted:
						outcomes["same-etag: replica A won"]++
					case errB == nil && status.Code(errA) == codes.Aborted:
						win, lose = kb, ka
						outcomes["same-etag: replica B won"]++
					default:
						t.Fatalf("trial %d: updates answered %v and %v; want one OK, one Aborted", i, errA, errB)
					}
					e.settle(t, jc, c.GetId(), []string{lose}, func(got string, _ codes.Code) bool { return got == win })
				}
			})

			t.Run("UpdateVsDelete", func(t *testing.T) {
				for i := range n {
					c := e.create(t, e.a, fmt.Sprintf("k0-%d", i))
					jc := e.job(t, c.GetId())
					ku := fmt.Sprintf("ku-%d", i)
					var errU, errD error
					race(func() {
						_, errU = e.a.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: c.GetId(), Etag: c.GetEtag(), Secret: apiKey(ku)})
					}, func() {
						_, errD = e.b.DeleteConnection(ctxT(t), &connectionsv1.DeleteConnectionRequest{Id: c.GetId(), Etag: c.GetEtag(), Force: true})
					})
					switch {
					case errU == nil && errD == nil:
						t.Fatalf("trial %d: update and delete with one etag both answered OK", i)
					case errD == nil:
						outcomes["update-vs-delete: delete won"]++
						deleted[c.GetId()] = true
						e.settle(t, jc, c.GetId(), []string{ku}, func(_ string, code codes.Code) bool { return code == codes.NotFound })
					case errU == nil:
						outcomes["update-vs-delete: update won"]++
						e.settle(t, jc, c.GetId(), nil, func(got string, _ codes.Code) bool { return got == ku })
					default:
						t.Fatalf("trial %d: both refused: %v, %v", i, errU, errD)
					}
				}
			})

			t.Run("DeleteVsBind", func(t *testing.T) {
				for i := range n {
					c := e.create(t, e.a, fmt.Sprintf("k0-%d", i))
					recipe := fmt.Sprintf("r-db-%s-%d", name, i)
					if _, err := e.a.RegisterRecipe(ctxT(t), &connectionsv1.RegisterRecipeRequest{RecipeId: recipe, WorkspaceId: raceWS, Environment: prod}); err != nil {
						t.Fatal(err)
					}
					var errD, errB error
					race(func() {
						_, errD = e.a.DeleteConnection(ctxT(t), &connectionsv1.DeleteConnectionRequest{Id: c.GetId()})
					}, func() {
						_, errB = e.b.BindConnection(ctxT(t), &connectionsv1.BindConnectionRequest{RecipeId: recipe, Step: "s", ConnectionId: c.GetId()})
					})
					switch {
					case errD == nil && errB == nil:
						t.Fatalf("trial %d: delete (without force) and bind both answered OK", i)
					case errD == nil:
						outcomes["delete-vs-bind: delete won"]++
						deleted[c.GetId()] = true
						if status.Code(errB) != codes.NotFound {
							t.Errorf("trial %d: bind to a deleted connection answered %v, want NotFound", i, errB)
						}
					case errB == nil:
						outcomes["delete-vs-bind: bind won"]++
						if status.Code(errD) != codes.FailedPrecondition {
							t.Errorf("trial %d: delete of a bound connection answered %v, want FailedPrecondition", i, errD)
						}
						// Bound and active: it must still have its secret.
						jc := jobFor(t, e.worker, &brokerv1.MintJobTokenRequest{WorkspaceId: raceWS, RecipeId: recipe, JobId: "j-" + recipe})
						e.settle(t, jc, c.GetId(), nil, func(got string, _ codes.Code) bool { return got == fmt.Sprintf("k0-%d", i) })
					default:
						t.Fatalf("trial %d: both refused: %v, %v", i, errD, errB)
					}
				}
			})

			t.Run("DeleteVsUpdateWithSecret", func(t *testing.T) {
				for i := range n {
					c := e.create(t, e.a, fmt.Sprintf("k0-%d", i))
					jc := e.job(t, c.GetId())
					ku := fmt.Sprintf("ku2-%d", i)
					var errU, errD error
					race(func() {
						_, errD = e.a.DeleteConnection(ctxT(t), &connectionsv1.DeleteConnectionRequest{Id: c.GetId(), Force: true})
					}, func() {
						_, errU = e.b.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: c.GetId(), Secret: apiKey(ku)})
					})
					if errD != nil {
						t.Fatalf("trial %d: delete answered %v", i, errD)
					}
					deleted[c.GetId()] = true
					var refused []string
					if errU != nil {
						refused = []string{ku}
						outcomes["delete-vs-update: update refused"]++
					} else {
						outcomes["delete-vs-update: update OK first"]++
					}
					e.settle(t, jc, c.GetId(), refused, func(_ string, code codes.Code) bool { return code == codes.NotFound })
				}
			})

			t.Run("CreateVsDelete", func(t *testing.T) {
				for i := range n {
					parent := e.create(t, e.a, fmt.Sprintf("kp-%d", i))
					var child *connectionsv1.CreateRuntimeUserConnectionResponse
					var errC, errD error
					race(func() {
						child, errC = e.a.CreateRuntimeUserConnection(ctxT(t), &connectionsv1.CreateRuntimeUserConnectionRequest{
							ParentConnectionId: parent.GetId(), RuntimeUser: "alice", Secret: apiKey(fmt.Sprintf("kc-%d", i))})
					}, func() {
						_, errD = e.b.DeleteConnection(ctxT(t), &connectionsv1.DeleteConnectionRequest{Id: parent.GetId(), Force: true})
					})
					if errD != nil {
						t.Fatalf("trial %d: delete answered %v", i, errD)
					}
					deleted[parent.GetId()] = true
					if errC == nil {
						outcomes["create-vs-delete: child created first"]++
						deleted[child.GetConnection().GetId()] = true
						if _, err := e.a.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: child.GetConnection().GetId()}); status.Code(err) != codes.NotFound {
							t.Errorf("trial %d: the runtime user connection outlived its deleted parent: %v", i, err)
						}
					} else if outcomes["create-vs-delete: child refused"]++; status.Code(errC) != codes.NotFound {
						t.Errorf("trial %d: create under a deleted parent answered %v, want NotFound", i, errC)
					}
				}
			})

			e.converged(t, deleted)
		})
	}
}

// replica starts one more connection-service replica on e's database and
// broker (with a failpoint armed, say).
func (e *raceEnv) replica(t *testing.T, x devstack.Extra) connectionsv1.ConnectionServiceClient {
	t.Helper()
	return connectionsv1.NewConnectionServiceClient(dial(t, e.replicaProc(t, x).Addr))
}

// replicaProc is replica, returning the process (for its OAuth callback
// address, say).
func (e *raceEnv) replicaProc(t *testing.T, x devstack.Extra) *devstack.Proc {
	t.Helper()
	x.LogName = fmt.Sprintf("wp-%d-extra-%d.log", envSeq, time.Now().UnixNano())
	x.Args = append([]string{"-broker-admin-addr=" + e.adminAddr, "-reconcile-period=0", "-secret-write-timeout=1s"}, x.Args...)
	p, err := stack.StartConnectionService(t.Context(), e.database, x)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// reconciled repairs until a dry run finds nothing left, within the
// reconciler bound the test configured (intents expire 2 s after they
// begin; -secret-write-timeout=1s).
func (e *raceEnv) reconciled(t *testing.T, deleted map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := e.b.Reconcile(ctxT(t), &connectionsv1.ReconcileRequest{}); err != nil && time.Now().After(deadline) {
			t.Fatalf("Reconcile: %v", err)
		}
		r, err := e.b.Reconcile(ctxT(t), &connectionsv1.ReconcileRequest{DryRun: true})
		// Clean means no write left in progress either: an abandoned
		// write's generation is destroyed only once its intent expired.
		if err == nil && len(r.GetOrphanedSecrets())+len(r.GetUnfinishedDeleteConnectionIds())+len(r.GetMissingSecretConnectionIds())+
			len(r.GetOrphanedOauthClients())+len(r.GetOrphanedWebhookSecrets()) == 0 && r.GetWritesInProgress() == 0 && r.GetExpiredIntents() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged 30s after the fault: %v %v", r, err)
		}
		time.Sleep(200 * time.Millisecond) // polling pace, bounded by the deadline
	}
	e.converged(t, deleted)
}

// webhooksConverged checks that workspace ws has want webhooks and that
// the broker holds a signing secret for exactly those.
func (e *raceEnv) webhooksConverged(t *testing.T, ws string, want int) {
	t.Helper()
	hooks, err := e.b.ListWebhooks(ctxT(t), &connectionsv1.ListWebhooksRequest{WorkspaceId: ws})
	if err != nil {
		t.Fatal(err)
	}
	if len(hooks.GetWebhooks()) != want {
		t.Fatalf("%d webhooks in %s, want %d", len(hooks.GetWebhooks()), ws, want)
	}
	live := map[string]bool{}
	for _, h := range hooks.GetWebhooks() {
		live[h.GetId()] = true
	}
	held := map[string]bool{}
	for tok := ""; ; {
		page, err := e.admin.ListWebhookSecrets(ctxT(t), &brokerv1.ListWebhookSecretsRequest{PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.GetSecrets() {
			held[s.GetWebhookId()] = true
		}
		if tok = page.GetNextPageToken(); tok == "" {
			break
		}
	}
	for id := range live {
		if !held[id] {
			t.Fatalf("webhook %s has no signing secret in Vault", id)
		}
	}
}

// A failpoint at each step of each write path, the replica dying there
// (exit) or the step failing (error); and the broker dying after Vault took
// a write. After a reconciler pass everything converges: what was
// acknowledged is served, what was not is neither served nor audited, and
// nothing is left in Vault that no connection names. Webhook signing
// secrets take the same path: a webhook exists with its secret, or neither.
func TestWriteProtocolFaults(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			e := newRaceEnv(t, db(t), devstack.Extra{})
			deleted := map[string]bool{}
			seq := 0
			for _, path := range []string{"create", "runtime-user-create", "update", "delete", "webhook-create", "webhook-delete"} {
				points := []string{"connections/after-intent", "connections/after-broker", "connections/after-commit"}
				switch path {
				case "delete":
					points = []string{"connections/after-tombstone", "connections/after-destroy"}
				case "webhook-delete":
					points = []string{"connections/after-tombstone"}
				}
				for _, fp := range points {
					for _, action := range []string{"exit", "error"} {
						t.Run(path+"/"+fp[len("connections/"):]+"/"+action, func(t *testing.T) {
							seq++
							ws := fmt.Sprintf("ws-fault-%d", seq)
							faulty := e.replica(t, devstack.Extra{Env: []string{"INTEGRATIONHUB_FAILPOINTS=" + fp + "=" + action}})
							committed := fp == "connections/after-commit" || path == "delete" || path == "webhook-delete"
							// answered checks the faulty replica's answer: an
							// error from a replica armed to exit (it died before
							// answering: the failpoint is on the path), OK for a
							// write that committed and then failed, an error for
							// one that failed before its commit.
							answered := func(err error) {
								t.Helper()
								switch {
								case action == "exit" && err == nil:
									t.Fatalf("a replica armed to exit at %s answered OK", fp)
								case committed && action == "error" && err != nil:
									t.Fatalf("a %s that committed answered %v", path, err)
								case !committed && err == nil:
									t.Fatalf("a %s that failed before its commit answered OK", path)
								}
							}
							switch path {
							case "create":
								resp, err := faulty.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: ws, Name: "f",
									Connector: "stripe", Environment: prod, AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY, Secret: apiKey("new")})
								answered(err)
								e.reconciled(t, deleted)
								list, err := e.b.ListConnections(ctxT(t), &connectionsv1.ListConnectionsRequest{WorkspaceId: ws})
								if err != nil {
									t.Fatal(err)
								}
								audit, err := e.b.ListAuditEvents(ctxT(t), &connectionsv1.ListAuditEventsRequest{WorkspaceId: ws})
								if err != nil {
									t.Fatal(err)
								}
								if !committed {
									if len(list.GetConnections()) != 0 || len(audit.GetEvents()) != 0 {
										t.Fatalf("a failed create left %d connections and %d audit records", len(list.GetConnections()), len(audit.GetEvents()))
									}
									return
								}
								if len(list.GetConnections()) != 1 {
									t.Fatalf("a committed create: %d connections, want 1 (%v)", len(list.GetConnections()), resp)
								}
								c := list.GetConnections()[0]
								e.settle(t, e.job(t, c.GetId()), c.GetId(), nil, func(got string, _ codes.Code) bool { return got == "new" })
							case "runtime-user-create":
								// A callable recipe run for alice is served her
								// own connection once it exists.
								parent, err := e.b.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: ws, Name: "p",
									Connector: "stripe", Environment: prod, AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY, Secret: apiKey("parent")})
								if err != nil {
									t.Fatal(err)
								}
								pid, recipe := parent.GetConnection().GetId(), "r-"+ws
								if _, err := e.b.RegisterRecipe(ctxT(t), &connectionsv1.RegisterRecipeRequest{RecipeId: recipe, WorkspaceId: ws,
									Environment: prod, Callable: true, RuntimeUserConnections: true}); err != nil {
									t.Fatal(err)
								}
								if _, err := e.b.BindConnection(ctxT(t), &connectionsv1.BindConnectionRequest{RecipeId: recipe, Step: "s",
									ConnectionId: pid}); err != nil {
									t.Fatal(err)
								}
								jc := jobFor(t, e.worker, &brokerv1.MintJobTokenRequest{WorkspaceId: ws, RecipeId: recipe, JobId: "job-" + ws, RuntimeUser: "alice"})
								before := auditCount(t, e.b, ws)
								_, err = faulty.CreateRuntimeUserConnection(ctxT(t), &connectionsv1.CreateRuntimeUserConnectionRequest{
									ParentConnectionId: pid, RuntimeUser: "alice", Secret: apiKey("new")})
								answered(err)
								e.reconciled(t, deleted)
								kids, err := e.b.ListRuntimeUserConnections(ctxT(t), &connectionsv1.ListRuntimeUserConnectionsRequest{ParentConnectionId: pid})
								if err != nil {
									t.Fatal(err)
								}
								if !committed {
									if n, audited := len(kids.GetConnections()), auditCount(t, e.b, ws)-before; n != 0 || audited != 0 {
										t.Fatalf("a failed runtime user create left %d connections and %d audit records", n, audited)
									}
									e.settle(t, jc, pid, []string{"new"}, func(_ string, code codes.Code) bool { return code == codes.FailedPrecondition })
									return
								}
								if len(kids.GetConnections()) != 1 {
									t.Fatalf("a committed runtime user create: %d connections, want 1", len(kids.GetConnections()))
								}
								e.settle(t, jc, pid, nil, func(got string, _ codes.Code) bool { return got == "new" })
							case "update":
								c := e.create(t, e.b, "old")
								jc := e.job(t, c.GetId())
								_, err := faulty.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: c.GetId(), Etag: c.GetEtag(), Secret: apiKey("new")})
								answered(err)
								e.reconciled(t, deleted)
								if committed {
									e.settle(t, jc, c.GetId(), nil, func(got string, _ codes.Code) bool { return got == "new" })
								} else {
									e.settle(t, jc, c.GetId(), []string{"new"}, func(got string, _ codes.Code) bool { return got == "old" })
								}
							case "delete":
								c := e.create(t, e.b, "old")
								jc := e.job(t, c.GetId())
								_, err := faulty.DeleteConnection(ctxT(t), &connectionsv1.DeleteConnectionRequest{Id: c.GetId(), Force: true})
								answered(err)
								deleted[c.GetId()] = true
								e.settle(t, jc, c.GetId(), nil, func(_ string, code codes.Code) bool { return code == codes.NotFound })
								e.reconciled(t, deleted)
							case "webhook-create":
								_, err := faulty.CreateWebhook(ctxT(t), &connectionsv1.CreateWebhookRequest{WorkspaceId: ws, Url: "https://hooks.example.com/in",
									Events: []connectionsv1.WebhookEventType{connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_INVALID}})
								answered(err)
								e.reconciled(t, deleted)
								e.webhooksConverged(t, ws, map[bool]int{true: 1, false: 0}[committed])
							case "webhook-delete":
								h, err := e.b.CreateWebhook(ctxT(t), &connectionsv1.CreateWebhookRequest{WorkspaceId: ws, Url: "https://hooks.example.com/in",
									Events: []connectionsv1.WebhookEventType{connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_INVALID}})
								if err != nil {
									t.Fatal(err)
								}
								_, err = faulty.DeleteWebhook(ctxT(t), &connectionsv1.DeleteWebhookRequest{WorkspaceId: ws, WebhookId: h.GetWebhook().GetId()})
								answered(err)
								e.reconciled(t, deleted)
								e.webhooksConverged(t, ws, 0)
							}
						})
					}
				}
			}

			t.Run("BrokerKilledAfterVaultWrite", func(t *testing.T) {
				ws := "ws-fault-broker"
				e.brokerProc.Kill()
				e.startBroker(t, []string{"INTEGRATIONHUB_FAILPOINTS=broker/after-vault-write=exit"})
				// The replica reaches the new broker (its channel may be
				// backing off after the kill).
				waitFor(t, 20*time.Second, "the replica to reach the restarted broker", func() bool {
					_, err := e.b.Reconcile(ctxT(t), &connectionsv1.ReconcileRequest{DryRun: true})
					return err == nil
				})
				_, err := e.b.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: ws, Name: "f",
					Connector: "stripe", Environment: prod, AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY, Secret: apiKey("new")})
				if status.Code(err) != codes.Unavailable {
					t.Fatalf("create whose broker died: %v, want Unavailable", err)
				}
				if log, _ := os.ReadFile(filepath.Join(stack.Dir, e.brokerLog)); !strings.Contains(string(log), "failpoint broker/after-vault-write: exiting") {
					t.Fatal("the broker did not die after the Vault write")
				}
				e.brokerProc.Kill() // it exited already
				e.startBroker(t, nil)
				e.reconciled(t, deleted)
				list, err := e.b.ListConnections(ctxT(t), &connectionsv1.ListConnectionsRequest{WorkspaceId: ws})
				if err != nil || len(list.GetConnections()) != 0 {
					t.Fatalf("a refused create left %d connections (%v)", len(list.GetConnections()), err)
				}
			})
		})
	}
}

// Vault freezes for longer than the connection service waits for a secret
// write (1 s here; the broker's Vault timeout is 5 s): the caller is told
// Unavailable or DeadlineExceeded, the write may still land once Vault
// thaws, and either way nothing is served or left behind after the
// reconciler's pass.
func TestWriteProtocolVaultFrozen(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			vs := devVault(t)
			e := newRaceEnvOn(t, db(t), devstack.Extra{}, vs)
			c := e.create(t, e.a, "old")
			jc := e.job(t, c.GetId())
			if err := vs.Freeze(); err != nil {
				t.Fatal(err)
			}
			thawed := false
			defer func() {
				if !thawed {
					_ = vs.Thaw()
				}
			}()
			_, errC := e.a.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-frozen", Name: "f",
				Connector: "stripe", Environment: prod, AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY, Secret: apiKey("new-create")})
			_, errU := e.b.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: c.GetId(), Etag: c.GetEtag(), Secret: apiKey("new-update")})
			for what, err := range map[string]error{"create": errC, "update": errU} {
				if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
					t.Errorf("%s with Vault frozen: %v, want Unavailable or DeadlineExceeded", what, err)
				}
			}
			if err := vs.Thaw(); err != nil {
				t.Fatal(err)
			}
			thawed = true
			e.reconciled(t, map[string]bool{})
			e.settle(t, jc, c.GetId(), []string{"new-update"}, func(got string, _ codes.Code) bool { return got == "old" })
			list, err := e.b.ListConnections(ctxT(t), &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws-frozen"})
			if err != nil || len(list.GetConnections()) != 0 {
				t.Fatalf("a refused create left %d connections (%v)", len(list.GetConnections()), err)
			}
		})
	}
}

// An update's replaced generation is destroyed by the replica that made the
// update once -replaced-secret-grace has passed, without the reconciler
// (which these replicas run only on request); the broker serves the new
// secret from the update's OK on, whether the old one is still in Vault or
// not.
func TestReplacedGenerationDestroyedAfterGrace(t *testing.T) {
	e := newRaceEnv(t, "sqlite:"+sqlitePath(t), devstack.Extra{Args: []string{"-replaced-secret-grace=1s"}})
	c := e.create(t, e.a, "old")
	jc := e.job(t, c.GetId())
	e.settle(t, jc, c.GetId(), nil, func(got string, _ codes.Code) bool { return got == "old" })
	up, err := e.a.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: c.GetId(), Etag: c.GetEtag(), Secret: apiKey("new")})
	if err != nil {
		t.Fatal(err)
	}
	e.settle(t, jc, c.GetId(), nil, func(got string, _ codes.Code) bool { return got == "new" })
	generations := func() []string {
		var gens []string
		page, err := e.admin.ListSecrets(ctxT(t), &brokerv1.ListSecretsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.GetSecrets() {
			if s.GetConnectionId() == c.GetId() {
				gens = append(gens, s.GetSecretGeneration())
			}
		}
		return gens
	}
	live := up.GetConnection().GetSecretGeneration()
	waitFor(t, 30*time.Second, "the replaced generation destroyed", func() bool {
		gens := generations()
		return len(gens) == 1 && gens[0] == live
	})
	if got, code := e.served(jc, c.GetId()); got != "new" {
		t.Errorf("after the replaced generation was destroyed: served %q (%v), want the updated secret", got, code)
	}
}

// Many updates replacing generations at once: the replica destroys the
// replaced ones in batches (one DeleteSecrets call for the generations due
// together), and every one of them is gone after the grace while every
// live one stays.
func TestReplacedGenerationsDestroyedInBatches(t *testing.T) {
	e := newRaceEnv(t, "sqlite:"+sqlitePath(t), devstack.Extra{Args: []string{"-replaced-secret-grace=1s"}})
	const n = 40
	conns := make([]*connectionsv1.Connection, n)
	for i := range conns {
		conns[i] = e.create(t, e.a, fmt.Sprintf("old-%d", i))
	}
	live := map[string]string{} // connection id -> live generation
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			up, err := e.a.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: c.GetId(), Etag: c.GetEtag(),
				Secret: apiKey(fmt.Sprintf("new-%d", i))})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			live[c.GetId()] = up.GetConnection().GetSecretGeneration()
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	waitFor(t, 30*time.Second, "every replaced generation destroyed, every live one kept", func() bool {
		stored := map[string][]string{}
		for token := ""; ; {
			page, err := e.admin.ListSecrets(ctxT(t), &brokerv1.ListSecretsRequest{PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range page.GetSecrets() {
				if _, ours := live[s.GetConnectionId()]; ours {
					stored[s.GetConnectionId()] = append(stored[s.GetConnectionId()], s.GetSecretGeneration())
				}
			}
			if token = page.GetNextPageToken(); token == "" {
				break
			}
		}
		for id, gen := range live {
			if g := stored[id]; len(g) != 1 || g[0] != gen {
				return false
			}
		}
		return true
	})
}

// Vault killed (SIGKILL) while an update's secret write is in flight, at a
// different moment in each round, then restarted on its data: the update
// either answered OK and is served, or answered an error and is never
// served; after one reconciler pass nothing is left that no connection
// names.
func TestWriteProtocolVaultKilled(t *testing.T) {
	pv := persistentVault(t, "vault-killed.log")
	e := newRaceEnvOn(t, "sqlite:"+sqlitePath(t), devstack.Extra{}, pv.Server)
	c := e.create(t, e.a, "k-0")
	jc := e.job(t, c.GetId())
	served, refused := "k-0", []string{}
	for round := 1; round <= 6; round++ {
		got, err := e.a.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: c.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("k-%d", round)
		done := make(chan error, 1)
		go func() {
			_, err := e.a.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: c.GetId(),
				Etag: got.GetConnection().GetEtag(), Secret: apiKey(key)})
			done <- err
		}()
		// Kill after 0 to 25 ms: before, during or after the broker's write.
		time.Sleep(time.Duration(round-1) * 5 * time.Millisecond) // the fault's moment is what varies
		if err := pv.Kill(); err != nil {
			t.Fatal(err)
		}
		err = <-done
		switch code := status.Code(err); {
		case err == nil:
			served = key
		case code == codes.Unavailable || code == codes.DeadlineExceeded:
			refused = append(refused, key)
		default:
			t.Fatalf("round %d: update with Vault killed: %v, want OK, Unavailable or DeadlineExceeded", round, err)
		}
		if err := pv.Restart(t.Context()); err != nil {
			t.Fatal(err)
		}
		e.reconciled(t, map[string]bool{})
		want := served
		e.settle(t, jc, c.GetId(), refused, func(got string, _ codes.Code) bool { return got == want })
		t.Logf("round %d: update answered %v; serving %s", round, status.Code(err), served)
	}
}

// A connection whose secret generation vanished from Vault (deleted behind
// the service's back) is reported by a dry run and marked invalid by a
// repairing pass, after a second look at that connection alone; the others
// are left as they are.
func TestReconcilerMarksMissingSecret(t *testing.T) {
	e := newRaceEnv(t, "sqlite:"+sqlitePath(t), devstack.Extra{})
	gone, kept := e.create(t, e.a, "gone"), e.create(t, e.a, "kept")
	if _, err := e.admin.DeleteSecret(ctxT(t), &brokerv1.DeleteSecretRequest{ConnectionId: gone.GetId(), SecretGeneration: gone.GetSecretGeneration()}); err != nil {
		t.Fatal(err)
	}
	dry, err := e.a.Reconcile(ctxT(t), &connectionsv1.ReconcileRequest{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := dry.GetMissingSecretConnectionIds(); len(got) != 1 || got[0] != gone.GetId() {
		t.Fatalf("dry run: connections missing their secret %v, want only %s", got, gone.GetId())
	}
	if _, err := e.a.Reconcile(ctxT(t), &connectionsv1.ReconcileRequest{}); err != nil {
		t.Fatal(err)
	}
	for c, want := range map[*connectionsv1.Connection]connectionsv1.ConnectionStatus{
		gone: connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID, kept: connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE} {
		got, err := e.a.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: c.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetConnection().GetStatus() != want {
			t.Errorf("connection %s after the repair: %v, want %v", c.GetId(), got.GetConnection().GetStatus(), want)
		}
	}
}

// logInternalErrors logs the last internal errors the stack's processes
// logged (an Internal answer says nothing more; the log says why).
func logInternalErrors(t *testing.T) {
	var lines []string
	for _, f := range stack.LogFiles() {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, `"msg":"internal error"`) {
				lines = append(lines, filepath.Base(f)+": "+l)
			}
		}
	}
	t.Logf("last internal errors logged:\n%s", strings.Join(lines[max(0, len(lines)-5):], "\n"))
}

// auditCount is how many audit records workspace ws has.
func auditCount(t *testing.T, cs connectionsv1.ConnectionServiceClient, ws string) int {
	t.Helper()
	audit, err := cs.ListAuditEvents(ctxT(t), &connectionsv1.ListAuditEventsRequest{WorkspaceId: ws, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(audit.GetEvents())
}
