package api_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// countingApp counts the requests it gets and answers 200.
func countingApp(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) }))
	t.Cleanup(s.Close)
	return s, &n
}

func wantCode(t *testing.T, err error, code codes.Code, text string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(err.Error(), text) {
		t.Errorf("got %v, want %s mentioning %q", err, code, text)
	}
}

// A credential goes only to the hosts stored with it: the test request to
// any other host is refused before anything is sent, an attributes-only
// write cannot move it, and a record stored without hosts is sent nowhere.
func TestCredentialBoundToItsHosts(t *testing.T) {
	c := newBroker(t)
	ctx := t.Context()
	app, appHits := countingApp(t)
	evil, evilHits := countingApp(t)
	appHost := strings.TrimPrefix(app.URL, "http://")
	key := &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: "k1"}}}
	req := put(key, credentialv1.AuthType_AUTH_TYPE_API_KEY, app.URL)
	req.AllowedHosts = []string{appHost}
	if _, err := c.admin.PutSecret(ctx, req); err != nil {
		t.Fatal(err)
	}
	test := func(url string) error {
		_, err := c.admin.TestCredential(ctx, &brokerv1.TestCredentialRequest{ConnectionId: id, Method: "GET", Url: url})
		return err
	}
	// The app is on loopback: its own host, but a private network, which
	// the connector has not allowed.
	wantCode(t, test(app.URL+"/me"), codes.PermissionDenied, "private network")
	if appHits.Load() != 0 {
		t.Fatalf("a test request reached an app on a private network the connector does not allow")
	}
	req.PrivateNetwork = true
	if _, err := c.admin.PutSecret(ctx, req); err != nil {
		t.Fatal(err)
	}
	wantCode(t, test(evil.URL+"/steal"), codes.PermissionDenied, "not a host")
	if err := test(app.URL + "/me"); err != nil {
		t.Errorf("test request to the connection's own host: %v", err)
	}
	if evilHits.Load() != 0 || appHits.Load() != 1 {
		t.Errorf("hits: other host %d, own host %d; want 0 and 1", evilHits.Load(), appHits.Load())
	}

	// Moving without the secret is refused; re-sending the same place is not.
	moved := put(nil, credentialv1.AuthType_AUTH_TYPE_API_KEY, evil.URL)
	moved.AllowedHosts, moved.PrivateNetwork = []string{strings.TrimPrefix(evil.URL, "http://")}, true
	_, err := c.admin.PutSecret(ctx, moved)
	wantCode(t, err, codes.FailedPrecondition, "needs its secret again")
	same := put(nil, credentialv1.AuthType_AUTH_TYPE_API_KEY, app.URL)
	same.AllowedHosts, same.PrivateNetwork = []string{appHost}, true
	if _, err := c.admin.PutSecret(ctx, same); err != nil {
		t.Errorf("attributes-only write to the same place: %v", err)
	}

	// A record from before hosts were bound is sent nowhere.
	if _, err := c.vc.Put(ctx, id, vault.Record{WorkspaceID: "ws", Connector: "http", AuthType: "AUTH_TYPE_API_KEY",
		Instance: vault.Instance{BaseURL: app.URL}, APIKey: &vault.APIKey{Key: "k1"}, PrivateNetwork: true}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, test(app.URL+"/me"), codes.PermissionDenied, "without the hosts")
	if appHits.Load() != 1 {
		t.Errorf("an unbound credential was sent")
	}
}

// GetCredential tells the worker where the credential may go: the hosts
// stored with it, none for a record stored without them.
func TestGetCredentialNamesItsHosts(t *testing.T) {
	c := newBroker(t)
	ctx := t.Context()
	get := func() *brokerv1.GetCredentialResponse {
		t.Helper()
		got, err := c.worker.GetCredential(c.job(t), &brokerv1.GetCredentialRequest{ConnectionId: id})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if _, err := c.vc.Put(ctx, id, vault.Record{WorkspaceID: "ws", Connector: "http", AuthType: "AUTH_TYPE_API_KEY",
		Instance: vault.Instance{BaseURL: "https://a.test"}, APIKey: &vault.APIKey{Key: "k0"}}); err != nil {
		t.Fatal(err)
	}
	if got := get(); got.GetCredential().GetApiKey().GetKey() != "k0" || len(got.GetAllowedHosts()) != 0 {
		t.Errorf("a record stored without hosts: key %q, allowed_hosts %q; want k0 and none", got.GetCredential().GetApiKey().GetKey(), got.GetAllowedHosts())
	}
	key := &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: "k1"}}}
	req := put(key, credentialv1.AuthType_AUTH_TYPE_API_KEY, "https://acme.zendesk.com")
	req.AllowedHosts = []string{"*.zendesk.com", "127.0.0.1:8443"}
	if _, err := c.admin.PutSecret(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := get(); got.GetCredential().GetApiKey().GetKey() != "k1" || !slices.Equal(got.GetAllowedHosts(), req.AllowedHosts) {
		t.Errorf("GetCredential: key %q, allowed_hosts %q; want k1 and %q", got.GetCredential().GetApiKey().GetKey(), got.GetAllowedHosts(), req.AllowedHosts)
	}
}

// SignRequest signs only for the connection's own hosts.
func TestSignRequestOnlyForOwnHosts(t *testing.T) {
	c := newBroker(t)
	ctx := t.Context()
	if _, err := c.admin.PutOAuthClient(ctx, &brokerv1.PutOAuthClientRequest{Connector: "http", ClientId: "ck", ClientSecret: "cs",
		SecretGeneration: testClientGeneration}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.vc.Put(ctx, id, vault.Record{WorkspaceID: "ws", Connector: "http", AuthType: "AUTH_TYPE_OAUTH1",
		OAuth1: &vault.OAuth1{Token: "tok", TokenSecret: "ts"}, AllowedHosts: []string{"api.trello.com"}}); err != nil {
		t.Fatal(err)
	}
	sign := func(url string) error {
		_, err := c.worker.SignRequest(c.job(t), &brokerv1.SignRequestRequest{ConnectionId: id, Method: "GET", Url: url})
		return err
	}
	if err := sign("https://api.trello.com/1/members/me"); err != nil {
		t.Errorf("signing for the connection's host: %v", err)
	}
	for _, u := range []string{"https://attacker.test/1/members/me", "https://api.trello.com.attacker.test/", "http://127.0.0.1:1/"} {
		wantCode(t, sign(u), codes.PermissionDenied, "not a host")
	}
}
