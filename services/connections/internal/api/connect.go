package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/privilege"

	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// ConnectConfig enables the hosted connect flow (CreateConnectSession).
type ConnectConfig struct {
	// BaseURL is the public URL the flow's pages are under, e.g.
	// https://connect.example.com (the service's HTTP listener); empty
	// turns the flow off.
	BaseURL string
}

// ConnectPath is where the flow's pages are served; a session's URL is
// ConnectPath + its token.
const ConnectPath = "/connect/"

// defaultConnectTTL is how long a session's URL works when its creator
// does not say.
const defaultConnectTTL = 15 * time.Minute

var errNoConnect = errors.New("the hosted connect flow is off on this service (it needs -http-listen)")

// HashConnectToken is how a session's token is stored and looked up.
func HashConnectToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// CreateConnectSession stores a session that can do what the caller could
// (create a builder's connection in a project, or a runtime user's own
// connection, and bind it), checked now and again when the person submits.
func (s *Server) CreateConnectSession(ctx context.Context, req *connectionsv1.CreateConnectSessionRequest) (*connectionsv1.CreateConnectSessionResponse, error) {
	if err := authz.CheckWorkspace(ctx, req.GetWorkspaceId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if s.connect.BaseURL == "" {
		return nil, s.toStatus(ctx, rule("CONNECT_OFF", "connect", errNoConnect.Error()))
	}
	p, _ := authz.FromContext(ctx)
	cs := &store.ConnectSession{WorkspaceID: req.GetWorkspaceId(), Subject: authz.Actor(ctx), Privileges: p.Privileges,
		ProjectID: req.GetProjectId(), ReturnURL: req.GetReturnUrl()}
	if req.GetParentConnectionId() != "" || req.GetRuntimeUser() != "" {
		if req.GetParentConnectionId() == "" || req.GetRuntimeUser() == "" {
			return nil, s.toStatus(ctx, invalid("runtime_user", "a runtime user connection needs both parent_connection_id and runtime_user"))
		}
		if err := authz.CheckPrivilege(ctx, privilege.EditRuntimeUserConnections); err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("CreateConnectSession: %w", err))
		}
		if req.GetBind() != nil || req.GetProjectId() != "" {
			return nil, s.toStatus(ctx, invalid("bind", "a runtime user connection is used through its parent's bindings; leave bind and project_id unset"))
		}
		parent, err := s.get(ctx, req.GetParentConnectionId())
		if err == nil && parent.WorkspaceID != req.GetWorkspaceId() {
			err = &store.NotFoundError{Kind: store.KindConnection, ID: req.GetParentConnectionId()}
		}
		if err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("CreateConnectSession: %w", err))
		}
		cs.ParentConnectionID, cs.RuntimeUser, cs.Connectors = parent.ID, req.GetRuntimeUser(), []string{parent.Connector}
	} else {
		if err := authz.CheckPrivilege(ctx, privilege.CreateConnections); err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("CreateConnectSession: %w", err))
		}
		if len(req.GetConnectors()) == 0 {
			return nil, s.toStatus(ctx, invalid("connectors", "name at least one app (ListConnectors lists them)"))
		}
		for _, name := range req.GetConnectors() {
			if _, ok := s.catalog.Get(name); !ok {
				return nil, s.toStatus(ctx, invalid("connectors", fmt.Sprintf("unknown app %q; ListConnectors lists the apps", name)))
			}
		}
		cs.Connectors = req.GetConnectors()
		cs.Environment = environments.stored(req.GetEnvironment())
		if cs.Environment == "" {
			cs.Environment = environments.stored(connectionsv1.Environment_ENVIRONMENT_PRODUCTION)
		}
		if b := req.GetBind(); b != nil {
			if err := authz.CheckPrivilege(ctx, privilege.ManageRecipes); err != nil {
				return nil, s.toStatus(ctx, fmt.Errorf("CreateConnectSession with bind: %w", err))
			}
			r, err := s.store.GetRecipe(ctx, b.GetRecipeId())
			if err == nil && r.WorkspaceID != req.GetWorkspaceId() {
				err = store.ErrNotFound
			}
			if err != nil {
				return nil, s.toStatus(ctx, missing("recipe not found; register it with RegisterRecipe", err))
			}
			cs.BindRecipeID, cs.BindStep = b.GetRecipeId(), b.GetStep()
		}
	}
	if err := s.checkReturnURL(ctx, req.GetWorkspaceId(), req.GetReturnUrl()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	ttl := defaultConnectTTL
	if req.GetTtl() != nil {
		ttl = req.GetTtl().AsDuration()
	}
	cs.ExpireTime = time.Now().Add(ttl)
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	token := base64.RawURLEncoding.EncodeToString(raw)
	cs.TokenHash = HashConnectToken(token)
	if err := s.store.CreateConnectSession(ctx, cs); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("CreateConnectSession: %w", err))
	}
	return &connectionsv1.CreateConnectSessionResponse{Url: s.connect.BaseURL + ConnectPath + token,
		ExpireTime: timestamppb.New(cs.ExpireTime)}, nil
}
