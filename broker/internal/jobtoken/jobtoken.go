// Package jobtoken mints and verifies job tokens: short-lived JWTs that say
// which connections one recipe job may use. They are signed with an Ed25519
// key in Vault's transit engine, so the private key never leaves Vault, and
// verified locally from the key's public versions, cached. The key version
// that signed a token is its "kid" ("v3"); versions Vault no longer accepts
// (below min_decryption_version) are refused, which is how a key is retired.
//
// Not wired to the broker's RPCs yet: MintJobToken and GetCredential's
// checks come next (issue 5).
package jobtoken

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// ErrInvalid is returned for a token that must not be honoured; the wrapped
// reason is safe to show the caller.
var ErrInvalid = errors.New("invalid job token")

// Claims are what a job token grants.
type Claims struct {
	jwt.Claims
	Workspace   string   `json:"workspace"`
	Recipe      string   `json:"recipe"`
	Job         string   `json:"job"`
	RuntimeUser string   `json:"runtime_user,omitempty"`
	Connections []string `json:"connections"`
}

// Keys is the part of the Vault client the authority needs.
type Keys interface {
	TransitSign(ctx context.Context, mount, name string, version int, input []byte) ([]byte, error)
	TransitPublicKeys(ctx context.Context, mount, name string) (vault.TransitKeys, error)
}

// Config names the transit key and what tokens carry.
type Config struct {
	Mount, Key string // transit mount and key name
	Issuer     string // iss of minted tokens
	Audience   string // aud of minted tokens, required when verifying
	// Refresh is how long public keys are trusted before being read again
	// (how soon a retired version stops verifying).
	Refresh time.Duration
}

// Authority mints and verifies job tokens.
type Authority struct {
	cfg  Config
	keys Keys
	now  func() time.Time

	mu       sync.Mutex
	set      vault.TransitKeys
	loadedAt time.Time
}

// New returns an authority; it reads no key until first used.
func New(cfg Config, keys Keys) *Authority {
	return &Authority{cfg: cfg, keys: keys, now: time.Now}
}

// keySet returns the cached public keys, reading them again when they are
// older than Refresh or lack version want.
func (a *Authority) keySet(ctx context.Context, want int) (vault.TransitKeys, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, known := a.set.Public[want]
	if a.set.Public != nil && a.now().Sub(a.loadedAt) < a.cfg.Refresh && (want == 0 || known) {
		return a.set, nil
	}
	set, err := a.keys.TransitPublicKeys(ctx, a.cfg.Mount, a.cfg.Key)
	if err != nil {
		if a.set.Public != nil {
			return a.set, nil // Vault down: keep verifying with what we know
		}
		return vault.TransitKeys{}, fmt.Errorf("jobtoken: public keys: %w", err)
	}
	a.set, a.loadedAt = set, a.now()
	return set, nil
}

// Mint signs c, valid for ttl, with the key's latest version.
func (a *Authority) Mint(ctx context.Context, c Claims, ttl time.Duration) (string, time.Time, error) {
	set, err := a.keySet(ctx, 0)
	if err != nil {
		return "", time.Time{}, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: &transitSigner{ctx: ctx, a: a, version: set.Latest, set: set}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("jobtoken.Mint: %w", err)
	}
	now := a.now()
	exp := now.Add(ttl)
	c.Issuer, c.Audience = a.cfg.Issuer, jwt.Audience{a.cfg.Audience}
	c.IssuedAt, c.NotBefore, c.Expiry = jwt.NewNumericDate(now), jwt.NewNumericDate(now), jwt.NewNumericDate(exp)
	c.ID = rand.Text()
	raw, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("jobtoken.Mint: %w", err)
	}
	return raw, exp, nil
}

// Verify checks a token's signature (by a key version Vault still accepts),
// issuer, audience and lifetime, and returns its claims.
func (a *Authority) Verify(ctx context.Context, raw string) (*Claims, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil || len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: malformed", ErrInvalid)
	}
	v, err := strconv.Atoi(strings.TrimPrefix(tok.Headers[0].KeyID, "v"))
	if err != nil || !strings.HasPrefix(tok.Headers[0].KeyID, "v") {
		return nil, fmt.Errorf("%w: no key version", ErrInvalid)
	}
	set, err := a.keySet(ctx, v)
	if err != nil {
		return nil, err
	}
	pub, ok := set.Public[v]
	if !ok || v < set.MinVersion {
		return nil, fmt.Errorf("%w: signed by a retired or unknown key version", ErrInvalid)
	}
	var c Claims
	if err := tok.Claims(pub, &c); err != nil {
		return nil, fmt.Errorf("%w: signature does not verify", ErrInvalid)
	}
	if c.Expiry == nil {
		return nil, fmt.Errorf("%w: no expiry", ErrInvalid)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: a.cfg.Issuer, AnyAudience: jwt.Audience{a.cfg.Audience}, Time: a.now()}, 5*time.Second); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &c, nil
}

// transitSigner lets go-jose build the JWS while Vault makes the signature.
type transitSigner struct {
	ctx     context.Context
	a       *Authority
	version int
	set     vault.TransitKeys
}

func (s *transitSigner) Public() *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: s.set.Public[s.version], KeyID: "v" + strconv.Itoa(s.version), Algorithm: string(jose.EdDSA)}
}

func (s *transitSigner) Algs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.EdDSA}
}

func (s *transitSigner) SignPayload(payload []byte, _ jose.SignatureAlgorithm) ([]byte, error) {
	return s.a.keys.TransitSign(s.ctx, s.a.cfg.Mount, s.a.cfg.Key, s.version, payload)
}
