package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"

	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// errUnchanged ends an update that has nothing to change.
var errUnchanged = errors.New("nothing to change")

// DisconnectConnection removes a connection's credentials and turns it
// DISCONNECTED, keeping its id and bindings. The commit stops naming the
// live secret generation, so no broker that sees the change serves it; the
// generation is destroyed after the replacement grace, as one an update
// replaced. Disconnecting a disconnected connection changes nothing.
func (s *Server) DisconnectConnection(ctx context.Context, req *connectionsv1.DisconnectConnectionRequest) (*connectionsv1.DisconnectConnectionResponse, error) {
	version, err := parseEtag(req.GetEtag())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	old, err := s.get(ctx, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("DisconnectConnection: %w", err))
	}
	if old.ParentConnectionID != "" {
		return nil, s.toStatus(ctx, invalid("id", "this is a runtime user connection; remove it with DeleteRuntimeUserConnection"))
	}
	actor := authz.Actor(ctx)
	previous := ""
	c, err := s.store.Update(ctx, actor, old.ID, version, func(c *store.Connection) error {
		if c.Status == store.StatusDisconnected {
			return errUnchanged
		}
		previous = c.SecretGeneration
		c.Status, c.StatusReason = store.StatusDisconnected, ""
		c.LastError = "disconnected by " + actor + "; enter its credentials again (UpdateConnection) or authorize it again to reconnect"
		c.SecretGeneration, c.AuthorizedAs, c.GrantedScopes = "", "", nil
		return nil
	})
	switch {
	case errors.Is(err, errUnchanged):
		if c, err = s.store.Get(ctx, old.ID); err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("DisconnectConnection: %w", err))
		}
		return &connectionsv1.DisconnectConnectionResponse{Connection: toProto(c)}, nil
	case err != nil:
		return nil, s.toStatus(ctx, fmt.Errorf("DisconnectConnection: %w", err))
	}
	if previous != "" {
		s.committed(ctx, c.ID, previous)
	}
	return &connectionsv1.DisconnectConnectionResponse{Connection: toProto(c)}, nil
}

// PromoteConnection creates a production connection from a sandbox one's
// configuration and a new secret, through the same path (and checks) as
// CreateConnection.
func (s *Server) PromoteConnection(ctx context.Context, req *connectionsv1.PromoteConnectionRequest) (*connectionsv1.PromoteConnectionResponse, error) {
	src, err := s.get(ctx, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("PromoteConnection: %w", err))
	}
	if src.ParentConnectionID != "" {
		return nil, s.toStatus(ctx, invalid("id", "a runtime user connection cannot be promoted; promote its parent"))
	}
	if src.Environment != environments.stored(connectionsv1.Environment_ENVIRONMENT_SANDBOX) {
		return nil, s.toStatus(ctx, rule("NOT_SANDBOX", "connections/"+src.ID, "only a sandbox connection can be promoted; this one is already production"))
	}
	conn, ok := s.catalog.Get(src.Connector)
	if !ok {
		return nil, s.toStatus(ctx, fmt.Errorf("PromoteConnection: connector %q left the catalog: %w", src.Connector, errConnectorGone))
	}
	inst := req.GetInstance()
	if inst == nil {
		copied := src.Instance
		copied.Sandbox = false
		inst = copied.Proto()
	}
	name := req.GetName()
	if name == "" {
		name = src.Name
	}
	c := &store.Connection{
		ID:          uuid.NewString(),
		WorkspaceID: src.WorkspaceID,
		ProjectID:   src.ProjectID,
		Name:        name,
		Connector:   src.Connector,
		Environment: environments.stored(connectionsv1.Environment_ENVIRONMENT_PRODUCTION),
		AuthType:    src.AuthType,
		Owner:       authz.Actor(ctx),
	}
	if c, err = s.create(ctx, conn, c, inst, req.GetSecret(), nil, false); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("PromoteConnection: %w", err))
	}
	resp := &connectionsv1.PromoteConnectionResponse{Connection: toProto(c)}
	s.withNextCheck(resp.Connection)
	return resp, nil
}
