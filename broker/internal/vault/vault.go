// Package vault keeps connection secrets in HashiCorp Vault's KV v2 engine.
// It is the only package of the broker that imports the Vault client.
//
// A connection's secret lives in immutable generations: one KV entry per
// generation at <mount>/data/<prefix>/connections/<id>/<generation>, each
// holding a Record. Editors never overwrite a generation (a new secret is a
// new generation, written with check-and-set 0); only the broker's own token
// upkeep (OAuth refresh, leases) writes within one, with check-and-set. The
// connection service's metadata names the generation that is live. Entries
// stored before generations existed sit at .../connections/<id> (generation
// ""). Functions here take a key: Key(id, generation). Destroying a
// generation deletes its metadata, which destroys every KV version.
package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/integrationhub/connections/internal/appinstance"
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
	// Placement is how the credential goes on requests to the app; nil in
	// records written before placements (the auth type's default applies).
	Placement *Placement `json:"placement,omitempty"`
	// PrivateNetwork: the connector allows its app on a private network;
	// otherwise the proxy connects to no loopback, private or link-local
	// address.
	PrivateNetwork bool `json:"private_network,omitempty"`
	// BaseURL is the app's base URL for this connection (the instance's,
	// else the catalog's default).
	BaseURL string `json:"base_url,omitempty"`
}

// Placement is where a credential goes on a request: Kind is the name of
// a credential.v1.PlacementKind value.
type Placement struct {
	Kind   string `json:"kind"`
	Name   string `json:"name,omitempty"`
	Prefix string `json:"prefix,omitempty"`
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
	// AuthStyle is how the token endpoint takes the client's credentials
	// ("header" or "params"; "" until known).
	AuthStyle string `json:"auth_style,omitempty"`
}

// String hides the tokens from fmt and loggers.
func (OAuth2) String() string { return "OAuth2{REDACTED}" }

// Lease is a refresh in progress.
type Lease struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
	// Interrupted names the broker whose lease this one took over after it
	// ran out unreleased: that broker may have died after sending.
	Interrupted string `json:"interrupted,omitempty"`
}

// OAuthClient is an OAuth client registration.
type OAuthClient struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// String hides the secret from fmt and loggers.
func (c OAuthClient) String() string { return "OAuthClient{" + c.ClientID + ", REDACTED}" }

// Instance is the app instance a credential is for.
type Instance = appinstance.Instance

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
	// Addr is Vault's address, e.g. https://vault-active:8200 (an address
	// that follows the active node), or a comma-separated list of the
	// cluster's nodes, which the client fails over between.
	Addr       string
	KVMount    string        // KV v2 mount, e.g. "secret"
	PathPrefix string        // path under the mount, e.g. "integrationhub"
	Timeout    time.Duration // per request
}

// Client reads and writes connection records.
type Client struct {
	api    *vaultapi.Client
	kv     *vaultapi.KVv2
	mount  string
	prefix string
	// session is the token of Login, kept alive by KeepTokenAlive.
	session *session
}

// Key is the key of generation gen of a connection's secret, as the other
// functions of this package take it ("" is the legacy single entry).
func Key(connectionID, gen string) string {
	if gen == "" {
		return connectionID
	}
	return connectionID + "/" + gen
}

// SplitKey returns the connection id and generation of a key.
func SplitKey(key string) (connectionID, gen string) {
	id, gen, _ := strings.Cut(key, "/")
	return id, gen
}

// New returns a client; it does not contact Vault.
func New(cfg Config) (*Client, error) {
	vc := vaultapi.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("vault.New: %w", vc.Error)
	}
	nodes, err := parseAddrs(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("vault.New: %w", err)
	}
	vc.Address = nodes[0].String()
	base := vc.HttpClient.Transport
	if len(nodes) > 1 {
		vc.HttpClient.Transport = &failover{next: base, nodes: nodes}
	}
	vc.HttpClient.Transport = answers{next: vc.HttpClient.Transport, direct: base}
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
		mount:  strings.Trim(cfg.KVMount, "/"),
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
		return 0, fmt.Errorf("vault.Put %s: %w", connectionID, classifyWrite(err))
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
		return 0, fmt.Errorf("vault.PutCAS %s: %w", connectionID, classifyWrite(err))
	}
	return s.VersionMetadata.Version, nil
}

// ClientKey names one stored generation of an OAuth client registration.
type ClientKey struct {
	Connector string
	Workspace string // "" is the platform's own OAuth app
	// Generation; "" is the legacy single entry (registered before
	// generations existed).
	Generation string
}

// WriteClient stores an OAuth client registration as the new generation k
// (check-and-set 0: ErrVersionMismatch when it exists). Generations are
// never overwritten; the connection service's metadata names the live one.
func (c *Client) WriteClient(ctx context.Context, k ClientKey, cl OAuthClient) error {
	if k.Generation == "" {
		return fmt.Errorf("vault.WriteClient %s: a registration needs a generation", k.Connector)
	}
	b, _ := json.Marshal(cl)
	var data map[string]any
	err := json.Unmarshal(b, &data)
	if err == nil {
		if _, err = c.kv.Put(ctx, c.clientPath(k), data, vaultapi.WithCheckAndSet(0)); err != nil {
			err = classifyWrite(err)
		}
	}
	if err != nil {
		return fmt.Errorf("vault.WriteClient %s: %w", k.Connector, err)
	}
	return nil
}

// ReadClient returns one stored generation of an OAuth client registration.
func (c *Client) ReadClient(ctx context.Context, k ClientKey) (OAuthClient, error) {
	s, err := c.kv.Get(ctx, c.clientPath(k))
	if err != nil {
		return OAuthClient{}, fmt.Errorf("vault.ReadClient %s: %w", k.Connector, classify(err))
	}
	var cl OAuthClient
	b, _ := json.Marshal(s.Data)
	if err := json.Unmarshal(b, &cl); err != nil {
		return OAuthClient{}, fmt.Errorf("vault.ReadClient %s: %w", k.Connector, err)
	}
	return cl, nil
}

// DeleteClient destroys every version of one generation of an OAuth client
// registration. Deleting one that does not exist succeeds.
func (c *Client) DeleteClient(ctx context.Context, k ClientKey) error {
	if err := c.kv.DeleteMetadata(ctx, c.clientPath(k)); err != nil {
		return fmt.Errorf("vault.DeleteClient %s: %w", k.Connector, classify(err))
	}
	return nil
}

// ListClients returns every stored generation of the OAuth client
// registrations of connectors sorting after afterConnector, whole
// connectors at a time until at least limit entries, and the connector to
// pass as afterConnector for the next page ("" at the end).
func (c *Client) ListClients(ctx context.Context, afterConnector string, limit int) ([]ClientKey, string, error) {
	connectors, err := c.list(ctx, c.clientsRoot())
	if err != nil {
		return nil, "", fmt.Errorf("vault.ListClients: %w", err)
	}
	var out []ClientKey
	last := ""
	for _, f := range connectors {
		connector, ok := strings.CutSuffix(f, "/")
		if !ok || connector <= afterConnector {
			continue
		}
		if len(out) >= limit {
			return out, last, nil
		}
		last = connector
		entries, err := c.list(ctx, c.clientsRoot()+"/"+connector)
		if err != nil {
			return nil, "", fmt.Errorf("vault.ListClients: %w", err)
		}
		for _, e := range entries {
			ws, folder := strings.CutSuffix(e, "/")
			if ws == platformFolder {
				ws = ""
			}
			if !folder {
				out = append(out, ClientKey{Connector: connector, Workspace: ws})
				continue
			}
			gens, err := c.list(ctx, c.clientsRoot()+"/"+connector+"/"+e)
			if err != nil {
				return nil, "", fmt.Errorf("vault.ListClients: %w", err)
			}
			for _, g := range gens {
				if !strings.HasSuffix(g, "/") {
					out = append(out, ClientKey{Connector: connector, Workspace: ws, Generation: g})
				}
			}
		}
	}
	return out, "", nil
}

// platformFolder holds the platform's own registrations: no workspace id
// can start with "_".
const platformFolder = "_platform"

func (c *Client) clientsRoot() string {
	if c.prefix != "" {
		return c.prefix + "/oauth-clients"
	}
	return "oauth-clients"
}

// clientPath is <prefix>/oauth-clients/<connector>/<workspace>[/<generation>].
func (c *Client) clientPath(k ClientKey) string {
	ws := k.Workspace
	if ws == "" {
		ws = platformFolder
	}
	p := c.clientsRoot() + "/" + k.Connector + "/" + ws
	if k.Generation != "" {
		p += "/" + k.Generation
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

// ListKeys returns the keys of every stored secret (legacy entries and
// generations) of up to limit connections whose ids sort after afterID, in
// order, and the id to pass as afterID for the next page ("" at the end).
func (c *Client) ListKeys(ctx context.Context, afterID string, limit int) ([]string, string, error) {
	top, err := c.list(ctx, c.Path(""))
	if err != nil {
		return nil, "", fmt.Errorf("vault.ListKeys: %w", err)
	}
	var keys []string
	ids := 0
	for i := 0; i < len(top); i++ {
		id := strings.TrimSuffix(top[i], "/")
		if id <= afterID {
			continue
		}
		if ids == limit {
			return keys, strings.TrimSuffix(top[i-1], "/"), nil
		}
		ids++
		legacy, folder := !strings.HasSuffix(top[i], "/"), strings.HasSuffix(top[i], "/")
		if i+1 < len(top) && strings.TrimSuffix(top[i+1], "/") == id { // both "id" and "id/"
			folder, i = true, i+1
		}
		if legacy {
			keys = append(keys, id)
		}
		if folder {
			gens, err := c.list(ctx, c.Path(id))
			if err != nil {
				return nil, "", fmt.Errorf("vault.ListKeys: %w", err)
			}
			for _, g := range gens {
				if !strings.HasSuffix(g, "/") {
					keys = append(keys, Key(id, g))
				}
			}
		}
	}
	return keys, "", nil
}

// Generations lists the stored generations of a connection's secret, in
// order; "" first when the legacy entry exists.
func (c *Client) Generations(ctx context.Context, connectionID string) ([]string, error) {
	var gens []string
	if _, err := c.kv.GetMetadata(ctx, c.Path(connectionID)); err == nil {
		gens = append(gens, "")
	} else if err := classify(err); !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("vault.Generations %s: %w", connectionID, err)
	}
	sub, err := c.list(ctx, c.Path(connectionID))
	if err != nil {
		return nil, fmt.Errorf("vault.Generations %s: %w", connectionID, err)
	}
	for _, k := range sub {
		if !strings.HasSuffix(k, "/") {
			gens = append(gens, k)
		}
	}
	return gens, nil
}

// list returns the sorted keys under a KV folder (folders end in "/").
func (c *Client) list(ctx context.Context, path string) ([]string, error) {
	s, err := c.api.Logical().ListWithContext(ctx, c.mount+"/metadata/"+strings.TrimSuffix(path, "/"))
	if err != nil {
		return nil, classify(err)
	}
	if s == nil || s.Data == nil {
		return nil, nil
	}
	raw, _ := s.Data["keys"].([]any)
	keys := make([]string, 0, len(raw))
	for _, k := range raw {
		if ks, ok := k.(string); ok {
			keys = append(keys, ks)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// DeleteAll destroys every generation of a connection's secret and its
// legacy entry.
func (c *Client) DeleteAll(ctx context.Context, connectionID string) error {
	gens, err := c.Generations(ctx, connectionID)
	if err != nil {
		return err
	}
	for _, g := range gens {
		if err := c.Delete(ctx, Key(connectionID, g)); err != nil {
			return err
		}
	}
	return nil
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
// classifyWrite classifies a write's error. A write is never "not found":
// a 404 means the KV mount did not answer, as while a Vault node becomes
// active after a leader change ("no handler for route"), so it is
// Unavailable and may be retried.
func classifyWrite(err error) error {
	if c := classify(err); !errors.Is(c, ErrNotFound) {
		return c
	}
	return fmt.Errorf("%w: the KV mount did not answer the write (Vault changing leader, or the mount missing)", ErrUnavailable)
}

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
