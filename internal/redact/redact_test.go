package redact_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/redact"
)

func TestFormat(t *testing.T) {
	const secret = "s3cr3t-canary"
	tests := []struct {
		name string
		msg  proto.Message
		keep string // a non-secret value that must still show
	}{
		{"basic password", &connectionsv1.CreateConnectionRequest{Name: "n", Secret: &credentialv1.Secret{
			Kind: &credentialv1.Secret_Basic{Basic: &credentialv1.BasicAuth{Username: "alice", Password: secret}}}}, "alice"},
		{"api key and secret", &brokerv1.PutSecretRequest{Connector: "stripe", Secret: &credentialv1.Secret{
			Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: secret, Secret: secret}}}}, "stripe"},
		{"oauth access token in a reply", &brokerv1.GetCredentialResponse{Connector: "slack", Credential: &credentialv1.Credential{
			Material: &credentialv1.Credential_Oauth2{Oauth2: &credentialv1.OAuth2AccessToken{AccessToken: secret, TokenType: "Bearer"}}}}, "Bearer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := proto.Clone(tt.msg)
			out := redact.Format(tt.msg)
			if strings.Contains(out, secret) {
				t.Errorf("Format leaked the secret: %s", out)
			}
			if !strings.Contains(out, tt.keep) || !strings.Contains(out, redact.Placeholder) {
				t.Errorf("Format = %s; want %q kept and secrets shown as %s", out, tt.keep, redact.Placeholder)
			}
			if !proto.Equal(before, tt.msg) {
				t.Error("Format changed the message it printed")
			}
		})
	}
}
