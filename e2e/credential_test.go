package e2e

import (
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"

	"github.com/google/go-cmp/cmp"
)

// A platform service creates basic-auth and API-key connections; the secret
// lands in Vault, a worker gets exactly it back, and deleting the connection
// removes it from Vault.
func TestCredentialRoundTrip(t *testing.T) {
	cs, br := connections(t), broker(t)
	tests := []struct {
		name     string
		req      *connectionsv1.CreateConnectionRequest
		wantCred *credentialv1.Credential
	}{{
		name: "basic auth",
		req: &connectionsv1.CreateConnectionRequest{
			WorkspaceId: "ws-roundtrip", Name: "Jira basic", Connector: "jira",
			Environment: connectionsv1.Environment_ENVIRONMENT_PRODUCTION,
			AuthType:    credentialv1.AuthType_AUTH_TYPE_BASIC,
			Instance:    &credentialv1.AppInstance{BaseUrl: "https://acme.atlassian.net"},
			Secret: &credentialv1.Secret{Kind: &credentialv1.Secret_Basic{Basic: &credentialv1.BasicAuth{
				Username: "ops@acme.test", Password: "pässwörd with spaces & symbols ✓"}}},
		},
		wantCred: &credentialv1.Credential{
			AuthType: credentialv1.AuthType_AUTH_TYPE_BASIC,
			Material: &credentialv1.Credential_Basic{Basic: &credentialv1.BasicAuth{
				Username: "ops@acme.test", Password: "pässwörd with spaces & symbols ✓"}},
		},
	}, {
		name: "api key with secret",
		req: &connectionsv1.CreateConnectionRequest{
			WorkspaceId: "ws-roundtrip", Name: "Stripe live", Connector: "stripe",
			Environment: connectionsv1.Environment_ENVIRONMENT_SANDBOX,
			AuthType:    credentialv1.AuthType_AUTH_TYPE_API_KEY,
			Secret: &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{
				Key: "sk_test_51abc", Secret: "whsec_xyz"}}},
		},
		wantCred: &credentialv1.Credential{
			AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY,
			Material: &credentialv1.Credential_ApiKey{ApiKey: &credentialv1.ApiKey{Key: "sk_test_51abc", Secret: "whsec_xyz"}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxT(t)
			created, err := cs.CreateConnection(ctx, tt.req)
			if err != nil {
				t.Fatalf("CreateConnection: %v", err)
			}
			c := created.GetConnection()
			if c.GetStatus() != connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE {
				t.Errorf("status = %s, want ACTIVE", c.GetStatus())
			}

			if code, data := vaultRead(t, c.GetId()); code != http.StatusOK || data["connector"] != tt.req.GetConnector() {
				t.Fatalf("Vault entry: status %d, connector %v; want 200 and %q", code, data["connector"], tt.req.GetConnector())
			}

			jc := job(t, cs, br, c.GetId())
			got, err := br.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
			if err != nil {
				t.Fatalf("GetCredential: %v", err)
			}
			if diff := cmp.Diff(tt.wantCred, got.GetCredential(), protocmp.Transform()); diff != "" {
				t.Errorf("credential (-want +got):\n%s", diff)
			}
			if got.GetConnectionId() != c.GetId() || got.GetConnector() != tt.req.GetConnector() ||
				!proto.Equal(got.GetInstance(), c.GetInstance()) {
				t.Errorf("GetCredential = %v; want connection %s, connector %s, instance %v",
					got, c.GetId(), tt.req.GetConnector(), c.GetInstance())
			}

			if _, err := cs.DeleteConnection(ctx, &connectionsv1.DeleteConnectionRequest{Id: c.GetId(), Etag: c.GetEtag(), Force: true}); err != nil {
				t.Fatalf("DeleteConnection: %v", err)
			}
			if code, _ := vaultRead(t, c.GetId()); code != http.StatusNotFound {
				t.Errorf("Vault entry after delete: status %d, want 404", code)
			}
			if _, err := br.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()}); status.Code(err) != codes.NotFound {
				t.Errorf("GetCredential after delete: %v, want NotFound", err)
			}
			if _, err := cs.GetConnection(ctx, &connectionsv1.GetConnectionRequest{Id: c.GetId()}); status.Code(err) != codes.NotFound {
				t.Errorf("GetConnection after delete: %v, want NotFound", err)
			}
		})
	}
}

// Replacing the credentials and the instance keeps the id and serves the new
// values; an outdated etag is refused and changes nothing.
func TestUpdateCredentials(t *testing.T) {
	cs, br := connections(t), broker(t)
	ctx := ctxT(t)
	created, err := cs.CreateConnection(ctx, &connectionsv1.CreateConnectionRequest{
		WorkspaceId: "ws-update", Name: "API", Connector: "http",
		Environment: connectionsv1.Environment_ENVIRONMENT_PRODUCTION,
		AuthType:    credentialv1.AuthType_AUTH_TYPE_API_KEY,
		Instance:    &credentialv1.AppInstance{BaseUrl: "https://old.example.com"},
		Secret:      &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: "old-key"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := created.GetConnection()
	updated, err := cs.UpdateConnection(ctx, &connectionsv1.UpdateConnectionRequest{
		Id: c.GetId(), Etag: c.GetEtag(),
		Instance: &credentialv1.AppInstance{BaseUrl: "https://new.example.com"},
		Secret:   &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: "new-key"}}},
	})
	if err != nil {
		t.Fatalf("UpdateConnection: %v", err)
	}
	if updated.GetConnection().GetId() != c.GetId() || updated.GetConnection().GetEtag() == c.GetEtag() {
		t.Errorf("update: id %s etag %s; want id %s and a new etag", updated.GetConnection().GetId(), updated.GetConnection().GetEtag(), c.GetId())
	}
	got, err := br.GetCredential(job(t, cs, br, c.GetId()), &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetCredential().GetApiKey().GetKey() != "new-key" || got.GetInstance().GetBaseUrl() != "https://new.example.com" {
		t.Errorf("after update the worker gets key %q at %q; want the new key and URL",
			got.GetCredential().GetApiKey().GetKey(), got.GetInstance().GetBaseUrl())
	}

	// The first etag is now stale.
	_, err = cs.UpdateConnection(ctx, &connectionsv1.UpdateConnectionRequest{Id: c.GetId(), Etag: c.GetEtag(), Name: proto.String("stale")})
	if status.Code(err) != codes.Aborted {
		t.Errorf("update with stale etag: %v, want Aborted", err)
	}
	again, err := cs.GetConnection(ctx, &connectionsv1.GetConnectionRequest{Id: c.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if again.GetConnection().GetName() != "API" {
		t.Errorf("name after refused update = %q, want unchanged", again.GetConnection().GetName())
	}
}
