package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/oauthtest"
)

// oauthEnv is an OAuth app (fosite on loopback), a connection service whose
// catalog points the "acme" connector at it, and its client registered.
type oauthEnv struct {
	dbPath    string // the test connection service's SQLite file ("" on PostgreSQL)
	database  string // its -database
	catalog   string // its catalog file
	app       *oauthtest.Server
	app1      *oauthtest.OAuth1Server // an OAuth 1.0a app for the "acme1" connector
	api       *keyApp                 // an API-key app for the "acme_key" connector
	placed    *httptest.Server        // an API-key app that wants the key in a header (/h) or a query parameter (/q)
	placedTLS *httptest.Server        // the same app over TLS (its own certificate)
	svc       *devstack.Proc
	cs        connectionsv1.ConnectionServiceClient
	agent     *http.Client // the user's browser: follows redirects, no cookies needed
}

func newOAuthEnv(t *testing.T) *oauthEnv {
	t.Helper()
	e := startOAuthEnv(t)
	e.registerClients(t)
	return e
}

// startOAuthEnv starts the apps and the connection service (with extra
// flags after the env's own) but registers no OAuth client yet.
func startOAuthEnv(t *testing.T, extraArgs ...string) *oauthEnv {
	t.Helper()
	return startOAuthEnvOn(t, "", extraArgs...)
}

// startOAuthEnvOn is startOAuthEnv with the connection service on database
// ("": a new SQLite file).
func startOAuthEnvOn(t *testing.T, database string, extraArgs ...string) *oauthEnv {
	t.Helper()
	app := oauthtest.Start(t, oauthtest.Options{})
	api := startKeyApp(t)
	app1 := oauthtest.StartOAuth1(t)
	placed, placedTLS := startPlacedKeyApp(t)
	catalog := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(catalog, []byte(acmeConnectors(app.URL, app1.URL)+fmt.Sprintf(`  - name: acme_m2m
    private_network: true # loopback apps
    display_name: ACME (machine to machine)
    auth_types: [oauth2_client_credentials]
    oauth2:
      token_url: %[1]s/token
      scopes: [read]
  - name: acme_key
    private_network: true # loopback apps
    display_name: ACME (loopback API-key app)
    auth_types: [api_key]
    default_base_url: %[2]s
    test_request: {method: GET, path: /me}
  - name: acme_hdr
    private_network: true # loopback apps
    display_name: ACME (key in a named header)
    auth_types: [api_key]
    default_base_url: %[4]s
    credential_placement: {in: header, name: X-Api-Key, prefix: "Token "}
    test_request: {method: GET, path: /h}
  - name: acme_q
    private_network: true # loopback apps
    display_name: ACME (key in a query parameter)
    auth_types: [api_key]
    default_base_url: %[4]s
    credential_placement: {in: query, name: api_key}
    test_request: {method: GET, path: /q}
  - name: acme_tls
    private_network: true # loopback apps
    display_name: ACME (key in a named header, over TLS)
    auth_types: [api_key]
    default_base_url: %[5]s
    credential_placement: {in: header, name: X-Api-Key, prefix: "Token "}
    test_request: {method: GET, path: /h}
`, app.URL, api.URL, app1.URL, placed.URL, placedTLS.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	var dbPath string
	if database == "" {
		dbPath = sqlitePath(t)
		database = "sqlite:" + dbPath
	}
	svc, err := stack.StartConnectionService(t.Context(), database, devstack.Extra{
		LogName: "oauth-" + strings.ReplaceAll(t.Name(), "/", "-") + ".log", Args: append([]string{"-catalog-file=" + catalog}, extraArgs...)})
	if err != nil {
		t.Fatal(err)
	}
	app.SetRedirectURIs("http://" + svc.HTTPAddr + "/oauth2/callback")
	return &oauthEnv{dbPath: dbPath, database: database, catalog: catalog, placed: placed, placedTLS: placedTLS, app: app, app1: app1, api: api, svc: svc, cs: connectionsv1.NewConnectionServiceClient(dial(t, svc.Addr)),
		agent: &http.Client{Timeout: 20 * time.Second}}
}

// acmeConnectors is a catalog file's beginning: the "acme" connector (OAuth
// 2.0 with PKCE, the app at app) and "acme1" (OAuth 1.0a, the app at app1).
func acmeConnectors(app, app1 string) string {
	return fmt.Sprintf(`connectors:
  - name: acme
    private_network: true # loopback apps
    display_name: ACME (loopback OAuth app)
    auth_types: [oauth2_authorization_code]
    default_base_url: %[1]s
    oauth2:
      authorize_url: %[1]s/authorize
      token_url: %[1]s/token
      scopes: [read, write]
      pkce: true
    test_request: {method: GET, path: /userinfo}
  - name: acme1
    private_network: true # loopback apps
    display_name: ACME (OAuth 1.0a)
    auth_types: [oauth1]
    default_base_url: %[2]s
    oauth1:
      request_token_url: %[2]s/request_token
      authorize_url: %[2]s/authorize
      access_token_url: %[2]s/access_token
    test_request: {method: GET, path: /me}
`, app, app1)
}

// registerClients registers the apps' OAuth clients through the connection
// service (the broker stores their secrets).
func (e *oauthEnv) registerClients(t *testing.T) {
	t.Helper()
	if _, err := e.cs.RegisterOAuthClient(ctxT(t), &connectionsv1.RegisterOAuthClientRequest{
		Connector: "acme", ClientId: e.app.ClientID, ClientSecret: e.app.ClientSecret}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.RegisterOAuthClient(ctxT(t), &connectionsv1.RegisterOAuthClientRequest{
		Connector: "acme1", ClientId: e.app1.ConsumerKey, ClientSecret: e.app1.ConsumerSecret}); err != nil {
		t.Fatal(err)
	}
}

func (e *oauthEnv) create(t *testing.T) *connectionsv1.Connection {
	t.Helper()
	c, err := e.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-oauth", Name: "ACME",
		Connector: "acme", Environment: prod, AuthType: oauth2})
	if err != nil {
		t.Fatal(err)
	}
	return c.GetConnection()
}

func (e *oauthEnv) start(t *testing.T, id string) string {
	t.Helper()
	resp, err := e.cs.StartAuthorization(ctxT(t), &connectionsv1.StartAuthorizationRequest{ConnectionId: id})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetAuthorizeUrl()
}

// visit opens url as the user's browser would and returns the final page.
func (e *oauthEnv) visit(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := e.agent.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// authorize runs the whole flow for connection id and fails unless it connects.
func (e *oauthEnv) authorize(t *testing.T, id string) {
	t.Helper()
	if code, body := e.visit(t, e.start(t, id)); code != http.StatusOK || !strings.Contains(body, "connected as "+e.app.Subject) {
		t.Fatalf("authorization ended with %d: %s", code, body)
	}
}

// authorizedOAuth1 creates an OAuth 1.0a connection to the "acme1" app and
// authorizes it; it fails unless it connects.
func (e *oauthEnv) authorizedOAuth1(t *testing.T) string {
	t.Helper()
	created, err := e.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-oauth", Name: "boards",
		Connector: "acme1", Environment: prod, AuthType: credentialv1.AuthType_AUTH_TYPE_OAUTH1})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetConnection().GetId()
	if code, body := e.visit(t, e.start(t, id)); code != http.StatusOK {
		t.Fatalf("OAuth 1.0a authorization ended with %d: %s", code, body)
	}
	return id
}

// works reports whether an access token is accepted by the app.
func (e *oauthEnv) works(t *testing.T, token string) bool {
	req, _ := http.NewRequest(http.MethodGet, e.app.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// The authorization code flow with PKCE, end to end: the connection turns
// active with who it is authorized as and its scopes; a worker gets a working
// access token; re-authorization keeps the id.
func TestOAuthAuthorizationCodeFlow(t *testing.T) {
	e := newOAuthEnv(t)
	c := e.create(t)
	if c.GetStatus() != connectionsv1.ConnectionStatus_CONNECTION_STATUS_PENDING {
		t.Fatalf("new OAuth connection is %s, want PENDING", c.GetStatus())
	}
	url := e.start(t, c.GetId())
	for _, want := range []string{"code_challenge_method=S256", "code_challenge=", "state=", "client_id=" + e.app.ClientID, "scope=read+write"} {
		if !strings.Contains(url, want) {
			t.Errorf("authorize URL %s lacks %s", url, want)
		}
	}
	if code, body := e.visit(t, url); code != http.StatusOK || !strings.Contains(body, "connected as "+e.app.Subject) {
		t.Fatalf("callback page %d: %s", code, body)
	}
	got, err := e.cs.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: c.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	gc := got.GetConnection()
	if gc.GetStatus() != connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE || gc.GetAuthorizedAs() != e.app.Subject ||
		strings.Join(gc.GetGrantedScopes(), " ") != "read write" || gc.GetLastVerifyTime() == nil {
		t.Errorf("after authorization: %v", gc)
	}
	br := brokerv1.NewCredentialBrokerClient(dial(t, refreshBrokers(t, e, 1)[0].Addr))
	cred, err := br.GetCredential(job(t, e.cs, br, c.GetId()), &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	tok := cred.GetCredential().GetOauth2()
	if cred.GetCredential().GetAuthType() != oauth2 || !e.works(t, tok.GetAccessToken()) || cred.GetCredential().GetExpireTime() == nil {
		t.Errorf("worker's credential %v does not work at the app", cred.GetCredential().GetAuthType())
	}
	// Re-authorization: same id, still active.
	e.authorize(t, c.GetId())
	again, _ := e.cs.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: c.GetId()})
	if again.GetConnection().GetStatus() != connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE {
		t.Errorf("after re-authorization: %s", again.GetConnection().GetStatus())
	}

	// No OAuth secret leaks: the client secret, the tokens (old and new) and
	// the refresh token appear in no service log and not in the metadata store.
	_, stored := vaultRead(t, c.GetId())
	oauth2, _ := stored["oauth2"].(map[string]any)
	refresh, _ := oauth2["refresh_token"].(string)
	current, _ := oauth2["access_token"].(string)
	secrets := map[string]string{"client secret": e.app.ClientSecret, "first access token": tok.GetAccessToken(),
		"current access token": current, "refresh token": refresh}
	files, _ := filepath.Glob(e.dbPath + "*")
	for _, f := range append(stack.LogFiles(), files...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for what, v := range secrets {
			if v == "" {
				t.Fatalf("no %s to look for", what)
			}
			if strings.Contains(string(b), v) {
				t.Errorf("the %s leaked into %s", what, filepath.Base(f))
			}
		}
	}
}

// Refusals at the callback each leave the connection unchanged and show a
// page that says what to do.
func TestOAuthCallbackRefusals(t *testing.T) {
	e := newOAuthEnv(t)
	callback := "http://" + e.svc.HTTPAddr + "/oauth2/callback"

	t.Run("state reuse", func(t *testing.T) {
		c := e.create(t)
		// Stop at the redirect to capture the callback URL, then replay it.
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Get(e.start(t, c.GetId()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cb := resp.Header.Get("Location")
		if code, _ := e.visit(t, cb); code != http.StatusOK {
			t.Fatalf("first use of the callback: %d", code)
		}
		if code, body := e.visit(t, cb); code != http.StatusBadRequest || !strings.Contains(body, "already used") {
			t.Errorf("replayed callback: %d %s; want 400 saying it was already used", code, body)
		}
	})
	t.Run("forged state", func(t *testing.T) {
		c := e.create(t)
		e.start(t, c.GetId()) // a real state exists, but the attacker does not know it
		if code, _ := e.visit(t, callback+"?state=forged-state-value&code=whatever"); code != http.StatusBadRequest {
			t.Errorf("forged state: %d, want 400", code)
		}
		wantStatus(t, e, c.GetId(), connectionsv1.ConnectionStatus_CONNECTION_STATUS_PENDING)
	})
	t.Run("connection deleted meanwhile", func(t *testing.T) {
		c := e.create(t)
		url := e.start(t, c.GetId())
		if _, err := e.cs.DeleteConnection(ctxT(t), &connectionsv1.DeleteConnectionRequest{Id: c.GetId()}); err != nil {
			t.Fatal(err)
		}
		if code, body := e.visit(t, url); code != http.StatusGone || !strings.Contains(body, "deleted") {
			t.Errorf("callback for a deleted connection: %d %s; want 410", code, body)
		}
		if code, _ := vaultRead(t, c.GetId()); code != http.StatusNotFound {
			t.Errorf("a deleted connection got a secret in Vault (status %d)", code)
		}
	})
	t.Run("consent denied", func(t *testing.T) {
		c := e.create(t)
		if code, body := e.visit(t, e.start(t, c.GetId())+"&deny=1"); code != http.StatusBadRequest || !strings.Contains(body, "access_denied") {
			t.Errorf("denied consent: %d %s; want 400 naming access_denied", code, body)
		}
		wantStatus(t, e, c.GetId(), connectionsv1.ConnectionStatus_CONNECTION_STATUS_PENDING)
	})
}

func wantStatus(t *testing.T, e *oauthEnv, id string, want connectionsv1.ConnectionStatus) {
	t.Helper()
	got, err := e.cs.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: id})
	if err != nil || got.GetConnection().GetStatus() != want {
		t.Errorf("connection status = %v, %v; want %s", got.GetConnection().GetStatus(), err, want)
	}
}

// refreshBrokers starts n brokers on the stack's Vault with short OAuth
// timings, so that tests need not wait minutes for expiry.
func refreshBrokers(t *testing.T, e *oauthEnv, n int) []*devstack.Proc {
	t.Helper()
	var ps []*devstack.Proc
	for i := range n {
		p, err := stack.StartBroker(t.Context(), devstack.Extra{
			LogName: fmt.Sprintf("broker-%s-%d.log", strings.ReplaceAll(t.Name(), "/", "-"), i),
			Args: []string{"-oauth-refresh-margin=500ms", "-oauth-lease-ttl=3s", "-oauth-http-timeout=1s", fmt.Sprintf("-instance-id=broker-%d", i),
				"-connections-addr=" + e.svc.Addr}, // report to this test's connection service
		})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// expiredConnection authorizes a connection whose access token lives two
// seconds, waits for it to expire, and makes later tokens long-lived. (With
// one second, expires_in can truncate to 0, which OAuth clients rightly read
// as "no expiry".)
func expiredConnection(t *testing.T, e *oauthEnv) string {
	t.Helper()
	c := e.create(t)
	e.app.SetAccessTokenLifespan(2 * time.Second)
	e.authorize(t, c.GetId())
	e.app.SetAccessTokenLifespan(time.Hour)
	time.Sleep(2100 * time.Millisecond) // wall clock: the app's token lifetime runs in real time
	return c.GetId()
}

// refreshHeld has br serve connection id (its access token expired) and
// returns once br's refresh is held at the app: the call's outcome comes on
// answer after release.
func refreshHeld(t *testing.T, e *oauthEnv, br brokerv1.CredentialBrokerClient, jc context.Context, id string) (answer <-chan error, release func()) {
	t.Helper()
	held, release := e.app.HoldRefreshes()
	t.Cleanup(release)
	ch := make(chan error, 1)
	go func() {
		_, err := br.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: id})
		ch <- err
	}()
	select {
	case <-held:
	case err := <-ch:
		t.Fatalf("the broker answered before its refresh reached the app: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the refresh never reached the app")
	}
	return ch, release
}

// Three brokers on one Vault, 300 concurrent GetCredential calls on a
// connection whose access token has expired: exactly one refresh reaches the
// app, and every call gets a token that works.
func TestOAuthConcurrentRefreshAcrossBrokers(t *testing.T) {
	e := newOAuthEnv(t)
	brokers := refreshBrokers(t, e, 3)
	id := expiredConnection(t, e)
	before := e.app.Refreshes()

	clients := make([]brokerv1.CredentialBrokerClient, len(brokers))
	for i, b := range brokers {
		clients[i] = brokerv1.NewCredentialBrokerClient(dial(t, b.Addr))
	}
	ctx := job(t, e.cs, clients[0], id)
	var wg sync.WaitGroup
	var mu sync.Mutex
	tokens, errs := map[string]int{}, 0
	for i := range 300 {
		wg.Go(func() {
			resp, err := clients[i%3].GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: id})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				return
			}
			tokens[resp.GetCredential().GetOauth2().GetAccessToken()]++
		})
	}
	wg.Wait()
	if errs > 0 {
		t.Errorf("%d of 300 calls failed", errs)
	}
	if got := e.app.Refreshes() - before; got != 1 {
		t.Errorf("%d refreshes reached the app, want exactly 1", got)
	}
	for tok, n := range tokens {
		if !e.works(t, tok) {
			t.Errorf("%d calls got a token the app refuses", n)
		}
	}
}

// A broker killed while its refresh is in flight (before the app has
// processed it) loses no refresh token: once its lease runs out, another
// broker refreshes with the stored token and the connection works.
func TestOAuthBrokerKilledMidRefresh(t *testing.T) {
	e := newOAuthEnv(t)
	brokers := refreshBrokers(t, e, 2)
	id := expiredConnection(t, e)
	before := e.app.Refreshes()

	victim := brokerv1.NewCredentialBrokerClient(dial(t, brokers[0].Addr))
	jc := job(t, e.cs, victim, id)
	_, release := refreshHeld(t, e, victim, jc, id)
	brokers[0].Kill()
	waitFor(t, 10*time.Second, "the app to drop the killed broker's request", func() bool { return e.app.HeldRequests() == 0 })
	release()

	survivor := brokerv1.NewCredentialBrokerClient(dial(t, brokers[1].Addr))
	resp, err := survivor.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: id})
	if err != nil {
		t.Fatalf("GetCredential on the surviving broker: %v", err)
	}
	if !e.works(t, resp.GetCredential().GetOauth2().GetAccessToken()) {
		t.Error("the surviving broker's token does not work")
	}
	if got := e.app.Refreshes() - before; got != 1 {
		t.Errorf("%d refreshes processed by the app, want 1 (the killed broker's was never processed)", got)
	}
}

// Client credentials: the token is minted on first use, stored, and reused
// by every broker until near expiry; the worker never sees the client secret.
func TestOAuthClientCredentials(t *testing.T) {
	e := newOAuthEnv(t)
	brokers := refreshBrokers(t, e, 2)
	created, err := e.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-m2m", Name: "m2m",
		Connector: "acme_m2m", Environment: prod, AuthType: credentialv1.AuthType_AUTH_TYPE_OAUTH2_CLIENT_CREDENTIALS,
		Secret: &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: e.app.ClientID, Secret: e.app.ClientSecret}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetConnection().GetId()
	jc := job(t, e.cs, brokerv1.NewCredentialBrokerClient(dial(t, brokers[0].Addr)), id)
	seen := map[string]bool{}
	for i := range 6 {
		resp, err := brokerv1.NewCredentialBrokerClient(dial(t, brokers[i%2].Addr)).GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: id})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetCredential().GetApiKey() != nil {
			t.Fatal("the worker was handed the client id and secret")
		}
		seen[resp.GetCredential().GetOauth2().GetAccessToken()] = true
	}
	if len(seen) != 1 || e.app.Mints() != 1 {
		t.Errorf("%d distinct tokens from %d mints; want one token minted once", len(seen), e.app.Mints())
	}
	for tok := range seen {
		if !e.works(t, tok) {
			t.Error("the minted token does not work")
		}
	}
}

// A refresh token the app revoked: the worker is told to re-authorize
// (FailedPrecondition, not a retryable error), the connection turns invalid
// with reason REVOKED, and watchers hear of it.
func TestOAuthRevokedConnectionTurnsInvalid(t *testing.T) {
	e := newOAuthEnv(t)
	brokers := refreshBrokers(t, e, 1)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	watch, err := e.cs.WatchConnections(ctx, &connectionsv1.WatchConnectionsRequest{WorkspaceId: "ws-oauth"})
	if err != nil {
		t.Fatal(err)
	}
	id := expiredConnection(t, e)
	bc := brokerv1.NewCredentialBrokerClient(dial(t, brokers[0].Addr))
	jc := job(t, e.cs, bc, id)
	e.app.RevokeRefreshTokens()
	_, err = bc.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: id})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("GetCredential on a revoked connection: %v, want FailedPrecondition", err)
	}
	var got *connectionsv1.GetConnectionResponse
	waitFor(t, 10*time.Second, "the connection to turn invalid", func() bool {
		var err error
		got, err = e.cs.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: id})
		return err == nil && got.GetConnection().GetStatus() == connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID
	})
	if got.GetConnection().GetStatusReason() != connectionsv1.StatusReason_STATUS_REASON_REVOKED {
		t.Errorf("reason %s, want REVOKED", got.GetConnection().GetStatusReason())
	}
	// Watchers see it: the last change of this connection is the report.
	for {
		ev, err := recvWithin(watch, 5*time.Second)
		if err != nil {
			t.Fatalf("no change reached the watcher: %v", err)
		}
		if ev.GetConnection().GetId() == id && ev.GetConnection().GetStatus() == connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID {
			if ev.GetActor() != "credential-broker" {
				t.Errorf("change made by %q, want the broker's service account", ev.GetActor())
			}
			break
		}
	}
}

// OAuth 1.0a: the three-legged flow connects; the worker never gets the token
// secret but has requests signed by the broker, which a provider that
// verifies signatures accepts (query and form parameters included).
func TestOAuth1(t *testing.T) {
	e := newOAuthEnv(t)
	created, err := e.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-oauth1", Name: "boards",
		Connector: "acme1", Environment: prod, AuthType: credentialv1.AuthType_AUTH_TYPE_OAUTH1})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetConnection().GetId()
	if code, body := e.visit(t, e.start(t, id)); code != http.StatusOK || !strings.Contains(body, "connected as "+e.app1.Subject) {
		t.Fatalf("OAuth 1.0a authorization ended with %d: %s", code, body)
	}
	br := brokerv1.NewCredentialBrokerClient(dial(t, refreshBrokers(t, e, 1)[0].Addr))
	jc := job(t, e.cs, br, id)
	if _, err := br.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: id}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("GetCredential on an OAuth 1.0a connection: %v, want FailedPrecondition (use SignRequest)", err)
	}
	send := func(method, target string, form map[string]string, authz string) int {
		body := url.Values{}
		for k, v := range form {
			body.Set(k, v)
		}
		req, _ := http.NewRequest(method, target, strings.NewReader(body.Encode()))
		if len(form) > 0 {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("Authorization", authz)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		method, url string
		form        map[string]string
	}{
		{"GET", e.app1.URL + "/me?fields=all&filter=open%20cards", nil},
		{"POST", e.app1.URL + "/me", map[string]string{"name": "Card with spaces & symbols ✓", "idList": "42"}},
	} {
		signed, err := br.SignRequest(jc, &brokerv1.SignRequestRequest{ConnectionId: id, Method: tc.method, Url: tc.url, Form: tc.form})
		if err != nil {
			t.Fatal(err)
		}
		if signed.GetConnectionId() != id {
			t.Errorf("signed with connection %q, want %s", signed.GetConnectionId(), id)
		}
		if code := send(tc.method, tc.url, tc.form, signed.GetAuthorization()); code != http.StatusOK {
			t.Errorf("%s %s signed by the broker: app answered %d", tc.method, tc.url, code)
		}
		// The same header on another URL must fail: the app really checks.
		other := tc.url + "?x=1"
		if strings.Contains(tc.url, "?") {
			other = tc.url + "&x=1"
		}
		if code := send(tc.method, other, tc.form, signed.GetAuthorization()); code != http.StatusUnauthorized {
			t.Errorf("a signature reused for another URL was accepted (%d)", code)
		}
	}
	// The broker signs only for the connection's own hosts.
	for _, u := range []string{"https://attacker.test/1/members/me", strings.Replace(e.app1.URL, "127.0.0.1", "localhost", 1) + "/me"} {
		_, err := br.SignRequest(jc, &brokerv1.SignRequestRequest{ConnectionId: id, Method: "GET", Url: u})
		if status.Code(err) != codes.PermissionDenied || errorInfo(err).GetReason() != "HOST_NOT_ALLOWED" {
			t.Errorf("SignRequest for %s: %v, want PermissionDenied HOST_NOT_ALLOWED", u, err)
		}
	}
	if e.app1.Verified() < 3 { // two signed calls plus the identity lookup
		t.Errorf("the app verified %d signed calls, want at least 3", e.app1.Verified())
	}
}

// A token endpoint that is down is not a dead connection: the worker gets a
// retryable Unavailable, the refresh token is kept, the connection stays
// active, and the next call after the app recovers refreshes normally.
func TestOAuthTransientRefreshFailure(t *testing.T) {
	e := newOAuthEnv(t)
	brokers := refreshBrokers(t, e, 1)
	id := expiredConnection(t, e)
	e.app.FailRefreshes(100) // more than the broker's retries
	bc := brokerv1.NewCredentialBrokerClient(dial(t, brokers[0].Addr))
	jc := job(t, e.cs, bc, id)
	if _, err := bc.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: id}); status.Code(err) != codes.Unavailable {
		t.Fatalf("GetCredential while the token endpoint is down: %v, want Unavailable", err)
	}
	wantStatus(t, e, id, connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE)
	e.app.FailRefreshes(0)
	resp, err := bc.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: id})
	if err != nil || !e.works(t, resp.GetCredential().GetOauth2().GetAccessToken()) {
		t.Fatalf("after the app recovered: %v", err)
	}
}
