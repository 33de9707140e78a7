package api

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/jwtauth"

	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// ListAuditEvents pages through a workspace's recorded changes.
func (s *Server) ListAuditEvents(ctx context.Context, req *connectionsv1.ListAuditEventsRequest) (*connectionsv1.ListAuditEventsResponse, error) {
	if err := authz.CheckWorkspace(ctx, req.GetWorkspaceId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	after, size, err := seqPage(req.GetPageToken(), req.GetPageSize())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	q := store.EventQuery{WorkspaceID: req.GetWorkspaceId(), ConnectionID: req.GetConnectionId(), Actor: req.GetActor(),
		AfterSeq: after, Limit: size + 1}
	if req.GetStartTime() != nil {
		q.Since = req.GetStartTime().AsTime()
	}
	if req.GetEndTime() != nil {
		q.Until = req.GetEndTime().AsTime()
	}
	evs, err := s.store.Events(ctx, q)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ListAuditEvents: %w", err))
	}
	resp := &connectionsv1.ListAuditEventsResponse{}
	evs, resp.NextPageToken = seqNext(evs, size, func(e store.Event) int64 { return e.Seq })
	for _, e := range evs {
		resp.Events = append(resp.Events, &connectionsv1.AuditEvent{
			Sequence: e.Seq, Time: timestamppb.New(e.Time), WorkspaceId: e.WorkspaceID,
			ConnectionId: e.ConnectionID, RecipeId: e.RecipeID, Actor: e.Actor, Action: e.Action,
			BeforeJson: e.Before, AfterJson: e.After,
		})
	}
	return resp, nil
}

// WatchConnections streams connection changes after a cursor. It polls the
// event log, which every replica on the database writes to, so a change made
// through any replica reaches watchers on all of them.
func (s *Server) WatchConnections(req *connectionsv1.WatchConnectionsRequest, stream grpc.ServerStreamingServer[connectionsv1.WatchConnectionsResponse]) error {
	ctx := stream.Context()
	ws := req.GetWorkspaceId()
	if ws == "" {
		if p, ok := authz.FromContext(ctx); !ok || p.Workspace != jwtauth.AllWorkspaces {
			return s.toStatus(ctx, fmt.Errorf("watch every workspace: %w", authz.ErrWorkspace))
		}
	} else if err := authz.CheckWorkspace(ctx, ws); err != nil {
		return s.toStatus(ctx, err)
	}
	var cursor int64
	switch req.GetCursor() {
	case "":
		last, err := s.store.LastEventSeq(ctx)
		if err != nil {
			return s.toStatus(ctx, fmt.Errorf("WatchConnections: %w", err))
		}
		cursor = last
	default:
		c, err := parseCursor(req.GetCursor(), "cursor")
		if err != nil {
			return s.toStatus(ctx, err)
		}
		cursor = c
	}
	bookmark := func() error {
		return stream.Send(&connectionsv1.WatchConnectionsResponse{Cursor: strconv.FormatInt(cursor, 10),
			Type: connectionsv1.ChangeType_CHANGE_TYPE_BOOKMARK, Time: timestamppb.Now()})
	}
	if req.GetBookmarks() {
		if err := bookmark(); err != nil {
			return err
		}
	}
	tick := time.NewTicker(s.watchPoll)
	defer tick.Stop()
	lastSent := time.Now()
	for {
		evs, err := s.store.Events(ctx, store.EventQuery{WorkspaceID: ws, AfterSeq: cursor, Limit: 500})
		if err != nil {
			return s.toStatus(ctx, fmt.Errorf("WatchConnections: %w", err))
		}
		for _, e := range evs {
			cursor = e.Seq
			msg, ok := changeOf(e)
			if !ok {
				continue
			}
			if err := stream.Send(msg); err != nil {
				return err
			}
			lastSent = time.Now()
		}
		if len(evs) == 500 {
			continue // more are waiting
		}
		if req.GetBookmarks() && time.Since(lastSent) >= bookmarkEvery {
			// Also carries past events of other workspaces or kinds that
			// moved the cursor without a message.
			if err := bookmark(); err != nil {
				return err
			}
			lastSent = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// bookmarkEvery is how long a stream with bookmarks stays silent before it
// sends the cursor it has reached.
const bookmarkEvery = 10 * time.Second

// changeOf turns a connection event into a stream message.
func changeOf(e store.Event) (*connectionsv1.WatchConnectionsResponse, bool) {
	var typ connectionsv1.ChangeType
	snap := e.After
	switch e.Action {
	case store.ActionConnectionCreate:
		typ = connectionsv1.ChangeType_CHANGE_TYPE_CREATED
	case store.ActionConnectionUpdate:
		typ = connectionsv1.ChangeType_CHANGE_TYPE_UPDATED
	case store.ActionConnectionDelete:
		typ, snap = connectionsv1.ChangeType_CHANGE_TYPE_DELETED, e.Before
	case store.ActionOAuthClientPut:
		var c store.ClientSnapshot
		if err := json.NewDecoder(strings.NewReader(snap)).Decode(&c); err != nil {
			return nil, false
		}
		return &connectionsv1.WatchConnectionsResponse{
			Cursor: strconv.FormatInt(e.Seq, 10), Type: connectionsv1.ChangeType_CHANGE_TYPE_OAUTH_CLIENT_CHANGED,
			OauthClient: &connectionsv1.OAuthClient{Connector: c.Connector, WorkspaceId: c.WorkspaceID, ClientId: c.ClientID,
				SecretGeneration: c.Generation},
			Actor: e.Actor, Time: timestamppb.New(e.Time),
		}, true
	default:
		return nil, false
	}
	var c store.Connection
	if err := json.NewDecoder(strings.NewReader(snap)).Decode(&c); err != nil {
		return nil, false
	}
	return &connectionsv1.WatchConnectionsResponse{
		Cursor: strconv.FormatInt(e.Seq, 10), Type: typ, Connection: toProto(&c),
		Actor: e.Actor, Time: timestamppb.New(e.Time),
	}, true
}

// seqPage reads the page token and size of a list paged by sequence number
// (audit and access events): the last sequence seen, and how many to return
// (0 means 100).
func seqPage(token string, size int32) (after int64, n int, err error) {
	if after, err = parseCursor(token, "page_token"); err != nil {
		return 0, 0, err
	}
	if n = int(size); n == 0 {
		n = 100
	}
	return after, n, nil
}

// seqNext trims items read with limit n+1 to n and returns the token of the
// next page: the last item's sequence, or "" when nothing followed.
func seqNext[T any](items []T, n int, seq func(T) int64) ([]T, string) {
	if len(items) <= n {
		return items, ""
	}
	items = items[:n]
	return items, strconv.FormatInt(seq(items[n-1]), 10)
}

func parseCursor(s, field string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, invalid(field, "not a value from a previous response")
	}
	return n, nil
}
