// Package oauthtest runs a standards-following OAuth 2.0 authorization
// server on loopback for tests, built on github.com/ory/fosite: authorization
// code with PKCE, refresh tokens that rotate on every use and whose reuse is
// refused (and revokes the chain), client credentials, and a userinfo
// endpoint that tells who a token belongs to. It stands in for Salesforce,
// Zendesk and the like, which cannot be reached from here.
package oauthtest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/storage"
)

// Server is a running authorization server.
type Server struct {
	URL          string // base URL, e.g. http://127.0.0.1:PORT
	ClientID     string
	ClientSecret string
	Subject      string // the user who "consents" at /authorize

	provider fosite.OAuth2Provider
	cfg      *fosite.Config
	store    *storage.MemoryStore
	srv      *http.Server

	deny        atomic.Bool            // the user refuses consent at /authorize
	subject     atomic.Pointer[string] // replaces Subject from SetSubject on
	refreshes   atomic.Int64           // successful refresh grants
	mints       atomic.Int64           // successful client credentials grants
	requests    atomic.Int64           // token requests of any kind and outcome
	delay       atomic.Int64           // nanoseconds each token answer waits
	clientAuth  atomic.Value           // string: "header" or "params" accepted only; "" both
	onRefresh   atomic.Pointer[func()] // called after a refresh grant, before the answer
	heldNow     atomic.Int64           // requests waiting at the refresh gate
	spentMu     sync.Mutex
	spent       map[string]int // refresh token -> requests that reached processing
	refreshGate atomic.Pointer[chan struct{}]
	failNext    atomic.Int64 // refresh requests still to answer 503
	mu          sync.Mutex
	held        chan struct{} // closed when a refresh request is held at the gate
}

// Options tune a server.
type Options struct {
	AccessTokenLifespan time.Duration // default one hour
	// RefreshTokenLifespan is how long a refresh token lives (default a
	// day). Each refresh issues a new one, so this is how long an unused
	// refresh token lasts: the idle expiry of many apps.
	RefreshTokenLifespan time.Duration
	RedirectURIs         []string
}

// Start runs a server on a free loopback port until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.AccessTokenLifespan == 0 {
		o.AccessTokenLifespan = time.Hour
	}
	if o.RefreshTokenLifespan == 0 {
		o.RefreshTokenLifespan = 24 * time.Hour
	}
	secret := []byte(rand.Text() + rand.Text())[:32]
	cfg := &fosite.Config{
		AccessTokenLifespan:   o.AccessTokenLifespan,
		RefreshTokenLifespan:  o.RefreshTokenLifespan,
		AuthorizeCodeLifespan: 5 * time.Minute,
		GlobalSecret:          secret,
		EnforcePKCE:           true,
		RefreshTokenScopes:    []string{}, // every exchange gets a refresh token
		ScopeStrategy:         fosite.ExactScopeStrategy,
		// bcrypt's lowest cost: client authentication at the default cost
		// takes a second of CPU on a loaded 2-core machine, which turns
		// tests of timing into tests of the machine.
		HashCost: 4,
	}
	st := storage.NewMemoryStore()
	s := &Server{ClientID: "integrationhub", ClientSecret: rand.Text(), Subject: "agent@acme.test", store: st, cfg: cfg,
		spent: map[string]int{}}
	hashed, err := cfg.GetSecretsHasher(context.Background()).Hash(context.Background(), []byte(s.ClientSecret))
	if err != nil {
		t.Fatal(err)
	}
	st.Clients[s.ClientID] = &fosite.DefaultClient{
		ID: s.ClientID, Secret: hashed, RedirectURIs: o.RedirectURIs,
		ResponseTypes: []string{"code"},
		GrantTypes:    []string{"authorization_code", "refresh_token", "client_credentials"},
		Scopes:        []string{"read", "write", "admin"},
	}
	s.provider = compose.Compose(cfg, st, compose.NewOAuth2HMACStrategy(cfg),
		compose.OAuth2AuthorizeExplicitFactory, compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2ClientCredentialsGrantFactory, compose.OAuth2PKCEFactory, compose.OAuth2TokenIntrospectionFactory)

	mux := http.NewServeMux()
	mux.HandleFunc("/authorize", s.authorize)
	mux.HandleFunc("/token", s.token)
	mux.HandleFunc("/userinfo", s.userinfo)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.URL = "http://" + l.Addr().String()
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// SetRedirectURIs replaces the client's allowed redirect URIs.
func (s *Server) SetRedirectURIs(uris ...string) {
	s.store.Clients[s.ClientID].(*fosite.DefaultClient).RedirectURIs = uris
}

// SetSubject makes sub the user who consents at /authorize from now on (a
// user re-authorizing as another account); tokens already issued keep theirs.
func (s *Server) SetSubject(sub string) { s.subject.Store(&sub) }

// SetAccessTokenLifespan changes how long tokens issued from now on live
// (tests issue short-lived tokens, then long-lived refreshed ones). Call it
// only while no token request is in flight.
func (s *Server) SetAccessTokenLifespan(d time.Duration) { s.cfg.AccessTokenLifespan = d }

// DenyConsent makes the user refuse (or, false, give) consent at
// /authorize from now on.
func (s *Server) DenyConsent(deny bool) { s.deny.Store(deny) }

// RevokeRefreshTokens forgets every refresh token, as an app does when a
// user revokes the grant: the next refresh gets invalid_grant.
func (s *Server) RevokeRefreshTokens() {
	for sig := range s.store.RefreshTokens {
		delete(s.store.RefreshTokens, sig)
	}
}

// RevokeAccessTokens forgets every access token, as an app does when it
// invalidates sessions early: requests with them get 401.
func (s *Server) RevokeAccessTokens() {
	for sig := range s.store.AccessTokens {
		delete(s.store.AccessTokens, sig)
	}
}

// FailRefreshes makes the next n refresh requests fail with 503, as an app
// under maintenance would.
func (s *Server) FailRefreshes(n int64) { s.failNext.Store(n) }

// SetTokenDelay makes every token request wait d before it is answered (a
// slow app). A client that gives up meanwhile gets nothing processed.
func (s *Server) SetTokenDelay(d time.Duration) { s.delay.Store(int64(d)) }

// AcceptClientAuth limits how the token endpoint takes the client's
// credentials: "header" (HTTP Basic only), "params" (form fields only), or
// "" (both, the default). Others get 401 invalid_client.
func (s *Server) AcceptClientAuth(style string) { s.clientAuth.Store(style) }

// OnRefresh sets f to be called after each successful refresh grant, before
// its answer is sent (nil: none).
func (s *Server) OnRefresh(f func()) {
	if f == nil {
		s.onRefresh.Store(nil)
		return
	}
	s.onRefresh.Store(&f)
}

// HeldRequests counts refresh requests waiting at the HoldRefreshes gate
// (a request whose client went away stops counting once the server notices).
func (s *Server) HeldRequests() int64 { return s.heldNow.Load() }

// TokenRequests counts token requests so far, whatever their outcome.
func (s *Server) TokenRequests() int64 { return s.requests.Load() }

// ReusedRefreshTokens lists refresh tokens that reached processing more than
// once (a double spend, whatever the answer was).
func (s *Server) ReusedRefreshTokens() []string {
	s.spentMu.Lock()
	defer s.spentMu.Unlock()
	var out []string
	for rt, n := range s.spent {
		if n > 1 {
			out = append(out, rt[:min(8, len(rt))]+"...")
		}
	}
	return out
}

// Mints counts successful client credentials grants so far.
func (s *Server) Mints() int64 { return s.mints.Load() }

// Refreshes counts successful refresh grants so far.
func (s *Server) Refreshes() int64 { return s.refreshes.Load() }

// HoldRefreshes makes refresh requests wait, before the server processes
// them, until the returned release is called. held is closed when the first
// one arrives. A request whose client goes away while held is dropped
// unprocessed, as a real server's would be when the connection dies first.
func (s *Server) HoldRefreshes() (held <-chan struct{}, release func()) {
	gate := make(chan struct{})
	s.mu.Lock()
	s.held = make(chan struct{})
	h := s.held
	s.mu.Unlock()
	s.refreshGate.Store(&gate)
	var once sync.Once
	return h, func() { once.Do(func() { s.refreshGate.Store(nil); close(gate) }) }
}

// authorize auto-approves every request for Subject: the "user" consents.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := s.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	if r.URL.Query().Get("deny") == "1" || s.deny.Load() {
		s.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithHint("The test user denied consent."))
		return
	}
	for _, sc := range ar.GetRequestedScopes() {
		ar.GrantScope(sc)
	}
	sub := s.Subject
	if p := s.subject.Load(); p != nil {
		sub = *p
	}
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, &fosite.DefaultSession{Subject: sub, Username: sub})
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	s.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.requests.Add(1)
	_, _, basic := r.BasicAuth()
	inParams := r.PostForm.Get("client_secret") != ""
	if style, _ := s.clientAuth.Load().(string); style == "header" && inParams || style == "params" && basic {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"client authentication method not supported"}`))
		return
	}
	if d := time.Duration(s.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return // the client is gone: nothing was processed
		}
	}
	refresh := r.PostForm.Get("grant_type") == "refresh_token"
	if refresh && s.failNext.Add(-1) >= 0 {
		http.Error(w, `{"error":"temporarily_unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	if refresh {
		if gate := s.refreshGate.Load(); gate != nil {
			s.mu.Lock()
			if s.held != nil {
				close(s.held)
				s.held = nil
			}
			s.mu.Unlock()
			s.heldNow.Add(1)
			select {
			case <-*gate:
				s.heldNow.Add(-1)
			case <-ctx.Done():
				s.heldNow.Add(-1)
				return // the client is gone: nothing was processed
			}
			if ctx.Err() != nil {
				return
			}
		}
	}
	if refresh {
		s.spentMu.Lock()
		s.spent[r.PostForm.Get("refresh_token")]++
		s.spentMu.Unlock()
	}
	session := &fosite.DefaultSession{}
	ar, err := s.provider.NewAccessRequest(ctx, r, session)
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		for _, sc := range ar.GetRequestedScopes() {
			ar.GrantScope(sc)
		}
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	if refresh {
		s.refreshes.Add(1)
		if f := s.onRefresh.Load(); f != nil {
			(*f)()
		}
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		s.mints.Add(1)
	}
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

// userinfo answers who a bearer token belongs to, and 401 for a bad token.
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		http.Error(w, "no bearer token", http.StatusUnauthorized)
		return
	}
	_, ar, err := s.provider.IntrospectToken(ctx, tok, fosite.AccessToken, &fosite.DefaultSession{})
	if err != nil {
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"email":  ar.GetSession().GetSubject(),
		"scopes": ar.GetGrantedScopes(),
	})
}
