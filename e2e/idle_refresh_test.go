package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/oauthtest"
)

// Idle OAuth connections keep their authorization: the app expires a
// refresh token nobody uses after 6 s (its access tokens after 2 s). Of two
// connections that no recipe uses, the one whose connector declares
// refresh_token_idle_ttl is refreshed by the scheduled checks and still
// works after three idle lifetimes; the other's refresh token expired, and
// its next check finds it revoked. On SQLite and PostgreSQL.
func TestIdleOAuthConnectionsAreRefreshed(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) { testIdleRefresh(t, db(t)) })
	}
}

func testIdleRefresh(t *testing.T, database string) {
	app := oauthtest.Start(t, oauthtest.Options{AccessTokenLifespan: 2 * time.Second, RefreshTokenLifespan: 6 * time.Second})
	catalog := filepath.Join(t.TempDir(), "catalog.yaml")
	entry := func(name, extra string) string {
		return fmt.Sprintf(`  - name: %[1]s
    private_network: true # loopback app
    display_name: %[1]s
    auth_types: [oauth2_authorization_code]
    default_base_url: %[2]s
    oauth2: {authorize_url: %[2]s/authorize, token_url: %[2]s/token, scopes: [read], pkce: true}
    test_request: {method: GET, path: /userinfo}
%[3]s`, name, app.URL, extra)
	}
	if err := os.WriteFile(catalog, []byte("connectors:\n"+entry("idle_kept", "    refresh_token_idle_ttl: 6s\n")+entry("idle_lost", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	// A broker of its own follows this connection service: a refresh asks
	// it which OAuth client registration is live.
	re := newRaceEnv(t, database, devstack.Extra{Args: []string{"-catalog-file=" + catalog, "-check-period=100ms", "-check-interval=1h"}})
	app.SetRedirectURIs("http://" + re.replicaA.HTTPAddr + "/oauth2/callback")
	e := &oauthEnv{app: app, svc: re.replicaA, cs: re.a, agent: &http.Client{Timeout: 20 * time.Second}}
	ids := map[string]string{}
	for _, connector := range []string{"idle_kept", "idle_lost"} {
		if _, err := e.cs.RegisterOAuthClient(ctxT(t), &connectionsv1.RegisterOAuthClientRequest{Connector: connector,
			ClientId: app.ClientID, ClientSecret: app.ClientSecret}); err != nil {
			t.Fatal(err)
		}
		c, err := e.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-idle", Name: connector,
			Connector: connector, Environment: prod, AuthType: oauth2})
		if err != nil {
			t.Fatal(err)
		}
		ids[connector] = c.GetConnection().GetId()
		e.authorize(t, ids[connector])
	}
	start := app.Refreshes()
	// Three idle lifetimes of the refresh token: the kept connection's
	// checks run every 3 s and refresh each time.
	authorized := time.Now()
	waitFor(t, 60*time.Second, "18 s of idleness with the checks refreshing", func() bool {
		return time.Since(authorized) > 18*time.Second && app.Refreshes()-start >= 4
	})
	test := func(connector string) *connectionsv1.TestConnectionResponse {
		resp, err := e.cs.TestConnection(ctxT(t), &connectionsv1.TestConnectionRequest{ConnectionId: ids[connector]})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := test("idle_kept"); !r.GetOk() || r.GetConnection().GetStatus() != connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE {
		t.Errorf("the refreshed idle connection: %v", r)
	}
	if r := test("idle_lost"); r.GetOk() || r.GetConnection().GetStatusReason() != connectionsv1.StatusReason_STATUS_REASON_REVOKED {
		t.Errorf("the idle connection nobody refreshed: %v; want its refresh token expired (revoked)", r)
	}
	if ru := app.ReusedRefreshTokens(); len(ru) > 0 {
		t.Errorf("refresh tokens spent twice: %v", ru)
	}
}
