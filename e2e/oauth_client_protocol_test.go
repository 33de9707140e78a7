package e2e

import (
	"fmt"
	"path"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/devstack"
)

// clientConnector is an OAuth app of the default catalog.
const clientConnector = "github"

// clientRegistrations reads, for one workspace's registration of
// clientConnector, what the metadata names live and what Vault holds.
type clientRegistrations struct {
	e  *raceEnv
	kv *vaultapi.KVv2
}

func newClientRegistrations(t *testing.T, e *raceEnv) *clientRegistrations {
	t.Helper()
	vc, err := vaultapi.NewClient(&vaultapi.Config{Address: stack.Vault.Addr})
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(stack.Vault.Token)
	return &clientRegistrations{e: e, kv: vc.KVv2(stack.KVMount)}
}

func (r *clientRegistrations) register(cs connectionsv1.ConnectionServiceClient, t *testing.T, ws, id, secret string) error {
	_, err := cs.RegisterOAuthClient(ctxT(t), &connectionsv1.RegisterOAuthClientRequest{Connector: clientConnector, WorkspaceId: ws,
		ClientId: id, ClientSecret: secret})
	return err
}

// stored returns the generations Vault holds for ws's registration, with
// the client id and secret in each.
func (r *clientRegistrations) stored(t *testing.T, ws string) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	for tok := ""; ; {
		page, err := r.e.admin.ListOAuthClients(ctxT(t), &brokerv1.ListOAuthClientsRequest{PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.GetClients() {
			if c.GetConnector() != clientConnector || c.GetClient().GetWorkspaceId() != ws {
				continue
			}
			gen := c.GetClient().GetSecretGeneration()
			s, err := r.kv.Get(ctxT(t), path.Join(r.e.prefix, "oauth-clients", clientConnector, ws, gen))
			if err != nil {
				t.Fatalf("read generation %q: %v", gen, err)
			}
			id, _ := s.Data["client_id"].(string)
			secret, _ := s.Data["client_secret"].(string)
			out[gen] = [2]string{id, secret}
		}
		if tok = page.GetNextPageToken(); tok == "" {
			return out
		}
	}
}

// agrees fails unless ws's live registration is wantID with wantSecret, the
// generation the metadata names holds exactly that pair, and (reconciled)
// Vault holds no other generation.
func (r *clientRegistrations) agrees(t *testing.T, ws, wantID, wantSecret string, reconciled bool) {
	t.Helper()
	live, err := r.e.b.GetOAuthClient(ctxT(t), &connectionsv1.GetOAuthClientRequest{Connector: clientConnector, WorkspaceId: ws})
	if err != nil {
		t.Fatalf("GetOAuthClient: %v", err)
	}
	l := live.GetOauthClient()
	if l.GetClientId() != wantID {
		t.Errorf("live client id %q, want %q", l.GetClientId(), wantID)
	}
	stored := r.stored(t, ws)
	if got := stored[l.GetSecretGeneration()]; got != [2]string{wantID, wantSecret} {
		t.Errorf("the live generation %q holds client %q (secret matches: %v), want %q with its own secret",
			l.GetSecretGeneration(), got[0], got[1] == wantSecret, wantID)
	}
	if reconciled && len(stored) != 1 {
		t.Errorf("Vault holds %d generations of the registration after reconciliation, want 1", len(stored))
	}
}

// RegisterOAuthClient follows the write protocol on both stores, through
// two replicas: concurrent registrations leave one registration whose
// client id and secret belong together; a registration that fails at any
// step (the replica dying there, or the step failing) leaves the previous
// one live and is neither audited nor kept in Vault after a reconciler
// pass; one that committed is live even when its caller saw an error.
func TestOAuthClientWriteProtocol(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			e := newRaceEnv(t, db(t), devstack.Extra{})
			r := newClientRegistrations(t, e)

			t.Run("concurrent", func(t *testing.T) {
				n := trials()
				for i := range n {
					ws := fmt.Sprintf("ws-oc-race-%d", i)
					var errA, errB error
					race(func() { errA = r.register(e.a, t, ws, "app-a", "secret-a") },
						func() { errB = r.register(e.b, t, ws, "app-b", "secret-b") })
					if errA != nil || errB != nil {
						t.Fatalf("trial %d: registrations answered %v and %v, want both OK", i, errA, errB)
					}
					live, err := e.b.GetOAuthClient(ctxT(t), &connectionsv1.GetOAuthClientRequest{Connector: clientConnector, WorkspaceId: ws})
					if err != nil {
						t.Fatal(err)
					}
					want := map[string]string{"app-a": "secret-a", "app-b": "secret-b"}[live.GetOauthClient().GetClientId()]
					r.agrees(t, ws, live.GetOauthClient().GetClientId(), want, false)
				}
				e.reconciled(t, nil)
				for i := range n {
					ws := fmt.Sprintf("ws-oc-race-%d", i)
					if got := len(r.stored(t, ws)); got != 1 {
						t.Errorf("trial %d: %d generations left after reconciliation, want 1", i, got)
					}
				}
			})

			seq := 0
			for _, fp := range []string{"connections/after-intent", "connections/after-broker", "connections/after-commit"} {
				for _, action := range []string{"exit", "error"} {
					t.Run(fp[len("connections/"):]+"/"+action, func(t *testing.T) {
						seq++
						ws := fmt.Sprintf("ws-oc-fault-%d", seq)
						if err := r.register(e.b, t, ws, "app-old", "secret-old"); err != nil {
							t.Fatal(err)
						}
						faulty := e.replica(t, devstack.Extra{Env: []string{"INTEGRATIONHUB_FAILPOINTS=" + fp + "=" + action}})
						err := r.register(faulty, t, ws, "app-new", "secret-new")
						committed := fp == "connections/after-commit"
						if !committed && err == nil {
							t.Fatal("a registration that failed before its commit answered OK")
						}
						if committed && action == "error" && err != nil {
							t.Fatalf("a registration that committed answered %v", err)
						}
						e.reconciled(t, nil)
						audit, aerr := e.b.ListAuditEvents(ctxT(t), &connectionsv1.ListAuditEventsRequest{WorkspaceId: ws})
						if aerr != nil {
							t.Fatal(aerr)
						}
						if committed {
							r.agrees(t, ws, "app-new", "secret-new", true)
						} else {
							r.agrees(t, ws, "app-old", "secret-old", true)
						}
						if want := map[bool]int{false: 1, true: 2}[committed]; len(audit.GetEvents()) != want {
							t.Errorf("%d audit records, want %d (only committed registrations)", len(audit.GetEvents()), want)
						}
					})
				}
			}

			t.Run("broker killed after Vault took the write", func(t *testing.T) {
				const ws = "ws-oc-broker-killed"
				if err := r.register(e.b, t, ws, "app-old", "secret-old"); err != nil {
					t.Fatal(err)
				}
				e.brokerProc.Kill()
				e.startBroker(t, []string{"INTEGRATIONHUB_FAILPOINTS=broker/after-vault-write=exit"})
				// The replica reaches the new broker (its channel may be
				// backing off after the kill).
				waitFor(t, 20*time.Second, "the replica to reach the restarted broker", func() bool {
					_, err := e.b.Reconcile(ctxT(t), &connectionsv1.ReconcileRequest{DryRun: true})
					return err == nil
				})
				err := r.register(e.b, t, ws, "app-new", "secret-new")
				if status.Code(err) != codes.Unavailable {
					t.Fatalf("a registration whose broker died: %v, want Unavailable", err)
				}
				e.brokerProc.Kill() // it exited already
				e.startBroker(t, nil)
				waitFor(t, 20*time.Second, "the replica to reach the restarted broker", func() bool {
					_, err := e.b.Reconcile(ctxT(t), &connectionsv1.ReconcileRequest{DryRun: true})
					return err == nil
				})
				// Vault took the write: the dry run finds its generation,
				// which no registration names.
				if got := len(r.stored(t, ws)); got != 2 {
					t.Errorf("%d generations stored before reconciling, want 2 (the live one and the dead broker's write)", got)
				}
				e.reconciled(t, nil)
				r.agrees(t, ws, "app-old", "secret-old", true)
			})
		})
	}
}

// Refreshes use the registration the metadata names live: after a
// registration with a wrong secret was refused (it failed after the broker
// stored it), a broker's refresh still works; after the client is
// registered again (a new generation; the replaced one destroyed at once),
// the broker refreshes with the new generation.
func TestOAuthRefreshUsesLiveClient(t *testing.T) {
	e := startOAuthEnv(t, "-replaced-secret-grace=0s")
	e.registerClients(t)
	br := brokerv1.NewCredentialBrokerClient(dial(t, refreshBrokers(t, e, 1)[0].Addr))
	c := e.create(t)
	e.app.SetAccessTokenLifespan(2 * time.Second)
	e.authorize(t, c.GetId())
	jc := job(t, e.cs, br, c.GetId())
	// refreshed waits for the access token to expire and fails unless the
	// broker then refreshes it and serves a token the app accepts.
	refreshed := func(t *testing.T) {
		t.Helper()
		cred, err := br.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		old, expiry := cred.GetCredential().GetOauth2().GetAccessToken(), cred.GetCredential().GetExpireTime().AsTime()
		waitFor(t, 10*time.Second, "the access token to expire", func() bool { return time.Now().After(expiry) })
		cred, err = br.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
		if err != nil {
			t.Fatalf("GetCredential after expiry: %v", err)
		}
		// Only a refresh with the right client secret yields a new token
		// the app accepts.
		if tok := cred.GetCredential().GetOauth2().GetAccessToken(); tok == old || !e.works(t, tok) {
			t.Fatal("no working refreshed token")
		}
	}
	refreshed(t) // the broker has learned the live registration

	faulty, err := stack.StartConnectionService(t.Context(), "sqlite:"+e.dbPath, devstack.Extra{LogName: "oauth-live-client-faulty.log",
		Args: []string{"-catalog-file=" + e.catalog}, Env: []string{"INTEGRATIONHUB_FAILPOINTS=connections/after-broker=error"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connectionsv1.NewConnectionServiceClient(dial(t, faulty.Addr)).RegisterOAuthClient(ctxT(t),
		&connectionsv1.RegisterOAuthClientRequest{Connector: "acme", ClientId: e.app.ClientID, ClientSecret: "wrong-secret"}); err == nil {
		t.Fatal("a registration that failed before its commit answered OK")
	}
	t.Run("refused registration unused", refreshed)

	e.registerClients(t)
	t.Run("new generation used", refreshed)

	// A committed registration with a wrong secret is what refreshes use
	// next: the app refuses that client, so the expired token cannot be
	// refreshed. Registering the right secret again mends it.
	if _, err := e.cs.RegisterOAuthClient(ctxT(t), &connectionsv1.RegisterOAuthClientRequest{Connector: "acme",
		ClientId: e.app.ClientID, ClientSecret: "wrong-secret"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "a refresh with the wrong client secret to fail", func() bool {
		_, err := br.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
		return err != nil
	})
	e.registerClients(t)
	t.Run("mended", refreshed)
}
