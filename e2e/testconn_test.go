package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
)

// keyApp is an app that accepts one API key as a bearer token; mode makes it
// answer 403 or 503 instead.
type keyApp struct {
	*httptest.Server
	mode atomic.Value // "", "403" or "503"
}

const goodKey = "the-one-good-key"

func startKeyApp(t *testing.T) *keyApp {
	a := &keyApp{}
	a.mode.Store("")
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch a.mode.Load().(string) {
		case "403":
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		case "503":
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+goodKey {
			http.Error(w, "bad key", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"login": "svc-reporting"})
	}))
	t.Cleanup(a.Close)
	return a
}

// TestConnection checks the stored credentials against the app and records
// the outcome; a provider that is down leaves the connection active.
func TestTestConnection(t *testing.T) {
	e := newOAuthEnv(t)
	ctx := ctxT(t)
	created, err := e.cs.CreateConnection(ctx, &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-test", Name: "reports",
		Connector: "acme_key", Environment: prod, AuthType: key, Secret: apiKey(goodKey)})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetConnection().GetId()
	check := func(name string, wantOK bool, wantStatus connectionsv1.ConnectionStatus, wantReason connectionsv1.StatusReason) *connectionsv1.Connection {
		t.Helper()
		resp, err := e.cs.TestConnection(ctxT(t), &connectionsv1.TestConnectionRequest{ConnectionId: id})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := resp.GetConnection()
		if resp.GetOk() != wantOK || c.GetStatus() != wantStatus || c.GetStatusReason() != wantReason {
			t.Errorf("%s: ok=%v %s (%s) %q; want ok=%v %s (%s)", name, resp.GetOk(), c.GetStatus(), c.GetStatusReason(),
				c.GetLastError(), wantOK, wantStatus, wantReason)
		}
		return c
	}
	c := check("good key", true, connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE, connectionsv1.StatusReason_STATUS_REASON_UNSPECIFIED)
	if c.GetAuthorizedAs() != "svc-reporting" || c.GetLastVerifyTime() == nil {
		t.Errorf("after a good test: authorized as %q, verified %v", c.GetAuthorizedAs(), c.GetLastVerifyTime())
	}
	e.api.mode.Store("503")
	check("app down", false, connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE, connectionsv1.StatusReason_STATUS_REASON_PROVIDER_UNREACHABLE)
	e.api.mode.Store("403")
	check("forbidden", false, connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID, connectionsv1.StatusReason_STATUS_REASON_INSUFFICIENT_PERMISSIONS)
	e.api.mode.Store("")
	if _, err := e.cs.UpdateConnection(ctx, &connectionsv1.UpdateConnectionRequest{Id: id, Secret: apiKey("a-rotated-key")}); err != nil {
		t.Fatal(err)
	}
	check("changed key", false, connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID, connectionsv1.StatusReason_STATUS_REASON_MODIFIED_CREDENTIALS)
	if _, err := e.cs.UpdateConnection(ctx, &connectionsv1.UpdateConnectionRequest{Id: id, Secret: apiKey(goodKey)}); err != nil {
		t.Fatal(err)
	}
	check("key fixed", true, connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE, connectionsv1.StatusReason_STATUS_REASON_UNSPECIFIED)

	// An OAuth connection tests with its access token.
	oc := e.create(t)
	if _, err := e.cs.TestConnection(ctx, &connectionsv1.TestConnectionRequest{ConnectionId: oc.GetId()}); err == nil {
		t.Error("testing a connection that was never authorized succeeded")
	}
	e.authorize(t, oc.GetId())
	resp, err := e.cs.TestConnection(ctx, &connectionsv1.TestConnectionRequest{ConnectionId: oc.GetId()})
	if err != nil || !resp.GetOk() || resp.GetConnection().GetAuthorizedAs() != e.app.Subject {
		t.Errorf("OAuth TestConnection = %v, %v", resp, err)
	}
}
