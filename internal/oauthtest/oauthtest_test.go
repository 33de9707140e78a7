package oauthtest_test

import (
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/oauth2"

	"github.com/integrationhub/connections/internal/oauthtest"
)

// The server speaks the protocol the broker relies on: code with PKCE,
// rotating refresh tokens, and refusal of a reused one.
func TestServer(t *testing.T) {
	srv := oauthtest.Start(t, oauthtest.Options{RedirectURIs: []string{"http://127.0.0.1:1/cb"}})
	cfg := &oauth2.Config{ClientID: srv.ClientID, ClientSecret: srv.ClientSecret, RedirectURL: "http://127.0.0.1:1/cb",
		Endpoint: oauth2.Endpoint{AuthURL: srv.URL + "/authorize", TokenURL: srv.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:   []string{"read"}}
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(verifier))
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" || loc.Query().Get("state") != "state-123456789" {
		t.Fatalf("authorize redirected to %q", resp.Header.Get("Location"))
	}
	tok, err := cfg.Exchange(t.Context(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	first := tok.RefreshToken
	tok.Expiry = tok.Expiry.Add(-2 * 3600e9) // force a refresh
	next, err := cfg.TokenSource(t.Context(), tok).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if next.RefreshToken == "" || next.RefreshToken == first || srv.Refreshes() != 1 {
		t.Fatalf("refresh did not rotate the refresh token (%d refreshes)", srv.Refreshes())
	}
	if _, err := cfg.TokenSource(t.Context(), &oauth2.Token{RefreshToken: first}).Token(); err == nil {
		t.Fatal("a reused refresh token was accepted")
	}
}
