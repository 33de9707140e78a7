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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/integrationhub/connections/internal/tokencache"
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

// Covers reports whether the caller may act in workspace ws: its own, or
// every workspace.
func (c *Claims) Covers(ws string) bool { return CoversWorkspace(c.Workspace, ws) }

// CoversWorkspace is the workspace rule: a caller of workspace callerWS
// may act in ws when they are the same or callerWS is AllWorkspaces.
func CoversWorkspace(callerWS, ws string) bool { return callerWS == AllWorkspaces || callerWS == ws }

// ErrInvalid is returned for any token that does not verify. The wrapped
// reason is safe to show the caller: it never echoes the token.
var ErrInvalid = errors.New("invalid token")

// algorithms accepted in token headers.
var algorithms = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.ES384, jose.RS256, jose.PS256}

// Verifier checks tokens against a key set. Verifying never waits for a
// key fetch, except a token naming a key the verifier does not know: that
// token (and only it) waits for one reload, which starts at most once per
// refresh interval (issuer key rotation). The set is also reloaded in the
// background, so that a key the issuer removed stops verifying.
type Verifier struct {
	load     func(context.Context) ([]byte, error)
	issuer   string
	audience string
	keys     atomic.Pointer[jose.JSONWebKeySet]

	mu           sync.Mutex // never held during a load
	refreshEvery time.Duration
	background   time.Duration
	lastLoad     time.Time
	inflight     chan struct{} // closed when the running load ends
	kick         chan struct{} // wakes the background loop after a change of period

	verified *tokencache.Cache[verifiedToken]
}

// maxVerified bounds the verified-token memory (a token and its claims
// take about 2 KB).
const maxVerified = 20_000

// NewVerifier returns a verifier for source: a file path, or an http(s) URL
// serving a JWKS document. The keys are loaded once now, so that a bad
// source fails at startup, and again in the background (every 5 minutes)
// until ctx ends.
func NewVerifier(ctx context.Context, source, issuer, audience string) (*Verifier, error) {
	v := &Verifier{issuer: issuer, audience: audience, refreshEvery: 30 * time.Second, background: 5 * time.Minute,
		kick: make(chan struct{}, 1), verified: tokencache.New[verifiedToken](maxVerified)}
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
	set, err := v.fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("jwtauth.NewVerifier %s: %w", source, err)
	}
	v.keys.Store(set)
	v.lastLoad = time.Now()
	go v.refreshLoop(ctx)
	return v, nil
}

func (v *Verifier) fetch(ctx context.Context) (*jose.JSONWebKeySet, error) {
	b, err := v.load(ctx)
	if err != nil {
		return nil, err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("decode JWKS: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("JWKS has no keys")
	}
	return &set, nil
}

// reload starts a load unless one runs (then it returns that one) or, unless
// forced, the last started less than the refresh interval ago (then nil).
// The returned channel closes when the load ends; on failure the old keys
// stay.
func (v *Verifier) reload(force bool) chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.inflight != nil {
		return v.inflight
	}
	if !force && time.Since(v.lastLoad) < v.refreshEvery {
		return nil
	}
	done := make(chan struct{})
	v.inflight, v.lastLoad = done, time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if set, err := v.fetch(ctx); err == nil {
			v.keys.Store(set)
		}
		v.mu.Lock()
		v.inflight = nil
		v.mu.Unlock()
		close(done)
	}()
	return done
}

func (v *Verifier) refreshLoop(ctx context.Context) {
	for {
		v.mu.Lock()
		d := v.background
		v.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-v.kick:
			t.Stop()
			continue
		case <-t.C:
		}
		if done := v.reload(true); done != nil {
			select {
			case <-done:
			case <-ctx.Done():
				return
			}
		}
	}
}

// SetRefreshInterval sets how often, at most, an unknown key id makes the
// verifier reload its key set (30 seconds unless set).
func (v *Verifier) SetRefreshInterval(d time.Duration) {
	v.mu.Lock()
	v.refreshEvery = d
	v.mu.Unlock()
}

// SetBackgroundRefresh sets how often the key set is reloaded regardless of
// the tokens seen (5 minutes unless set).
func (v *Verifier) SetBackgroundRefresh(d time.Duration) {
	v.mu.Lock()
	v.background = d
	v.mu.Unlock()
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

// keySet returns the keys; when kid is unknown it waits (bounded by ctx) for
// a reload, if one is due or running.
func (v *Verifier) keySet(ctx context.Context, kid string) *jose.JSONWebKeySet {
	keys := v.keys.Load()
	if len(keys.Key(kid)) > 0 {
		return keys
	}
	if done := v.reload(false); done != nil {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	return v.keys.Load()
}

// Verify checks raw's signature, issuer, audience and lifetime and returns
// its claims, which the caller must not modify. Tokens must carry an
// expiry. A token that verified is remembered until it expires, as long as
// the key set it verified with is the current one.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	now := time.Now()
	if e, ok := v.verified.Get(raw, now); ok && e.keys == v.keys.Load() {
		return e.claims, nil
	}
	// Read before verifying: a reload during the check then only costs one
	// more check, instead of tying the token to keys it was not checked with.
	keys := v.keys.Load()
	c, err := v.verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	v.verified.Put(raw, verifiedToken{claims: c, keys: keys}, c.Expiry.Time().Add(leeway), now)
	return c, nil
}

// verifiedToken is a token whose signature checked out with keys.
type verifiedToken struct {
	claims *Claims
	keys   *jose.JSONWebKeySet
}

// leeway is the clock skew allowed on a token's times.
const leeway = 30 * time.Second

// verify checks a token from scratch.
func (v *Verifier) verify(ctx context.Context, raw string) (*Claims, error) {
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
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: v.issuer, AnyAudience: jwt.Audience{v.audience}}, leeway); err != nil {
		if errors.Is(err, jwt.ErrInvalidAudience) {
			// The usual cause: a token minted for the other service (the
			// connection service's and the broker's audiences differ).
			return nil, fmt.Errorf("%w: the token is for audience %s; this service takes tokens for %q",
				ErrInvalid, strings.Join(c.Audience, ", "), v.audience)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.Subject == "" || c.Workspace == "" {
		return nil, fmt.Errorf("%w: sub and workspace are required", ErrInvalid)
	}
	return &c, nil
}

// Authorize is the one check every gRPC API makes of a platform caller:
// the bearer token in ctx's metadata verifies, and it holds privilege need
// (which method names for the message). Its errors are gRPC statuses that
// say what to fix: Unauthenticated, or PermissionDenied (also when need is
// empty: a method nobody may call).
func (v *Verifier) Authorize(ctx context.Context, method, need string) (*Claims, error) {
	raw, err := auth.AuthFromMD(ctx, "bearer")
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "send a bearer token in the authorization metadata")
	}
	c, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if need == "" || !slices.Contains(c.Privileges, need) {
		return nil, status.Errorf(codes.PermissionDenied, "%s needs the %q privilege", method, need)
	}
	return c, nil
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
