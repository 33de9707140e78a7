// Package oauth1 runs OAuth 1.0a for the broker: the three-legged flow, and
// signing workers' requests so that the token secret never leaves the broker.
package oauth1

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/dghubble/oauth1"

	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"

	"github.com/integrationhub/connections/broker/internal/oauth"
	"github.com/integrationhub/connections/broker/internal/vault"
)

// ErrClientChanged means the OAuth client registration that applies to the
// connection is another one than the authorization started with.
var ErrClientChanged = errors.New("oauth1: the OAuth client registration changed during the authorization; start again")

// ErrNoPending means no authorization is waiting for that request token.
var ErrNoPending = errors.New("oauth1: no authorization is pending for this request token; start again")

// Store is the part of the Vault client this package needs.
type Store interface {
	Get(ctx context.Context, connectionID string) (vault.Record, int, error)
	Put(ctx context.Context, connectionID string, r vault.Record) (int, error)
	// GetClient reads the live registration of exactly connector and
	// workspace.
	GetClient(ctx context.Context, connector, workspace string) (vault.OAuthClient, error)
	// GetClientAt reads the registration generation the caller names.
	GetClientAt(ctx context.Context, k vault.ClientKey) (vault.OAuthClient, error)
}

// Manager runs the flow and signs requests.
type Manager struct {
	store Store
	http  *http.Client
}

// New returns a manager; hc calls the apps and must have a timeout.
func New(store Store, hc *http.Client) *Manager { return &Manager{store: store, http: hc} }

// Start describes an authorization to start.
type Start struct {
	ConnectionID, WorkspaceID, Connector          string
	Instance                                      vault.Instance
	RequestTokenURL, AuthorizeURL, AccessTokenURL string
	CallbackURL                                   string
	AllowedHosts                                  []string           // stored with the tokens
	Test                                          *vault.TestRequest // stored with the tokens
	// Client is the consumer registration to use (its workspace is stored
	// with the tokens: completion and signing use the same client).
	Client vault.ClientKey
	// PrivateNetwork and BaseURL are stored with the tokens (vault.Record).
	PrivateNetwork bool
	BaseURL        string
}

// Begin gets a request token and returns the URL the user visits. The
// request secret waits in Vault beside any token the connection has now, so
// that re-authorization keeps the old token working until it succeeds.
func (m *Manager) Begin(ctx context.Context, s Start) (string, error) {
	client, err := m.store.GetClientAt(ctx, s.Client)
	if errors.Is(err, vault.ErrNotFound) {
		err = fmt.Errorf("%w: %s", oauth.ErrNoClient, s.Connector)
	}
	if err != nil {
		return "", fmt.Errorf("oauth1.Begin: %w", err)
	}
	clientWS := s.Client.Workspace
	cfg := m.config(client, oauth1.Endpoint{RequestTokenURL: s.RequestTokenURL, AuthorizeURL: s.AuthorizeURL, AccessTokenURL: s.AccessTokenURL})
	cfg.CallbackURL = s.CallbackURL
	reqToken, reqSecret, err := cfg.RequestToken()
	if err != nil {
		return "", fmt.Errorf("oauth1.Begin: request token: %w", oauth.ErrProviderUnavailable)
	}
	rec, _, err := m.store.Get(ctx, s.ConnectionID)
	if err != nil && !errors.Is(err, vault.ErrNotFound) {
		return "", fmt.Errorf("oauth1.Begin: %w", err)
	}
	if rec.OAuth1 == nil {
		rec = vault.Record{WorkspaceID: s.WorkspaceID, Connector: s.Connector, AuthType: credentialv1.AuthType_AUTH_TYPE_OAUTH1.String(), PrivateNetwork: s.PrivateNetwork,
			Instance: s.Instance, OAuth1: &vault.OAuth1{}}
	}
	rec.OAuth1.ClientWorkspace = clientWS
	rec.AllowedHosts, rec.Test, rec.PrivateNetwork, rec.BaseURL = s.AllowedHosts, s.Test, s.PrivateNetwork, s.BaseURL
	rec.OAuth1.Pending = &vault.OAuth1Pending{RequestToken: reqToken, RequestSecret: reqSecret, AccessTokenURL: s.AccessTokenURL}
	if _, err := m.store.Put(ctx, s.ConnectionID, rec); err != nil {
		return "", fmt.Errorf("oauth1.Begin: %w", err)
	}
	u, err := cfg.AuthorizationURL(reqToken)
	if err != nil {
		return "", fmt.Errorf("oauth1.Begin: %w", err)
	}
	return u.String(), nil
}

// Complete trades the authorized request token for the access token, with
// the consumer registration client names (its workspace and generation; the
// connector is the connection's): the live generation of the one Begin used.
func (m *Manager) Complete(ctx context.Context, connectionID, requestToken, verifier, identityURL string, client vault.ClientKey) (string, error) {
	rec, _, err := m.store.Get(ctx, connectionID)
	if err != nil {
		return "", fmt.Errorf("oauth1.Complete: %w", err)
	}
	if rec.OAuth1 == nil || rec.OAuth1.Pending == nil || rec.OAuth1.Pending.RequestToken != requestToken {
		return "", ErrNoPending
	}
	p := rec.OAuth1.Pending
	if client.Workspace != rec.OAuth1.ClientWorkspace {
		return "", ErrClientChanged
	}
	client.Connector = rec.Connector
	consumer, err := m.store.GetClientAt(ctx, client)
	if errors.Is(err, vault.ErrNotFound) {
		err = fmt.Errorf("%w: %s", oauth.ErrNoClient, rec.Connector)
	}
	if err != nil {
		return "", fmt.Errorf("oauth1.Complete: client: %w", err)
	}
	cfg := m.config(consumer, oauth1.Endpoint{AccessTokenURL: p.AccessTokenURL})
	tok, secret, err := cfg.AccessToken(p.RequestToken, p.RequestSecret, verifier)
	if err != nil {
		return "", fmt.Errorf("oauth1.Complete: access token: %w", errRefused)
	}
	rec.OAuth1 = &vault.OAuth1{Token: tok, TokenSecret: secret, ClientWorkspace: rec.OAuth1.ClientWorkspace}
	if _, err := m.store.Put(ctx, connectionID, rec); err != nil {
		return "", fmt.Errorf("oauth1.Complete: %w", err)
	}
	if identityURL == "" {
		return "", nil
	}
	h, err := m.sign(ctx, consumer, rec, http.MethodGet, identityURL, nil)
	if err != nil {
		return "", nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, identityURL, nil)
	if err != nil {
		return "", nil
	}
	req.Header.Set("Authorization", h)
	resp, err := m.http.Do(req)
	if err != nil {
		return "", nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", nil
	}
	return oauth.Identity(resp.Body), nil
}

var errRefused = errors.New("the app refused the request token or verifier")

// ErrRefused reports whether err is the app refusing the authorization.
func ErrRefused(err error) bool { return errors.Is(err, errRefused) }

// Sign returns the Authorization header for one request, signed with the
// connection's token (HMAC-SHA1, as OAuth 1.0a apps expect).
func (m *Manager) Sign(ctx context.Context, rec vault.Record, method, rawURL string, form map[string]string) (string, error) {
	if rec.OAuth1 == nil || rec.OAuth1.Token == "" {
		return "", ErrNoPending
	}
	client, err := m.store.GetClient(ctx, rec.Connector, rec.OAuth1.ClientWorkspace)
	if errors.Is(err, vault.ErrNotFound) {
		err = fmt.Errorf("%w: %s", oauth.ErrNoClient, rec.Connector)
	}
	if err != nil {
		return "", fmt.Errorf("oauth1.Sign: client: %w", err)
	}
	return m.sign(ctx, client, rec, method, rawURL, form)
}

// sign signs one request with the connection's token and consumer client.
func (m *Manager) sign(ctx context.Context, client vault.OAuthClient, rec vault.Record, method, rawURL string, form map[string]string) (string, error) {
	var body *strings.Reader
	if len(form) > 0 {
		v := url.Values{}
		for k, x := range form {
			v.Set(k, x)
		}
		body = strings.NewReader(v.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return "", fmt.Errorf("oauth1.Sign: %w", err)
	}
	if len(form) > 0 {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	// The library signs requests in its transport; this one records the
	// header instead of sending anything.
	rec2 := &recorder{}
	hc := oauth1.NewClient(context.WithValue(ctx, oauth1.HTTPClient, &http.Client{Transport: rec2}),
		m.config(client, oauth1.Endpoint{}), oauth1.NewToken(rec.OAuth1.Token, rec.OAuth1.TokenSecret))
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("oauth1.Sign: %w", err)
	}
	resp.Body.Close()
	return rec2.header, nil
}

type recorder struct{ header string }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.header = req.Header.Get("Authorization")
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: req, Header: http.Header{}}, nil
}

func (m *Manager) config(c vault.OAuthClient, ep oauth1.Endpoint) *oauth1.Config {
	cfg := oauth1.NewConfig(c.ClientID, c.ClientSecret)
	cfg.Endpoint = ep
	cfg.HTTPClient = m.http
	return cfg
}
