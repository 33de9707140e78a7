package api_test

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/grpcserver"
	"github.com/integrationhub/connections/internal/grpctest"
	"github.com/integrationhub/connections/internal/vaultproc"

	"github.com/integrationhub/connections/broker/internal/api"
	"github.com/integrationhub/connections/broker/internal/oauth"
	"github.com/integrationhub/connections/broker/internal/vault"
)

type clients struct {
	worker brokerv1.CredentialBrokerClient
	admin  brokerv1.BrokerAdminClient
	vault  *vaultproc.Server
	vc     *vault.Client
	cc     *grpc.ClientConn
}

// newBroker serves both broker APIs over bufconn, backed by a real Vault dev
// server.
func newBroker(t testing.TB) clients {
	t.Helper()
	vs, err := vaultproc.StartDev(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vs.Stop() })
	vc, err := vault.New(vault.Config{Addr: vs.Addr, KVMount: "secret", PathPrefix: "ih", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	if err := vc.Login(t.Context(), vault.Auth{Method: "token", Token: vs.Token}, logger); err != nil {
		t.Fatal(err)
	}
	srv, err := grpcserver.New(grpcserver.Config{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	impl := api.New(vc, vc, oauth.New(oauth.Config{Margin: time.Minute, LeaseTTL: 30 * time.Second, Holder: "test", HTTP: &http.Client{Timeout: 5 * time.Second}}, vc), http.DefaultClient, logger)
	impl.WithCache(time.Minute)
	brokerv1.RegisterCredentialBrokerServer(srv, impl)
	brokerv1.RegisterBrokerAdminServer(srv, impl)
	cc, _, _ := grpctest.Serve(t, srv)
	return clients{brokerv1.NewCredentialBrokerClient(cc), brokerv1.NewBrokerAdminClient(cc), vs, vc, cc}
}

const id = "7d6c5b4a-3333-4000-8000-000000000001"

func put(sec *credentialv1.Secret, at credentialv1.AuthType, baseURL string) *brokerv1.PutSecretRequest {
	return &brokerv1.PutSecretRequest{ConnectionId: id, WorkspaceId: "ws", Connector: "http", AuthType: at,
		Instance: &credentialv1.AppInstance{BaseUrl: baseURL}, Secret: sec}
}

func TestPutSecret(t *testing.T) {
	c := newBroker(t)
	ctx := t.Context()
	key := &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: "k1"}}}
	basic := &credentialv1.Secret{Kind: &credentialv1.Secret_Basic{Basic: &credentialv1.BasicAuth{Username: "u", Password: "p"}}}

	// Attributes alone cannot be set before any secret exists.
	if _, err := c.admin.PutSecret(ctx, put(nil, credentialv1.AuthType_AUTH_TYPE_API_KEY, "https://a.test")); status.Code(err) != codes.NotFound {
		t.Errorf("PutSecret without a secret before one exists: %v, want NotFound", err)
	}
	if _, err := c.admin.PutSecret(ctx, put(basic, credentialv1.AuthType_AUTH_TYPE_API_KEY, "https://a.test")); status.Code(err) != codes.InvalidArgument {
		t.Errorf("PutSecret with a basic secret for API-key auth: %v, want InvalidArgument", err)
	}
	if _, err := c.admin.PutSecret(ctx, put(key, credentialv1.AuthType_AUTH_TYPE_API_KEY, "https://a.test")); err != nil {
		t.Fatal(err)
	}
	// A new instance without a secret keeps the stored key.
	if _, err := c.admin.PutSecret(ctx, put(nil, credentialv1.AuthType_AUTH_TYPE_API_KEY, "https://b.test")); err != nil {
		t.Fatal(err)
	}
	got, err := c.worker.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: id})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetCredential().GetApiKey().GetKey() != "k1" || got.GetInstance().GetBaseUrl() != "https://b.test" {
		t.Errorf("GetCredential = key %q at %q; want k1 at the new URL", got.GetCredential().GetApiKey().GetKey(), got.GetInstance().GetBaseUrl())
	}
}

// With Vault down, callers get Unavailable (retry later), not NotFound or
// Internal.
func TestVaultDown(t *testing.T) {
	c := newBroker(t)
	if err := c.vault.Stop(); err != nil {
		t.Fatal(err)
	}
	_, err := c.worker.GetCredential(t.Context(), &brokerv1.GetCredentialRequest{ConnectionId: id})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("GetCredential with Vault down: %v, want Unavailable", err)
	}
	_, err = c.admin.DeleteSecret(t.Context(), &brokerv1.DeleteSecretRequest{ConnectionId: id})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("DeleteSecret with Vault down: %v, want Unavailable", err)
	}
}
