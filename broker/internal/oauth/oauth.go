// Package oauth runs the token side of OAuth 2.0 for the broker: redeeming
// authorization codes and keeping access tokens fresh.
//
// Refreshing is where integration platforms lose connections, so it is
// careful:
//   - a token is refreshed Margin before it expires, not after;
//   - callers in one broker share one refresh (single flight);
//   - brokers sharing one Vault take a lease on the connection's entry with
//     check-and-set before spending the refresh token, so that a refresh token
//     is never spent twice; a broker that dies holding the lease loses it when
//     the lease ends, and the next one refreshes with the same stored token;
//   - a rotated refresh token is written to Vault before the new access token
//     is handed out, and a response without one keeps the old one;
//   - invalid_grant is re-checked against Vault (another broker may have just
//     rotated the token) before the connection is declared revoked;
//   - errors are classified: transient ones (5xx, 429, network) are retried
//     and leave the connection usable; invalid_grant is terminal.
package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/sync/singleflight"

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
	// ErrNoClient means no OAuth client is registered for the connector.
	ErrNoClient = errors.New("oauth: no OAuth client registered for this app")
)

// Store is the part of the Vault client this package needs.
type Store interface {
	Get(ctx context.Context, connectionID string) (vault.Record, int, error)
	Put(ctx context.Context, connectionID string, r vault.Record) (int, error)
	PutCAS(ctx context.Context, connectionID string, r vault.Record, version int) (int, error)
	GetClient(ctx context.Context, connector, workspace string) (vault.OAuthClient, error)
}

// Config tunes token handling.
type Config struct {
	// Margin is how long before expiry a token is refreshed.
	Margin time.Duration
	// LeaseTTL bounds how long one broker may hold a refresh; it must exceed
	// the provider call with its retries.
	LeaseTTL time.Duration
	// Holder names this broker in leases.
	Holder string
	// HTTP calls the providers; it must have a timeout.
	HTTP *http.Client
	// OnRevoked, when set, is called once by the broker that establishes a
	// connection's revocation.
	OnRevoked func(connectionID string)
}

// Manager exchanges codes and refreshes tokens.
type Manager struct {
	cfg   Config
	store Store
	sf    singleflight.Group
	now   func() time.Time
}

// New returns a manager.
func New(cfg Config, store Store) *Manager {
	return &Manager{cfg: cfg, store: store, now: time.Now}
}

// Exchange describes an authorization code to redeem.
type Exchange struct {
	ConnectionID, WorkspaceID, Connector string
	Instance                             vault.Instance
	TokenURL, IdentityURL                string
	Code, RedirectURI, CodeVerifier      string
	AllowedHosts                         []string           // stored with the tokens
	Test                                 *vault.TestRequest // stored with the tokens
}

// Redeem exchanges the code, stores the tokens as the connection's secret,
// and returns the granted scopes and the identity the tokens belong to.
func (m *Manager) Redeem(ctx context.Context, x Exchange) (scopes []string, identity string, err error) {
	client, clientWS, err := m.client(ctx, x.Connector, x.WorkspaceID)
	if err != nil {
		return nil, "", err
	}
	cfg := oauth2.Config{ClientID: client.ClientID, ClientSecret: client.ClientSecret, RedirectURL: x.RedirectURI,
		Endpoint: oauth2.Endpoint{TokenURL: x.TokenURL}}
	var opts []oauth2.AuthCodeOption
	if x.CodeVerifier != "" {
		opts = append(opts, oauth2.VerifierOption(x.CodeVerifier))
	}
	tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, m.cfg.HTTP), x.Code, opts...)
	if err != nil {
		return nil, "", fmt.Errorf("oauth.Redeem: %w", classify(err))
	}
	rec := vault.Record{
		WorkspaceID: x.WorkspaceID, Connector: x.Connector, AuthType: "AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE",
		Instance: x.Instance, AllowedHosts: x.AllowedHosts, Test: x.Test,
		OAuth2: &vault.OAuth2{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: tok.Type(),
			Expiry: tok.Expiry, Scopes: scopesOf(tok), TokenURL: x.TokenURL, ClientWorkspace: clientWS},
	}
	if _, err := m.store.Put(ctx, x.ConnectionID, rec); err != nil {
		return nil, "", fmt.Errorf("oauth.Redeem: %w", err)
	}
	if x.IdentityURL != "" {
		identity = m.identity(ctx, x.IdentityURL, tok.AccessToken)
	}
	return rec.OAuth2.Scopes, identity, nil
}

// client finds the workspace's own OAuth app, else the platform's.
func (m *Manager) client(ctx context.Context, connector, workspace string) (vault.OAuthClient, string, error) {
	if workspace != "" {
		c, err := m.store.GetClient(ctx, connector, workspace)
		if err == nil {
			return c, workspace, nil
		}
		if !errors.Is(err, vault.ErrNotFound) {
			return vault.OAuthClient{}, "", err
		}
	}
	c, err := m.store.GetClient(ctx, connector, "")
	if errors.Is(err, vault.ErrNotFound) {
		return vault.OAuthClient{}, "", fmt.Errorf("%w: %s", ErrNoClient, connector)
	}
	return c, "", err
}

// Fresh returns rec with an access token that is good for at least Margin,
// refreshing it when needed.
func (m *Manager) Fresh(ctx context.Context, connectionID string, rec vault.Record) (vault.Record, error) {
	if rec.OAuth2.Invalid != "" {
		return rec, ErrRevoked
	}
	if m.fresh(rec.OAuth2) {
		return rec, nil
	}
	return m.shared(ctx, connectionID, func(t *vault.OAuth2) bool { return !m.fresh(t) })
}

// Replace returns rec with a new access token when the stored one is still
// the token the app refused; when another caller (or broker) already
// replaced it, the current one is returned without a refresh.
func (m *Manager) Replace(ctx context.Context, connectionID, refused string) (vault.Record, error) {
	return m.shared(ctx, connectionID, func(t *vault.OAuth2) bool { return t.AccessToken == refused || !m.fresh(t) })
}

// shared runs one refresh per connection in this process; callers share its
// result. It runs detached from any one caller's cancellation: the others
// wait on it, and abandoning it half-way would strand the lease.
func (m *Manager) shared(ctx context.Context, connectionID string, needs func(*vault.OAuth2) bool) (vault.Record, error) {
	ch := m.sf.DoChan(connectionID, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.LeaseTTL+m.cfg.Margin)
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
		return vault.Record{}, ctx.Err()
	}
}

func (m *Manager) fresh(t *vault.OAuth2) bool { return m.IsFresh(t, m.now()) }

// IsFresh reports whether t's access token is good for at least the margin.
func (m *Manager) IsFresh(t *vault.OAuth2, now time.Time) bool {
	return t.AccessToken != "" && (t.Expiry.IsZero() || now.Add(m.cfg.Margin).Before(t.Expiry))
}

// refresh runs the cross-broker protocol: read, take the lease with
// check-and-set, spend the refresh token, write the result with
// check-and-set, release. needs says whether the stored token must go.
func (m *Manager) refresh(ctx context.Context, id string, needs func(*vault.OAuth2) bool) (vault.Record, error) {
	for {
		rec, ver, err := m.store.Get(ctx, id)
		if err != nil {
			return vault.Record{}, fmt.Errorf("oauth.refresh: %w", err)
		}
		t := rec.OAuth2
		switch {
		case t == nil:
			return vault.Record{}, fmt.Errorf("oauth.refresh: %s holds no OAuth tokens", id)
		case t.Invalid != "":
			return rec, ErrRevoked
		case !needs(t):
			return rec, nil // another broker refreshed it
		case t.Lease != nil && t.Lease.Holder != m.cfg.Holder && m.now().Before(t.Lease.Until):
			// Another broker is refreshing: wait for its result or its lease to end.
			select {
			case <-ctx.Done():
				return vault.Record{}, fmt.Errorf("oauth.refresh: waiting for another broker's refresh: %w", ErrProviderUnavailable)
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		leased := rec
		lt := *t
		lt.Lease = &vault.Lease{Holder: m.cfg.Holder, Until: m.now().Add(m.cfg.LeaseTTL)}
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

// spend gets a new access token while holding the lease: with the refresh
// token, or for client-credentials connections with the client id and secret.
func (m *Manager) spend(ctx context.Context, id string, rec vault.Record, leaseVer int) (vault.Record, error) {
	t := rec.OAuth2
	hctx := context.WithValue(ctx, oauth2.HTTPClient, m.cfg.HTTP)
	var source oauth2.TokenSource
	if rec.APIKey != nil { // client credentials: the connection holds its own client
		source = (&clientcredentials.Config{ClientID: rec.APIKey.Key, ClientSecret: rec.APIKey.Secret,
			TokenURL: t.TokenURL, Scopes: t.Scopes}).TokenSource(hctx)
	} else {
		client, err := m.store.GetClient(ctx, rec.Connector, t.ClientWorkspace)
		if err != nil {
			m.release(ctx, id, rec, leaseVer, "")
			return vault.Record{}, fmt.Errorf("oauth.refresh: client: %w", err)
		}
		cfg := oauth2.Config{ClientID: client.ClientID, ClientSecret: client.ClientSecret, Endpoint: oauth2.Endpoint{TokenURL: t.TokenURL}}
		source = cfg.TokenSource(hctx, &oauth2.Token{RefreshToken: t.RefreshToken, Expiry: time.Unix(1, 0)})
	}
	var tok *oauth2.Token
	var err error
	for attempt, wait := 0, 200*time.Millisecond; ; attempt, wait = attempt+1, wait*2 {
		tok, err = source.Token()
		if err == nil || !errors.Is(classify(err), ErrProviderUnavailable) || attempt == 2 {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
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
	nt.AccessToken, nt.TokenType, nt.Expiry, nt.Lease = tok.AccessToken, tok.Type(), tok.Expiry, nil
	if tok.RefreshToken != "" { // rotation; without one, the old one stays good
		nt.RefreshToken = tok.RefreshToken
	}
	if s := scopesOf(tok); len(s) > 0 {
		nt.Scopes = s
	}
	next.OAuth2 = &nt
	// Stored before anyone gets the new access token.
	return next, m.storeRefreshed(ctx, id, next, leaseVer, t.RefreshToken)
}

// storeRefreshed writes the refreshed record over the leased version. If the lease
// was lost (it ran out), the write still goes in as long as nobody stored a
// newer token: ours is the only one that works now.
func (m *Manager) storeRefreshed(ctx context.Context, id string, next vault.Record, ver int, spent string) error {
	for {
		_, err := m.store.PutCAS(ctx, id, next, ver)
		if !errors.Is(err, vault.ErrVersionMismatch) {
			if err != nil {
				return fmt.Errorf("oauth.refresh: store tokens: %w", err)
			}
			return nil
		}
		cur, curVer, err := m.store.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("oauth.refresh: store tokens: %w", err)
		}
		if cur.OAuth2 == nil || cur.OAuth2.RefreshToken != spent {
			return nil // someone stored a newer token; ours is not needed
		}
		ver = curVer
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
	m.release(ctx, id, leased, leaseVer, "revoked")
	if m.cfg.OnRevoked != nil {
		m.cfg.OnRevoked(id)
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
