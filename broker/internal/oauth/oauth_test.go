package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// The refresh protocol's timing (leases, request deadlines, backoff) runs
// in a synctest bubble: Vault is an in-memory store with check-and-set, and
// the app's token endpoint is an in-memory OAuth 2.0 server that rotates
// refresh tokens and, as the OAuth security BCP asks, treats the reuse of a
// spent refresh token as theft (invalid_grant, and the whole grant revoked).
// The e2e tests run the same protocol against real Vault and a real server.

const connID = "c1"

// memStore is Vault KV v2 for one connection: versions and check-and-set.
type memStore struct {
	mu      sync.Mutex
	rec     []byte // JSON of the current record
	ver     int
	refuse  int // writes still to refuse (Vault refusing writes)
	writes  int // successful writes
	clients map[string]vault.OAuthClient
}

func (s *memStore) Get(_ context.Context, _ string) (vault.Record, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r vault.Record
	if err := json.Unmarshal(s.rec, &r); err != nil {
		return vault.Record{}, 0, err
	}
	return r, s.ver, nil
}

func (s *memStore) Put(ctx context.Context, id string, r vault.Record) (int, error) {
	s.mu.Lock()
	v := s.ver
	s.mu.Unlock()
	return s.PutCAS(ctx, id, r, v)
}

func (s *memStore) PutCAS(_ context.Context, _ string, r vault.Record, version int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse > 0 {
		s.refuse--
		return 0, fmt.Errorf("%w: status 503", vault.ErrUnavailable)
	}
	if version != s.ver {
		return 0, vault.ErrVersionMismatch
	}
	b, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	s.rec, s.ver = b, s.ver+1
	s.writes++
	return s.ver, nil
}

func (s *memStore) GetClient(_ context.Context, connector, _ string) (vault.OAuthClient, error) {
	c, ok := s.clients[connector]
	if !ok {
		return vault.OAuthClient{}, vault.ErrNotFound
	}
	return c, nil
}

func (s *memStore) GetClientAt(ctx context.Context, k vault.ClientKey) (vault.OAuthClient, error) {
	return s.GetClient(ctx, k.Connector, k.Workspace)
}

func (s *memStore) refuseWrites(n int) {
	s.mu.Lock()
	s.refuse = n
	s.mu.Unlock()
}

func (s *memStore) lease() *vault.Lease {
	r, _, _ := s.Get(context.Background(), connID)
	return r.OAuth2.Lease
}

// app is a token endpoint. Each answer is given after delay; the first
// fail requests get 503 (before anything is processed).
type app struct {
	t      *testing.T
	store  *memStore
	delay  time.Duration
	style  string // "header" or "params": the only client authentication it takes; "" both
	fail   atomic.Int64
	onOK   func() // called when a refresh succeeded, before the answer is sent
	mu     sync.Mutex
	seq    int
	valid  map[string]bool // refresh tokens that may be spent
	spent  map[string]int  // refresh token -> times it reached processing
	reqs   int             // requests of any kind
	broken bool            // a spent token was reused: the grant is revoked
	// leaseShort counts refresh tokens sent while the sender's lease had
	// less time left than the request took.
	leaseShort int
}

func newApp(t *testing.T, store *memStore) *app {
	return &app{t: t, store: store, valid: map[string]bool{}, spent: map[string]int{}}
}

func (a *app) RoundTrip(r *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	a.mu.Lock()
	a.reqs++
	a.mu.Unlock()
	_, _, basic := r.BasicAuth()
	inParams := form.Get("client_secret") != ""
	if a.style == AuthStyleHeader && !basic || a.style == AuthStyleParams && !inParams || !basic && !inParams {
		return answer(http.StatusUnauthorized, `{"error":"invalid_client"}`), nil
	}
	var lease *vault.Lease
	if form.Get("grant_type") == "refresh_token" {
		lease = a.store.lease()
	}
	sent := time.Now()
	select {
	case <-time.After(a.delay):
	case <-r.Context().Done():
		return nil, r.Context().Err() // the client gave up: nothing processed
	}
	if a.fail.Add(-1) >= 0 {
		return answer(http.StatusServiceUnavailable, `{"error":"temporarily_unavailable"}`), nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch form.Get("grant_type") {
	case "refresh_token":
		rt := form.Get("refresh_token")
		a.spent[rt]++
		if lease == nil || lease.Until.Sub(sent) < a.delay {
			a.leaseShort++
		}
		if !a.valid[rt] || a.broken {
			a.broken = true // reuse: revoke the whole grant
			return answer(http.StatusBadRequest, `{"error":"invalid_grant"}`), nil
		}
		delete(a.valid, rt)
	case "authorization_code", "client_credentials":
	default:
		return answer(http.StatusBadRequest, `{"error":"unsupported_grant_type"}`), nil
	}
	a.seq++
	rt := fmt.Sprintf("rt-%d", a.seq)
	a.valid[rt] = true
	if a.onOK != nil {
		a.onOK()
	}
	return answer(http.StatusOK, fmt.Sprintf(`{"access_token":"at-%d","token_type":"Bearer","refresh_token":%q,"expires_in":3600}`, a.seq, rt)), nil
}

func answer(code int, body string) *http.Response {
	return &http.Response{StatusCode: code, Status: http.StatusText(code), Body: io.NopCloser(strings.NewReader(body)),
		Header: http.Header{"Content-Type": []string{"application/json"}}}
}

// issue gives the app's first refresh token to the connection, expired.
func (a *app) issue(style string) {
	a.mu.Lock()
	a.seq++
	rt := fmt.Sprintf("rt-%d", a.seq)
	a.valid[rt] = true
	a.mu.Unlock()
	rec := vault.Record{Connector: "acme", AuthType: "AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE", OAuth2: &vault.OAuth2{
		AccessToken: "at-0", RefreshToken: rt, Expiry: time.Now().Add(-time.Minute), TokenURL: "https://app.test/token", AuthStyle: style}}
	b, _ := json.Marshal(rec)
	a.store.mu.Lock()
	a.store.rec, a.store.ver = b, a.store.ver+1
	a.store.mu.Unlock()
}

func (a *app) reused() (tokens []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for rt, n := range a.spent {
		if n > 1 {
			tokens = append(tokens, rt)
		}
	}
	return tokens
}

func newStore() *memStore {
	return &memStore{rec: []byte(`{}`), clients: map[string]vault.OAuthClient{"acme": {ClientID: "hub", ClientSecret: "s3cret"}}}
}

// brokers returns n managers (brokers) sharing store, calling a.
func brokers(n int, store *memStore, a *app, cfg Config) []*Manager {
	var ms []*Manager
	for i := range n {
		c := cfg
		c.Holder = fmt.Sprintf("broker-%d", i)
		c.HTTP = &http.Client{Transport: a}
		ms = append(ms, New(c, store))
	}
	return ms
}

// storm has 30 callers across the brokers ask for a usable token at once
// and returns the tokens they got and how many got Unavailable.
func storm(t *testing.T, ms []*Manager, store *memStore) (tokens map[string]int, unavailable int) {
	t.Helper()
	tokens = map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			rec, _, _ := store.Get(ctx, connID)
			got, err := ms[i%len(ms)].Fresh(ctx, connID, rec)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrProviderUnavailable):
				unavailable++
			case err != nil:
				t.Errorf("caller %d: %v", i, err)
			default:
				tokens[got.OAuth2.AccessToken]++
			}
		})
	}
	wg.Wait()
	return tokens, unavailable
}

// A slow token endpoint (answers at 0.8x the request timeout) that answers
// 503 to the first two requests of every refresh, three brokers, default
// timings: across five expiry cycles every refresh token reaches the app at
// most once, always under a lease with time left for the request, and every
// caller gets the new token.
func TestSlowFlakyProviderSpendsEachRefreshTokenOnce(t *testing.T) {
	for _, tc := range []struct {
		name            string
		lease, timeout  time.Duration
		wantRenewalsMin int
	}{
		{name: "default flags", lease: 45 * time.Second, timeout: 10 * time.Second},
		// A lease too short for three attempts: it is renewed before the
		// retries that would not fit.
		{name: "short lease", lease: 20 * time.Second, timeout: 10 * time.Second, wantRenewalsMin: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := newStore()
				a := newApp(t, store)
				a.delay = tc.timeout * 8 / 10
				a.issue(AuthStyleHeader)
				ms := brokers(3, store, a, Config{Margin: 5 * time.Minute, LeaseTTL: tc.lease, RequestTimeout: tc.timeout})
				for cycle := range 5 {
					a.fail.Store(2)
					writes := store.writes
					tokens, unavailable := storm(t, ms, store)
					if unavailable > 0 || len(tokens) != 1 {
						t.Fatalf("cycle %d: callers got %v and %d Unavailable, want one new token for all", cycle, tokens, unavailable)
					}
					// take lease + store = 2 writes; more are renewals.
					if renewals := store.writes - writes - 2; renewals < tc.wantRenewalsMin {
						t.Errorf("cycle %d: %d lease renewals, want at least %d", cycle, renewals, tc.wantRenewalsMin)
					}
					time.Sleep(2 * time.Hour) // the new token expires
				}
				if r := a.reused(); len(r) > 0 || a.broken {
					t.Errorf("refresh tokens sent more than once: %v", r)
				}
				if a.leaseShort > 0 {
					t.Errorf("%d refresh tokens were sent without a lease that covered the request", a.leaseShort)
				}
			})
		})
	}
}

// When the lease cannot be renewed (Vault refuses writes), the refresh
// token is not sent again: callers get Unavailable and the token is still
// good for the next refresh.
func TestNoSendWithoutRenewableLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newStore()
		a := newApp(t, store)
		a.delay = 8 * time.Second
		a.issue(AuthStyleHeader)
		a.fail.Store(1)
		requests := 0
		m := brokers(1, store, a, Config{Margin: time.Minute, LeaseTTL: 20 * time.Second, RequestTimeout: 10 * time.Second})[0]
		// The first answer (503) comes back after 8 s; from then on every
		// write is refused, so the lease cannot be renewed for the retry.
		go func() {
			time.Sleep(7 * time.Second) // synctest clock: just before the first answer
			store.refuseWrites(1000)
		}()
		rec, _, _ := store.Get(t.Context(), connID)
		if _, err := m.Fresh(t.Context(), connID, rec); !errors.Is(err, ErrProviderUnavailable) {
			t.Fatalf("Fresh = %v, want ErrProviderUnavailable", err)
		}
		a.mu.Lock()
		requests = a.reqs
		a.mu.Unlock()
		if requests != 1 {
			t.Errorf("%d requests reached the app, want 1 (no retry without a renewed lease)", requests)
		}
		store.refuseWrites(0)
		time.Sleep(time.Minute) // the unrenewed lease runs out
		rec, _, _ = store.Get(t.Context(), connID)
		got, err := m.Fresh(t.Context(), connID, rec)
		if err != nil || got.OAuth2.AccessToken == "at-0" {
			t.Fatalf("after Vault recovered: %v, %q", err, got.OAuth2.AccessToken)
		}
		if r := a.reused(); len(r) > 0 || a.broken {
			t.Errorf("refresh tokens sent more than once: %v", r)
		}
	})
}

// Vault refusing writes right after the app rotated the refresh token: the
// rotated tokens are kept and written once Vault takes writes again; no
// token is lost and the next refresh succeeds. When Vault refuses for longer
// than the refresh may take, the caller gets Unavailable and the broker
// writes the kept rotation before it would ever send the old token again.
func TestRotationSurvivesVaultRefusingWrites(t *testing.T) {
	for _, tc := range []struct {
		name    string
		refused int
		wantErr bool
	}{
		{name: "a few seconds", refused: 5},
		{name: "longer than the refresh", refused: 10_000, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := newStore()
				a := newApp(t, store)
				a.issue(AuthStyleHeader)
				a.onOK = func() { store.refuseWrites(tc.refused) }
				m := brokers(1, store, a, Config{Margin: time.Minute, LeaseTTL: 10 * time.Second, RequestTimeout: 2 * time.Second})[0]
				rec, _, _ := store.Get(t.Context(), connID)
				got, err := m.Fresh(t.Context(), connID, rec)
				if tc.wantErr {
					if !errors.Is(err, ErrProviderUnavailable) {
						t.Fatalf("Fresh = %v, want ErrProviderUnavailable while the rotation is not stored", err)
					}
				} else if err != nil || got.OAuth2.AccessToken != "at-2" {
					t.Fatalf("Fresh = %v, %q, want the rotated token once stored", err, got.OAuth2.AccessToken)
				}
				a.onOK = nil
				store.refuseWrites(0)
				time.Sleep(time.Minute) // any lease left behind runs out
				rec, _, _ = store.Get(t.Context(), connID)
				if !tc.wantErr && rec.OAuth2.RefreshToken != "rt-2" {
					t.Errorf("stored refresh token %q, want the rotated rt-2", rec.OAuth2.RefreshToken)
				}
				// Next refresh: must use the rotated token, never rt-1 again.
				time.Sleep(2 * time.Hour) // synctest clock: the token expires
				rec, _, _ = store.Get(t.Context(), connID)
				got, err = m.Fresh(t.Context(), connID, rec)
				if err != nil {
					t.Fatalf("next refresh: %v", err)
				}
				if r := a.reused(); len(r) > 0 || a.broken {
					t.Errorf("refresh tokens sent more than once: %v (connection would need re-authorization)", r)
				}
				if got.OAuth2.AccessToken == "at-0" {
					t.Errorf("next refresh served the old token")
				}
			})
		})
	}
}

// One token-endpoint request per refresh for apps that take client
// credentials only in the header or only in the body: the catalog's style
// is used as is; without one, the first exchange probes (a refused client
// authentication spends no grant) and the style is remembered.
func TestOneRequestPerRefresh(t *testing.T) {
	for _, tc := range []struct {
		name, appStyle, catalogStyle string
		wantExchangeRequests         int
	}{
		{name: "body only, stated", appStyle: AuthStyleParams, catalogStyle: AuthStyleParams, wantExchangeRequests: 1},
		{name: "header only, stated", appStyle: AuthStyleHeader, catalogStyle: AuthStyleHeader, wantExchangeRequests: 1},
		{name: "body only, probed", appStyle: AuthStyleParams, wantExchangeRequests: 2},
		{name: "header only, probed", appStyle: AuthStyleHeader, wantExchangeRequests: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := newStore()
				a := newApp(t, store)
				a.style = tc.appStyle
				m := brokers(1, store, a, Config{Margin: time.Minute, LeaseTTL: 10 * time.Second, RequestTimeout: 2 * time.Second})[0]
				if _, _, err := m.Redeem(t.Context(), Exchange{ConnectionID: connID, Connector: "acme", Client: vault.ClientKey{Connector: "acme"}, TokenURL: "https://app.test/token",
					AuthStyle: tc.catalogStyle, Code: "code"}); err != nil {
					t.Fatal(err)
				}
				if a.reqs != tc.wantExchangeRequests {
					t.Errorf("code exchange took %d requests, want %d", a.reqs, tc.wantExchangeRequests)
				}
				// Another broker, which never probed, refreshes: the style
				// stored with the tokens saves it the probe.
				other := brokers(1, store, a, Config{Margin: time.Minute, LeaseTTL: 10 * time.Second, RequestTimeout: 2 * time.Second, Holder: "b2"})[0]
				for i, mgr := range []*Manager{m, other, m} {
					time.Sleep(2 * time.Hour) // synctest clock: the token expires
					before := a.reqs
					rec, _, _ := store.Get(t.Context(), connID)
					if _, err := mgr.Fresh(t.Context(), connID, rec); err != nil {
						t.Fatalf("refresh %d: %v", i, err)
					}
					if n := a.reqs - before; n != 1 {
						t.Errorf("refresh %d took %d requests, want 1", i, n)
					}
				}
			})
		})
	}
}

// With the token endpoint down, a stored token that still works is served
// (inside the refresh margin too) until it expires; then callers get
// Unavailable; when the app is back, the next call refreshes, no restart.
func TestServesStoredTokenUntilExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newStore()
		a := newApp(t, store)
		a.issue(AuthStyleHeader)
		rec, _, _ := store.Get(t.Context(), connID)
		rec.OAuth2.Expiry = time.Now().Add(4 * time.Minute) // inside the 5 min margin
		b, _ := json.Marshal(rec)
		store.rec = b
		a.fail.Store(1 << 30) // down
		m := brokers(1, store, a, Config{Margin: 5 * time.Minute, LeaseTTL: 10 * time.Second, RequestTimeout: 2 * time.Second})[0]
		for time.Now().Before(rec.OAuth2.Expiry.Add(-2 * time.Second)) {
			cur, _, _ := store.Get(t.Context(), connID)
			got, err := m.Fresh(t.Context(), connID, cur)
			if err != nil || got.OAuth2.AccessToken != "at-0" {
				t.Fatalf("%v before expiry: %v, %q; want the stored token", time.Until(rec.OAuth2.Expiry), err, got.OAuth2.AccessToken)
			}
			time.Sleep(10 * time.Second) // synctest clock: toward the expiry
		}
		time.Sleep(10 * time.Second) // expired
		cur, _, _ := store.Get(t.Context(), connID)
		if _, err := m.Fresh(t.Context(), connID, cur); !errors.Is(err, ErrProviderUnavailable) {
			t.Fatalf("after expiry with the app down: %v, want ErrProviderUnavailable", err)
		}
		a.fail.Store(0)
		time.Sleep(time.Minute) // synctest clock: past the retry backoff
		cur, _, _ = store.Get(t.Context(), connID)
		got, err := m.Fresh(t.Context(), connID, cur)
		if err != nil || got.OAuth2.AccessToken == "at-0" {
			t.Fatalf("after the app recovered: %v, %q", err, got.OAuth2.AccessToken)
		}
		if r := a.reused(); len(r) > 0 || a.broken {
			t.Errorf("refresh tokens sent more than once: %v", r)
		}
	})
}

// A refresh token goes only to the connection's own hosts: a token endpoint
// outside them gets nothing, whichever path asked for the refresh.
func TestRefreshOnlyToAllowedHosts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newStore()
		a := newApp(t, store)
		a.issue(AuthStyleHeader)
		rec, _, _ := store.Get(t.Context(), connID)
		rec.AllowedHosts = []string{"api.acme.test"} // the token URL is app.test
		b, _ := json.Marshal(rec)
		store.rec = b
		m := brokers(1, store, a, Config{Margin: time.Minute, LeaseTTL: 10 * time.Second, RequestTimeout: 2 * time.Second})[0]
		if _, err := m.Fresh(t.Context(), connID, rec); !errors.Is(err, ErrTokenHostNotAllowed) {
			t.Errorf("Fresh = %v, want ErrTokenHostNotAllowed", err)
		}
		if _, err := m.Replace(t.Context(), connID, "at-0"); !errors.Is(err, ErrTokenHostNotAllowed) {
			t.Errorf("Replace = %v, want ErrTokenHostNotAllowed", err)
		}
		if a.reqs != 0 {
			t.Errorf("%d requests reached a token endpoint outside the allowed hosts", a.reqs)
		}
	})
}
