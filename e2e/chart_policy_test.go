package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/loopback"
	"github.com/integrationhub/connections/internal/privilege"
)

// The Vault policies the broker chart renders are enough for everything the
// broker does, and the sidecar's for everything a sidecar does: a shared
// broker and a sidecar broker run on tokens bound to exactly those policies
// (what the chart's Kubernetes auth roles issue) and serve OAuth client
// registration, the code exchange, refreshes, job tokens, GetCredential,
// runtime user connections and deletes, with no permission error anywhere.
func TestChartVaultPoliciesSuffice(t *testing.T) {
	cm := findObject(t, helmTemplate(t, "broker", "sidecarExample:\n  enabled: true\n"), "ConfigMap", "hub-broker-vault")
	sharedTok := policyToken(t, "e2e-chart-broker", cm.Data["broker-policy.hcl"])
	sidecarTok := policyToken(t, "e2e-chart-broker-sidecar", cm.Data["broker-sidecar-policy.hcl"])

	addrs, err := loopback.FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := addrs[0]
	e := startOAuthEnv(t, "-broker-admin-addr="+adminAddr)
	// The shared broker also runs the code exchange: an app slowed by a busy machine must not
	// fail it, so the token endpoint gets seconds, not the refresh tests' one.
	timing := []string{"-oauth-refresh-margin=500ms", "-oauth-lease-ttl=15s", "-oauth-http-timeout=5s", "-connections-addr=" + e.svc.Addr}
	logs := filepath.Join(stack.Dir, "broker-chart-policy.log")
	shared, err := stack.StartBroker(t.Context(), devstack.Extra{LogName: filepath.Base(logs),
		Args: append(timing, "-admin-listen="+adminAddr, "-instance-id=chart-shared"), Env: []string{"VAULT_TOKEN=" + sharedTok}, Probe: adminAddr})
	if err != nil {
		t.Fatal(err)
	}
	sidecarLogs := filepath.Join(stack.Dir, "broker-chart-policy-sidecar.log")
	sidecar, err := stack.StartBroker(t.Context(), devstack.Extra{LogName: filepath.Base(sidecarLogs),
		Args: append(timing, "-instance-id=chart-sidecar"), Env: []string{"VAULT_TOKEN=" + sidecarTok}})
	if err != nil {
		t.Fatal(err)
	}
	sharedBr := brokerv1.NewCredentialBrokerClient(dial(t, shared.Addr))
	sidecarBr := brokerv1.NewCredentialBrokerClient(dial(t, sidecar.Addr))

	// RegisterOAuthClient: the shared broker writes <kv>/data/<prefix>/oauth-clients/...
	e.registerClients(t)

	t.Run("code exchange, job token, GetCredential", func(t *testing.T) {
		c := e.create(t)
		e.authorize(t, c.GetId())
		wantStatus(t, e, c.GetId(), connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE)
		cred, err := sharedBr.GetCredential(job(t, e.cs, sharedBr, c.GetId()), &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
		if err != nil || !e.works(t, cred.GetCredential().GetOauth2().GetAccessToken()) {
			t.Fatalf("GetCredential on the shared broker: %v", err)
		}
		// DeleteSecret: a metadata delete.
		if _, err := e.cs.DeleteConnection(ctxT(t), &connectionsv1.DeleteConnectionRequest{Id: c.GetId(), Force: true}); err != nil {
			t.Fatalf("DeleteConnection: %v", err)
		}
		if code, _ := vaultRead(t, c.GetId()); code != http.StatusNotFound {
			t.Errorf("deleted connection's entry: status %d, want 404", code)
		}
	})

	for name, br := range map[string]brokerv1.CredentialBrokerClient{"shared": sharedBr, "sidecar": sidecarBr} {
		t.Run("refresh on the "+name+" broker", func(t *testing.T) {
			id := expiredConnection(t, e)
			ctx := job(t, e.cs, sharedBr, id) // the scheduler's shared broker mints
			before := e.app.Refreshes()
			cred, err := br.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: id})
			if err != nil || !e.works(t, cred.GetCredential().GetOauth2().GetAccessToken()) {
				t.Fatalf("GetCredential of an expired token: %v", err)
			}
			if e.app.Refreshes() != before+1 {
				t.Errorf("refreshes at the app: %d, want 1", e.app.Refreshes()-before)
			}
		})
	}

	t.Run("runtime user connection", func(t *testing.T) {
		const ws = "ws-chart-policy"
		parent := mustCreate(t, e.cs, ws, "http", prod, key)
		if _, err := e.cs.CreateRuntimeUserConnection(ctxT(t), &connectionsv1.CreateRuntimeUserConnectionRequest{
			ParentConnectionId: parent.GetId(), RuntimeUser: "bob@acme.test", Secret: apiKey("bobs-chart-key")}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.cs.RegisterRecipe(ctxT(t), &connectionsv1.RegisterRecipeRequest{RecipeId: "r-chart-ru", WorkspaceId: ws,
			Environment: prod, Callable: true, RuntimeUserConnections: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.cs.BindConnection(ctxT(t), &connectionsv1.BindConnectionRequest{RecipeId: "r-chart-ru", Step: "a",
			ConnectionId: parent.GetId()}); err != nil {
			t.Fatal(err)
		}
		ctx := jobFor(t, sharedBr, &brokerv1.MintJobTokenRequest{WorkspaceId: ws, RecipeId: "r-chart-ru", JobId: "j-ru", RuntimeUser: "bob@acme.test"})
		for name, br := range map[string]brokerv1.CredentialBrokerClient{"shared": sharedBr, "sidecar": sidecarBr} {
			got, err := br.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: parent.GetId()})
			if err != nil || got.GetCredential().GetApiKey().GetKey() != "bobs-chart-key" {
				t.Errorf("%s broker, bob's job: %v, %v; want bob's own key", name, got.GetConnectionId(), err)
			}
		}
	})

	t.Run("reconciler listing and token renewal", func(t *testing.T) {
		// A connection's secret sits at <kv>/data/<prefix>/connections/<id>/<generation>; the
		// reconciler lists the connections and their generations and reads their versions.
		conn := mustCreate(t, e.cs, "ws-chart-policy", "http", prod, key)
		var gen string
		for _, g := range vaultKeys(t, stack.PathPrefix+"/connections/"+conn.GetId()) {
			if !strings.HasSuffix(g, "/") {
				gen = g
			}
		}
		if gen == "" {
			t.Fatalf("connection %s has no secret generation in Vault", conn.GetId())
		}
		meta := stack.KVMount + "/metadata/" + stack.PathPrefix + "/connections"
		data := stack.KVMount + "/data/" + stack.PathPrefix + "/connections/" + conn.GetId() + "/" + gen
		for _, c := range []struct {
			who, method, path string
			want              int
		}{
			{"shared", "LIST", meta, http.StatusOK},
			{"shared", "LIST", meta + "/" + conn.GetId(), http.StatusOK},
			{"shared", http.MethodGet, meta + "/" + conn.GetId() + "/" + gen, http.StatusOK},
			{"shared", http.MethodGet, data, http.StatusOK},
			{"shared", http.MethodPost, "auth/token/renew-self", http.StatusOK},
			{"shared", http.MethodGet, "auth/token/lookup-self", http.StatusOK},
			{"sidecar", http.MethodGet, data, http.StatusOK},
			// A sidecar neither lists nor destroys secrets.
			{"sidecar", "LIST", meta, http.StatusForbidden},
			{"sidecar", http.MethodDelete, meta + "/" + conn.GetId() + "/" + gen, http.StatusForbidden},
		} {
			req, _ := http.NewRequestWithContext(t.Context(), c.method, stack.Vault.Addr+"/v1/"+c.path, strings.NewReader("{}"))
			req.Header.Set("X-Vault-Token", map[string]string{"shared": sharedTok, "sidecar": sidecarTok}[c.who])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("%s %s with the %s broker's policy: %s, want %d", c.method, c.path, c.who, resp.Status, c.want)
			}
		}
	})

	// Nothing the brokers did was refused by Vault.
	for _, f := range []string{logs, sidecarLogs} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "permission denied") || strings.Contains(string(b), "status 403") {
			t.Errorf("%s: Vault refused a request:\n%s", filepath.Base(f), b)
		}
	}

	t.Run("least privilege of the sidecar", func(t *testing.T) {
		// A sidecar cannot sign job tokens (the shared broker's job).
		ctx, cancel := context.WithCancel(scheduler(t, privilege.MintJobTokens))
		defer cancel()
		if _, err := sidecarBr.MintJobToken(ctx, &brokerv1.MintJobTokenRequest{WorkspaceId: "ws-chart-policy", RecipeId: "r-chart-ru", JobId: "j-sidecar"}); err == nil {
			t.Error("the sidecar's policy let it sign a job token")
		}
	})
}
