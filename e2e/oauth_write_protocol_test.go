package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/oauthtest"
)

// oauthTokenParam is the access token an OAuth 1.0a Authorization header
// carries.
var oauthTokenParam = regexp.MustCompile(`oauth_token="([^"]*)"`)

// A re-authorization (the OAuth callback writing new tokens over a connection
// that works) follows the write protocol, for OAuth 2.0 (code exchange) and
// OAuth 1.0a (request token at the start, access token at the callback), on
// both stores, through a replica that dies (exit) or fails (error) at each
// step. After a reconciler pass: one that did not commit leaves the
// connection serving its old tokens, unaudited, with nothing of it left in
// Vault; one that committed serves new tokens the app accepts, even when the
// browser saw an error.
func TestOAuthReauthorizationWriteProtocolFaults(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			app, app1 := oauthtest.Start(t, oauthtest.Options{}), oauthtest.StartOAuth1(t)
			catalog := filepath.Join(t.TempDir(), "catalog.yaml")
			if err := os.WriteFile(catalog, []byte(acmeConnectors(app.URL, app1.URL)), 0o600); err != nil {
				t.Fatal(err)
			}
			withCatalog := []string{"-catalog-file=" + catalog}
			e := newRaceEnv(t, db(t), devstack.Extra{Args: withCatalog})
			for _, c := range []*connectionsv1.RegisterOAuthClientRequest{
				{Connector: "acme", ClientId: app.ClientID, ClientSecret: app.ClientSecret},
				{Connector: "acme1", ClientId: app1.ConsumerKey, ClientSecret: app1.ConsumerSecret},
			} {
				if _, err := e.a.RegisterOAuthClient(ctxT(t), c); err != nil {
					t.Fatal(err)
				}
			}
			callback := func(p *devstack.Proc) string { return "http://" + p.HTTPAddr + "/oauth2/callback" }
			browser := &http.Client{Timeout: 20 * time.Second}
			// authorize runs the flow through cs in the browser: an error
			// when the start or the browser's last request failed, else the
			// final page's status.
			authorize := func(cs connectionsv1.ConnectionServiceClient, id string) (int, error) {
				start, err := cs.StartAuthorization(ctxT(t), &connectionsv1.StartAuthorizationRequest{ConnectionId: id})
				if err != nil {
					return 0, err
				}
				resp, err := browser.Get(start.GetAuthorizeUrl())
				if err != nil {
					return 0, err
				}
				defer resp.Body.Close()
				_, _ = io.Copy(io.Discard, resp.Body)
				return resp.StatusCode, nil
			}
			flows := []struct {
				connector string
				authType  credentialv1.AuthType
				// token is the access token the broker serves (OAuth 2.0)
				// or signs with (OAuth 1.0a).
				token func(jc context.Context, id string) string
			}{
				{"acme", credentialv1.AuthType_AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE, func(jc context.Context, id string) string {
					got, err := e.worker.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: id})
					if err != nil {
						t.Fatalf("GetCredential: %v", err)
					}
					return got.GetCredential().GetOauth2().GetAccessToken()
				}},
				{"acme1", credentialv1.AuthType_AUTH_TYPE_OAUTH1, func(jc context.Context, id string) string {
					signed, err := e.worker.SignRequest(jc, &brokerv1.SignRequestRequest{ConnectionId: id, Method: "GET", Url: app1.URL + "/me"})
					if err != nil {
						t.Fatalf("SignRequest: %v", err)
					}
					m := oauthTokenParam.FindStringSubmatch(signed.GetAuthorization())
					if m == nil {
						t.Fatalf("no oauth_token in %q", signed.GetAuthorization())
					}
					return m[1]
				}},
			}
			deleted, seq := map[string]bool{}, 0
			for _, flow := range flows {
				for _, fp := range []string{"connections/after-intent", "connections/after-broker", "connections/after-commit"} {
					for _, action := range []string{"exit", "error"} {
						t.Run(flow.connector+"/"+fp[len("connections/"):]+"/"+action, func(t *testing.T) {
							seq++
							ws := fmt.Sprintf("ws-reauth-%d", seq)
							created, err := e.a.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: ws, Name: "oauth",
								Connector: flow.connector, Environment: prod, AuthType: flow.authType})
							if err != nil {
								t.Fatal(err)
							}
							id := created.GetConnection().GetId()
							app.SetRedirectURIs(callback(e.replicaA))
							if code, err := authorize(e.a, id); err != nil || code != http.StatusOK {
								t.Fatalf("first authorization: %d, %v", code, err)
							}
							jc := e.job(t, id)
							old := flow.token(jc, id)
							audited := auditCount(t, e.a, ws)

							faulty := e.replicaProc(t, devstack.Extra{Args: append([]string{"-oauth-state-ttl=2s"}, withCatalog...),
								Env: []string{"INTEGRATIONHUB_FAILPOINTS=" + fp + "=" + action}})
							app.SetRedirectURIs(callback(e.replicaA), callback(faulty))
							code, err := authorize(connectionsv1.NewConnectionServiceClient(dial(t, faulty.Addr)), id)
							committed := fp == "connections/after-commit"
							switch {
							case action == "exit" && err == nil:
								t.Fatalf("a replica armed to exit at %s answered the browser (%d)", fp, code)
							case committed && action == "error" && (err != nil || code != http.StatusOK):
								t.Fatalf("a re-authorization that committed ended with %d, %v", code, err)
							case !committed && err == nil && code == http.StatusOK:
								t.Fatalf("a re-authorization that failed before its commit said it connected")
							}
							e.reconciled(t, deleted)
							if !committed {
								if now := flow.token(jc, id); now != old {
									t.Fatalf("a re-authorization that failed changed the tokens served")
								}
								if n := auditCount(t, e.a, ws); n != audited {
									t.Fatalf("a re-authorization that failed left %d audit records", n-audited)
								}
								return
							}
							waitFor(t, 15*time.Second, "the new tokens to be served", func() bool { return flow.token(jc, id) != old })
							if flow.connector == "acme" && !(&oauthEnv{app: app}).works(t, flow.token(jc, id)) {
								t.Fatal("the app refuses the access token served after the re-authorization")
							}
						})
					}
				}
			}
		})
	}
}

// A refresh in flight while the user re-authorizes (as another account
// here, so that the two token lineages can be told apart): the
// re-authorization's tokens stand. The refresh, held at the app until the
// re-authorization has committed, writes only into the generation it read,
// which the connection no longer names; the broker then serves the
// re-authorization's tokens, and keeps serving them.
func TestOAuthRefreshDuringReauthorization(t *testing.T) {
	e := newOAuthEnv(t)
	br := brokerv1.NewCredentialBrokerClient(dial(t, refreshBrokers(t, e, 1)[0].Addr))
	id := expiredConnection(t, e)
	jc := job(t, e.cs, br, id)
	// whose is the account the access token the broker serves now belongs to.
	whose := func() string {
		got, err := br.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: id})
		if err != nil {
			t.Fatalf("GetCredential: %v", err)
		}
		req, _ := http.NewRequest(http.MethodGet, e.app.URL+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+got.GetCredential().GetOauth2().GetAccessToken())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var info struct{ Email string }
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&info) != nil {
			t.Fatalf("the app refuses the access token served (%d)", resp.StatusCode)
		}
		return info.Email
	}

	inFlight, release := refreshHeld(t, e, br, jc, id)
	const other = "other@acme.test"
	e.app.SetSubject(other)
	if code, body := e.visit(t, e.start(t, id)); code != http.StatusOK || !strings.Contains(body, "connected as "+other) {
		t.Fatalf("re-authorization during the refresh ended with %d: %s", code, body)
	}
	release()
	select {
	case <-inFlight: // whatever it answered, it was asked before the commit
	case <-time.After(20 * time.Second):
		t.Fatal("the held refresh's caller never got an answer")
	}
	waitFor(t, 15*time.Second, "the re-authorization's tokens to be served", func() bool { return whose() == other })
	// The refresh's late store must not bring the old account back: read
	// across more than the broker's lease and refresh margin.
	// (250 ms is the polling pace; the window is bounded.)
	for deadline := time.Now().Add(4 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if got := whose(); got != other {
			t.Fatalf("after the re-authorization the broker serves %s's token again", got)
		}
	}
}
