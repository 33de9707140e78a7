package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
)

// validCreate returns a request that succeeds; each case breaks one thing.
func validCreate() *connectionsv1.CreateConnectionRequest {
	return &connectionsv1.CreateConnectionRequest{
		WorkspaceId: "ws-invalid", Name: "ok", Connector: "http",
		Environment: connectionsv1.Environment_ENVIRONMENT_PRODUCTION,
		AuthType:    credentialv1.AuthType_AUTH_TYPE_API_KEY,
		Instance:    &credentialv1.AppInstance{BaseUrl: "https://api.example.com"},
		Secret:      &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: "k"}}},
	}
}

func apiKey(k string) *credentialv1.Secret {
	return &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: k}}}
}

// Bad input gets InvalidArgument naming the field, and stores nothing in the
// metadata store or in Vault.
func TestInvalidInput(t *testing.T) {
	cs, br := connections(t), broker(t)
	create := func(change func(r *connectionsv1.CreateConnectionRequest)) func(context.Context) error {
		return func(ctx context.Context) error {
			r := validCreate()
			change(r)
			_, err := cs.CreateConnection(ctx, r)
			return err
		}
	}
	tests := []struct {
		name  string
		call  func(context.Context) error
		field string
	}{
		{"missing workspace", create(func(r *connectionsv1.CreateConnectionRequest) { r.WorkspaceId = "" }), "workspace_id"},
		{"malformed workspace", create(func(r *connectionsv1.CreateConnectionRequest) { r.WorkspaceId = "ws/../x" }), "workspace_id"},
		{"missing name", create(func(r *connectionsv1.CreateConnectionRequest) { r.Name = "" }), "name"},
		{"oversized name", create(func(r *connectionsv1.CreateConnectionRequest) { r.Name = strings.Repeat("n", 201) }), "name"},
		{"missing connector", create(func(r *connectionsv1.CreateConnectionRequest) { r.Connector = "" }), "connector"},
		{"unknown app", create(func(r *connectionsv1.CreateConnectionRequest) { r.Connector = "nosuchapp" }), "connector"},
		{"missing environment", create(func(r *connectionsv1.CreateConnectionRequest) { r.Environment = 0 }), "environment"},
		{"undefined environment", create(func(r *connectionsv1.CreateConnectionRequest) { r.Environment = 99 }), "environment"},
		{"missing auth type", create(func(r *connectionsv1.CreateConnectionRequest) { r.AuthType = 0 }), "auth_type"},
		{"auth type the app lacks", create(func(r *connectionsv1.CreateConnectionRequest) {
			r.Connector, r.AuthType = "stripe", credentialv1.AuthType_AUTH_TYPE_BASIC
		}), "auth_type"},
		{"missing secret", create(func(r *connectionsv1.CreateConnectionRequest) { r.Secret = nil }), "secret"},
		{"secret of the wrong kind", create(func(r *connectionsv1.CreateConnectionRequest) {
			r.Secret = &credentialv1.Secret{Kind: &credentialv1.Secret_Basic{Basic: &credentialv1.BasicAuth{Username: "u", Password: "p"}}}
		}), "secret.api_key"},
		{"empty secret", create(func(r *connectionsv1.CreateConnectionRequest) { r.Secret = &credentialv1.Secret{} }), "secret"},
		{"oversized api key", create(func(r *connectionsv1.CreateConnectionRequest) { r.Secret = apiKey(strings.Repeat("k", 4097)) }), "secret.api_key.key"},
		{"oversized password", create(func(r *connectionsv1.CreateConnectionRequest) {
			r.AuthType = credentialv1.AuthType_AUTH_TYPE_BASIC
			r.Secret = &credentialv1.Secret{Kind: &credentialv1.Secret_Basic{Basic: &credentialv1.BasicAuth{Username: "u", Password: strings.Repeat("p", 1025)}}}
		}), "secret.basic.password"},
		{"secret on an OAuth connection", create(func(r *connectionsv1.CreateConnectionRequest) {
			r.Connector, r.AuthType = "github", credentialv1.AuthType_AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE
		}), "secret"},
		{"missing required instance field", create(func(r *connectionsv1.CreateConnectionRequest) {
			r.Connector, r.AuthType = "zendesk", credentialv1.AuthType_AUTH_TYPE_BASIC
			r.Secret = &credentialv1.Secret{Kind: &credentialv1.Secret_Basic{Basic: &credentialv1.BasicAuth{Username: "u", Password: "p"}}}
		}), "instance.subdomain"},
		{"malformed base URL", create(func(r *connectionsv1.CreateConnectionRequest) { r.Instance.BaseUrl = "ftp://example.com" }), "instance.base_url"},
		{"malformed subdomain", create(func(r *connectionsv1.CreateConnectionRequest) { r.Instance.Subdomain = "Not A Host" }), "instance.subdomain"},
		{"get: malformed id", func(ctx context.Context) error {
			_, err := cs.GetConnection(ctx, &connectionsv1.GetConnectionRequest{Id: "42"})
			return err
		}, "id"},
		{"delete: malformed id", func(ctx context.Context) error {
			_, err := cs.DeleteConnection(ctx, &connectionsv1.DeleteConnectionRequest{Id: "'; DROP TABLE connections; --"})
			return err
		}, "id"},
		{"update: malformed etag", func(ctx context.Context) error {
			_, err := cs.UpdateConnection(ctx, &connectionsv1.UpdateConnectionRequest{Id: "3f2e9e8a-7a55-4f7e-9a39-3a7a2f0c1d11", Etag: "W/abc"})
			return err
		}, "etag"},
		{"list: page size too large", func(ctx context.Context) error {
			_, err := cs.ListConnections(ctx, &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws-invalid", PageSize: 5000})
			return err
		}, "page_size"},
		{"list: forged page token", func(ctx context.Context) error {
			_, err := cs.ListConnections(ctx, &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws-invalid", PageToken: "bm90LWEtdG9rZW4"})
			return err
		}, "page_token"},
		{"credential: malformed id", func(ctx context.Context) error {
			_, err := br.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: "../../sys/seal"})
			return err
		}, "connection_id"},
	}
	vaultBefore := vaultList(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(ctxT(t))
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tt.field) {
				t.Errorf("message %q does not name the field %q", msg, tt.field)
			}
		})
	}
	list, err := cs.ListConnections(ctxT(t), &connectionsv1.ListConnectionsRequest{WorkspaceId: "ws-invalid"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetConnections()); n != 0 {
		t.Errorf("invalid requests stored %d connections", n)
	}
	if after := vaultList(t); !slices.Equal(vaultBefore, after) {
		t.Errorf("invalid requests changed Vault: %d entries before, %d after", len(vaultBefore), len(after))
	}
}
