package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// keyApp is an app that accepts one API key as a bearer token; mode makes it
// answer 403 or 503 instead.
type keyApp struct {
	*httptest.Server
	mode atomic.Value // "", "403", "503" or "hold"
	// In mode "hold" a request is announced on held and answered (as in
	// mode "") once release is closed.
	held    chan struct{}
	release chan struct{}

	mu   sync.Mutex
	hits []time.Time // when each request arrived
}

// arrivals returns the arrival times since since.
func (a *keyApp) arrivals(since time.Time) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []time.Time
	for _, h := range a.hits {
		if !h.Before(since) {
			out = append(out, h)
		}
	}
	return out
}

const goodKey = "the-one-good-key"

func startKeyApp(t *testing.T) *keyApp {
	a := &keyApp{held: make(chan struct{}, 1), release: make(chan struct{})}
	a.mode.Store("")
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.hits = append(a.hits, time.Now())
		a.mu.Unlock()
		switch a.mode.Load().(string) {
		case "hold":
			select {
			case a.held <- struct{}{}:
			default:
			}
			select {
			case <-a.release:
			case <-r.Context().Done():
				return
			}
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

// Scheduled checks: the connection service verifies active connections on
// its own (here every second), so a key the app stops taking turns the
// connection invalid without anyone calling TestConnection; the audit log
// names the scheduled check.
func TestScheduledChecks(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) { testScheduledChecks(t, db(t)) })
	}
}

func testScheduledChecks(t *testing.T, database string) {
	e := startOAuthEnvOn(t, database, "-check-period=100ms", "-check-interval=1s", "-check-rate=20")
	e.registerClients(t)
	created, err := e.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-checks", Name: "reports",
		Connector: "acme_key", Environment: prod, AuthType: key, Secret: apiKey(goodKey)})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetConnection().GetId()
	get := func() *connectionsv1.Connection {
		resp, err := e.cs.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetConnection()
	}
	if next := get().GetNextCheckTime(); next == nil {
		t.Errorf("a new active connection shows no next check time")
	}
	waitFor(t, 30*time.Second, "a scheduled check to verify the connection", func() bool {
		c := get()
		return c.GetLastVerifyTime() != nil && c.GetAuthorizedAs() == "svc-reporting"
	})
	if c := get(); !c.GetNextCheckTime().AsTime().After(c.GetLastVerifyTime().AsTime()) {
		t.Errorf("after a check: next check %v, last verified %v; want the next one later", c.GetNextCheckTime().AsTime(), c.GetLastVerifyTime().AsTime())
	}
	e.api.mode.Store("403")
	waitFor(t, 30*time.Second, "a scheduled check to find the key refused", func() bool {
		c := get()
		return c.GetStatus() == connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID &&
			c.GetStatusReason() == connectionsv1.StatusReason_STATUS_REASON_INSUFFICIENT_PERMISSIONS
	})
	if next := get().GetNextCheckTime(); next != nil {
		t.Errorf("an invalid connection shows a next check at %v; it is not checked", next.AsTime())
	}
	// events returns the connection's audit events and how many the
	// scheduled check made.
	events := func(id string) (all, byCheck int) {
		t.Helper()
		a, err := e.cs.ListAuditEvents(ctxT(t), &connectionsv1.ListAuditEventsRequest{WorkspaceId: "ws-checks", ConnectionId: id})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range a.GetEvents() {
			if ev.GetActor() == "system:scheduled-check" {
				byCheck++
			}
		}
		return len(a.GetEvents()), byCheck
	}
	before, byCheck := events(id)
	if byCheck < 2 {
		t.Errorf("%d audit events by the scheduled check, want its verification and its refusal", byCheck)
	}
	// An invalid connection is not checked again (a person must fix it),
	// while an active one goes on being checked: wait until the other has
	// been checked twice more, then look at the invalid one's record.
	e.api.mode.Store("")
	other, err := e.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-checks", Name: "other",
		Connector: "acme_key", Environment: prod, AuthType: key, Secret: apiKey(goodKey)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "two scheduled checks of an active connection", func() bool {
		_, n := events(other.GetConnection().GetId())
		return n >= 2
	})
	if after, _ := events(id); after != before {
		t.Errorf("an invalid connection was checked again: %d audit events, were %d", after, before)
	}
}

// A check's verdict is about the credentials it sent: when an editor
// replaces them while the test request is out, the verdict is not recorded
// (Aborted, check again) and the connection keeps the status the new
// credentials have.
func TestCheckVerdictOfReplacedCredentials(t *testing.T) {
	e := newOAuthEnv(t)
	created, err := e.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-test-race", Name: "r",
		Connector: "acme_key", Environment: prod, AuthType: key, Secret: apiKey("not-the-key")})
	if err != nil {
		t.Fatal(err)
	}
	c := created.GetConnection()
	e.api.mode.Store("hold")
	done := make(chan error, 1)
	go func() {
		_, err := e.cs.TestConnection(ctxT(t), &connectionsv1.TestConnectionRequest{ConnectionId: c.GetId()})
		done <- err
	}()
	select {
	case <-e.api.held:
	case <-time.After(30 * time.Second):
		t.Fatal("the test request never reached the app")
	}
	// The editor puts the right key in while the old one is being tested.
	if _, err := e.cs.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: c.GetId(), Etag: c.GetEtag(),
		Secret: apiKey(goodKey)}); err != nil {
		t.Fatal(err)
	}
	close(e.api.release) // the app now refuses the old key
	if err := <-done; status.Code(err) != codes.Aborted {
		t.Errorf("TestConnection of replaced credentials: %v, want Aborted", err)
	}
	got, err := e.cs.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: c.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if st := got.GetConnection().GetStatus(); st != connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE {
		t.Errorf("after the old key's refusal: %v, want ACTIVE (the new key was never tested)", st)
	}
}

// Checks of many connections to one app respect its rate limit: twelve
// connections due every second, at most 4 checks per second to the app.
// The bound is checked over 2-second windows: at most 2 x 4, plus the
// limiter's burst of 1, plus 2 for requests whose sending was delayed up
// to half a second on a loaded machine (without the limit, all 24 checks
// arrive within about 2 seconds).
func TestScheduledChecksRateLimit(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			const perSecond = 4
			e := startOAuthEnvOn(t, db(t), "-check-period=100ms", "-check-interval=1s", fmt.Sprintf("-check-rate=%d", perSecond))
			for i := range 12 {
				if _, err := e.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-rate",
					Name: fmt.Sprintf("c%d", i), Connector: "acme_key", Environment: prod, AuthType: key, Secret: apiKey(goodKey)}); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			waitFor(t, 60*time.Second, "24 checks", func() bool { return len(e.api.arrivals(start)) >= 24 })
			hits := e.api.arrivals(start)
			most := 0
			for i := range hits {
				n := 0
				for _, h := range hits[i:] {
					if h.Sub(hits[i]) < 2*time.Second {
						n++
					}
				}
				most = max(most, n)
			}
			if most > 2*perSecond+3 {
				t.Errorf("%d checks reached the app within 2 seconds; the limit is %d a second", most, perSecond)
			}
			t.Logf("%d checks in %v; at most %d in any 2 seconds", len(hits), hits[len(hits)-1].Sub(hits[0]).Round(time.Millisecond), most)
		})
	}
}
