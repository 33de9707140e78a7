package api

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"

	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// RecordAccess stores a batch of the credential broker's access events. The
// events span workspaces, so only a token for every workspace may record
// them; the batch is stored whole or not at all.
func (s *Server) RecordAccess(ctx context.Context, req *connectionsv1.RecordAccessRequest) (*connectionsv1.RecordAccessResponse, error) {
	if err := authz.CheckAllWorkspaces(ctx); err != nil {
		return nil, s.toStatus(ctx, denied("access events span workspaces; recording them needs a token for every workspace", err))
	}
	evs := make([]store.AccessEvent, 0, len(req.GetEvents()))
	for _, e := range req.GetEvents() {
		evs = append(evs, accessFromProto(e))
	}
	if err := s.store.RecordAccess(ctx, req.GetBatchId(), evs); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("RecordAccess: %w", err))
	}
	return &connectionsv1.RecordAccessResponse{}, nil
}

// ListAccessEvents pages through recorded accesses, oldest first: one
// workspace's, or (with a token for every workspace) all of them, including
// those refused before a workspace was known.
func (s *Server) ListAccessEvents(ctx context.Context, req *connectionsv1.ListAccessEventsRequest) (*connectionsv1.ListAccessEventsResponse, error) {
	ws := req.GetWorkspaceId()
	if ws == "" {
		if err := authz.CheckAllWorkspaces(ctx); err != nil {
			return nil, s.toStatus(ctx, denied(
				"an empty workspace_id lists every workspace's access events and needs a token for every workspace; set workspace_id", err))
		}
	} else if err := authz.CheckWorkspace(ctx, ws); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	after, size, err := seqPage(req.GetPageToken(), req.GetPageSize())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	evs, err := s.store.AccessEvents(ctx, store.AccessQuery{
		WorkspaceID: ws, ConnectionID: req.GetConnectionId(), RecipeID: req.GetRecipeId(), JobID: req.GetJobId(),
		Decision: decisions.stored(req.GetDecision()), AfterSeq: after, Limit: size + 1,
	})
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ListAccessEvents: %w", err))
	}
	resp := &connectionsv1.ListAccessEventsResponse{}
	evs, resp.NextPageToken = seqNext(evs, size, func(e store.AccessEvent) int64 { return e.Seq })
	for _, e := range evs {
		resp.Events = append(resp.Events, accessToProto(e))
	}
	return resp, nil
}

// accessFromProto converts an event as the broker sends it; its sequence is
// the store's to assign.
func accessFromProto(e *connectionsv1.AccessEvent) store.AccessEvent {
	return store.AccessEvent{
		WorkspaceID:           e.GetWorkspaceId(),
		Operation:             e.GetOperation(),
		JobID:                 e.GetJobId(),
		RecipeID:              e.GetRecipeId(),
		RequestedConnectionID: e.GetRequestedConnectionId(),
		ResolvedConnectionID:  e.GetResolvedConnectionId(),
		RuntimeUser:           e.GetRuntimeUser(),
		Decision:              decisions.stored(e.GetDecision()),
		Code:                  e.GetCode(),
		Reason:                e.GetReason(),
		Count:                 e.GetCount(),
		FirstTime:             e.GetFirstTime().AsTime(),
		LastTime:              e.GetLastTime().AsTime(),
		Broker:                e.GetBroker(),
	}
}

func accessToProto(e store.AccessEvent) *connectionsv1.AccessEvent {
	return &connectionsv1.AccessEvent{
		Sequence:              e.Seq,
		WorkspaceId:           e.WorkspaceID,
		Operation:             e.Operation,
		JobId:                 e.JobID,
		RecipeId:              e.RecipeID,
		RequestedConnectionId: e.RequestedConnectionID,
		ResolvedConnectionId:  e.ResolvedConnectionID,
		RuntimeUser:           e.RuntimeUser,
		Decision:              decisions.of(e.Decision),
		Code:                  e.Code,
		Reason:                e.Reason,
		Count:                 e.Count,
		FirstTime:             timestamppb.New(e.FirstTime),
		LastTime:              timestamppb.New(e.LastTime),
		Broker:                e.Broker,
	}
}
