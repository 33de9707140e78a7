// Package oauth runs the token side of OAuth 2.0 for the broker: redeeming
// authorization codes and keeping access tokens fresh.
//
// Refreshing is where integration platforms lose connections, so it follows
// a protocol (docs/refresh-protocol.md has the whole of it):
//   - a stored access token is served until it actually expires (less a
//     small allowance for clock skew); inside the refresh margin it is still
//     served while a refresh runs in the background, so a token endpoint
//     that is down costs workers nothing until the token runs out;
//   - callers in one broker share one refresh (single flight);
//   - brokers sharing one Vault take a lease on the connection's entry with
//     check-and-set before spending the refresh token. A refresh token is
//     sent only by the lease holder, and only when the lease has time left
//     for the whole request plus a reserve for storing its answer: each
//     request's deadline is cut from the lease, the lease is renewed (again
//     with check-and-set) before a retry that would not fit, and when it
//     cannot be renewed the token is not sent;
//   - one request per attempt: the token endpoint's client authentication
//     style comes from the connector's catalog entry, or is probed once per
//     client registration and remembered (x/oauth2's auto-detection would
//     send every first request twice, spending a refresh token twice);
//   - a rotated refresh token is written to Vault before the new access
//     token is handed out; when that write fails it is kept in memory and
//     the write retried with backoff, and it is written before this broker
//     would ever spend the old one again;
//   - invalid_grant is re-checked against Vault (another broker may have just
//     rotated the token) before the connection is declared revoked; when the
//     previous lease holder was interrupted (killed after sending), the
//     revocation says that a rotation was probably lost;
//   - errors are classified: transient ones (5xx, 429, network) are retried
//     and leave the connection usable; invalid_grant is terminal.
package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/sync/singleflight"

	"github.com/integrationhub/connections/internal/ctxsleep"
	"github.com/integrationhub/connections/internal/hosts"

	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// Errors callers act on.
var (
	// ErrRevoked means the provider refused the refresh token for good: the
	// connection needs a user to authorize it again.
	ErrRevoked = errors.New("oauth: the app refused the refresh token; the connection must be re-authorized")
	// ErrProviderUnavailable means the provider could not refresh now; the
	// connection stays usable and a later call may succeed.
	ErrProviderUnavailable = errors.New("oauth: the app's token endpoint is unavailable")
	// ErrTokenHostNotAllowed means the stored token endpoint is not among
	// the connection's allowed hosts: nothing was sent.
	ErrTokenHostNotAllowed = errors.New("oauth: the token endpoint is not among the connection's allowed hosts; nothing was sent")
	// ErrNoClient means no OAuth client is registered for the connector.
	ErrNoClient = errors.New("oauth: no OAuth client registered for this app")
)

// Auth styles: how a token endpoint wants the client id and secret. They are
// the values of the catalog's token_auth_style and of vault.OAuth2.AuthStyle.
const (
	// AuthStyleHeader sends them as HTTP Basic authentication (RFC 6749
	// section 2.3.1, the default every server must support).
	AuthStyleHeader = "header"
	// AuthStyleParams sends them as client_id and client_secret form fields.
	AuthStyleParams = "params"
)

// Store is the part of the Vault client this package needs.
type Store interface {
	Get(ctx context.Context, connectionID string) (vault.Record, int, error)
	Put(ctx context.Context, connectionID string, r vault.Record) (int, error)
	PutCAS(ctx context.Context, connectionID string, r vault.Record, version int) (int, error)
	// GetClient reads the live registration of exactly connector and
	// workspace (a refresh uses the client that issued the tokens).
	GetClient(ctx context.Context, connector, workspace string) (vault.OAuthClient, error)
	// GetClientAt reads the registration generation the caller names.
	GetClientAt(ctx context.Context, k vault.ClientKey) (vault.OAuthClient, error)
}

// Config tunes token handling.
type Config struct {
	// Margin is how long before expiry a token is refreshed (in the
	// background while the stored one still works).
	Margin time.Duration
	// LeaseTTL is how long one broker holds a refresh before it must renew
	// its lease. A fifth of it is kept back: no request may run into the
	// last fifth, which is left for storing the answer and for clock skew
	// between brokers.
	LeaseTTL time.Duration
	// RequestTimeout bounds one request to a token endpoint; it must fit in
	// the usable part of a lease (LeaseTTL >= 2 x RequestTimeout).
	RequestTimeout time.Duration
	// Holder names this broker in leases.
	Holder string
	// HTTP calls the providers.
	HTTP *http.Client
	// OnRevoked, when set, is called once by the broker that establishes a
	// connection's revocation, with what an operator should read.
	OnRevoked func(connectionID, detail string)
	// OnRefreshed, when set, is called with each record this broker stored
	// after a refresh (the credential cache keeps it).
	OnRefreshed func(connectionID string, rec vault.Record)
	// OnObtained, when set, is called when this broker stored a token it
	// obtained itself (not one another broker refreshed), with the time it
	// was stored; the connection service shows it.
	OnObtained func(connectionID string, rec vault.Record, at time.Time)
	// Logger logs what an operator must know (a rotation that could not be
	// stored yet). Nil logs nothing.
	Logger *slog.Logger
}

// Manager exchanges codes and refreshes tokens.
type Manager struct {
	cfg   Config
	store Store
	sf    singleflight.Group
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) bool

	mu sync.Mutex
	// styles remembers the probed auth style per client registration.
	styles map[styleKey]string
	// pending holds rotated tokens whose write to Vault has not succeeded.
	pending map[string]rotation
	// background paces background refreshes after failures.
	background map[string]backoff
}

type styleKey struct{ tokenURL, clientID string }

// rotation is a refresh answer not yet stored: next replaces the record
// whose refresh token was spent.
type rotation struct {
	next  vault.Record
	spent string
}

type backoff struct {
	running bool
	next    time.Time
	wait    time.Duration
}

// New returns a manager.
func New(cfg Config, store Store) *Manager {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = cfg.LeaseTTL / 2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, store: store, now: time.Now, sleep: ctxsleep.Sleep,
		styles: map[styleKey]string{}, pending: map[string]rotation{}, background: map[string]backoff{}}
}

// reserve is the end part of a lease in which no request may still run.
func (m *Manager) reserve() time.Duration { return m.cfg.LeaseTTL / 5 }

// skew is how much clocks of two brokers may disagree.
func (m *Manager) skew() time.Duration { return min(m.cfg.LeaseTTL/10, 2*time.Second) }

// Exchange describes an authorization code to redeem.
type Exchange struct {
	ConnectionID, WorkspaceID, Connector string
	Instance                             vault.Instance
	TokenURL, IdentityURL                string
	// AuthStyle is the catalog's token_auth_style; "" probes once.
	AuthStyle                       string
	Code, RedirectURI, CodeVerifier string
	AllowedHosts                    []string           // stored with the tokens
	Test                            *vault.TestRequest // stored with the tokens
	// Client is the registration to redeem the code with (its workspace is
	// stored with the tokens: refreshes use the same client).
	Client vault.ClientKey
	// PrivateNetwork and BaseURL are stored with the tokens (vault.Record).
	PrivateNetwork bool
	BaseURL        string
}

// Redeem exchanges the code, stores the tokens as the connection's secret,
// and returns the granted scopes and the identity the tokens belong to.
func (m *Manager) Redeem(ctx context.Context, x Exchange) (scopes []string, identity string, err error) {
	client, err := m.store.GetClientAt(ctx, x.Client)
	if errors.Is(err, vault.ErrNotFound) {
		err = fmt.Errorf("%w: %s", ErrNoClient, x.Connector)
	}
	if err != nil {
		return nil, "", fmt.Errorf("oauth.Redeem: %w", err)
	}
	clientWS := x.Client.Workspace
	var opts []oauth2.AuthCodeOption
	if x.CodeVerifier != "" {
		opts = append(opts, oauth2.VerifierOption(x.CodeVerifier))
	}
	tok, style, err := m.tokenRequest(ctx, x.TokenURL, client.ClientID, x.AuthStyle, func(ctx context.Context, as oauth2.AuthStyle) (*oauth2.Token, error) {
		cfg := oauth2.Config{ClientID: client.ClientID, ClientSecret: client.ClientSecret, RedirectURL: x.RedirectURI,
			Endpoint: oauth2.Endpoint{TokenURL: x.TokenURL, AuthStyle: as}}
		return cfg.Exchange(ctx, x.Code, opts...)
	})
	if err != nil {
		return nil, "", fmt.Errorf("oauth.Redeem: %w", classify(err))
	}
	rec := vault.Record{
		WorkspaceID: x.WorkspaceID, Connector: x.Connector, AuthType: credentialv1.AuthType_AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE.String(),
		Instance: x.Instance, AllowedHosts: x.AllowedHosts, Test: x.Test, PrivateNetwork: x.PrivateNetwork, BaseURL: x.BaseURL,
		OAuth2: &vault.OAuth2{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: tok.Type(),
			Expiry: tok.Expiry, Scopes: scopesOf(tok), TokenURL: x.TokenURL, ClientWorkspace: clientWS, AuthStyle: style},
	}
	if _, err := m.store.Put(ctx, x.ConnectionID, rec); err != nil {
		return nil, "", fmt.Errorf("oauth.Redeem: %w", err)
	}
	m.forget(x.ConnectionID)
	if x.IdentityURL != "" {
		identity = m.identity(ctx, x.IdentityURL, tok.AccessToken)
	}
	return rec.OAuth2.Scopes, identity, nil
}

// forget drops what this broker holds about a connection's old tokens: a
// new authorization replaces them.
func (m *Manager) forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pending, id)
	delete(m.background, id)
}

// tokenRequest sends one token request in the given style ("" for not
// known). An unknown style is taken from what this broker learned of the
// client registration, else probed: HTTP Basic first and, only when the
// endpoint refuses the client itself (401, or invalid_client), the form
// fields. A refused client authentication spends no grant, so the probe
// never sends a refresh token twice; timeouts and 5xx never trigger it.
func (m *Manager) tokenRequest(ctx context.Context, tokenURL, clientID, style string,
	send func(context.Context, oauth2.AuthStyle) (*oauth2.Token, error)) (*oauth2.Token, string, error) {
	hctx := context.WithValue(ctx, oauth2.HTTPClient, m.cfg.HTTP)
	key := styleKey{tokenURL, clientID}
	if style == "" {
		m.mu.Lock()
		style = m.styles[key]
		m.mu.Unlock()
	}
	if style != "" {
		tok, err := send(hctx, authStyleOf(style))
		return tok, style, err
	}
	tok, err := send(hctx, oauth2.AuthStyleInHeader)
	style = AuthStyleHeader
	if clientRefused(err) {
		tok, err = send(hctx, oauth2.AuthStyleInParams)
		style = AuthStyleParams
	}
	if err == nil || !clientRefused(err) && !errors.Is(classify(err), ErrProviderUnavailable) {
		// The endpoint judged the client: this style is the one it takes.
		m.mu.Lock()
		m.styles[key] = style
		m.mu.Unlock()
	}
	return tok, style, err
}

func authStyleOf(s string) oauth2.AuthStyle {
	if s == AuthStyleParams {
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleInHeader
}

// clientRefused reports whether a token endpoint refused the client's
// authentication (not the grant).
func clientRefused(err error) bool {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return false
	}
	return re.ErrorCode == "invalid_client" || re.Response != nil && re.Response.StatusCode == http.StatusUnauthorized
}

// Fresh returns rec with an access token a worker can use now. A token that
// is fresh is returned as it is; one inside the refresh margin but not yet
// expired is also returned at once while a refresh runs in the background;
// only an expired (or missing) token makes the caller wait for a refresh.
func (m *Manager) Fresh(ctx context.Context, connectionID string, rec vault.Record) (vault.Record, error) {
	if rec.OAuth2.Invalid != "" {
		return rec, ErrRevoked
	}
	now := m.now()
	if m.IsFresh(rec.OAuth2, now) {
		return rec, nil
	}
	if m.Usable(rec.OAuth2, now) {
		m.Prefetch(connectionID)
		return rec, nil
	}
	return m.shared(ctx, connectionID, func(t *vault.OAuth2) bool { return !m.fresh(t) })
}

// Prefetch starts a background refresh of a connection whose token is
// inside the refresh margin, unless one is running or a failed one is
// still backing off (1 s doubling to 1 min).
func (m *Manager) Prefetch(connectionID string) {
	now := m.now()
	m.mu.Lock()
	b := m.background[connectionID]
	if b.running || now.Before(b.next) {
		m.mu.Unlock()
		return
	}
	b.running = true
	m.background[connectionID] = b
	m.mu.Unlock()
	go func() {
		rec, err := m.shared(context.Background(), connectionID, func(t *vault.OAuth2) bool { return !m.fresh(t) })
		if err == nil && m.cfg.OnRefreshed != nil {
			// Also when another broker did the refresh: the cache gets the
			// fresh token and stops asking.
			m.cfg.OnRefreshed(connectionID, rec)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if err == nil {
			delete(m.background, connectionID)
			return
		}
		b := m.background[connectionID]
		b.running = false
		b.wait = min(max(2*b.wait, time.Second), time.Minute)
		b.next = m.now().Add(b.wait)
		m.background[connectionID] = b
		m.cfg.Logger.Warn("background token refresh failed; the stored token is served until it expires",
			"connection_id", connectionID, "retry_in", b.wait, "err", err)
	}()
}

// Replace returns rec with a new access token when the stored one is still
// the token the app refused; when another caller (or broker) already
// replaced it, the current one is returned without a refresh.
func (m *Manager) Replace(ctx context.Context, connectionID, refused string) (vault.Record, error) {
	return m.shared(ctx, connectionID, func(t *vault.OAuth2) bool { return t.AccessToken == refused || !m.fresh(t) })
}

// shared runs one refresh per connection in this process; callers share its
// result. It runs detached from any one caller's cancellation: the others
// wait on it, and abandoning it half-way would strand the lease. Its own
// bound covers waiting out another broker's lease, then holding one.
func (m *Manager) shared(ctx context.Context, connectionID string, needs func(*vault.OAuth2) bool) (vault.Record, error) {
	ch := m.sf.DoChan(connectionID, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*m.cfg.LeaseTTL)
		defer cancel()
		return m.refresh(ctx, connectionID, needs)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return vault.Record{}, r.Err
		}
		return r.Val.(vault.Record), nil
	case <-ctx.Done():
		return vault.Record{}, fmt.Errorf("oauth: waiting for a refresh: %w: %w", ErrProviderUnavailable, ctx.Err())
	}
}

func (m *Manager) fresh(t *vault.OAuth2) bool { return m.IsFresh(t, m.now()) }

// IsFresh reports whether t's access token is good for at least the margin.
func (m *Manager) IsFresh(t *vault.OAuth2, now time.Time) bool {
	return t.AccessToken != "" && (t.Expiry.IsZero() || now.Add(m.cfg.Margin).Before(t.Expiry))
}

// Usable reports whether t's access token still works now, allowing for
// clock skew between this broker and the app.
func (m *Manager) Usable(t *vault.OAuth2, now time.Time) bool {
	return t.AccessToken != "" && t.Invalid == "" && (t.Expiry.IsZero() || now.Add(m.skew()).Before(t.Expiry))
}

// refresh runs the cross-broker protocol: read, take the lease with
// check-and-set, spend the refresh token, write the result with
// check-and-set (which also ends the lease). needs says whether the stored
// token must go.
func (m *Manager) refresh(ctx context.Context, id string, needs func(*vault.OAuth2) bool) (vault.Record, error) {
	for wait := 50 * time.Millisecond; ; {
		rec, ver, err := m.store.Get(ctx, id)
		if err != nil {
			return vault.Record{}, fmt.Errorf("oauth.refresh: %w", err)
		}
		t := rec.OAuth2
		if t == nil {
			return vault.Record{}, fmt.Errorf("oauth.refresh: %s holds no OAuth tokens", id)
		}
		if p, ok := m.pendingFor(id); ok {
			// A rotation this broker could not store yet: store it before
			// anything else, so the spent token is never sent again.
			if t.RefreshToken != p.spent {
				m.dropPending(id, p.spent)
			} else if _, err := m.storeRefreshed(ctx, id, p.next, ver, p.spent); err != nil {
				return vault.Record{}, err
			}
			continue // look again: the stored rotation may itself need a refresh by now
		}
		switch {
		case t.Invalid != "":
			return rec, ErrRevoked
		case !needs(t):
			return rec, nil // another broker refreshed it
		case t.Lease != nil && t.Lease.Holder != m.cfg.Holder && m.now().Before(t.Lease.Until):
			// Another broker is refreshing: wait for its result or its lease to end.
			if !m.sleep(ctx, wait) {
				return vault.Record{}, fmt.Errorf("oauth.refresh: waiting for another broker's refresh: %w", ErrProviderUnavailable)
			}
			wait = min(2*wait, time.Second)
			continue
		}
		leased := rec
		lt := *t
		lt.Lease = &vault.Lease{Holder: m.cfg.Holder, Until: m.now().Add(m.cfg.LeaseTTL)}
		if t.Lease != nil {
			// Its holder never finished: it may have died after sending.
			lt.Lease.Interrupted = t.Lease.Holder
		}
		leased.OAuth2 = &lt
		leaseVer, err := m.store.PutCAS(ctx, id, leased, ver)
		if errors.Is(err, vault.ErrVersionMismatch) {
			continue // someone else moved first; look again
		}
		if err != nil {
			return vault.Record{}, fmt.Errorf("oauth.refresh: take lease: %w", err)
		}
		return m.spend(ctx, id, leased, leaseVer)
	}
}

// errLeaseLost means the lease could not be renewed: the refresh token was
// not sent.
var errLeaseLost = fmt.Errorf("%w: the refresh lease could not be renewed, so the refresh token was not sent", ErrProviderUnavailable)

// spend gets a new access token while holding the lease: with the refresh
// token, or for client-credentials connections with the client id and secret.
// At most three attempts, each one request whose deadline fits in the lease.
func (m *Manager) spend(ctx context.Context, id string, rec vault.Record, leaseVer int) (vault.Record, error) {
	t := rec.OAuth2
	// A refresh token (or client secret) goes only to the connection's own
	// hosts, whichever path asked for the refresh. A record from before
	// hosts were bound keeps the endpoint the catalog gave it when it was
	// authorized.
	if err := hosts.Allow(rec.AllowedHosts, t.TokenURL); err != nil && !errors.Is(err, hosts.ErrUnbound) {
		m.release(ctx, id, rec, leaseVer, "")
		return vault.Record{}, fmt.Errorf("oauth.refresh %s: %w", id, ErrTokenHostNotAllowed)
	}
	var send func(context.Context, oauth2.AuthStyle) (*oauth2.Token, error)
	clientID := ""
	if rec.APIKey != nil { // client credentials: the connection holds its own client
		clientID = rec.APIKey.Key
		send = func(ctx context.Context, as oauth2.AuthStyle) (*oauth2.Token, error) {
			return (&clientcredentials.Config{ClientID: rec.APIKey.Key, ClientSecret: rec.APIKey.Secret,
				TokenURL: t.TokenURL, Scopes: t.Scopes, AuthStyle: as}).Token(ctx)
		}
	} else {
		client, err := m.store.GetClient(ctx, rec.Connector, t.ClientWorkspace)
		if errors.Is(err, vault.ErrNotFound) {
			err = fmt.Errorf("%w: %s", ErrNoClient, rec.Connector)
		}
		if err != nil {
			m.release(ctx, id, rec, leaseVer, "")
			return vault.Record{}, fmt.Errorf("oauth.refresh: client: %w", err)
		}
		clientID = client.ClientID
		send = func(ctx context.Context, as oauth2.AuthStyle) (*oauth2.Token, error) {
			cfg := oauth2.Config{ClientID: client.ClientID, ClientSecret: client.ClientSecret,
				Endpoint: oauth2.Endpoint{TokenURL: t.TokenURL, AuthStyle: as}}
			return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: t.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
		}
	}
	var tok *oauth2.Token
	var style string
	var err error
	for attempt, wait := 0, 200*time.Millisecond; ; attempt, wait = attempt+1, wait*2 {
		// The whole request must end before the lease's reserve begins.
		if m.leaseLeft(rec) < m.cfg.RequestTimeout {
			if rec, leaseVer, err = m.renew(ctx, id, rec, leaseVer); err != nil {
				return vault.Record{}, fmt.Errorf("oauth.refresh %s: %w", id, err)
			}
		}
		rctx, cancel := context.WithTimeout(ctx, min(m.cfg.RequestTimeout, m.leaseLeft(rec)))
		tok, style, err = m.tokenRequest(rctx, t.TokenURL, clientID, t.AuthStyle, send)
		cancel()
		if err == nil || !errors.Is(classify(err), ErrProviderUnavailable) || attempt == 2 {
			break
		}
		if !m.sleep(ctx, wait) {
			break
		}
	}
	if err != nil {
		err = classify(err)
		if errors.Is(err, ErrRevoked) {
			return m.recheckRevoked(ctx, id, rec, leaseVer)
		}
		m.release(ctx, id, rec, leaseVer, "")
		return vault.Record{}, fmt.Errorf("oauth.refresh %s: %w", id, err)
	}
	next := rec
	nt := *t
	nt.AccessToken, nt.TokenType, nt.Expiry, nt.Lease, nt.AuthStyle = tok.AccessToken, tok.Type(), tok.Expiry, nil, style
	if tok.RefreshToken != "" { // rotation; without one, the old one stays good
		nt.RefreshToken = tok.RefreshToken
	}
	if s := scopesOf(tok); len(s) > 0 {
		nt.Scopes = s
	}
	next.OAuth2 = &nt
	// Stored before anyone gets the new access token.
	return m.storeRefreshed(ctx, id, next, leaseVer, t.RefreshToken)
}

// leaseLeft is how long a request may still run under rec's lease.
func (m *Manager) leaseLeft(rec vault.Record) time.Duration {
	return rec.OAuth2.Lease.Until.Sub(m.now()) - m.reserve()
}

// renew extends this broker's lease with check-and-set. It fails when the
// lease was taken over or Vault refuses the write; the caller then must not
// send the refresh token.
func (m *Manager) renew(ctx context.Context, id string, rec vault.Record, ver int) (vault.Record, int, error) {
	r := rec
	t := *rec.OAuth2
	l := *t.Lease
	l.Until = m.now().Add(m.cfg.LeaseTTL)
	t.Lease = &l
	r.OAuth2 = &t
	v, err := m.store.PutCAS(ctx, id, r, ver)
	if err != nil {
		return rec, ver, fmt.Errorf("%w (%v)", errLeaseLost, err)
	}
	return r, v, nil
}

// storeRefreshed writes the refreshed record over the leased version,
// retrying with backoff while Vault refuses. If the lease was lost (it ran
// out), the write still goes in as long as nobody stored a newer token: ours
// is the only one that works now. When it cannot be written in time, the
// rotation is kept in memory and written before this broker refreshes the
// connection again; the caller gets Unavailable meanwhile.
func (m *Manager) storeRefreshed(ctx context.Context, id string, next vault.Record, ver int, spent string) (vault.Record, error) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		_, err := m.store.PutCAS(ctx, id, next, ver)
		if err == nil {
			m.dropPending(id, spent)
			if m.cfg.OnRefreshed != nil {
				m.cfg.OnRefreshed(id, next)
			}
			if m.cfg.OnObtained != nil {
				m.cfg.OnObtained(id, next, time.Now())
			}
			return next, nil
		}
		if errors.Is(err, vault.ErrVersionMismatch) {
			cur, curVer, gerr := m.store.Get(ctx, id)
			if gerr == nil {
				if cur.OAuth2 == nil || cur.OAuth2.RefreshToken != spent {
					m.dropPending(id, spent)
					return cur, nil // someone stored a newer token (a re-authorization); it stands
				}
				ver = curVer
				continue
			}
			err = gerr
		}
		m.keepPending(id, rotation{next: next, spent: spent})
		m.cfg.Logger.Warn("could not store a rotated refresh token yet; retrying (workers get Unavailable until it is stored)",
			"connection_id", id, "retry_in", wait, "err", err)
		if !m.sleep(ctx, wait) {
			m.cfg.Logger.Error("a rotated refresh token is still not stored; this broker keeps it and stores it before its next refresh of the connection",
				"connection_id", id, "err", err)
			return vault.Record{}, fmt.Errorf("oauth.refresh: store tokens: %w: %w", ErrProviderUnavailable, err)
		}
	}
}

func (m *Manager) pendingFor(id string) (rotation, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pending[id]
	return p, ok
}

func (m *Manager) keepPending(id string, p rotation) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending[id] = p
}

func (m *Manager) dropPending(id, spent string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.pending[id]; ok && p.spent == spent {
		delete(m.pending, id)
	}
}

// recheckRevoked handles invalid_grant: if the stored refresh token changed
// meanwhile, another broker rotated it and all is well; otherwise the
// connection is revoked, which is recorded so that no broker tries again.
func (m *Manager) recheckRevoked(ctx context.Context, id string, leased vault.Record, leaseVer int) (vault.Record, error) {
	cur, _, err := m.store.Get(ctx, id)
	if err == nil && cur.OAuth2 != nil && cur.OAuth2.RefreshToken != leased.OAuth2.RefreshToken {
		return cur, nil // rotated by another broker meanwhile: its token stands
	}
	detail := "the app refused the refresh token (invalid_grant); re-authorize the connection"
	if by := leased.OAuth2.Lease.Interrupted; by != "" {
		detail = fmt.Sprintf("rotation lost: the app refused the stored refresh token (invalid_grant) after broker %s stopped in the middle of a refresh; "+
			"the app probably rotated the token and the answer never reached Vault (not a user revoking access); re-authorize the connection", by)
	}
	m.release(ctx, id, leased, leaseVer, "revoked")
	if m.cfg.OnRevoked != nil {
		m.cfg.OnRevoked(id, detail)
	}
	return vault.Record{}, fmt.Errorf("oauth.refresh %s: %w", id, ErrRevoked)
}

// release drops the lease (and records a terminal failure, if any).
func (m *Manager) release(ctx context.Context, id string, rec vault.Record, ver int, invalid string) {
	r := rec
	t := *rec.OAuth2
	t.Lease, t.Invalid = nil, invalid
	r.OAuth2 = &t
	_, _ = m.store.PutCAS(ctx, id, r, ver) // a lost race leaves the lease to run out
}

// classify maps an x/oauth2 error onto this package's errors. Messages name
// the provider's error code, never a token.
func classify(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := 0
		if re.Response != nil {
			code = re.Response.StatusCode
		}
		switch {
		case re.ErrorCode == "invalid_grant":
			return fmt.Errorf("%w (invalid_grant)", ErrRevoked)
		case code >= 500 || code == http.StatusTooManyRequests:
			return fmt.Errorf("%w: status %d", ErrProviderUnavailable, code)
		}
		return fmt.Errorf("oauth: token endpoint refused: status %d %s", code, re.ErrorCode)
	}
	return fmt.Errorf("%w: %v", ErrProviderUnavailable, redactURLs(err))
}

// redactURLs keeps error text short of query strings, which may carry codes.
func redactURLs(err error) string {
	s := err.Error()
	if i := strings.Index(s, "?"); i >= 0 {
		s = s[:i]
	}
	return s
}

func scopesOf(tok *oauth2.Token) []string {
	if s, ok := tok.Extra("scope").(string); ok && s != "" {
		return strings.Fields(s)
	}
	return nil
}

// identity asks the app who the token belongs to; "" when it will not say.
func (m *Manager) identity(ctx context.Context, url, accessToken string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ""
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := m.cfg.HTTP.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return Identity(resp.Body)
}

// Identity picks who an app's "who am I" answer names: the first of email,
// login, username, name, sub or id in a JSON object; "" otherwise.
func Identity(body io.Reader) string {
	var m map[string]any
	if err := json.NewDecoder(io.LimitReader(body, 1<<16)).Decode(&m); err != nil {
		return ""
	}
	for _, k := range []string{"email", "login", "username", "name", "sub", "id"} {
		if v, ok := m[k].(string); ok && v != "" {
			return v
		}
	}
	return ""
}
