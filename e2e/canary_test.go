package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/redact"
)

// Secrets created here must appear nowhere but in Vault and in the worker's
// GetCredential reply: not in the SQLite file, the services' logs, or any
// error message, including those for refused requests that carried them.
func TestSecretsDoNotLeak(t *testing.T) {
	cs, br := connections(t), broker(t)
	ctx := ctxT(t)
	canary := func() string { return "CANARY" + rand.Text() }
	password, key, apiSecret, newKey, clientSecret := canary(), canary(), canary(), canary(), canary()
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}

	// A webhook: its signing secret is answered once and kept in Vault;
	// deliveries are signed by the broker. The key replaced below makes a
	// delivery (to a name that does not resolve: the attempt fails after
	// the signature was made).
	hook, err := cs.CreateWebhook(ctx, &connectionsv1.CreateWebhookRequest{WorkspaceId: "ws-canary", Url: "https://hooks.example.invalid/in",
		Events: []connectionsv1.WebhookEventType{connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_REAUTHORIZED}})
	if err != nil {
		t.Fatal(err)
	}
	signingKey := strings.TrimPrefix(hook.GetSigningSecret(), "whsec_")
	if len(signingKey) < 32 {
		t.Fatalf("signing secret %d characters long", len(hook.GetSigningSecret()))
	}

	basic, err := cs.CreateConnection(ctx, &connectionsv1.CreateConnectionRequest{
		WorkspaceId: "ws-canary", Name: "basic", Connector: "http",
		Environment: connectionsv1.Environment_ENVIRONMENT_PRODUCTION,
		AuthType:    credentialv1.AuthType_AUTH_TYPE_BASIC,
		Instance:    &credentialv1.AppInstance{BaseUrl: "https://api.example.com"},
		Secret:      &credentialv1.Secret{Kind: &credentialv1.Secret_Basic{Basic: &credentialv1.BasicAuth{Username: "svc", Password: password}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	keyed, err := cs.CreateConnection(ctx, &connectionsv1.CreateConnectionRequest{
		WorkspaceId: "ws-canary", Name: "key", Connector: "http",
		Environment: connectionsv1.Environment_ENVIRONMENT_SANDBOX,
		AuthType:    credentialv1.AuthType_AUTH_TYPE_API_KEY,
		Instance:    &credentialv1.AppInstance{BaseUrl: "https://api.example.com"},
		Secret:      &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: key, Secret: apiSecret}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.UpdateConnection(ctx, &connectionsv1.UpdateConnectionRequest{
		Id: keyed.GetConnection().GetId(), Secret: apiKey(newKey),
	}); err != nil {
		t.Fatal(err)
	}
	jc := job(t, cs, br, basic.GetConnection().GetId())
	got, err := br.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: basic.GetConnection().GetId()})
	if err != nil || got.GetCredential().GetBasic().GetPassword() != password {
		t.Fatalf("GetCredential = %v, %v; want the canary password back", got, err)
	}
	// The job token is a bearer credential too: its signature must not be
	// logged or recorded. A made-up token must not be echoed either.
	jobToken := strings.TrimPrefix(metadata.ValueFromOutgoingContext(jc, "authorization")[0], "Bearer ")
	jobSignature := jobToken[strings.LastIndex(jobToken, ".")+1:]
	bogus := canary()
	_, err = br.GetCredential(metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+bogus),
		&brokerv1.GetCredentialRequest{ConnectionId: basic.GetConnection().GetId()})
	note(err)
	// Wait until the broker has shipped both accesses to the connection
	// service, so that the access record is among what is searched.
	waitFor(t, 10*time.Second, "the broker to ship the accesses", func() bool {
		allowed, err := cs.ListAccessEvents(ctx, &connectionsv1.ListAccessEventsRequest{ConnectionId: basic.GetConnection().GetId(),
			Decision: connectionsv1.AccessDecision_ACCESS_DECISION_ALLOWED})
		if err != nil {
			t.Fatal(err)
		}
		// Refusals of unverified callers carry no workspace or connection.
		denied, err := cs.ListAccessEvents(ctx, &connectionsv1.ListAccessEventsRequest{
			Decision: connectionsv1.AccessDecision_ACCESS_DECISION_DENIED, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		unauthenticated := false
		for _, e := range denied.GetEvents() {
			unauthenticated = unauthenticated || (e.GetCode() == "Unauthenticated" && e.GetRequestedConnectionId() == "")
		}
		return len(allowed.GetEvents()) > 0 && unauthenticated
	})

	// Refused requests that carry secrets.
	refused := []*connectionsv1.CreateConnectionRequest{
		{WorkspaceId: "ws-canary", Name: strings.Repeat("n", 300), Connector: "http", // too long a name
			Environment: connectionsv1.Environment_ENVIRONMENT_PRODUCTION, AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY,
			Instance: &credentialv1.AppInstance{BaseUrl: "https://a.example.com"}, Secret: apiKey(key)},
		{WorkspaceId: "ws-canary", Name: "n", Connector: "stripe", // auth type mismatch
			Environment: connectionsv1.Environment_ENVIRONMENT_PRODUCTION, AuthType: credentialv1.AuthType_AUTH_TYPE_BASIC,
			Secret: &credentialv1.Secret{Kind: &credentialv1.Secret_Basic{Basic: &credentialv1.BasicAuth{Username: "u", Password: password}}}},
		{WorkspaceId: "ws-canary", Name: "n", Connector: "http", // oversized key made of canaries
			Environment: connectionsv1.Environment_ENVIRONMENT_PRODUCTION, AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY,
			Instance: &credentialv1.AppInstance{BaseUrl: "https://a.example.com"}, Secret: apiKey(strings.Repeat(key, 200))},
	}
	for _, r := range refused {
		_, err := cs.CreateConnection(ctx, r)
		if err == nil {
			t.Fatalf("request %d was accepted", len(errs))
		}
		note(err)
	}
	_, err = cs.UpdateConnection(ctx, &connectionsv1.UpdateConnectionRequest{
		Id: basic.GetConnection().GetId(), Secret: apiKey(key), // wrong kind for basic
	})
	note(err)

	// An OAuth client registration: its secret goes to Vault only, not to
	// the metadata, the audit log or the change stream; a refused one's
	// secret nowhere.
	watch, err := cs.WatchConnections(ctx, &connectionsv1.WatchConnectionsRequest{WorkspaceId: "ws-canary"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RegisterOAuthClient(ctx, &connectionsv1.RegisterOAuthClientRequest{Connector: "github", WorkspaceId: "ws-canary",
		ClientId: "canary-app", ClientSecret: clientSecret}); err != nil {
		t.Fatal(err)
	}
	_, err = cs.RegisterOAuthClient(ctx, &connectionsv1.RegisterOAuthClientRequest{Connector: "github", WorkspaceId: "ws-canary",
		ClientId: strings.Repeat("x", 600), ClientSecret: clientSecret}) // too long a client id
	if err == nil {
		t.Fatal("an oversized client id was accepted")
	}
	note(err)
	for {
		ev, err := watch.Recv()
		if err != nil {
			t.Fatal(err)
		}
		errs = append(errs, redact.Format(ev))
		if ev.GetType() == connectionsv1.ChangeType_CHANGE_TYPE_OAUTH_CLIENT_CHANGED {
			break
		}
	}
	audit, err := cs.ListAuditEvents(ctx, &connectionsv1.ListAuditEventsRequest{WorkspaceId: "ws-canary"})
	if err != nil {
		t.Fatal(err)
	}
	errs = append(errs, redact.Format(audit))

	// Printing the messages the project's way (redact.Format) hides the secrets.
	for _, m := range []proto.Message{got, refused[0], refused[1]} {
		errs = append(errs, redact.Format(m))
	}

	waitFor(t, 30*time.Second, "a signed webhook delivery attempt", func() bool {
		d, err := cs.ListWebhookDeliveries(ctx, &connectionsv1.ListWebhookDeliveriesRequest{WorkspaceId: "ws-canary", WebhookId: hook.GetWebhook().GetId()})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range d.GetDeliveries() {
			if len(x.GetAttempts()) > 0 {
				errs = append(errs, redact.Format(d))
				return true
			}
		}
		return false
	})
	errs = append(errs, redact.Format(hook))

	canaries := []string{password, key, apiSecret, newKey, jobSignature, bogus, clientSecret, signingKey}
	haystacks := stackHaystacks(t, errs)
	for where, b := range haystacks {
		if len(b) == 0 && where != "error messages" {
			t.Errorf("%s is empty; the test would prove nothing", where)
		}
		for _, c := range canaries {
			if bytes.Contains(b, []byte(c)) {
				t.Errorf("a secret leaked into %s", where)
			}
		}
	}
}

// sqliteFiles lists the database with its write-ahead log, where fresh rows
// live until a checkpoint.
// stackHaystacks are the places a leaked secret would show: the error
// messages callers got, every log file of the local stack and its SQLite
// files, by name.
func stackHaystacks(t *testing.T, errs []string) map[string][]byte {
	t.Helper()
	haystacks := map[string][]byte{"error messages": []byte(strings.Join(errs, "\n"))}
	for _, f := range append(stack.LogFiles(), sqliteFiles(t)...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		haystacks[filepath.Base(f)] = b
	}
	return haystacks
}

func sqliteFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(stack.DatabasePath() + "*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no SQLite files at %s: %v", stack.DatabasePath(), err)
	}
	return files
}
