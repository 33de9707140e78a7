package api

import (
	"context"
	"fmt"
	"time"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
)

// RecordTokenRefresh notes a token the broker obtained. A report about a
// secret generation the connection no longer names is ignored: the token it
// describes is not the one served.
func (s *Server) RecordTokenRefresh(ctx context.Context, req *connectionsv1.RecordTokenRefreshRequest) (*connectionsv1.RecordTokenRefreshResponse, error) {
	c, err := s.get(ctx, req.GetConnectionId())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("RecordTokenRefresh: %w", err))
	}
	if c.SecretGeneration != req.GetSecretGeneration() {
		return &connectionsv1.RecordTokenRefreshResponse{}, nil
	}
	var expires time.Time
	if req.GetExpireTime() != nil {
		expires = req.GetExpireTime().AsTime()
	}
	if err := s.store.RecordRefresh(ctx, c.ID, req.GetRefreshTime().AsTime(), expires); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("RecordTokenRefresh: %w", err))
	}
	return &connectionsv1.RecordTokenRefreshResponse{}, nil
}
