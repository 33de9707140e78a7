package api

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"

	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// CreateRuntimeUserConnection stores a runtime user's own connection as a
// child of a parent connection: same app, workspace, environment and auth
// type; the runtime user's own secret.
func (s *Server) CreateRuntimeUserConnection(ctx context.Context, req *connectionsv1.CreateRuntimeUserConnectionRequest) (*connectionsv1.CreateRuntimeUserConnectionResponse, error) {
	parent, err := s.get(ctx, req.GetParentConnectionId())
	if err != nil {
		return nil, s.toStatus(ctx, missing("parent connection not found", err))
	}
	if parent.ParentConnectionID != "" {
		return nil, s.toStatus(ctx, invalid("parent_connection_id", "is itself a runtime user connection"))
	}
	conn, ok := s.catalog.Get(parent.Connector)
	if !ok {
		return nil, s.toStatus(ctx, fmt.Errorf("CreateRuntimeUserConnection: %w", errConnectorGone))
	}
	inst := req.GetInstance()
	if inst == nil {
		inst = parent.Instance.Proto()
	}
	c := &store.Connection{
		ID:                 uuid.NewString(),
		WorkspaceID:        parent.WorkspaceID,
		ProjectID:          parent.ProjectID,
		Name:               parent.Name + " (" + req.GetRuntimeUser() + ")",
		Connector:          parent.Connector,
		Environment:        parent.Environment,
		AuthType:           parent.AuthType,
		Owner:              authz.Actor(ctx),
		ParentConnectionID: parent.ID,
		RuntimeUser:        req.GetRuntimeUser(),
	}
	c, err = s.create(ctx, conn, c, inst, req.GetSecret(), nil, req.GetVerify())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("CreateRuntimeUserConnection: %w", err))
	}
	return &connectionsv1.CreateRuntimeUserConnectionResponse{Connection: toProto(c)}, nil
}

// ListRuntimeUserConnections lists a parent's runtime user connections, or
// one runtime user's.
func (s *Server) ListRuntimeUserConnections(ctx context.Context, req *connectionsv1.ListRuntimeUserConnectionsRequest) (*connectionsv1.ListRuntimeUserConnectionsResponse, error) {
	parent, err := s.get(ctx, req.GetParentConnectionId())
	if err != nil {
		return nil, s.toStatus(ctx, missing("parent connection not found", err))
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = DefaultPageSize
	}
	cs, next, err := s.store.List(ctx, store.ListQuery{WorkspaceID: parent.WorkspaceID, ParentConnectionID: parent.ID,
		RuntimeUser: req.GetRuntimeUser(), PageSize: size, PageToken: req.GetPageToken()})
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ListRuntimeUserConnections: %w", err))
	}
	resp := &connectionsv1.ListRuntimeUserConnectionsResponse{NextPageToken: next}
	for _, c := range cs {
		resp.Connections = append(resp.Connections, toProto(c))
	}
	return resp, nil
}

// DeleteRuntimeUserConnection removes a runtime user connection and its secret.
func (s *Server) DeleteRuntimeUserConnection(ctx context.Context, req *connectionsv1.DeleteRuntimeUserConnectionRequest) (*connectionsv1.DeleteRuntimeUserConnectionResponse, error) {
	c, err := s.get(ctx, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("DeleteRuntimeUserConnection: %w", err))
	}
	if c.ParentConnectionID == "" {
		return nil, s.toStatus(ctx, invalid("id", "not a runtime user connection; delete it with DeleteConnection"))
	}
	gone, err := s.store.Delete(ctx, authz.Actor(ctx), c.ID, 0, false)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("DeleteRuntimeUserConnection: %w", err))
	}
	if err := s.finishDelete(ctx, gone); err != nil {
		s.logger.WarnContext(ctx, "delete acknowledged; its secrets are destroyed by the reconciler", "connection_id", c.ID, "err", err)
	}
	return &connectionsv1.DeleteRuntimeUserConnectionResponse{}, nil
}
