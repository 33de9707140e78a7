// Package jwtauth verifies the bearer JWTs that platform services present to
// this project's gRPC APIs, against an issuer's JSON Web Key Set read from a
// file or a URL. It also mints such tokens for the local stack and for tests.
package jwtauth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// AllWorkspaces in a token's workspace claim grants access to every
// workspace (platform service accounts, the broker).
const AllWorkspaces = "*"

// Claims are the token claims this project reads.
type Claims struct {
	jwt.Claims
	// Workspace the caller acts in, or AllWorkspaces.
	Workspace string `json:"workspace"`
	// Privileges the caller holds in that workspace.
	Privileges []string `json:"privileges"`
}

// ErrInvalid is returned for any token that does not verify. The wrapped
// reason is safe to show the caller: it never echoes the token.
var ErrInvalid = errors.New("invalid token")

// algorithms accepted in token headers.
var algorithms = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.ES384, jose.RS256, jose.PS256}

// Verifier checks tokens against a key set that it reloads when a token
// names a key it does not know (issuer key rotation), at most once per
// refreshEvery.
type Verifier struct {
	load         func(context.Context) ([]byte, error)
	issuer       string
	audience     string
	refreshEvery time.Duration

	mu       sync.Mutex
	keys     *jose.JSONWebKeySet
	loadedAt time.Time
}

// NewVerifier returns a verifier for source: a file path, or an http(s) URL
// serving a JWKS document. The keys are loaded once now, so that a bad
// source fails at startup.
func NewVerifier(ctx context.Context, source, issuer, audience string) (*Verifier, error) {
	v := &Verifier{issuer: issuer, audience: audience, refreshEvery: 30 * time.Second}
	if strings.HasPrefix(source, "https://") || strings.HasPrefix(source, "http://") {
		client := &http.Client{Timeout: 10 * time.Second}
		v.load = func(ctx context.Context) ([]byte, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, source, nil)
			if err != nil {
				return nil, err
			}
			resp, err := client.Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("GET %s: %s", source, resp.Status)
			}
			return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		}
	} else {
		v.load = func(context.Context) ([]byte, error) { return os.ReadFile(source) }
	}
	if err := v.reload(ctx); err != nil {
		return nil, fmt.Errorf("jwtauth.NewVerifier %s: %w", source, err)
	}
	return v, nil
}

func (v *Verifier) reload(ctx context.Context) error {
	b, err := v.load(ctx)
	if err != nil {
		return err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return fmt.Errorf("decode JWKS: %w", err)
	}
	if len(set.Keys) == 0 {
		return errors.New("JWKS has no keys")
	}
	v.keys, v.loadedAt = &set, time.Now()
	return nil
}

// SetRefreshInterval sets how often, at most, an unknown key id makes the
// verifier reload its key set (30 seconds unless set).
func (v *Verifier) SetRefreshInterval(d time.Duration) {
	v.mu.Lock()
	v.refreshEvery = d
	v.mu.Unlock()
}

// keySet returns the keys, reloading them first when kid is unknown and the
// last load is old enough.
func (v *Verifier) keySet(ctx context.Context, kid string) *jose.JSONWebKeySet {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.keys.Key(kid)) == 0 && time.Since(v.loadedAt) > v.refreshEvery {
		_ = v.reload(ctx) // on failure keep the old keys; the token fails below
	}
	return v.keys
}

// Verify checks raw's signature, issuer, audience and lifetime and returns
// its claims. Tokens must carry an expiry.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	tok, err := jwt.ParseSigned(raw, algorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed", ErrInvalid)
	}
	kid := ""
	if len(tok.Headers) > 0 {
		kid = tok.Headers[0].KeyID
	}
	var c Claims
	if err := tok.Claims(v.keySet(ctx, kid), &c); err != nil {
		return nil, fmt.Errorf("%w: signature does not verify with the issuer's keys", ErrInvalid)
	}
	if c.Expiry == nil {
		return nil, fmt.Errorf("%w: no expiry", ErrInvalid)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: v.issuer, AnyAudience: jwt.Audience{v.audience}}, 30*time.Second); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.Subject == "" || c.Workspace == "" {
		return nil, fmt.Errorf("%w: sub and workspace are required", ErrInvalid)
	}
	return &c, nil
}

// Signer mints tokens with an Ed25519 key: the local stack's dev tokens and
// tests' tokens. Production tokens come from the platform's identity service.
type Signer struct {
	Issuer string
	kid    string
	key    ed25519.PrivateKey
	signer jose.Signer
}

// NewSigner makes a fresh key.
func NewSigner(issuer string) (*Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	kid := rand.Text()[:12]
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	return &Signer{Issuer: issuer, kid: kid, key: priv, signer: sig}, nil
}

// JWKS returns the public key set to verify this signer's tokens.
func (s *Signer) JWKS() ([]byte, error) {
	return json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: s.key.Public(), KeyID: s.kid, Algorithm: string(jose.EdDSA), Use: "sig",
	}}})
}

// Mint returns a token for subject in workspace with privileges, valid for ttl.
func (s *Signer) Mint(audience, subject, workspace string, privileges []string, ttl time.Duration) (string, error) {
	now := time.Now()
	c := Claims{
		Claims: jwt.Claims{
			Issuer: s.Issuer, Subject: subject, Audience: jwt.Audience{audience},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			Expiry: jwt.NewNumericDate(now.Add(ttl)),
		},
		Workspace: workspace, Privileges: privileges,
	}
	return jwt.Signed(s.signer).Claims(c).Serialize()
}
