package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/sdk/go/worker"
)

const placedKey = "placed-key-4f1c"

// startPlacedKeyApp is an app that takes its key only where its catalog
// entry says: "X-Api-Key: Token <key>" on /h, "?api_key=<key>" on /q.
func startPlacedKeyApp(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := false
		switch r.URL.Path {
		case "/h":
			ok = r.Header.Get("X-Api-Key") == "Token "+placedKey && r.Header.Get("Authorization") == ""
		case "/q":
			ok = r.URL.Query().Get("api_key") == placedKey && r.Header.Get("Authorization") == ""
		}
		if !ok {
			http.Error(w, "bad key", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"login":"svc"}`)
	}))
	t.Cleanup(s.Close)
	return s
}

// tokenOf is the raw job token a job context carries.
func tokenOf(ctx context.Context) string {
	md, _ := metadata.FromOutgoingContext(ctx)
	return strings.TrimPrefix(md.Get("authorization")[0], "Bearer ")
}

// The Go worker SDK against the real broker and connection service: the
// credential goes where the connector's catalog entry says (a named header
// with a prefix, a query parameter, a bearer token; OAuth 1.0a signed by the
// broker); an access token the app stopped taking is reported and the
// request retried once with the refreshed one; refusals arrive as typed
// errors; a rotated job token file is picked up.
func TestWorkerSDK(t *testing.T) {
	e := newOAuthEnv(t)
	brokerProc := refreshBrokers(t, e, 1)[0]
	br := brokerv1.NewCredentialBrokerClient(dial(t, brokerProc.Addr))
	create := func(connector string, at credentialv1.AuthType, key string) string {
		t.Helper()
		req := &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-oauth", Name: connector, Connector: connector, Environment: prod, AuthType: at}
		if key != "" {
			req.Secret = apiKey(key)
		}
		c, err := e.cs.CreateConnection(ctxT(t), req)
		if err != nil {
			t.Fatalf("create %s: %v", connector, err)
		}
		return c.GetConnection().GetId()
	}
	hdr := create("acme_hdr", key, placedKey)
	q := create("acme_q", key, placedKey)
	oauthID := e.create(t).GetId()
	e.authorize(t, oauthID)
	created, err := e.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-oauth", Name: "boards",
		Connector: "acme1", Environment: prod, AuthType: credentialv1.AuthType_AUTH_TYPE_OAUTH1})
	if err != nil {
		t.Fatal(err)
	}
	oauth1ID := created.GetConnection().GetId()
	if code, body := e.visit(t, e.start(t, oauth1ID)); code != http.StatusOK {
		t.Fatalf("OAuth 1.0a authorization ended with %d: %s", code, body)
	}
	tok := tokenOf(job(t, e.cs, br, hdr, q, oauthID, oauth1ID))

	tokenFile := filepath.Join(t.TempDir(), "job-token")
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := worker.New(worker.Options{Address: brokerProc.Addr, TokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	get := func(t *testing.T, id, url string) int {
		t.Helper()
		resp, err := c.HTTPClient(id).Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	t.Run("placements", func(t *testing.T) {
		if code := get(t, hdr, e.placed.URL+"/h"); code != http.StatusOK {
			t.Errorf("key in a named header: app answered %d", code)
		}
		if code := get(t, q, e.placed.URL+"/q"); code != http.StatusOK {
			t.Errorf("key in a query parameter: app answered %d", code)
		}
		cr, err := c.Credential(t.Context(), hdr)
		if err != nil {
			t.Fatal(err)
		}
		if p := cr.Placement; p.GetKind() != credentialv1.PlacementKind_PLACEMENT_KIND_HEADER || p.GetName() != "X-Api-Key" || p.GetPrefix() != "Token " {
			t.Errorf("placement %v, want the catalog's header", p)
		}
		if strings.Contains(cr.String(), placedKey) {
			t.Error("Credential.String shows the key")
		}
	})

	t.Run("OAuth 2.0: refused token reported, request retried once", func(t *testing.T) {
		if code := get(t, oauthID, e.app.URL+"/userinfo"); code != http.StatusOK {
			t.Fatalf("bearer token: app answered %d", code)
		}
		before := e.app.Refreshes()
		e.app.RevokeAccessTokens()
		if code := get(t, oauthID, e.app.URL+"/userinfo"); code != http.StatusOK {
			t.Errorf("after the app dropped the access token: %d, want 200 from the retry with the refreshed one", code)
		}
		if got := e.app.Refreshes() - before; got != 1 {
			t.Errorf("%d refreshes, want 1", got)
		}
	})

	t.Run("OAuth 1.0a signed by the broker", func(t *testing.T) {
		if code := get(t, oauth1ID, e.app1.URL+"/me?fields=all"); code != http.StatusOK {
			t.Errorf("signed request: app answered %d", code)
		}
		if _, err := c.Credential(t.Context(), oauth1ID); err == nil {
			t.Error("an OAuth 1.0a credential was handed out")
		}
	})

	t.Run("typed errors", func(t *testing.T) {
		var nc *worker.NotCoveredError
		if _, err := c.Credential(t.Context(), "7d6c5b4a-3333-4000-8000-0000000000aa"); !errors.As(err, &nc) {
			t.Errorf("a connection the token does not cover: %v, want NotCoveredError", err)
		}
		if _, err := e.cs.ReportConnectionStatus(ctxT(t), &connectionsv1.ReportConnectionStatusRequest{ConnectionId: q,
			Status: connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID, Reason: connectionsv1.StatusReason_STATUS_REASON_REVOKED,
			LastError: "revoked at the app"}); err != nil {
			t.Fatal(err)
		}
		c2, err := worker.New(worker.Options{Address: brokerProc.Addr, Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		var na *worker.ConnectionNotActiveError
		var last error
		waitFor(t, 20*time.Second, "the client to learn the connection is invalid (MaxAge 5 s)", func() bool {
			_, last = c2.Credential(t.Context(), q)
			return errors.As(last, &na)
		})
		if na.ConnectionID != q {
			t.Errorf("ConnectionNotActiveError names %q, want %s", na.ConnectionID, q)
		}
	})

	t.Run("rotated token file", func(t *testing.T) {
		if err := os.WriteFile(tokenFile, []byte("not-a-job-token"), 0o600); err != nil {
			t.Fatal(err)
		}
		c3, err := worker.New(worker.Options{Address: brokerProc.Addr, TokenFile: tokenFile})
		if err != nil {
			t.Fatal(err)
		}
		defer c3.Close()
		var te *worker.TokenError
		if _, err := c3.Credential(t.Context(), hdr); !errors.As(err, &te) {
			t.Errorf("a bad job token: %v, want TokenError", err)
		}
		if err := os.WriteFile(tokenFile, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := c3.Credential(t.Context(), hdr); err != nil {
			t.Errorf("after the token file was rotated: %v", err)
		}
	})
}
