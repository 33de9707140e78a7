package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/devstack"
)

// scaledBrokers starts n brokers with the default OAuth timings scaled down
// ten times (token requests time out after 1 s, leases of 4.5 s), so that the
// ratios the defaults set are what is tested, in seconds instead of minutes.
func scaledBrokers(t *testing.T, e *oauthEnv, n int, extra ...string) []*devstack.Proc {
	t.Helper()
	var ps []*devstack.Proc
	for i := range n {
		args := append([]string{"-oauth-refresh-margin=500ms", "-oauth-lease-ttl=4500ms", "-oauth-http-timeout=1s",
			fmt.Sprintf("-instance-id=broker-%d", i), "-connections-addr=" + e.svc.Addr}, extra...)
		p, err := stack.StartBroker(t.Context(), devstack.Extra{
			LogName: fmt.Sprintf("broker-%s-%d.log", strings.ReplaceAll(t.Name(), "/", "-"), i), Args: args})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// untilExpired waits (wall clock: the app's token lifetime is what is
// tested) until an access token that expires at exp no longer works.
func untilExpired(exp time.Time) {
	time.Sleep(time.Until(exp) + 600*time.Millisecond)
}

// A slow app (every token answer takes 0.8x the request timeout) that
// answers 503 to the first two refresh requests, three brokers, 30
// concurrent callers, five expiry cycles: the app receives each refresh
// token at most once, every caller gets a working token, and the connection
// stays active. Then the lease holder is killed while its request is held,
// and another broker refreshes with the same (never processed) token.
func TestRefreshSlowFlakyAppAcrossBrokers(t *testing.T) {
	e := newOAuthEnv(t)
	brokers := scaledBrokers(t, e, 3)
	id := expiredConnection(t, e)
	e.app.SetAccessTokenLifespan(3 * time.Second)
	e.app.SetTokenDelay(800 * time.Millisecond)
	clients := make([]brokerv1.CredentialBrokerClient, len(brokers))
	for i, b := range brokers {
		clients[i] = brokerv1.NewCredentialBrokerClient(dial(t, b.Addr))
	}
	ctx := job(t, e.cs, clients[0], id)
	for cycle := range 5 {
		e.app.FailRefreshes(2)
		var wg sync.WaitGroup
		var mu sync.Mutex
		tokens, unavailable := map[string]time.Time{}, 0
		for i := range 30 {
			wg.Go(func() {
				resp, err := clients[i%3].GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: id})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case status.Code(err) == codes.Unavailable:
					unavailable++
				case err != nil:
					t.Errorf("cycle %d: GetCredential: %v (want a token or Unavailable)", cycle, err)
				default:
					tokens[resp.GetCredential().GetOauth2().GetAccessToken()] = resp.GetCredential().GetExpireTime().AsTime()
				}
			})
		}
		wg.Wait()
		if len(tokens) == 0 {
			t.Fatalf("cycle %d: no caller got a token (%d Unavailable)", cycle, unavailable)
		}
		var last time.Time
		for tok, exp := range tokens {
			if !e.works(t, tok) {
				t.Errorf("cycle %d: a caller got a token the app refuses", cycle)
			}
			if exp.After(last) {
				last = exp
			}
		}
		untilExpired(last)
	}
	if reused := e.app.ReusedRefreshTokens(); len(reused) > 0 {
		t.Errorf("refresh tokens sent more than once: %v", reused)
	}
	wantStatus(t, e, id, connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE)

	// The lease holder dies while the app holds its request.
	e.app.SetTokenDelay(0)
	held, release := e.app.HoldRefreshes()
	defer release()
	victimErr := make(chan error, 1)
	go func() {
		_, err := clients[0].GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: id})
		victimErr <- err
	}()
	select {
	case <-held:
	case err := <-victimErr:
		t.Fatalf("the broker to be killed answered before its refresh reached the app: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the refresh never reached the app")
	}
	brokers[0].Kill()
	// The app notices the dropped connection before it lets requests go.
	waitFor(t, 10*time.Second, "the app to drop the killed broker's request", func() bool { return e.app.HeldRequests() == 0 })
	release()
	resp, err := clients[1].GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: id})
	if err != nil || !e.works(t, resp.GetCredential().GetOauth2().GetAccessToken()) {
		t.Fatalf("GetCredential on a surviving broker after the lease holder died: %v", err)
	}
	if reused := e.app.ReusedRefreshTokens(); len(reused) > 0 {
		t.Errorf("refresh tokens sent more than once: %v", reused)
	}
	wantStatus(t, e, id, connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE)
}

// With the app's token endpoint down, the stored access token is served
// while it still works (also inside the refresh margin), then callers get
// Unavailable; when the app is back, the next call refreshes. No restart.
func TestRefreshServesValidTokenWhileAppIsDown(t *testing.T) {
	e := newOAuthEnv(t)
	brokers := scaledBrokers(t, e, 1, "-oauth-refresh-margin=1h") // always inside the margin
	c := e.create(t)
	e.app.SetAccessTokenLifespan(4 * time.Second)
	e.authorize(t, c.GetId())
	e.app.SetAccessTokenLifespan(time.Hour)
	e.app.FailRefreshes(1 << 30)
	bc := brokerv1.NewCredentialBrokerClient(dial(t, brokers[0].Addr))
	ctx := job(t, e.cs, bc, c.GetId())
	first, err := bc.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
	if err != nil {
		t.Fatalf("GetCredential with the app down and the token valid: %v", err)
	}
	exp := first.GetCredential().GetExpireTime().AsTime()
	served := 0
	for time.Until(exp) > time.Second {
		resp, err := bc.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
		if err != nil || resp.GetCredential().GetOauth2().GetAccessToken() != first.GetCredential().GetOauth2().GetAccessToken() {
			t.Fatalf("%v before expiry with the app down: %v; want the stored token", time.Until(exp).Round(time.Millisecond), err)
		}
		served++
		time.Sleep(200 * time.Millisecond) // pacing the calls over the token's life
	}
	untilExpired(exp)
	if _, err := bc.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()}); status.Code(err) != codes.Unavailable {
		t.Fatalf("after expiry with the app down: %v, want Unavailable", err)
	}
	e.app.FailRefreshes(0)
	waitFor(t, 30*time.Second, "a working token after the app recovered", func() bool {
		resp, err := bc.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
		return err == nil && e.works(t, resp.GetCredential().GetOauth2().GetAccessToken())
	})
	wantStatus(t, e, c.GetId(), connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE)
	if served == 0 {
		t.Error("the token's life was too short to test serving it")
	}
}

// refusingVault is a proxy in front of Vault that can refuse writes (503),
// as a Vault that lost its leader or its storage does.
type refusingVault struct {
	*httptest.Server
	refuse atomic.Bool
	count  atomic.Int64 // writes refused
}

func startRefusingVault(t *testing.T) *refusingVault {
	t.Helper()
	target, err := url.Parse(stack.Vault.Addr)
	if err != nil {
		t.Fatal(err)
	}
	rv := &refusingVault{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	rv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rv.refuse.Load() && (r.Method == http.MethodPut || r.Method == http.MethodPost) {
			rv.count.Add(1)
			http.Error(w, `{"errors":["storage unavailable (test)"]}`, http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(rv.Close)
	return rv
}

// Vault refuses writes for a few seconds right after the app rotated the
// refresh token: the broker keeps the rotated tokens and writes them when
// Vault takes writes again; no token is lost, the connection stays active
// and the next refresh succeeds.
func TestRefreshRotationSurvivesVaultRefusingWrites(t *testing.T) {
	e := newOAuthEnv(t)
	rv := startRefusingVault(t)
	brokers := scaledBrokers(t, e, 1, "-vault-addr="+rv.URL)
	id := expiredConnection(t, e)
	// Long enough to outlive the refused writes and the retries after them.
	e.app.SetAccessTokenLifespan(6 * time.Second)
	bc := brokerv1.NewCredentialBrokerClient(dial(t, brokers[0].Addr))
	ctx := job(t, e.cs, bc, id)
	e.app.OnRefresh(func() {
		rv.refuse.Store(true)
		time.AfterFunc(2*time.Second, func() { rv.refuse.Store(false) })
	})
	resp, err := bc.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: id})
	e.app.OnRefresh(nil)
	if err != nil {
		// Allowed: Unavailable while the rotation is not stored.
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("GetCredential during refused writes: %v, want a token or Unavailable", err)
		}
		waitFor(t, 30*time.Second, "the kept rotation to be stored and served", func() bool {
			resp, err = bc.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: id})
			return err == nil
		})
	}
	if rv.count.Load() == 0 {
		t.Fatal("no Vault write was refused: the test did not test anything")
	}
	if !e.works(t, resp.GetCredential().GetOauth2().GetAccessToken()) {
		t.Fatal("the token served after the refused writes does not work")
	}
	untilExpired(resp.GetCredential().GetExpireTime().AsTime())
	next, err := bc.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: id})
	if err != nil || !e.works(t, next.GetCredential().GetOauth2().GetAccessToken()) {
		t.Fatalf("the next refresh: %v", err)
	}
	if reused := e.app.ReusedRefreshTokens(); len(reused) > 0 {
		t.Errorf("refresh tokens sent more than once: %v", reused)
	}
	wantStatus(t, e, id, connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE)
}

// One token request per code exchange and per refresh, for apps that take
// the client's credentials only as form fields or only as HTTP Basic; the
// style is probed once at the code exchange and kept with the tokens.
func TestOneTokenRequestPerExchangeAndRefresh(t *testing.T) {
	for _, style := range []string{"params", "header"} {
		t.Run(style, func(t *testing.T) {
			e := newOAuthEnv(t)
			e.app.AcceptClientAuth(style)
			brokers := scaledBrokers(t, e, 2)
			c := e.create(t)
			e.app.SetAccessTokenLifespan(2 * time.Second)
			before := e.app.TokenRequests()
			e.authorize(t, c.GetId())
			// acme states no token_auth_style: the probe costs one refused
			// client authentication for a body-only app, no grant.
			want := int64(1)
			if style == "params" {
				want = 2
			}
			if got := e.app.TokenRequests() - before; got != want {
				t.Errorf("code exchange: %d token requests, want %d", got, want)
			}
			for i, b := range brokers {
				bc := brokerv1.NewCredentialBrokerClient(dial(t, b.Addr))
				ctx := job(t, e.cs, bc, c.GetId())
				time.Sleep(2100 * time.Millisecond) // the 2 s token expires (wall clock: the app's lifetime)
				before := e.app.TokenRequests()
				if _, err := bc.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()}); err != nil {
					t.Fatalf("refresh on broker %d: %v", i, err)
				}
				if got := e.app.TokenRequests() - before; got != 1 {
					t.Errorf("refresh on broker %d: %d token requests, want 1", i, got)
				}
			}
		})
	}
}
