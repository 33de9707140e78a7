package jwtauth_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/integrationhub/connections/internal/jwtauth"
)

func TestVerify(t *testing.T) {
	good, err := jwtauth.NewSigner("https://issuer.test")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := jwtauth.NewSigner("https://issuer.test")
	wrongIss, _ := jwtauth.NewSigner("https://evil.test")
	jwks, _ := good.JWKS()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := jwtauth.NewVerifier(t.Context(), path, "https://issuer.test", "connections")
	if err != nil {
		t.Fatal(err)
	}
	mint := func(s *jwtauth.Signer, aud string, ttl time.Duration) string {
		tok, err := s.Mint(aud, "alice", "ws", []string{"connections:view"}, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	valid := mint(good, "connections", time.Minute)
	tests := []struct {
		name, token string
		ok          bool
		says        string // in the error
	}{
		{"valid", valid, true, ""},
		{"expired", mint(good, "connections", -time.Hour), false, "expired"},
		{"other audience", mint(good, "broker", time.Minute), false, `the token is for audience broker; this service takes tokens for "connections"`},
		{"unknown key", mint(other, "connections", time.Minute), false, ""},
		{"other issuer", mint(wrongIss, "connections", time.Minute), false, ""},
		{"tampered", valid[:len(valid)-4] + "AAAA", false, ""},
		{"garbage", "not.a.jwt", false, ""},
		{"empty", "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(t.Context(), tt.token)
			if tt.ok {
				if err != nil || c.Subject != "alice" || c.Workspace != "ws" || len(c.Privileges) != 1 {
					t.Fatalf("Verify = %+v, %v", c, err)
				}
				return
			}
			if !errors.Is(err, jwtauth.ErrInvalid) || !strings.Contains(fmt.Sprint(err), tt.says) {
				t.Fatalf("Verify = %v, want ErrInvalid saying %q", err, tt.says)
			}
		})
	}
}

// A JWKS served over HTTP is reloaded when a token names a key the verifier
// does not know: the issuer rotated its key.
func TestVerifierURLRotation(t *testing.T) {
	first, _ := jwtauth.NewSigner("iss")
	second, _ := jwtauth.NewSigner("iss")
	var mu sync.Mutex
	current := first
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		b, _ := current.JWKS()
		mu.Unlock()
		w.Write(b)
	}))
	defer srv.Close()
	v, err := jwtauth.NewVerifier(t.Context(), srv.URL, "iss", "aud")
	if err != nil {
		t.Fatal(err)
	}
	v.SetRefreshInterval(0)
	tok, _ := first.Mint("aud", "s", "ws", nil, time.Minute)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("first key: %v", err)
	}
	mu.Lock()
	current = second
	mu.Unlock()
	tok2, _ := second.Mint("aud", "s", "ws", nil, time.Minute)
	if _, err := v.Verify(t.Context(), tok2); err != nil {
		t.Errorf("token from the rotated key: %v", err)
	}
	// The retired key is gone from the published set once reloaded.
	if _, err := v.Verify(t.Context(), tok); err == nil {
		t.Error("a token from the retired key still verifies")
	}
}

// A token naming an unknown key waits for the key set to reload; nobody else
// does: verification of known keys never waits for a fetch.
func TestUnknownKeyDoesNotStallOthers(t *testing.T) {
	known, _ := jwtauth.NewSigner("iss")
	stranger, _ := jwtauth.NewSigner("iss")
	fetching := make(chan struct{}, 1)
	release := make(chan struct{})
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) > 1 {
			fetching <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		b, _ := known.JWKS()
		w.Write(b)
	}))
	defer srv.Close()
	defer close(release)
	v, err := jwtauth.NewVerifier(t.Context(), srv.URL, "iss", "aud")
	if err != nil {
		t.Fatal(err)
	}
	v.SetRefreshInterval(0)
	unknownTok, _ := stranger.Mint("aud", "s", "ws", nil, time.Minute)
	go func() { _, _ = v.Verify(t.Context(), unknownTok) }()
	select {
	case <-fetching: // the reload hangs at the issuer now
	case <-time.After(10 * time.Second):
		t.Fatal("the unknown key did not trigger a reload")
	}
	tok, _ := known.Mint("aud", "s", "ws", nil, time.Minute)
	done := make(chan error, 1)
	go func() { _, err := v.Verify(t.Context(), tok); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("known key: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a token with a known key waited for the hanging key fetch")
	}
}

// A key the issuer removed stops verifying without a restart: the set is
// reloaded in the background.
func TestRemovedKeyStopsVerifying(t *testing.T) {
	old, _ := jwtauth.NewSigner("iss")
	next, _ := jwtauth.NewSigner("iss")
	path := filepath.Join(t.TempDir(), "jwks.json")
	b, _ := old.JWKS()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := jwtauth.NewVerifier(t.Context(), path, "iss", "aud")
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := old.Mint("aud", "s", "ws", nil, time.Hour)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	b, _ = next.JWKS()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	v.SetBackgroundRefresh(20 * time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := v.Verify(t.Context(), tok); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a removed key still verifies")
		}
		time.Sleep(20 * time.Millisecond) // polling pace, bounded by the deadline
	}
}
