package api_test

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/grpcserver"
	"github.com/integrationhub/connections/internal/grpctest"
	"github.com/integrationhub/connections/internal/vaultproc"

	"github.com/integrationhub/connections/broker/internal/access"
	"github.com/integrationhub/connections/broker/internal/api"
	"github.com/integrationhub/connections/broker/internal/cache"
	"github.com/integrationhub/connections/broker/internal/conninfo"
	"github.com/integrationhub/connections/broker/internal/jobtoken"
	"github.com/integrationhub/connections/broker/internal/oauth"
	"github.com/integrationhub/connections/broker/internal/oauthclient"
	"github.com/integrationhub/connections/broker/internal/vault"
)

type clients struct {
	worker brokerv1.CredentialBrokerClient
	admin  brokerv1.BrokerAdminClient
	vault  *vaultproc.Server
	vc     *vault.Client
	cc     *grpc.ClientConn
	tokens *jobtoken.Authority
	root   *vaultapi.Client
	// workers is the worker API itself, for its egress proxy handler.
	workers *api.WorkerServer
}

// directory stands in for the connection service's answers about
// connections (the e2e tests use the real service); it lists the test
// connection as active in workspace ws.
type directory struct{}

func (directory) Connection(_ context.Context, cid string) (*connectionsv1.Connection, error) {
	if cid != id {
		return nil, status.Error(codes.NotFound, "no such connection")
	}
	return &connectionsv1.Connection{Id: id, WorkspaceId: "ws", Connector: "http",
		Status: connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE}, nil
}

func (directory) RuntimeUserConnection(context.Context, string, string) (*connectionsv1.Connection, error) {
	return nil, nil
}

// job returns a context carrying a job token for recipe r-1 that covers the
// test connection.
func (c clients) job(t testing.TB) context.Context {
	t.Helper()
	return c.jobNamed(t, "job-1")
}

// jobNamed is job for a job of another name (the same recipe).
func (c clients) jobNamed(t testing.TB, job string) context.Context {
	t.Helper()
	tok, _, err := c.tokens.Mint(t.Context(), jobtoken.Claims{Workspace: "ws", Recipe: "r-1", Job: job,
		Connections: []string{id}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

// keyRefresh is how long the test broker trusts the job-token public keys it
// read (30 s in the real broker), short so a retired key stops verifying soon.
const keyRefresh = time.Second

// newBroker serves both broker APIs over bufconn, backed by a real Vault dev
// server with a transit key for job tokens.
// newBroker serves a broker on a Vault dev server of its own; opts adjust
// what it is built from.
func newBroker(t testing.TB, opts ...func(*api.Deps)) clients {
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
	root, _ := vaultapi.NewClient(&vaultapi.Config{Address: vs.Addr})
	root.SetToken(vs.Token)
	if err := root.Sys().MountWithContext(t.Context(), "transit", &vaultapi.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	if err := vc.EnsureTransitKey(t.Context(), "transit", "job-tokens"); err != nil {
		t.Fatal(err)
	}
	tokens := jobtoken.New(jobtoken.Config{Mount: "transit", Key: "job-tokens", Issuer: "integrationhub-broker",
		Audience: "broker", Refresh: keyRefresh}, vc)
	srv, err := grpcserver.New(grpcserver.Config{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	// Every registration the tests make is live as testClientGeneration,
	// as the connection service would name it.
	clientStore := oauthclient.Store{Client: vc, Registry: oauthclient.New(vc, func(context.Context, string, string) (string, error) {
		return testClientGeneration, nil
	})}
	// Accesses are recorded as in the broker; shipping them is the e2e
	// tests' business.
	audit := access.New(func(context.Context, string, []*connectionsv1.AccessEvent) error { return nil }, "test", time.Hour, 50_000, logger)
	deps := api.Deps{Secrets: vc, Clients: clientStore, OAuth: oauth.New(oauth.Config{Margin: time.Minute, LeaseTTL: 30 * time.Second, Holder: "test",
		HTTP: &http.Client{Timeout: 5 * time.Second}}, clientStore), HTTP: http.DefaultClient, Logger: logger, Cache: cache.New(time.Minute),
		Workers: &api.Workers{Tokens: tokens, Connections: conninfo.New(directory{}, time.Minute), Record: audit.Record}}
	for _, o := range opts {
		o(&deps)
	}
	workers, admin := api.New(deps)
	brokerv1.RegisterCredentialBrokerServer(srv, workers)
	brokerv1.RegisterBrokerAdminServer(srv, admin)
	cc, _, _ := grpctest.Serve(t, srv)
	return clients{brokerv1.NewCredentialBrokerClient(cc), brokerv1.NewBrokerAdminClient(cc), vs, vc, cc, tokens, root, workers}
}

const id = "7d6c5b4a-3333-4000-8000-000000000001"

// testClientGeneration is the generation of every OAuth client registration
// in these tests.
const testClientGeneration = "c1"

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
	// A new instance without a secret is refused: the credential is bound
	// to where it was stored for. The same instance again is fine.
	if _, err := c.admin.PutSecret(ctx, put(nil, credentialv1.AuthType_AUTH_TYPE_API_KEY, "https://b.test")); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("PutSecret moving the secret without it: %v, want FailedPrecondition", err)
	}
	if _, err := c.admin.PutSecret(ctx, put(nil, credentialv1.AuthType_AUTH_TYPE_API_KEY, "https://a.test")); err != nil {
		t.Fatal(err)
	}
	got, err := c.worker.GetCredential(c.job(t), &brokerv1.GetCredentialRequest{ConnectionId: id})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetCredential().GetApiKey().GetKey() != "k1" || got.GetInstance().GetBaseUrl() != "https://a.test" {
		t.Errorf("GetCredential = key %q at %q; want k1 where it was stored", got.GetCredential().GetApiKey().GetKey(), got.GetInstance().GetBaseUrl())
	}
}

// With Vault down, callers get Unavailable (retry later), not NotFound or
// Internal.
func TestVaultDown(t *testing.T) {
	c := newBroker(t)
	ctx := c.job(t)
	if err := c.vault.Stop(); err != nil {
		t.Fatal(err)
	}
	_, err := c.worker.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: id})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("GetCredential with Vault down: %v, want Unavailable", err)
	}
	_, err = c.admin.DeleteSecret(t.Context(), &brokerv1.DeleteSecretRequest{ConnectionId: id})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("DeleteSecret with Vault down: %v, want Unavailable", err)
	}
}

// The worker API refuses calls without a job token that verifies and covers
// the connection.
func TestJobTokenRefusals(t *testing.T) {
	c := newBroker(t)
	ctx := t.Context()
	if _, err := c.admin.PutSecret(ctx, put(&credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: "k1"}}},
		credentialv1.AuthType_AUTH_TYPE_API_KEY, "https://a.test")); err != nil {
		t.Fatal(err)
	}
	mint := func(a *jobtoken.Authority, conns []string, ttl time.Duration) string {
		tok, _, err := a.Mint(ctx, jobtoken.Claims{Workspace: "ws", Recipe: "r-1", Job: "j", Connections: conns}, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := mint(c.tokens, []string{id}, time.Hour)
	otherAudience := mint(jobtoken.New(jobtoken.Config{Mount: "transit", Key: "job-tokens", Issuer: "integrationhub-broker", Audience: "another-broker"}, c.vc), []string{id}, time.Hour)
	parts := strings.Split(mint(c.tokens, []string{"7d6c5b4a-3333-4000-8000-0000000000ff"}, time.Hour), ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	// Widen the token to the test connection after signing.
	forged := strings.Replace(string(payload), "7d6c5b4a-3333-4000-8000-0000000000ff", id, 1)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
	// Signed by key version 1, which is retired below.
	retired := mint(c.tokens, []string{id}, time.Hour)
	tests := []struct {
		name, token string
		want        codes.Code
	}{
		{"valid", good, codes.OK},
		{"no token", "", codes.Unauthenticated},
		{"garbage", "not-a-jwt", codes.Unauthenticated},
		{"expired", mint(c.tokens, []string{id}, -time.Minute), codes.Unauthenticated},
		{"other audience", otherAudience, codes.Unauthenticated},
		{"tampered", tampered, codes.Unauthenticated},
		{"another recipe's connections", mint(c.tokens, []string{"7d6c5b4a-3333-4000-8000-0000000000ff"}, time.Hour), codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.token != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tt.token)
			}
			for _, call := range []func() error{
				func() error {
					_, err := c.worker.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: id})
					return err
				},
				func() error {
					_, err := c.worker.ReportCredentialFailure(ctx, &brokerv1.ReportCredentialFailureRequest{ConnectionId: id, HttpStatus: 403})
					return err
				},
			} {
				err := call()
				if tt.want == codes.OK && tt.name == "valid" && err != nil && status.Code(err) != codes.FailedPrecondition {
					t.Errorf("got %v, want it allowed", err)
				}
				if tt.want != codes.OK && status.Code(err) != tt.want {
					t.Errorf("got %v, want %v", err, tt.want)
				}
			}
		})
	}

	t.Run("retired key version", func(t *testing.T) {
		rctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+retired)
		if _, err := c.worker.GetCredential(rctx, &brokerv1.GetCredentialRequest{ConnectionId: id}); err != nil {
			t.Fatalf("before retirement: %v", err)
		}
		if _, err := c.root.Logical().WriteWithContext(ctx, "transit/keys/job-tokens/rotate", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.root.Logical().WriteWithContext(ctx, "transit/keys/job-tokens/config", map[string]any{"min_decryption_version": 2}); err != nil {
			t.Fatal(err)
		}
		// The broker reads the keys again in the background once they are
		// older than keyRefresh; from then on the retired version is refused.
		deadline := time.Now().Add(keyRefresh + 10*time.Second)
		for {
			_, err := c.worker.GetCredential(rctx, &brokerv1.GetCredentialRequest{ConnectionId: id})
			if status.Code(err) == codes.Unauthenticated {
				break
			}
			if err != nil || time.Now().After(deadline) {
				t.Fatalf("token signed by a retired key version: %v, want Unauthenticated within %v", err, keyRefresh+10*time.Second)
			}
			time.Sleep(50 * time.Millisecond) // polling pace
		}
		fresh := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+mint(c.tokens, []string{id}, time.Hour))
		if _, err := c.worker.GetCredential(fresh, &brokerv1.GetCredentialRequest{ConnectionId: id}); err != nil {
			t.Errorf("token signed by the new key version: %v", err)
		}
	})
}

// Secret generations: a generation is written once (check-and-set 0), the
// worker API serves the one the connection's metadata names, ListSecrets
// lists them all, and DeleteSecret destroys one or all.
func TestSecretGenerations(t *testing.T) {
	c := newBroker(t)
	ctx := t.Context()
	keyed := func(k string) *credentialv1.Secret {
		return &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: k}}}
	}
	for _, g := range []struct{ gen, key string }{{"", "legacy"}, {"g1", "one"}, {"g2", "two"}} {
		req := put(keyed(g.key), credentialv1.AuthType_AUTH_TYPE_API_KEY, "https://a.test")
		req.SecretGeneration = g.gen
		if _, err := c.admin.PutSecret(ctx, req); err != nil {
			t.Fatalf("PutSecret generation %q: %v", g.gen, err)
		}
	}
	again := put(keyed("overwrite"), credentialv1.AuthType_AUTH_TYPE_API_KEY, "https://a.test")
	again.SecretGeneration = "g1"
	if _, err := c.admin.PutSecret(ctx, again); status.Code(err) != codes.AlreadyExists {
		t.Errorf("second write of generation g1: %v, want AlreadyExists", err)
	}
	// Attributes only: the material is copied from the named generation.
	attrs := put(nil, credentialv1.AuthType_AUTH_TYPE_API_KEY, "https://a.test")
	attrs.SecretGeneration, attrs.FromGeneration = "g3", "g2"
	if _, err := c.admin.PutSecret(ctx, attrs); err != nil {
		t.Fatal(err)
	}
	list, err := c.admin.ListSecrets(ctx, &brokerv1.ListSecretsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var gens []string
	for _, s := range list.GetSecrets() {
		if s.GetConnectionId() == id {
			gens = append(gens, s.GetSecretGeneration())
		}
	}
	if strings.Join(gens, ",") != ",g1,g2,g3" {
		t.Errorf("ListSecrets generations = %q, want \",g1,g2,g3\"", gens)
	}
	// The legacy entry is served while the metadata names no generation.
	got, err := c.worker.GetCredential(c.job(t), &brokerv1.GetCredentialRequest{ConnectionId: id})
	if err != nil || got.GetCredential().GetApiKey().GetKey() != "legacy" {
		t.Errorf("GetCredential = %v, %v; want the legacy key", got, err)
	}
	if _, err := c.admin.DeleteSecret(ctx, &brokerv1.DeleteSecretRequest{ConnectionId: id, SecretGeneration: "g1"}); err != nil {
		t.Fatal(err)
	}
	list, _ = c.admin.ListSecrets(ctx, &brokerv1.ListSecretsRequest{})
	if n := len(list.GetSecrets()); n != 3 {
		t.Errorf("after destroying g1: %d entries, want 3", n)
	}
	if _, err := c.admin.DeleteSecret(ctx, &brokerv1.DeleteSecretRequest{ConnectionId: id, AllGenerations: true}); err != nil {
		t.Fatal(err)
	}
	list, _ = c.admin.ListSecrets(ctx, &brokerv1.ListSecretsRequest{})
	if n := len(list.GetSecrets()); n != 0 {
		t.Errorf("after destroying all: %d entries, want 0", n)
	}
}
