package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
)

// A broker that cached a credential drops it when the connection changes
// through another broker: the change stream reaches it and the next call
// serves the new secret.
func TestCacheInvalidatedAcrossBrokers(t *testing.T) {
	other, err := stack.StartBroker(t.Context(), devstack.Extra{LogName: "broker-cache.log"})
	if err != nil {
		t.Fatal(err)
	}
	cs := connections(t)
	c := mustCreate(t, cs, "ws-cache", "stripe", prod, key)
	bc := brokerv1.NewCredentialBrokerClient(dial(t, other.Addr))
	jc := job(t, cs, bc, c.GetId())
	get := func() string {
		t.Helper()
		resp, err := bc.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetCredential().GetApiKey().GetKey()
	}
	if got := get(); got != "k-stripe" {
		t.Fatalf("first read = %q", got)
	}
	// The connection service writes through the stack's own broker.
	if _, err := cs.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: c.GetId(), Secret: apiKey("rotated-key")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the other broker to serve the rotated key", func() bool { return get() == "rotated-key" })
}

// With Vault down, cached credentials that have not expired are still served
// and an expired one is refused with Unavailable.
func TestCacheServesWhileVaultIsDown(t *testing.T) {
	vs := devVault(t)
	b, err := stack.StartBroker(t.Context(), devstack.Extra{LogName: "broker-own-vault.log", Env: []string{"VAULT_TOKEN=" + vs.Token},
		Args: []string{"-vault-addr=" + vs.Addr, "-oauth-refresh-margin=500ms"}})
	if err != nil {
		t.Fatal(err)
	}
	admin := brokerv1.NewBrokerAdminClient(dialAdmin(t, b.AdminAddr))
	bc := brokerv1.NewCredentialBrokerClient(dial(t, b.Addr))
	// The connection service knows the connections (and the recipe the job
	// token is for); their secrets are written into this broker's own Vault.
	cs := connections(t)
	keyedC, oauthedC := mustCreate(t, cs, "ws-vault-down", "stripe", prod, key), mustCreate(t, cs, "ws-vault-down", "http", prod, key)
	keyed, oauthed := keyedC.GetId(), oauthedC.GetId()
	jc := job(t, cs, bc, keyed, oauthed)
	// Written at the secret generations the connection service names.
	if _, err := admin.PutSecret(ctxT(t), &brokerv1.PutSecretRequest{ConnectionId: keyed, SecretGeneration: keyedC.GetSecretGeneration(),
		WorkspaceId: "ws", Connector: "stripe",
		AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY, Secret: apiKey("cached-key")}); err != nil {
		t.Fatal(err)
	}
	// An OAuth record whose access token expires in 3 seconds (the
	// connection service knows it as an API-key connection: the broker
	// serves by what its Vault holds).
	expiry := time.Now().Add(3 * time.Second)
	body, _ := json.Marshal(map[string]any{"data": map[string]any{"workspace_id": "ws", "connector": "acme",
		"auth_type": "AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE",
		"oauth2": map[string]any{"access_token": "short-lived", "refresh_token": "r", "token_url": "http://127.0.0.1:1/token",
			"expiry": expiry.Format(time.RFC3339Nano)}}})
	req, _ := http.NewRequest(http.MethodPost, vs.Addr+"/v1/secret/data/integrationhub/connections/"+oauthed+"/"+oauthedC.GetSecretGeneration(), bytes.NewReader(body))
	req.Header.Set("X-Vault-Token", vs.Token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("writing the OAuth record: %v %v", resp, err)
	}
	// The creations reach the broker through the change stream later, but a
	// change to a connection's metadata leaves its cached credential as the
	// fallback for a Vault outage: filling the cache now is enough.
	for _, id := range []string{keyed, oauthed} { // fill the cache
		if _, err := bc.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := vs.Stop(); err != nil {
		t.Fatal(err)
	}
	resp, err := bc.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: keyed})
	if err != nil || resp.GetCredential().GetApiKey().GetKey() != "cached-key" {
		t.Errorf("cached API key with Vault down: %v, %v", resp, err)
	}
	if _, err := bc.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: oauthed}); err != nil {
		t.Errorf("unexpired cached OAuth token with Vault down: %v", err)
	}
	// Served until the token expires, then refused: nothing else.
	waitFor(t, 15*time.Second, "the expired OAuth token refused with Vault down", func() bool {
		_, err := bc.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: oauthed})
		switch code := status.Code(err); {
		case code == codes.Unavailable:
			return true
		case err != nil:
			t.Fatalf("cached OAuth token with Vault down: %v, want it served until it expires, then Unavailable", err)
		case time.Now().After(expiry.Add(time.Second)): // a second for the call itself on a busy machine
			t.Fatalf("an OAuth token that expired at %v is still served at %v with Vault down", expiry.Format(time.StampMilli), time.Now().Format(time.StampMilli))
		}
		return false
	})
}

// Vault stops and comes back: meanwhile cached credentials are served and
// others get Unavailable; afterwards the same broker process serves again.
func TestBrokerResumesAfterVaultRestart(t *testing.T) {
	pv := persistentVault(t, "vault-persistent.log")
	b, err := stack.StartBroker(t.Context(), devstack.Extra{LogName: "broker-restart.log",
		Env: []string{"VAULT_TOKEN=" + pv.Token}, Args: []string{"-vault-addr=" + pv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	admin := brokerv1.NewBrokerAdminClient(dialAdmin(t, b.AdminAddr))
	bc := brokerv1.NewCredentialBrokerClient(dial(t, b.Addr))
	cs := connections(t)
	warmC, coldC := mustCreate(t, cs, "ws-vault-restart", "stripe", prod, key), mustCreate(t, cs, "ws-vault-restart", "http", prod, key)
	warm, cold := warmC.GetId(), coldC.GetId()
	for _, c := range []*connectionsv1.Connection{warmC, coldC} {
		id := c.GetId()
		if _, err := admin.PutSecret(ctxT(t), &brokerv1.PutSecretRequest{ConnectionId: id, SecretGeneration: c.GetSecretGeneration(),
			WorkspaceId: "ws-vault-restart", Connector: "stripe",
			AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY, Secret: apiKey("key-" + id[len(id)-2:])}); err != nil {
			t.Fatal(err)
		}
	}
	jc := job(t, cs, bc, warm, cold)
	get := func(id string) error {
		_, err := bc.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: id})
		return err
	}
	if err := get(warm); err != nil { // now cached (see TestCacheServesWhileVaultIsDown)
		t.Fatal(err)
	}
	if err := pv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := get(warm); err != nil {
		t.Errorf("cached credential with Vault stopped: %v", err)
	}
	if err := get(cold); status.Code(err) != codes.Unavailable {
		t.Errorf("uncached credential with Vault stopped: %v, want Unavailable", err)
	}
	if err := pv.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := get(cold); err != nil {
		t.Errorf("after Vault restarted, the same broker: %v", err)
	}
}
