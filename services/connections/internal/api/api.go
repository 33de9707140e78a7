// Package api implements ConnectionService. It keeps connection metadata in a
// store.Store and hands secret input straight to the broker's admin API; a
// secret passes through memory here and is never stored or logged.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/google/uuid"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/appinstance"
	"github.com/integrationhub/connections/internal/egress"
	"github.com/integrationhub/connections/internal/failpoint"
	"github.com/integrationhub/connections/internal/privilege"

	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/catalog"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// DefaultPageSize applies when a list request sets no page size.
const DefaultPageSize = 50

// Server implements ConnectionService.
type Server struct {
	connectionsv1.UnimplementedConnectionServiceServer

	store   store.Store
	catalog *catalog.Catalog
	broker  brokerv1.BrokerAdminClient
	logger  *slog.Logger
	// watchPoll is how often WatchConnections looks for new events.
	watchPoll time.Duration
	oauth     OAuthConfig
	// writeTimeout bounds one secret write at the broker (the write
	// protocol's intent lasts a little longer).
	writeTimeout time.Duration
	// destroyQ holds replaced secret generations for RunDestroyer.
	destroyQ     chan replaced
	destroyGrace time.Duration
	checks       ChecksConfig
	hooks        WebhooksConfig
	connect      ConnectConfig
	// hookClient sends webhook deliveries; hookWake starts a delivery
	// pass early.
	hookClient *http.Client
	hookWake   chan struct{}
}

// Deps is everything a Server is built from, fixed at construction.
type Deps struct {
	Store   store.Store
	Catalog *catalog.Catalog
	Broker  brokerv1.BrokerAdminClient
	Logger  *slog.Logger
	// WatchPoll is how often WatchConnections polls the event log (shared
	// by every replica on one database).
	WatchPoll time.Duration
	// OAuth enables StartAuthorization and the callback (RedirectURL set).
	OAuth OAuthConfig
	// WriteTimeout bounds one secret write at the broker; 0 is
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Destroyer makes replaced secret generations be destroyed by
	// RunDestroyer, DestroyGrace after the commit that replaced them. The
	// grace keeps the previous committed generation readable while the
	// change reaches the brokers (a broker still serving it from its cached
	// metadata needs no re-read), and keeps the destroys out of a burst of
	// editor writes: they run when the burst is over, at the same total
	// cost. A replaced generation is never served by a broker that knows of
	// the change, whether or not it is still in Vault. Without it (tests of
	// the API alone) they are destroyed in the request.
	Destroyer    bool
	DestroyGrace time.Duration
	// Checks tunes the scheduled checks (RunChecks); a zero Period turns
	// them off.
	Checks ChecksConfig
	// Webhooks tunes webhook delivery (RunWebhooks); a zero Period turns
	// webhooks off.
	Webhooks WebhooksConfig
	// Connect enables the hosted connect flow (its BaseURL set).
	Connect ConnectConfig
}

// New returns a server built from d.
func New(d Deps) *Server {
	s := &Server{store: d.Store, catalog: d.Catalog, broker: d.Broker, logger: d.Logger, watchPoll: d.WatchPoll,
		oauth: d.OAuth, writeTimeout: d.WriteTimeout, destroyGrace: d.DestroyGrace, checks: d.Checks, hooks: d.Webhooks, connect: d.Connect,
		hookWake: make(chan struct{}, 1)}
	// Receivers are reached through the same guard as the broker's app
	// requests: no private address unless allowed, no redirect followed.
	s.hookClient = egress.New(nil).Client(d.Webhooks.AllowPrivate, 0)
	if s.writeTimeout <= 0 {
		s.writeTimeout = DefaultWriteTimeout
	}
	if d.Destroyer {
		s.destroyQ = make(chan replaced, 10_000)
	}
	return s
}

// CreateConnection creates a connection. For secret-taking auth types the
// secret is written first, as a new generation under a write intent, and the
// connection is stored (active, naming that generation) only afterwards: a
// create the broker refuses leaves no row, no audit record and no change
// event.
func (s *Server) CreateConnection(ctx context.Context, req *connectionsv1.CreateConnectionRequest) (*connectionsv1.CreateConnectionResponse, error) {
	if err := authz.CheckWorkspace(ctx, req.GetWorkspaceId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	conn, ok := s.catalog.Get(req.GetConnector())
	if !ok {
		return nil, s.toStatus(ctx, invalid("connector",
			fmt.Sprintf("unknown app %q; ListConnectors lists the apps", req.GetConnector())))
	}
	at := req.GetAuthType()
	if !conn.Supports(at) {
		return nil, s.toStatus(ctx, invalid("auth_type",
			fmt.Sprintf("%s does not offer %s; it offers %v", conn.Name, at, conn.AuthTypes())))
	}
	c := &store.Connection{
		ID:          uuid.NewString(),
		WorkspaceID: req.GetWorkspaceId(),
		ProjectID:   req.GetProjectId(),
		Name:        req.GetName(),
		Connector:   conn.Name,
		Environment: environments.stored(req.GetEnvironment()),
		AuthType:    authTypes.stored(at),
		Owner:       authz.Actor(ctx),
	}
	var bind *store.Binding
	if b := req.GetBind(); b != nil {
		// Binding is the recipes privilege's to grant, and only an active
		// connection can be bound: an OAuth connection is bound once it is
		// authorized.
		if err := authz.CheckPrivilege(ctx, privilege.ManageRecipes); err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("CreateConnection with bind: %w", err))
		}
		if !takesSecret(at) {
			return nil, s.toStatus(ctx, invalid("bind",
				"a connection that needs authorization is bound with BindConnection once authorized; leave bind unset"))
		}
		bind = &store.Binding{RecipeID: b.GetRecipeId(), Step: b.GetStep()}
	}
	c, err := s.create(ctx, conn, c, req.GetInstance(), req.GetSecret(), bind, req.GetVerify())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("CreateConnection: %w", err))
	}
	resp := &connectionsv1.CreateConnectionResponse{Connection: toProto(c)}
	s.withNextCheck(resp.Connection)
	return resp, nil
}

// create checks instance and secret against the connector and stores c:
// pending until authorized for OAuth auth types, else active with its secret
// written through the write protocol. Shared by ordinary and runtime user
// connections.
//
// With bind, the connection is bound to that recipe step in the transaction
// that creates it (store.CreateBound), under the same rules as
// BindConnection.
//
// With verify, the new secret is checked with the connector's test request
// before anything is stored: a refusal destroys it and stores nothing.
func (s *Server) create(ctx context.Context, conn *catalog.Connector, c *store.Connection, inst *credentialv1.AppInstance, sec *credentialv1.Secret,
	bind *store.Binding, verify bool) (*store.Connection, error) {
	at := authTypes.of(c.AuthType)
	if err := checkInstance(conn, inst); err != nil {
		return nil, err
	}
	if err := checkSecret(at, sec, true); err != nil {
		return nil, err
	}
	if err := checkWhere(conn, c.Environment, inst); err != nil {
		return nil, err
	}
	c.Instance = appinstance.FromProto(inst)
	actor := authz.Actor(ctx)
	if !takesSecret(at) {
		c.Status = store.StatusPending
		c.StatusReason = reasons.stored(connectionsv1.StatusReason_STATUS_REASON_AUTHORIZATION_REQUIRED)
		if err := s.store.Create(ctx, actor, c); err != nil {
			return nil, err
		}
		return c, nil
	}
	w, err := s.beginWrite(ctx, c.ID, s.writeTimeout)
	if err != nil {
		return nil, err
	}
	put := putSecretRequest(conn, c, inst, sec)
	put.SecretGeneration = w.key.Generation
	bctx, cancel := s.brokerCtx(ctx)
	_, err = s.broker.PutSecret(bctx, put)
	cancel()
	if err != nil {
		s.abort(ctx, w, true)
		return nil, brokerErr("store secret", err)
	}
	if err := s.afterBroker(ctx, w); err != nil {
		return nil, err
	}
	if verify {
		if err := s.verifyNew(ctx, conn, c, w.key.Generation); err != nil {
			s.abort(ctx, w, true)
			return nil, err
		}
	}
	c.Status, c.SecretGeneration = store.StatusActive, w.key.Generation
	if bind != nil {
		err = s.store.CreateBound(ctx, actor, c, *bind, func(w *store.Workspace, r *store.Recipe, c *store.Connection, others []store.BindingView) error {
			if r.WorkspaceID != c.WorkspaceID {
				// As BindConnection would refuse it: a recipe of another
				// workspace is not the caller's to learn about.
				return &store.NotFoundError{Kind: store.KindRecipe, ID: r.ID}
			}
			return s.bindingRules(w, r, c, others)
		})
	} else {
		err = s.store.Create(ctx, actor, c)
	}
	if err != nil {
		s.abortAfter(ctx, w, err)
		return nil, err
	}
	// Tests only (INTEGRATIONHUB_FAILPOINTS): a crash between the commit and
	// the answer (the connection exists; its caller hears an error).
	_ = failpoint.Inject(ctx, FPAfterCommit)
	return c, nil
}

// GetConnection returns one connection.
func (s *Server) GetConnection(ctx context.Context, req *connectionsv1.GetConnectionRequest) (*connectionsv1.GetConnectionResponse, error) {
	c, err := s.get(ctx, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("GetConnection: %w", err))
	}
	resp := &connectionsv1.GetConnectionResponse{Connection: toProto(c)}
	s.withNextCheck(resp.Connection)
	return resp, nil
}

// withNextCheck fills in when each active connection's next scheduled
// check is due.
func (s *Server) withNextCheck(cs ...*connectionsv1.Connection) {
	for _, c := range cs {
		if c.GetStatus() == connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE {
			if due, ok := s.dueAt(c.GetId(), c.GetConnector(), c.GetCreateTime().AsTime(), c.GetLastVerifyTime().AsTime()); ok {
				c.NextCheckTime = timestamppb.New(due)
			}
		}
	}
}

// get loads a connection the caller may see.
func (s *Server) get(ctx context.Context, id string) (*store.Connection, error) {
	c, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := authz.CheckWorkspace(ctx, c.WorkspaceID); err != nil {
		return nil, err
	}
	return c, nil
}

// ListConnections returns one page of a workspace's connections.
func (s *Server) ListConnections(ctx context.Context, req *connectionsv1.ListConnectionsRequest) (*connectionsv1.ListConnectionsResponse, error) {
	if err := authz.CheckWorkspace(ctx, req.GetWorkspaceId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = DefaultPageSize
	}
	q := store.ListQuery{
		WorkspaceID:  req.GetWorkspaceId(),
		PageSize:     size,
		PageToken:    req.GetPageToken(),
		Connector:    req.GetConnector(),
		Owner:        req.GetOwner(),
		ProjectID:    req.GetProjectId(),
		HasProject:   req.ProjectId != nil,
		NameContains: req.GetNameContains(),
	}
	if req.GetAuthType() != credentialv1.AuthType_AUTH_TYPE_UNSPECIFIED {
		q.AuthType = authTypes.stored(req.GetAuthType())
	}
	if req.GetRuntimeUser() != "" {
		if err := authz.CheckPrivilege(ctx, privilege.ViewRuntimeUserConnections); err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("ListConnections by runtime user: %w", err))
		}
		q.RuntimeUser = req.GetRuntimeUser()
	}
	if req.GetStatus() != connectionsv1.ConnectionStatus_CONNECTION_STATUS_UNSPECIFIED {
		q.Status = statuses.stored(req.GetStatus())
	}
	if req.GetEnvironment() != connectionsv1.Environment_ENVIRONMENT_UNSPECIFIED {
		q.Environment = environments.stored(req.GetEnvironment())
	}
	cs, next, err := s.store.List(ctx, q)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ListConnections: %w", err))
	}
	resp := &connectionsv1.ListConnectionsResponse{NextPageToken: next}
	if req.GetIncludeTotalSize() {
		if resp.TotalSize, err = s.store.Count(ctx, q); err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("ListConnections: %w", err))
		}
	}
	for _, c := range cs {
		resp.Connections = append(resp.Connections, toProto(c))
	}
	s.withNextCheck(resp.Connections...)
	return resp, nil
}

// UpdateConnection changes name, project, instance or credentials. New
// credentials (or a new instance, which the broker keeps beside them) are
// written as a new secret generation under a write intent; the transaction
// that checks the etag under the row lock names it, and only then is it
// served. A refused update leaves the served generation as it was.
func (s *Server) UpdateConnection(ctx context.Context, req *connectionsv1.UpdateConnectionRequest) (*connectionsv1.UpdateConnectionResponse, error) {
	version, err := parseEtag(req.GetEtag())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	old, err := s.get(ctx, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("UpdateConnection: %w", err))
	}
	// Checked again under the lock; this only saves a secret write.
	if version > 0 && old.Version != version {
		return nil, s.toStatus(ctx, fmt.Errorf("UpdateConnection: %w", store.ErrConflict))
	}
	conn, ok := s.catalog.Get(old.Connector)
	if !ok {
		return nil, s.toStatus(ctx, fmt.Errorf("UpdateConnection: connector %q left the catalog: %w", old.Connector, errConnectorGone))
	}
	at := authTypes.of(old.AuthType)
	if req.GetInstance() != nil {
		if err := checkInstance(conn, req.GetInstance()); err != nil {
			return nil, s.toStatus(ctx, err)
		}
		if err := checkWhere(conn, old.Environment, req.GetInstance()); err != nil {
			return nil, s.toStatus(ctx, err)
		}
	}
	moved := moves(old.Instance, req.GetInstance())
	if err := checkMove(at, moved, req.GetSecret()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if err := checkSecret(at, req.GetSecret(), false); err != nil {
		return nil, s.toStatus(ctx, err)
	}

	if old.Status == store.StatusDisconnected && takesSecret(at) && req.GetSecret() == nil && req.GetInstance() != nil {
		// There are no stored credentials to move to the new instance.
		return nil, s.toStatus(ctx, rule("CONNECTION_DISCONNECTED", "connections/"+old.ID,
			"the connection is disconnected: give its credentials (secret) with the new instance to reconnect it"))
	}
	var w *write
	if takesSecret(at) && (req.GetSecret() != nil || req.GetInstance() != nil) {
		inst := req.GetInstance()
		if inst == nil {
			inst = old.Instance.Proto()
		}
		if w, err = s.beginWrite(ctx, old.ID, s.writeTimeout); err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("UpdateConnection: %w", err))
		}
		put := putSecretRequest(conn, old, inst, req.GetSecret())
		put.SecretGeneration, put.FromGeneration = w.key.Generation, old.SecretGeneration
		bctx, cancel := s.brokerCtx(ctx)
		_, err := s.broker.PutSecret(bctx, put)
		cancel()
		if err != nil {
			s.abort(ctx, w, true)
			return nil, s.toStatus(ctx, brokerErr("UpdateConnection: store secret", err))
		}
		if err := s.afterBroker(ctx, w); err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("UpdateConnection: %w", err))
		}
	}
	previous, tokens := "", ""
	c, err := s.store.Update(ctx, authz.Actor(ctx), old.ID, version, func(c *store.Connection) error {
		if w != nil {
			// Material copied from a generation that is no longer live
			// would undo a concurrent credential change.
			if req.GetSecret() == nil && c.SecretGeneration != old.SecretGeneration {
				return errStaleMaterial
			}
			previous, c.SecretGeneration = c.SecretGeneration, w.key.Generation
		}
		if req.Name != nil {
			c.Name = req.GetName()
		}
		if req.ProjectId != nil {
			c.ProjectID = req.GetProjectId()
		}
		if req.GetInstance() != nil {
			c.Instance = appinstance.FromProto(req.GetInstance())
		}
		if req.GetSecret() != nil {
			c.Status, c.StatusReason, c.LastError = store.StatusActive, "", ""
		}
		if moved && !takesSecret(at) {
			// The tokens were issued for the old hosts: none is live now.
			needsAuthorization(c)
			tokens, c.SecretGeneration = c.SecretGeneration, ""
		}
		return nil
	})
	if err != nil {
		s.abortAfter(ctx, w, err)
		if errors.Is(err, errStaleMaterial) {
			err = store.ErrConflict
		}
		return nil, s.toStatus(ctx, fmt.Errorf("UpdateConnection: %w", err))
	}
	if w != nil {
		s.committed(ctx, c.ID, previous)
	}
	if moved && !takesSecret(at) {
		s.dropTokens(ctx, c.ID, tokens)
	}
	return &connectionsv1.UpdateConnectionResponse{Connection: toProto(c)}, nil
}

// DeleteConnection deletes a connection and its runtime user connections.
// One transaction checks the etag and (unless forced) the bindings under the
// row lock and writes a tombstone: from then on the connection is gone for
// every reader, and the delete is acknowledged even if destroying its
// secrets in Vault must wait for the reconciler.
func (s *Server) DeleteConnection(ctx context.Context, req *connectionsv1.DeleteConnectionRequest) (*connectionsv1.DeleteConnectionResponse, error) {
	version, err := parseEtag(req.GetEtag())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	c, err := s.get(ctx, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("DeleteConnection: %w", err))
	}
	if c.ParentConnectionID != "" {
		return nil, s.toStatus(ctx, invalid("id", "this is a runtime user connection; delete it with DeleteRuntimeUserConnection"))
	}
	gone, err := s.store.Delete(ctx, authz.Actor(ctx), c.ID, version, req.GetForce())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("DeleteConnection: %w", err))
	}
	if err := s.finishDelete(ctx, gone); err != nil {
		s.logger.WarnContext(ctx, "delete acknowledged; its secrets are destroyed by the reconciler", "connection_id", c.ID, "err", err)
	}
	return &connectionsv1.DeleteConnectionResponse{}, nil
}

// ListConnectors returns a page of the catalog, ordered by name.
func (s *Server) ListConnectors(ctx context.Context, req *connectionsv1.ListConnectorsRequest) (*connectionsv1.ListConnectorsResponse, error) {
	all := s.catalog.All()
	start := 0
	if tok := req.GetPageToken(); tok != "" {
		// The token is the index of the next connector; the catalog only
		// changes on restart, when a stale token at worst skips or repeats.
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(all) {
			return nil, s.toStatus(ctx, fmt.Errorf("ListConnectors: %w", store.ErrInvalidPageToken))
		}
		start = n
	}
	end := len(all)
	if size := int(req.GetPageSize()); size > 0 && start+size < end {
		end = start + size
	}
	resp := &connectionsv1.ListConnectorsResponse{}
	for _, c := range all[start:end] {
		resp.Connectors = append(resp.Connectors, connectorToProto(c))
	}
	if end < len(all) {
		resp.NextPageToken = strconv.Itoa(end)
	}
	return resp, nil
}

// putSecretRequest is what the broker needs to keep c's secret: for client
// credentials also where tokens are minted and with which scopes.
func putSecretRequest(conn *catalog.Connector, c *store.Connection, inst *credentialv1.AppInstance, sec *credentialv1.Secret) *brokerv1.PutSecretRequest {
	at := authTypes.of(c.AuthType)
	r := &brokerv1.PutSecretRequest{ConnectionId: c.ID, WorkspaceId: c.WorkspaceID, Connector: c.Connector,
		AuthType: at, Instance: inst, Secret: sec, AllowedHosts: conn.HostsFor(inst), TestRequest: testRequest(conn, c, inst),
		Placement: conn.PlacementFor(at), PrivateNetwork: conn.PrivateNetwork, BaseUrl: baseURLOf(conn, appinstance.FromProto(inst))}
	if at == credentialv1.AuthType_AUTH_TYPE_OAUTH2_CLIENT_CREDENTIALS && conn.OAuth2 != nil {
		in := appinstance.FromProto(inst)
		r.Endpoint = &brokerv1.OAuth2Endpoint{TokenUrl: expand(conn.OAuth2.TokenURL, in), TokenAuthStyle: conn.OAuth2.TokenAuthStyle}
		r.Scopes = conn.OAuth2.Scopes
	}
	return r
}

// takesSecret reports whether connections of this auth type get their secret
// from the caller (rather than from an authorization flow). Client
// credentials take the connection's own client id and secret.
func takesSecret(at credentialv1.AuthType) bool {
	switch at {
	case credentialv1.AuthType_AUTH_TYPE_BASIC, credentialv1.AuthType_AUTH_TYPE_API_KEY, credentialv1.AuthType_AUTH_TYPE_CUSTOM_HEADER,
		credentialv1.AuthType_AUTH_TYPE_OAUTH2_CLIENT_CREDENTIALS:
		return true
	}
	return false
}

// checkSecret checks that the secret's kind fits the auth type. On create a
// secret-taking auth type requires one.
func checkSecret(at credentialv1.AuthType, sec *credentialv1.Secret, create bool) error {
	if !takesSecret(at) {
		if sec != nil {
			return invalid("secret", fmt.Sprintf("%s connections take no secret; they get their tokens by authorization", at))
		}
		return nil
	}
	if sec == nil {
		if create {
			return invalid("secret", fmt.Sprintf("%s connections need a secret", at))
		}
		return nil
	}
	switch {
	case at == credentialv1.AuthType_AUTH_TYPE_BASIC && sec.GetBasic() == nil:
		return invalid("secret.basic", "AUTH_TYPE_BASIC needs secret.basic (username and password)")
	case at != credentialv1.AuthType_AUTH_TYPE_BASIC && sec.GetApiKey() == nil:
		return invalid("secret.api_key", fmt.Sprintf("%s needs secret.api_key", at))
	case at == credentialv1.AuthType_AUTH_TYPE_OAUTH2_CLIENT_CREDENTIALS && sec.GetApiKey().GetSecret() == "":
		return invalid("secret.api_key.secret", "client credentials need the client id in key and the client secret in secret")
	}
	return nil
}

// checkInstance checks the instance fields the connector requires.
func checkInstance(conn *catalog.Connector, in *credentialv1.AppInstance) error {
	for _, p := range conn.InstanceParameters {
		if !p.Required {
			continue
		}
		set := map[string]bool{
			"base_url":  in.GetBaseUrl() != "",
			"subdomain": in.GetSubdomain() != "",
			"org_id":    in.GetOrgId() != "",
			"sandbox":   true, // a bool is always set
		}[p.Name]
		if !set {
			return invalid("instance."+p.Name, fmt.Sprintf("required by %s: %s", conn.Name, p.Description))
		}
	}
	return nil
}

func parseEtag(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, invalid("etag", "not an etag this service issued; read the connection again")
	}
	return v, nil
}
