// Package api implements the broker's gRPC services: CredentialBroker for
// recipe workers and BrokerAdmin for the connection service.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/appanswer"
	"github.com/integrationhub/connections/internal/appinstance"
	"github.com/integrationhub/connections/internal/failpoint"

	"github.com/integrationhub/connections/broker/internal/access"
	"github.com/integrationhub/connections/broker/internal/cache"
	"github.com/integrationhub/connections/broker/internal/oauth"
	"github.com/integrationhub/connections/broker/internal/oauth1"
	"github.com/integrationhub/connections/broker/internal/upstream"
	"github.com/integrationhub/connections/broker/internal/vault"
	"github.com/integrationhub/connections/internal/egress"
)

// Secrets is the part of the Vault client the API needs.
// Its functions take a key: vault.Key(connection id, secret generation).
type Secrets interface {
	Put(ctx context.Context, key string, r vault.Record) (int, error)
	PutCAS(ctx context.Context, key string, r vault.Record, version int) (int, error)
	Get(ctx context.Context, key string) (vault.Record, int, error)
	Delete(ctx context.Context, key string) error
	DeleteAll(ctx context.Context, connectionID string) error
	ListKeys(ctx context.Context, afterID string, limit int) ([]string, string, error)
	// Generations lists the stored generations of one connection's secret
	// ("" first for the legacy entry).
	Generations(ctx context.Context, connectionID string) ([]string, error)
}

// WorkerServer implements CredentialBroker: recipe workers' calls, each
// authorized by a job token, and the job scheduler's MintJobToken.
type WorkerServer struct {
	brokerv1.UnimplementedCredentialBrokerServer
	*core
}

// AdminServer implements BrokerAdmin: the connection service's calls that
// store, test and destroy secrets and run the OAuth flows.
type AdminServer struct {
	brokerv1.UnimplementedBrokerAdminServer
	*core
}

// core is what both servers share: the stores, the OAuth managers, the
// credential cache and the worker authorization (Workers, or workersOff).
type core struct {
	secrets Secrets
	clients Clients
	oauth   *oauth.Manager
	oauth1  *oauth1.Manager
	http    *http.Client // OAuth 1.0a endpoints; its timeout bounds test requests
	apps    *egress.Apps // apps, with a credential on the request (test requests)
	// upstream carries the egress proxy's requests to apps.
	upstream *upstream.Clients
	cache    *cache.Cache
	jobs     *Jobs
	workers  *Workers
	// verified holds the last verification of a worker's failure report
	// per connection (rate limit).
	verified verifications
	// invalid, when set, tells the connection service a connection stopped
	// working (the broker's service account).
	invalid func(connectionID, generation string, reason connectionsv1.StatusReason, detail string)
	logger  *slog.Logger
	// webhooks keeps webhooks' signing secrets; webhookKeys holds the
	// keys read, for signing without Vault.
	webhooks    WebhookSecrets
	webhookKeys *webhookKeys
}

// Clients stores OAuth client registrations, one immutable generation each,
// and reads the live one (oauthclient.Store).
type Clients interface {
	WriteClient(ctx context.Context, k vault.ClientKey, c vault.OAuthClient) error
	DeleteClient(ctx context.Context, k vault.ClientKey) error
	ListClients(ctx context.Context, afterConnector string, limit int) ([]vault.ClientKey, string, error)
	GetClient(ctx context.Context, connector, workspace string) (vault.OAuthClient, error)
	GetClientAt(ctx context.Context, k vault.ClientKey) (vault.OAuthClient, error)
}

// Deps is everything a Server is built from, fixed at construction: a
// feature that is off is a nil field here, never a setter called later.
type Deps struct {
	Secrets Secrets
	Clients Clients
	OAuth   *oauth.Manager
	HTTP    *http.Client // OAuth 1.0a endpoints; its timeout also bounds test requests
	// Apps reaches apps with a credential on the request (test requests
	// and the egress proxy); nil is the system's TLS roots.
	Apps *egress.Apps
	// Upstream carries the egress proxy's requests to apps, through the
	// same guard; nil is the system's TLS roots.
	Upstream *upstream.Clients
	Logger   *slog.Logger
	// Cache holds credentials in memory. It is shared with whatever drops
	// entries on change (invalidate.Invalidator): serving from memory is
	// only safe while the change stream runs (or with one broker). Nil
	// keeps nothing.
	Cache *cache.Cache
	// Workers enables the worker API's authorization; without it the
	// worker API refuses every call (there is no way to tell who may have
	// what).
	Workers *Workers
	// Jobs enables MintJobToken.
	Jobs *Jobs
	// OnInvalid, when set, tells the connection service a connection
	// stopped working (the broker's service account).
	OnInvalid func(connectionID, generation string, reason connectionsv1.StatusReason, detail string)
	// Webhooks keeps webhooks' signing secrets; without it the webhook
	// secret calls refuse (Unimplemented).
	Webhooks WebhookSecrets
}

// New returns the worker and admin servers built from d, sharing one core.
// A feature d leaves off is a value that refuses: without Workers the
// worker API refuses every call, without Jobs MintJobToken does.
func New(d Deps) (*WorkerServer, *AdminServer) {
	if d.Apps == nil {
		d.Apps = egress.New(nil)
	}
	if d.Upstream == nil {
		d.Upstream = upstream.New(nil)
	}
	c := &core{secrets: d.Secrets, clients: d.Clients, oauth: d.OAuth, http: d.HTTP, apps: d.Apps, upstream: d.Upstream, logger: d.Logger,
		oauth1: oauth1.New(oauth1Store{d.Secrets, d.Clients}, d.HTTP), cache: d.Cache,
		workers: d.Workers, jobs: d.Jobs, invalid: d.OnInvalid, webhooks: d.Webhooks, webhookKeys: newWebhookKeys()}
	if c.webhooks == nil {
		c.webhooks = webhooksOff{}
	}
	if c.cache == nil {
		c.cache = cache.New(0)
	}
	if c.workers == nil {
		c.workers = workersOff
	}
	if c.workers.Record == nil {
		c.workers = &Workers{Tokens: c.workers.Tokens, Connections: c.workers.Connections, off: c.workers.off, Record: func(access.Event) {}}
	}
	if c.jobs == nil {
		c.jobs = jobsOff
	}
	if c.invalid == nil {
		c.invalid = func(string, string, connectionsv1.StatusReason, string) {}
	}
	return &WorkerServer{core: c}, &AdminServer{core: c}
}

// GetCredential returns the credential of a connection the caller's job
// token covers (or of the runtime user's connection standing in for it). A
// cached record that still works is served from memory (an OAuth token
// inside the refresh margin is refreshed in the background meanwhile);
// otherwise Vault is read (and an expired OAuth token refreshed). With Vault
// or the app's token endpoint unreachable, a credential that has not expired
// is still served; an expired one is refused (Unavailable).
func (s *WorkerServer) GetCredential(ctx context.Context, req *brokerv1.GetCredentialRequest) (_ *brokerv1.GetCredentialResponse, err error) {
	g, err := s.authorize(ctx, req.GetConnectionId(), false)
	defer func() { s.record("GetCredential", g, err) }()
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp, err := s.credential(ctx, g.key())
	if status.Code(err) == codes.NotFound && g.generation != "" {
		// The generation was replaced (and destroyed) after this broker
		// last read the connection: read it again and serve what it names.
		if g, err = s.reauthorize(ctx, g, req.GetConnectionId(), false); err == nil {
			resp, err = s.credential(ctx, g.key())
		}
	}
	if err != nil {
		return nil, err
	}
	resp.RuntimeUser = g.runtimeUser
	return resp, nil
}

// reauthorize forgets what this broker knows of g's connection and
// authorizes the call again; it fails unless the connection now names
// another generation.
func (s *core) reauthorize(ctx context.Context, g *grant, id string, report bool) (*grant, error) {
	s.workers.Connections.Forget(g.resolved)
	if g.resolved != id {
		s.workers.Connections.Forget(id)
	}
	g2, err := s.authorize(ctx, id, report)
	if err != nil {
		return g, s.toStatus(ctx, err)
	}
	if g2.key() == g.key() {
		return g, s.toStatus(ctx, fmt.Errorf("GetCredential: %w", vault.ErrNotFound))
	}
	return g2, nil
}

// credential serves the secret generation named by key (vault.Key): exactly
// the one the connection's metadata names, never another.
func (s *core) credential(ctx context.Context, key string) (*brokerv1.GetCredentialResponse, error) {
	rec, err := s.liveRecord(ctx, key)
	if err != nil {
		return nil, err
	}
	if rec.OAuth1 != nil {
		return nil, s.toStatus(ctx, errUseSignRequest)
	}
	return s.credentialResponse(ctx, key, rec)
}

// liveRecord is the record of the secret generation named by key, with an
// OAuth access token that works now (refreshed if it had expired). Records
// are cached by key; with Vault unreachable, a cached record that has not
// expired is served.
func (s *core) liveRecord(ctx context.Context, key string) (vault.Record, error) {
	id := key
	if cached, hit := s.cache.Get(id); hit && s.servable(cached, time.Now()) {
		if cached.OAuth2 != nil && !s.oauth.IsFresh(cached.OAuth2, time.Now()) {
			s.oauth.Prefetch(id)
		}
		return cached, nil
	}
	rec, _, err := s.secrets.Get(ctx, id)
	if err != nil {
		if cached, hit := s.cache.Stale(id); errors.Is(err, vault.ErrUnavailable) && hit && unexpired(cached, time.Now()) {
			s.logger.WarnContext(ctx, "vault unavailable; serving a cached credential", "connection_id", id)
			return cached, nil
		}
		return vault.Record{}, s.toStatus(ctx, fmt.Errorf("GetCredential: %w", err))
	}
	if rec.OAuth1 != nil {
		return rec, nil
	}
	if rec.OAuth2 != nil {
		// A refresh token goes only to a token endpoint among the hosts
		// stored with it (records from before hosts were bound keep the
		// endpoint the catalog gave them at authorization).
		if len(rec.AllowedHosts) > 0 && rec.OAuth2.TokenURL != "" {
			if err := checkHost(rec, rec.OAuth2.TokenURL, "token endpoint"); err != nil {
				return vault.Record{}, s.toStatus(ctx, fmt.Errorf("GetCredential: %w", err))
			}
		}
		if rec, err = s.oauth.Fresh(ctx, id, rec); err != nil {
			return vault.Record{}, s.toStatus(ctx, fmt.Errorf("GetCredential: %w", err))
		}
	}
	s.cache.Put(id, rec)
	return rec, nil
}

// ReportCredentialFailure handles an app refusing a credential.
func (s *WorkerServer) ReportCredentialFailure(ctx context.Context, req *brokerv1.ReportCredentialFailureRequest) (_ *brokerv1.ReportCredentialFailureResponse, err error) {
	g, err := s.authorize(ctx, req.GetConnectionId(), true)
	defer func() { s.record("ReportCredentialFailure", g, err) }()
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	id, key := g.resolved, g.key()
	s.cache.Drop(key) // whatever happens next, the cached copy is suspect
	rec, _, err := s.secrets.Get(ctx, key)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ReportCredentialFailure: %w", err))
	}
	if req.GetHttpStatus() == http.StatusUnauthorized && rec.OAuth2 != nil {
		// A refresh can help: the token may have been revoked early or
		// rotated by the app. Several workers reporting the same token cause
		// one refresh.
		rec, err = s.oauth.Replace(ctx, key, req.GetFailedAccessToken())
		if err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("ReportCredentialFailure: %w", err))
		}
		cred, err := credentialOf(rec)
		if err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("ReportCredentialFailure: %w", err))
		}
		s.cache.Put(key, rec)
		return &brokerv1.ReportCredentialFailureResponse{Credential: cred}, nil
	}
	o := appanswer.Outcome(int(req.GetHttpStatus())) // 401 or 403, by the request's constraint
	reason := appanswer.Reason(o)
	detail := fmt.Sprintf("the app answered %d %s: %s", req.GetHttpStatus(), http.StatusText(int(req.GetHttpStatus())), appanswer.Meaning(o))
	// One worker's word does not take a shared connection down: where the
	// connector has a test request, the broker checks for itself first.
	if v, err := s.verifyReport(ctx, id, g.claims.Job, rec); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ReportCredentialFailure: %w", err))
	} else if v != nil {
		reason, detail = v.reason, v.detail
	}
	s.invalid(id, g.generation, reason, detail)
	return nil, s.toStatus(ctx, fmt.Errorf("%w: %s", errCredentialRefused, detail))
}

// errCredentialRefused means the app refused a credential that no refresh
// can fix; the connection needs its owner.
var errCredentialRefused = errors.New("the connection no longer works")

// servable reports whether a cached record may be served without Vault:
// OAuth tokens while they still work (the refresh protocol, with its lease,
// decides when to refresh; inside the margin that happens in the
// background).
func (s *core) servable(rec vault.Record, now time.Time) bool {
	if rec.OAuth1 != nil {
		return false
	}
	if rec.OAuth2 != nil {
		return s.oauth.Usable(rec.OAuth2, now)
	}
	return true
}

// unexpired reports whether a cached record still works at all.
func unexpired(rec vault.Record, now time.Time) bool {
	if rec.OAuth2 != nil {
		return rec.OAuth2.AccessToken != "" && (rec.OAuth2.Expiry.IsZero() || now.Before(rec.OAuth2.Expiry))
	}
	return rec.OAuth1 == nil
}

func (s *core) credentialResponse(ctx context.Context, id string, rec vault.Record) (*brokerv1.GetCredentialResponse, error) {
	cred, err := credentialOf(rec)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("GetCredential %s: %w", id, err))
	}
	id, _ = vault.SplitKey(id)
	return &brokerv1.GetCredentialResponse{
		Credential:   cred,
		ConnectionId: id,
		Connector:    rec.Connector,
		Instance:     rec.Instance.Proto(),
		Placement:    placementOf(rec),
		BaseUrl:      baseURLOfRecord(rec),
		AllowedHosts: rec.AllowedHosts, // a worker keeps to them too (read-only: only marshalled)
	}, nil
}

// baseURLOfRecord is the app's base URL stored with rec, else its
// instance's (records from before base URLs were stored).
func baseURLOfRecord(rec vault.Record) string {
	if rec.BaseURL != "" {
		return rec.BaseURL
	}
	return rec.Instance.BaseURL
}

// placementOf is how rec's credential goes on requests: as stored with it,
// else (a record from before placements) the auth type's one way, an API
// key as a bearer token and a custom header in X-API-Key.
func placementOf(rec vault.Record) *credentialv1.Placement {
	if p := rec.Placement; p != nil {
		return &credentialv1.Placement{Kind: credentialv1.PlacementKind(credentialv1.PlacementKind_value[p.Kind]), Name: p.Name, Prefix: p.Prefix}
	}
	kind := credentialv1.PlacementKind_PLACEMENT_KIND_AUTHORIZATION_BEARER
	switch credentialv1.AuthType(credentialv1.AuthType_value[rec.AuthType]) {
	case credentialv1.AuthType_AUTH_TYPE_BASIC:
		kind = credentialv1.PlacementKind_PLACEMENT_KIND_AUTHORIZATION_BASIC
	case credentialv1.AuthType_AUTH_TYPE_OAUTH1:
		kind = credentialv1.PlacementKind_PLACEMENT_KIND_SIGNED
	case credentialv1.AuthType_AUTH_TYPE_CUSTOM_HEADER:
		return &credentialv1.Placement{Kind: credentialv1.PlacementKind_PLACEMENT_KIND_HEADER, Name: "X-API-Key"}
	}
	return &credentialv1.Placement{Kind: kind}
}

func placementFromProto(p *credentialv1.Placement) *vault.Placement {
	if p.GetKind() == credentialv1.PlacementKind_PLACEMENT_KIND_UNSPECIFIED {
		return nil
	}
	return &vault.Placement{Kind: p.GetKind().String(), Name: p.GetName(), Prefix: p.GetPrefix()}
}

// PutSecret stores a connection's secret as a new generation (never over an
// existing one). Without a secret in the request it copies the material of
// from_generation and replaces only the attributes.
func (s *AdminServer) PutSecret(ctx context.Context, req *brokerv1.PutSecretRequest) (*brokerv1.PutSecretResponse, error) {
	key := vault.Key(req.GetConnectionId(), req.GetSecretGeneration())
	rec := vault.Record{
		WorkspaceID: req.GetWorkspaceId(),
		Connector:   req.GetConnector(),
		AuthType:    req.GetAuthType().String(),
		Instance:    appinstance.FromProto(req.GetInstance()),
		// The hosts are bound to the secret: see rebind.
		AllowedHosts:   req.GetAllowedHosts(),
		Test:           testFromProto(req.GetTestRequest()),
		Placement:      placementFromProto(req.GetPlacement()),
		PrivateNetwork: req.GetPrivateNetwork(),
		BaseURL:        req.GetBaseUrl(),
	}
	if err := checkHosts(rec.AllowedHosts, "token endpoint", req.GetEndpoint().GetTokenUrl()); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("PutSecret: %w", err))
	}
	if err := checkHosts(rec.AllowedHosts, "test request", req.GetTestRequest().GetUrl()); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("PutSecret: %w", err))
	}
	if req.GetSecret() == nil {
		old, _, err := s.secrets.Get(ctx, vault.Key(req.GetConnectionId(), req.GetFromGeneration()))
		if err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("PutSecret: %w", err))
		}
		if err := rebind(old, rec); err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("PutSecret: %w", err))
		}
		rec.Basic, rec.APIKey, rec.OAuth2 = old.Basic, old.APIKey, old.OAuth2
		if rec.Test == nil {
			rec.Test = old.Test
		}
	} else if err := setMaterial(&rec, req.GetAuthType(), req.GetSecret(), req.GetEndpoint(), req.GetScopes()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	var v int
	var err error
	if req.GetSecretGeneration() == "" {
		v, err = s.secrets.Put(ctx, key, rec) // legacy single entry
	} else {
		v, err = s.secrets.PutCAS(ctx, key, rec, 0)
		if errors.Is(err, vault.ErrVersionMismatch) {
			err = errGenerationExists
		}
	}
	s.cache.Drop(key)
	if err == nil {
		// Test builds only: the broker dies after Vault took the write.
		err = failpoint.Inject(ctx, FPAfterVaultWrite)
	}
	s.forgetVerification(req.GetConnectionId())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("PutSecret: %w", err))
	}
	return &brokerv1.PutSecretResponse{Version: int64(v)}, nil
}

// FPAfterVaultWrite is the failpoint between Vault accepting a PutSecret
// (or PutOAuthClient) and the broker answering.
const FPAfterVaultWrite = "broker/after-vault-write"

// errGenerationExists refuses to overwrite a secret generation.
var errGenerationExists = errors.New("that secret generation exists already; generations are never overwritten")

// DeleteSecret destroys one generation of a connection's secret, or every
// generation and the legacy entry.
func (s *AdminServer) DeleteSecret(ctx context.Context, req *brokerv1.DeleteSecretRequest) (*brokerv1.DeleteSecretResponse, error) {
	s.cache.Drop(req.GetConnectionId())
	var err error
	if req.GetAllGenerations() {
		err = s.secrets.DeleteAll(ctx, req.GetConnectionId())
	} else {
		err = s.secrets.Delete(ctx, vault.Key(req.GetConnectionId(), req.GetSecretGeneration()))
	}
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("DeleteSecret: %w", err))
	}
	return &brokerv1.DeleteSecretResponse{}, nil
}

// DeleteSecrets destroys the generations named, one after another; it
// stops at the first failure (the caller sends the batch again, or leaves
// it to its reconciler).
func (s *AdminServer) DeleteSecrets(ctx context.Context, req *brokerv1.DeleteSecretsRequest) (*brokerv1.DeleteSecretsResponse, error) {
	for _, g := range req.GetSecrets() {
		s.cache.Drop(g.GetConnectionId())
		if err := s.secrets.Delete(ctx, vault.Key(g.GetConnectionId(), g.GetSecretGeneration())); err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("DeleteSecrets: %w", err))
		}
	}
	return &brokerv1.DeleteSecretsResponse{}, nil
}

// ListSecrets pages through the stored secrets by connection id.
func (s *AdminServer) ListSecrets(ctx context.Context, req *brokerv1.ListSecretsRequest) (*brokerv1.ListSecretsResponse, error) {
	if id := req.GetConnectionId(); id != "" {
		gens, err := s.secrets.Generations(ctx, id)
		if err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("ListSecrets: %w", err))
		}
		resp := &brokerv1.ListSecretsResponse{}
		for _, g := range gens {
			resp.Secrets = append(resp.Secrets, &brokerv1.SecretEntry{ConnectionId: id, SecretGeneration: g})
		}
		return resp, nil
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 500
	}
	keys, next, err := s.secrets.ListKeys(ctx, req.GetPageToken(), size)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ListSecrets: %w", err))
	}
	resp := &brokerv1.ListSecretsResponse{NextPageToken: next}
	for _, k := range keys {
		id, gen := vault.SplitKey(k)
		resp.Secrets = append(resp.Secrets, &brokerv1.SecretEntry{ConnectionId: id, SecretGeneration: gen})
	}
	return resp, nil
}

// PutOAuthClient stores an OAuth client registration in Vault as a new
// generation.
func (s *AdminServer) PutOAuthClient(ctx context.Context, req *brokerv1.PutOAuthClientRequest) (*brokerv1.PutOAuthClientResponse, error) {
	k := vault.ClientKey{Connector: req.GetConnector(), Workspace: req.GetWorkspaceId(), Generation: req.GetSecretGeneration()}
	err := s.clients.WriteClient(ctx, k, vault.OAuthClient{ClientID: req.GetClientId(), ClientSecret: req.GetClientSecret()})
	if errors.Is(err, vault.ErrVersionMismatch) {
		err = errGenerationExists
	}
	if err == nil {
		// Test builds only: the broker dies after Vault took the write.
		err = failpoint.Inject(ctx, FPAfterVaultWrite)
	}
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("PutOAuthClient: %w", err))
	}
	return &brokerv1.PutOAuthClientResponse{}, nil
}

// DeleteOAuthClient destroys one generation of an OAuth client registration.
func (s *AdminServer) DeleteOAuthClient(ctx context.Context, req *brokerv1.DeleteOAuthClientRequest) (*brokerv1.DeleteOAuthClientResponse, error) {
	if err := s.clients.DeleteClient(ctx, clientKey(req.GetConnector(), req.GetClient())); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("DeleteOAuthClient: %w", err))
	}
	return &brokerv1.DeleteOAuthClientResponse{}, nil
}

// ListOAuthClients pages through the stored OAuth client registrations by
// connector.
func (s *AdminServer) ListOAuthClients(ctx context.Context, req *brokerv1.ListOAuthClientsRequest) (*brokerv1.ListOAuthClientsResponse, error) {
	limit := int(req.GetPageSize())
	if limit == 0 {
		limit = 500
	}
	keys, next, err := s.clients.ListClients(ctx, req.GetPageToken(), limit)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ListOAuthClients: %w", err))
	}
	resp := &brokerv1.ListOAuthClientsResponse{NextPageToken: next}
	for _, k := range keys {
		resp.Clients = append(resp.Clients, &brokerv1.OAuthClientEntry{Connector: k.Connector,
			Client: &brokerv1.OAuthClientRef{WorkspaceId: k.Workspace, SecretGeneration: k.Generation}})
	}
	return resp, nil
}

// clientKey is the stored registration a request names.
func clientKey(connector string, ref *brokerv1.OAuthClientRef) vault.ClientKey {
	return vault.ClientKey{Connector: connector, Workspace: ref.GetWorkspaceId(), Generation: ref.GetSecretGeneration()}
}

// ExchangeAuthorizationCode redeems a code and stores the tokens.
func (s *AdminServer) ExchangeAuthorizationCode(ctx context.Context, req *brokerv1.ExchangeAuthorizationCodeRequest) (*brokerv1.ExchangeAuthorizationCodeResponse, error) {
	if req.GetEndpoint().GetTokenUrl() == "" {
		return nil, s.toStatus(ctx, fmt.Errorf("ExchangeAuthorizationCode: %w: endpoint.token_url is required", errMismatch))
	}
	if err := checkHosts(req.GetAllowedHosts(), "token endpoint", req.GetEndpoint().GetTokenUrl(), req.GetEndpoint().GetIdentityUrl(),
		req.GetTestRequest().GetUrl()); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ExchangeAuthorizationCode: %w", err))
	}
	defer s.cache.Drop(req.GetConnectionId())
	scopes, who, err := s.oauth.Redeem(ctx, oauth.Exchange{AllowedHosts: req.GetAllowedHosts(), Test: testFromProto(req.GetTestRequest()),
		ConnectionID: vault.Key(req.GetConnectionId(), req.GetSecretGeneration()), WorkspaceID: req.GetWorkspaceId(), Connector: req.GetConnector(),
		Instance: appinstance.FromProto(req.GetInstance()),
		TokenURL: req.GetEndpoint().GetTokenUrl(), IdentityURL: req.GetEndpoint().GetIdentityUrl(),
		AuthStyle: req.GetEndpoint().GetTokenAuthStyle(),
		Code:      req.GetCode(), RedirectURI: req.GetRedirectUri(), CodeVerifier: req.GetCodeVerifier(),
		Client: clientKey(req.GetConnector(), req.GetClient()), PrivateNetwork: req.GetPrivateNetwork(), BaseURL: req.GetBaseUrl(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ExchangeAuthorizationCode: %w", err))
	}
	resp := &brokerv1.ExchangeAuthorizationCodeResponse{GrantedScopes: scopes, AuthorizedAs: who}
	// The token's expiry, for the connection service to show: read back
	// (an authorization is rare); a failed read only leaves it unsaid.
	if rec, _, err := s.secrets.Get(ctx, vault.Key(req.GetConnectionId(), req.GetSecretGeneration())); err == nil &&
		rec.OAuth2 != nil && !rec.OAuth2.Expiry.IsZero() {
		resp.AccessTokenExpireTime = timestamppb.New(rec.OAuth2.Expiry)
	}
	return resp, nil
}

// errUseSignRequest refuses to hand out OAuth 1.0a secrets.
var errUseSignRequest = errors.New("OAuth 1.0a credentials are not handed out; have requests signed with SignRequest")

// SignRequest signs one request with an OAuth 1.0a connection's token.
func (s *WorkerServer) SignRequest(ctx context.Context, req *brokerv1.SignRequestRequest) (_ *brokerv1.SignRequestResponse, err error) {
	g, err := s.authorize(ctx, req.GetConnectionId(), false)
	defer func() { s.record("SignRequest", g, err) }()
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	rec, _, err := s.secrets.Get(ctx, g.key())
	if errors.Is(err, vault.ErrNotFound) && g.generation != "" {
		if g, err = s.reauthorize(ctx, g, req.GetConnectionId(), false); err == nil {
			rec, _, err = s.secrets.Get(ctx, g.key())
		}
	}
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("SignRequest: %w", err))
	}
	if rec.OAuth1 == nil || rec.OAuth1.Token == "" {
		return nil, s.toStatus(ctx, fmt.Errorf("SignRequest: %w: the connection is not an authorized OAuth 1.0a connection", errMismatch))
	}
	// A signature is a credential for one request: only for the
	// connection's own hosts.
	if err := checkHost(rec, req.GetUrl(), "request to sign"); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("SignRequest: %w", err))
	}
	h, err := s.oauth1.Sign(ctx, rec, req.GetMethod(), req.GetUrl(), req.GetForm())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("SignRequest: %w", err))
	}
	return &brokerv1.SignRequestResponse{Authorization: h, ConnectionId: g.resolved, RuntimeUser: g.runtimeUser}, nil
}

// StartOAuth1 gets a request token and returns the app's authorization URL.
func (s *AdminServer) StartOAuth1(ctx context.Context, req *brokerv1.StartOAuth1Request) (*brokerv1.StartOAuth1Response, error) {
	ep := req.GetEndpoint()
	if err := checkHosts(req.GetAllowedHosts(), "OAuth 1.0a endpoint", ep.GetRequestTokenUrl(), ep.GetAccessTokenUrl(),
		req.GetTestRequest().GetUrl()); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("StartOAuth1: %w", err))
	}
	u, err := s.oauth1.Begin(ctx, oauth1.Start{AllowedHosts: req.GetAllowedHosts(), Test: testFromProto(req.GetTestRequest()), ConnectionID: vault.Key(req.GetConnectionId(), req.GetSecretGeneration()), WorkspaceID: req.GetWorkspaceId(),
		Connector: req.GetConnector(), Instance: appinstance.FromProto(req.GetInstance()),
		RequestTokenURL: ep.GetRequestTokenUrl(), AuthorizeURL: ep.GetAuthorizeUrl(), AccessTokenURL: ep.GetAccessTokenUrl(),
		CallbackURL: req.GetCallbackUrl(), Client: clientKey(req.GetConnector(), req.GetClient()), PrivateNetwork: req.GetPrivateNetwork(), BaseURL: req.GetBaseUrl()})
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("StartOAuth1: %w", err))
	}
	return &brokerv1.StartOAuth1Response{AuthorizeUrl: u}, nil
}

// CompleteOAuth1 trades the authorized request token for the access token.
func (s *AdminServer) CompleteOAuth1(ctx context.Context, req *brokerv1.CompleteOAuth1Request) (*brokerv1.CompleteOAuth1Response, error) {
	key := vault.Key(req.GetConnectionId(), req.GetSecretGeneration())
	if req.GetIdentityUrl() != "" {
		rec, _, err := s.secrets.Get(ctx, key)
		if err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("CompleteOAuth1: %w", err))
		}
		if err := checkHost(rec, req.GetIdentityUrl(), "identity request"); err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("CompleteOAuth1: %w", err))
		}
	}
	defer s.cache.Drop(req.GetConnectionId())
	who, err := s.oauth1.Complete(ctx, key, req.GetRequestToken(), req.GetVerifier(), req.GetIdentityUrl(),
		clientKey("", req.GetClient()))
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("CompleteOAuth1: %w", err))
	}
	return &brokerv1.CompleteOAuth1Response{AuthorizedAs: who}, nil
}

// oauth1Store joins the secret and client stores for the OAuth 1.0a manager.
type oauth1Store struct {
	Secrets
	Clients
}

// errMismatch is returned when the secret's kind does not fit the auth type.
var errMismatch = errors.New("secret does not match auth type")

func setMaterial(rec *vault.Record, at credentialv1.AuthType, sec *credentialv1.Secret, ep *brokerv1.OAuth2Endpoint, scopes []string) error {
	switch at {
	case credentialv1.AuthType_AUTH_TYPE_BASIC:
		b := sec.GetBasic()
		if b == nil {
			return fmt.Errorf("%w: %s needs secret.basic", errMismatch, at)
		}
		rec.Basic = &vault.Basic{Username: b.GetUsername(), Password: b.GetPassword()}
	case credentialv1.AuthType_AUTH_TYPE_API_KEY, credentialv1.AuthType_AUTH_TYPE_CUSTOM_HEADER:
		k := sec.GetApiKey()
		if k == nil {
			return fmt.Errorf("%w: %s needs secret.api_key", errMismatch, at)
		}
		rec.APIKey = &vault.APIKey{Key: k.GetKey(), Secret: k.GetSecret()}
	case credentialv1.AuthType_AUTH_TYPE_OAUTH2_CLIENT_CREDENTIALS:
		k := sec.GetApiKey()
		if k == nil || k.GetSecret() == "" || ep.GetTokenUrl() == "" {
			return fmt.Errorf("%w: %s needs secret.api_key with the client id and secret, and endpoint.token_url", errMismatch, at)
		}
		// Tokens are minted on first use and kept until near expiry.
		rec.APIKey = &vault.APIKey{Key: k.GetKey(), Secret: k.GetSecret()}
		rec.OAuth2 = &vault.OAuth2{TokenURL: ep.GetTokenUrl(), Scopes: scopes, AuthStyle: ep.GetTokenAuthStyle()}
	default:
		return fmt.Errorf("%w: %s takes no secret here", errMismatch, at)
	}
	return nil
}

// credentialOf picks what a worker gets, by auth type: never a refresh
// token, and never a client-credentials connection's client secret.
func credentialOf(rec vault.Record) (*credentialv1.Credential, error) {
	at := credentialv1.AuthType(credentialv1.AuthType_value[rec.AuthType])
	c := &credentialv1.Credential{AuthType: at}
	switch {
	case at == credentialv1.AuthType_AUTH_TYPE_BASIC && rec.Basic != nil:
		c.Material = &credentialv1.Credential_Basic{Basic: &credentialv1.BasicAuth{
			Username: rec.Basic.Username, Password: rec.Basic.Password,
		}}
	case (at == credentialv1.AuthType_AUTH_TYPE_API_KEY || at == credentialv1.AuthType_AUTH_TYPE_CUSTOM_HEADER) && rec.APIKey != nil:
		c.Material = &credentialv1.Credential_ApiKey{ApiKey: &credentialv1.ApiKey{
			Key: rec.APIKey.Key, Secret: rec.APIKey.Secret,
		}}
	case (at == credentialv1.AuthType_AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE || at == credentialv1.AuthType_AUTH_TYPE_OAUTH2_CLIENT_CREDENTIALS) &&
		rec.OAuth2 != nil && rec.OAuth2.AccessToken != "":
		c.Material = &credentialv1.Credential_Oauth2{Oauth2: &credentialv1.OAuth2AccessToken{
			AccessToken: rec.OAuth2.AccessToken, TokenType: rec.OAuth2.TokenType, Scopes: rec.OAuth2.Scopes,
		}}
		if !rec.OAuth2.Expiry.IsZero() {
			c.ExpireTime = timestamppb.New(rec.OAuth2.Expiry)
		}
	default:
		return nil, errors.New("stored record has no usable material for its auth type")
	}
	return c, nil
}
