// Package vault keeps connection secrets in HashiCorp Vault's KV v2 engine.
// It is the only package of the broker that imports the Vault client.
//
// Each connection has one KV entry at <mount>/data/<prefix>/connections/<id>
// holding a Record. Deleting a connection deletes the entry's metadata, which
// destroys every version.
package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// Errors callers can act on. Messages never contain secret values.
var (
	// ErrNotFound means no secret is stored for the connection.
	ErrNotFound = errors.New("vault: no secret stored")
	// ErrUnavailable means Vault could not be reached or is sealed.
	ErrUnavailable = errors.New("vault: unavailable")
	// ErrVersionMismatch means a check-and-set write lost: the entry changed
	// since it was read.
	ErrVersionMismatch = errors.New("vault: version changed since read")
)

// Record is what the broker keeps per connection: the secret material and the
// non-secret attributes a worker needs beside it.
type Record struct {
	WorkspaceID string   `json:"workspace_id"`
	Connector   string   `json:"connector"`
	AuthType    string   `json:"auth_type"`
	Instance    Instance `json:"instance"`
	Basic       *Basic   `json:"basic,omitempty"`
	APIKey      *APIKey  `json:"api_key,omitempty"`
	OAuth2      *OAuth2  `json:"oauth2,omitempty"`
	OAuth1      *OAuth1  `json:"oauth1,omitempty"`
	// AllowedHosts are where the credential may be sent (package hosts
	// patterns), written with the secret: moving a connection elsewhere
	// takes its secret again. Empty (a record written before hosts were
	// bound) sends it nowhere.
	AllowedHosts []string `json:"allowed_hosts,omitempty"`
	// Test is the connector's test request, which verifies a worker's report
	// that the app refused the credential; nil when it has none.
	Test *TestRequest `json:"test,omitempty"`
}

// TestRequest is a request that checks a credential.
type TestRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

// OAuth1 holds an OAuth 1.0a connection's token and secret, and a pending
// authorization's request token while the user is at the app.
type OAuth1 struct {
	Token           string         `json:"token,omitempty"`
	TokenSecret     string         `json:"token_secret,omitempty"`
	ClientWorkspace string         `json:"client_workspace,omitempty"`
	Pending         *OAuth1Pending `json:"pending,omitempty"`
}

// OAuth1Pending is an authorization in progress.
type OAuth1Pending struct {
	RequestToken   string `json:"request_token"`
	RequestSecret  string `json:"request_secret"`
	AccessTokenURL string `json:"access_token_url"`
}

// String hides the secrets from fmt and loggers.
func (OAuth1) String() string { return "OAuth1{REDACTED}" }

// OAuth2 holds a connection's OAuth 2.0 tokens and what refreshing them takes.
type OAuth2 struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	Scopes       []string  `json:"scopes,omitempty"`
	TokenURL     string    `json:"token_url"`
	// ClientWorkspace selects the OAuth client: the workspace's own app, or
	// the platform's when empty.
	ClientWorkspace string `json:"client_workspace,omitempty"`
	// Lease marks a refresh in progress: only its holder may spend the
	// refresh token until it ends. Taken and released with check-and-set.
	Lease *Lease `json:"lease,omitempty"`
	// Invalid is set when the provider refused the refresh token for good.
	Invalid string `json:"invalid,omitempty"`
}

// String hides the tokens from fmt and loggers.
func (OAuth2) String() string { return "OAuth2{REDACTED}" }

// Lease is a refresh in progress.
type Lease struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// OAuthClient is an OAuth client registration.
type OAuthClient struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// String hides the secret from fmt and loggers.
func (c OAuthClient) String() string { return "OAuthClient{" + c.ClientID + ", REDACTED}" }

// Instance is the app instance a credential is for.
type Instance struct {
	BaseURL   string `json:"base_url,omitempty"`
	Subdomain string `json:"subdomain,omitempty"`
	OrgID     string `json:"org_id,omitempty"`
	Sandbox   bool   `json:"sandbox,omitempty"`
}

// Basic is a username and password.
type Basic struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// String hides the password from fmt and loggers.
func (b Basic) String() string { return "Basic{username:" + b.Username + ", password:REDACTED}" }

// APIKey is an API key and optional secret.
type APIKey struct {
	Key    string `json:"key"`
	Secret string `json:"secret,omitempty"`
}

// String hides the key and secret from fmt and loggers.
func (APIKey) String() string { return "APIKey{REDACTED}" }

// Config says which Vault to use and where the broker's secrets live.
type Config struct {
	Addr       string        // e.g. https://vault:8200
	KVMount    string        // KV v2 mount, e.g. "secret"
	PathPrefix string        // path under the mount, e.g. "integrationhub"
	Timeout    time.Duration // per request
}

// Client reads and writes connection records.
type Client struct {
	api    *vaultapi.Client
	kv     *vaultapi.KVv2
	prefix string
}

// New returns a client; it does not contact Vault.
func New(cfg Config) (*Client, error) {
	vc := vaultapi.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("vault.New: %w", vc.Error)
	}
	vc.Address = cfg.Addr
	if cfg.Timeout > 0 {
		vc.Timeout = cfg.Timeout
	}
	// Retries belong to callers that know whether a retry is safe.
	vc.MaxRetries = 0
	api, err := vaultapi.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vault.New: %w", err)
	}
	// No token until Login: a client must say how it authenticates.
	api.ClearToken()
	return &Client{
		api:    api,
		kv:     api.KVv2(cfg.KVMount),
		prefix: strings.Trim(cfg.PathPrefix, "/"),
	}, nil
}

// API exposes the underlying client for tests and health checks.
func (c *Client) API() *vaultapi.Client { return c.api }

// Path returns the KV path (below the mount) of a connection's record.
func (c *Client) Path(connectionID string) string {
	if c.prefix == "" {
		return "connections/" + connectionID
	}
	return c.prefix + "/connections/" + connectionID
}

// Put writes a new version of a connection's record and returns its version.
func (c *Client) Put(ctx context.Context, connectionID string, r Record) (int, error) {
	data, err := toMap(r)
	if err != nil {
		return 0, fmt.Errorf("vault.Put: %w", err)
	}
	s, err := c.kv.Put(ctx, c.Path(connectionID), data)
	if err != nil {
		return 0, fmt.Errorf("vault.Put %s: %w", connectionID, classify(err))
	}
	return s.VersionMetadata.Version, nil
}

// PutCAS writes a new version only if the current one is version (0: only if
// none exists), else fails with ErrVersionMismatch. It is the fence that lets
// several brokers share one Vault.
func (c *Client) PutCAS(ctx context.Context, connectionID string, r Record, version int) (int, error) {
	data, err := toMap(r)
	if err != nil {
		return 0, fmt.Errorf("vault.PutCAS: %w", err)
	}
	s, err := c.kv.Put(ctx, c.Path(connectionID), data, vaultapi.WithCheckAndSet(version))
	if err != nil {
		return 0, fmt.Errorf("vault.PutCAS %s: %w", connectionID, classify(err))
	}
	return s.VersionMetadata.Version, nil
}

// PutClient stores an OAuth client registration for a connector, for one
// workspace or (workspace "") the platform.
func (c *Client) PutClient(ctx context.Context, connector, workspace string, cl OAuthClient) error {
	b, _ := json.Marshal(cl)
	var data map[string]any
	err := json.Unmarshal(b, &data)
	if err == nil {
		_, err = c.kv.Put(ctx, c.clientPath(connector, workspace), data)
	}
	if err != nil {
		return fmt.Errorf("vault.PutClient %s: %w", connector, classify(err))
	}
	return nil
}

// GetClient returns the OAuth client registration for a connector.
func (c *Client) GetClient(ctx context.Context, connector, workspace string) (OAuthClient, error) {
	s, err := c.kv.Get(ctx, c.clientPath(connector, workspace))
	if err != nil {
		return OAuthClient{}, fmt.Errorf("vault.GetClient %s: %w", connector, classify(err))
	}
	var cl OAuthClient
	b, _ := json.Marshal(s.Data)
	if err := json.Unmarshal(b, &cl); err != nil {
		return OAuthClient{}, fmt.Errorf("vault.GetClient %s: %w", connector, err)
	}
	return cl, nil
}

func (c *Client) clientPath(connector, workspace string) string {
	if workspace == "" {
		workspace = "_platform"
	}
	p := "oauth-clients/" + connector + "/" + workspace
	if c.prefix != "" {
		p = c.prefix + "/" + p
	}
	return p
}

// Get reads the current version of a connection's record.
func (c *Client) Get(ctx context.Context, connectionID string) (Record, int, error) {
	s, err := c.kv.Get(ctx, c.Path(connectionID))
	if err != nil {
		return Record{}, 0, fmt.Errorf("vault.Get %s: %w", connectionID, classify(err))
	}
	var r Record
	if err := fromMap(s.Data, &r); err != nil {
		return Record{}, 0, fmt.Errorf("vault.Get %s: decode: %w", connectionID, err)
	}
	return r, s.VersionMetadata.Version, nil
}

// Delete destroys every version of a connection's record. Deleting a record
// that does not exist succeeds.
func (c *Client) Delete(ctx context.Context, connectionID string) error {
	if err := c.kv.DeleteMetadata(ctx, c.Path(connectionID)); err != nil {
		return fmt.Errorf("vault.Delete %s: %w", connectionID, classify(err))
	}
	return nil
}

// classify maps Vault client errors onto this package's errors. Vault's error
// bodies name paths and reasons, never the data written.
func classify(err error) error {
	if errors.Is(err, vaultapi.ErrSecretNotFound) {
		return ErrNotFound
	}
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusNotFound:
			return ErrNotFound
		case re.StatusCode == http.StatusServiceUnavailable, re.StatusCode >= 500:
			return fmt.Errorf("%w: status %d", ErrUnavailable, re.StatusCode)
		case re.StatusCode == http.StatusBadRequest && strings.Contains(strings.Join(re.Errors, " "), "check-and-set"):
			return ErrVersionMismatch
		}
		return fmt.Errorf("vault: status %d: %s", re.StatusCode, strings.Join(re.Errors, "; "))
	}
	// Anything that is not an HTTP answer is a transport failure.
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

func toMap(r Record) (map[string]any, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

func fromMap(m map[string]any, r *Record) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, r)
}
