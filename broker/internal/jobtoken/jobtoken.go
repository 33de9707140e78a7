// Package jobtoken mints and verifies job tokens: short-lived JWTs that say
// which connections one recipe job may use. They are signed with an Ed25519
// key in Vault's transit engine, so the private key never leaves Vault, and
// verified locally from the key's public versions, cached. The key version
// that signed a token is its "kid" ("v3"); versions Vault no longer accepts
// (below min_decryption_version) are refused, which is how a key is retired.
//
// A worker sends the same token on thousands of calls, so a verified token
// is remembered (until it expires) and later calls only check its expiry and
// that its key version is still accepted: one map lookup instead of a
// signature check and JSON parsing.
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
	"github.com/integrationhub/connections/internal/tokencache"
)

// ErrInvalid is returned for a token that must not be honoured; the wrapped
// reason is safe to show the caller.
var ErrInvalid = errors.New("invalid job token")

// Claims are what a job token grants.
type Claims struct {
	jwt.Claims
	Workspace   string `json:"workspace"`
	Recipe      string `json:"recipe"`
	Job         string `json:"job"`
	RuntimeUser string `json:"runtime_user,omitempty"`
	// RuntimeUserFallback is the recipe's policy when the runtime user has
	// no connection for an app: serve the recipe's own connection.
	RuntimeUserFallback bool     `json:"runtime_user_fallback,omitempty"`
	Connections         []string `json:"connections"`
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

	mu         sync.Mutex
	set        vault.TransitKeys
	loadedAt   time.Time // when set was read
	triedAt    time.Time // when Vault was last asked, whatever the outcome
	failedAt   time.Time // when the last attempt failed; zero after a success
	refreshing bool      // a caller is reading the keys from Vault

	verified *tokencache.Cache[verifiedToken]
}

// maxVerified bounds the verified-token memory (a token and its claims take
// about 2 KB; see tokencache.New).
const maxVerified = 20_000

// unknownRetry is how often an unknown key version may make the authority
// read the keys again, so that tokens naming made-up versions cannot turn
// into a Vault read each.
const unknownRetry = time.Second

// failedRetry is how long the authority waits after Vault could not be read
// before trying again, keeping the keys it has meanwhile.
const failedRetry = 5 * time.Second

// New returns an authority; it reads no key until first used.
func New(cfg Config, keys Keys) *Authority {
	return &Authority{cfg: cfg, keys: keys, now: time.Now, verified: tokencache.New[verifiedToken](maxVerified)}
}

// keySet returns the cached public keys. Keys older than Refresh are read
// again in the background: a caller never waits on Vault for keys it has,
// so a hung Vault cannot stall calls whose token is already verified. Only
// when no keys are known yet, or a token names a version not known (at most
// once a second for that), does the caller read Vault itself. While one read
// runs the others go on with the keys they have; when Vault cannot be read,
// the known keys are kept and Vault is tried again after a few seconds.
//
// Minting passes wait: it calls Vault anyway (transit signs), and it must
// sign with the newest version, so it reads due keys itself.
func (a *Authority) keySet(ctx context.Context, want int, wait bool) (vault.TransitKeys, error) {
	a.mu.Lock()
	set, now := a.set, a.now()
	_, known := set.Public[want]
	due := now.Sub(a.loadedAt) >= a.cfg.Refresh && (a.failedAt.IsZero() || now.Sub(a.failedAt) >= failedRetry)
	unknown := want != 0 && !known && now.Sub(a.triedAt) >= unknownRetry
	if set.Public != nil && (a.refreshing && !wait || !unknown && !(wait && due)) {
		if due && !a.refreshing {
			a.refreshing, a.triedAt = true, now
			go func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backgroundReadTimeout)
				defer cancel()
				_, _ = a.readKeys(rctx)
			}()
		}
		a.mu.Unlock()
		return set, nil
	}
	a.refreshing, a.triedAt = true, now
	a.mu.Unlock()
	return a.readKeys(ctx)
}

// backgroundReadTimeout bounds a background read of the public keys.
const backgroundReadTimeout = 30 * time.Second

// readKeys reads the public keys from Vault; the caller has set refreshing.
func (a *Authority) readKeys(ctx context.Context) (vault.TransitKeys, error) {
	fresh, err := a.keys.TransitPublicKeys(ctx, a.cfg.Mount, a.cfg.Key)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refreshing = false
	if err != nil {
		a.failedAt = a.now()
		if a.set.Public != nil {
			return a.set, nil // Vault down: keep verifying with what we know
		}
		return vault.TransitKeys{}, fmt.Errorf("jobtoken: public keys: %w", err)
	}
	a.set, a.loadedAt, a.failedAt = fresh, a.now(), time.Time{}
	return fresh, nil
}

// Mint signs c, valid for ttl, with the key's latest version. When Vault
// refuses to sign with the version this authority knows as the latest (the
// key was rotated and that version retired, as in an emergency), the keys
// are read again at once and the token is signed with the newest version.
func (a *Authority) Mint(ctx context.Context, c Claims, ttl time.Duration) (string, time.Time, error) {
	set, err := a.keySet(ctx, 0, true)
	if err != nil {
		return "", time.Time{}, err
	}
	raw, exp, err := a.mint(ctx, set, c, ttl)
	if err == nil || ctx.Err() != nil {
		return raw, exp, err
	}
	fresh, rerr := a.reread(ctx)
	if rerr != nil || fresh.Latest == set.Latest {
		return "", time.Time{}, err
	}
	return a.mint(ctx, fresh, c, ttl)
}

// reread reads the public keys now, whatever their age.
func (a *Authority) reread(ctx context.Context) (vault.TransitKeys, error) {
	fresh, err := a.keys.TransitPublicKeys(ctx, a.cfg.Mount, a.cfg.Key)
	if err != nil {
		return vault.TransitKeys{}, fmt.Errorf("jobtoken: public keys: %w", err)
	}
	a.mu.Lock()
	a.set, a.loadedAt, a.failedAt = fresh, a.now(), time.Time{}
	a.mu.Unlock()
	return fresh, nil
}

func (a *Authority) mint(ctx context.Context, set vault.TransitKeys, c Claims, ttl time.Duration) (string, time.Time, error) {
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

// leeway is the clock skew allowed on a token's times.
const leeway = 5 * time.Second

// Verify checks a token's signature (by a key version Vault still accepts),
// issuer, audience and lifetime, and returns its claims, which the caller
// must not modify.
func (a *Authority) Verify(ctx context.Context, raw string) (*Claims, error) {
	now := a.now()
	if e, ok := a.verified.Get(raw, now); ok {
		// A retired key version stops verifying once the keys are read
		// again (every Refresh).
		set, err := a.keySet(ctx, 0, false)
		if err != nil {
			return nil, err
		}
		if e.version < set.MinVersion {
			a.verified.Forget(raw)
			return nil, fmt.Errorf("%w: signed by a retired or unknown key version", ErrInvalid)
		}
		return e.claims, nil
	}
	c, v, err := a.verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	a.verified.Put(raw, verifiedToken{claims: c, version: v}, c.Expiry.Time().Add(leeway), now)
	return c, nil
}

// verifiedToken is a token whose signature checked out.
type verifiedToken struct {
	claims  *Claims
	version int // key version that signed it
}

// verify checks a token from scratch and returns its claims and key version.
func (a *Authority) verify(ctx context.Context, raw string) (*Claims, int, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil || len(tok.Headers) != 1 {
		return nil, 0, fmt.Errorf("%w: malformed", ErrInvalid)
	}
	v, err := strconv.Atoi(strings.TrimPrefix(tok.Headers[0].KeyID, "v"))
	if err != nil || !strings.HasPrefix(tok.Headers[0].KeyID, "v") {
		return nil, 0, fmt.Errorf("%w: no key version", ErrInvalid)
	}
	set, err := a.keySet(ctx, v, false)
	if err != nil {
		return nil, 0, err
	}
	pub, ok := set.Public[v]
	if !ok || v < set.MinVersion {
		return nil, 0, fmt.Errorf("%w: signed by a retired or unknown key version", ErrInvalid)
	}
	var c Claims
	if err := tok.Claims(pub, &c); err != nil {
		return nil, 0, fmt.Errorf("%w: signature does not verify", ErrInvalid)
	}
	if c.Expiry == nil {
		return nil, 0, fmt.Errorf("%w: no expiry", ErrInvalid)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: a.cfg.Issuer, AnyAudience: jwt.Audience{a.cfg.Audience}, Time: a.now()}, leeway); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &c, v, nil
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
