// Package connsvc is the broker's client of the connection service: it
// reads connections and recipes, ships access records, reports what the
// broker learns about a connection while serving it (the app revoked its
// refresh token) through a bounded queue, and follows the change stream so
// that the broker drops cached credentials of connections that changed
// elsewhere.
package connsvc

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/ctxsleep"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// Client talks to the connection service with the broker's service token.
type Client struct {
	client  connectionsv1.ConnectionServiceClient
	conn    *grpc.ClientConn
	logger  *slog.Logger
	reports chan report
	// refreshes holds token refresh notes for RunReports.
	refreshes chan *connectionsv1.RecordTokenRefreshRequest
}

// report is a status report waiting to be sent.
type report struct {
	connectionID, generation string
	reason                   connectionsv1.StatusReason
	detail                   string
}

// maxQueuedReports bounds the reports waiting for the connection service;
// past it, new ones are dropped (and logged): the next broker that meets the
// failure reports it again.
const maxQueuedReports = 1000

// New dials the connection service at addr, over TLS when tlsCfg is set.
// The token is read from tokenFile on every call, so that it can be rotated
// in place. Calls wait for the connection (within their own deadlines)
// instead of failing while it is being made, and reconnect attempts back off
// to at most a second, so that a connection service that comes back is used
// at once.
func New(addr, tokenFile string, tlsCfg *tls.Config, logger *slog.Logger) (*Client, error) {
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds), grpc.WithPerRPCCredentials(fileToken(tokenFile)),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 5 * time.Second,
		}))
	if err != nil {
		return nil, fmt.Errorf("connsvc.New: %w", err)
	}
	return &Client{client: connectionsv1.NewConnectionServiceClient(conn), conn: conn, logger: logger,
		reports: make(chan report, maxQueuedReports), refreshes: make(chan *connectionsv1.RecordTokenRefreshRequest, maxQueuedReports)}, nil
}

// Close closes the connection.
func (r *Client) Close() error { return r.conn.Close() }

// Revoked reports that the app refused a connection's refresh token for
// good; detail is what the connection's last_error says.
func (r *Client) Revoked(connectionID, generation, detail string) {
	r.Invalid(connectionID, generation, connectionsv1.StatusReason_STATUS_REASON_REVOKED, detail)
}

// Invalid queues a report that a connection's secret generation no longer
// works, and why; RunReports sends it. The connection service ignores a
// report that changes nothing, so repeats do not flap the status, and
// refuses one about a generation the connection no longer serves.
func (r *Client) Invalid(connectionID, generation string, reason connectionsv1.StatusReason, detail string) {
	select {
	case r.reports <- report{connectionID, generation, reason, detail}:
	default:
		r.logger.Error("status report queue full; report dropped (the next broker that meets the failure reports it again)",
			"connection_id", connectionID)
	}
}

// Refreshed queues a note that this broker obtained a new access token for
// a connection's generation at at, expiring at expires (zero: not said);
// RunReports sends it, once: a lost note only leaves the times the
// connection service shows a refresh behind.
func (r *Client) Refreshed(connectionID, generation string, at, expires time.Time) {
	req := &connectionsv1.RecordTokenRefreshRequest{ConnectionId: connectionID, SecretGeneration: generation,
		RefreshTime: timestamppb.New(at)}
	if !expires.IsZero() {
		req.ExpireTime = timestamppb.New(expires)
	}
	select {
	case r.refreshes <- req:
	default:
		r.logger.Warn("token refresh note dropped: the queue to the connection service is full", "connection_id", connectionID)
	}
}

// RunReports sends queued status reports until ctx ends, each with up to
// five tries, backing off from one second, and token refresh notes.
func (r *Client) RunReports(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case rep := <-r.reports:
			r.send(ctx, rep)
		case req := <-r.refreshes:
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if _, err := r.client.RecordTokenRefresh(cctx, req); err != nil && ctx.Err() == nil {
				r.logger.Warn("could not note a token refresh", "connection_id", req.GetConnectionId(), "err", err)
			}
			cancel()
		}
	}
}

func (r *Client) send(ctx context.Context, rep report) {
	for attempt, wait := 0, time.Second; attempt < 5; attempt, wait = attempt+1, wait*2 {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := r.client.ReportConnectionStatus(cctx, &connectionsv1.ReportConnectionStatusRequest{
			ConnectionId:     rep.connectionID,
			Status:           connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID,
			Reason:           rep.reason,
			LastError:        rep.detail,
			SecretGeneration: &rep.generation,
		})
		cancel()
		if err == nil || ctx.Err() != nil || status.Code(err) == codes.Aborted {
			// Aborted: the credentials were replaced meanwhile; the
			// report is about ones no longer served.
			return
		}
		r.logger.Warn("could not report an invalid connection", "connection_id", rep.connectionID, "attempt", attempt+1, "err", err)
		if !ctxsleep.Sleep(ctx, wait) {
			return
		}
	}
}

// lookupWait bounds how long a call waits for the connection service to
// be reachable: calls wait for the connection (so a broker that has just
// started does not fail its first calls), but not for an outage to end.
const lookupWait = 5 * time.Second

// GetRecipe returns a recipe and its bindings.
func (r *Client) GetRecipe(ctx context.Context, recipeID string) (*connectionsv1.GetRecipeResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupWait)
	defer cancel()
	return r.client.GetRecipe(ctx, &connectionsv1.GetRecipeRequest{RecipeId: recipeID})
}

// Connection reads one connection.
func (r *Client) Connection(ctx context.Context, id string) (*connectionsv1.Connection, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupWait)
	defer cancel()
	resp, err := r.client.GetConnection(ctx, &connectionsv1.GetConnectionRequest{Id: id})
	if err != nil {
		return nil, err
	}
	return resp.GetConnection(), nil
}

// OAuthClientGeneration returns the live secret generation of exactly one
// OAuth client registration (an oauthclient.Source); none registered there
// is vault.ErrNotFound.
func (r *Client) OAuthClientGeneration(ctx context.Context, connector, workspace string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupWait)
	defer cancel()
	resp, err := r.client.GetOAuthClient(ctx, &connectionsv1.GetOAuthClientRequest{Connector: connector, WorkspaceId: workspace})
	if status.Code(err) == codes.NotFound || clientMissing(err) {
		return "", fmt.Errorf("connsvc.OAuthClientGeneration %s: %w", connector, vault.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("connsvc.OAuthClientGeneration %s: %w", connector, err)
	}
	return resp.GetOauthClient().GetSecretGeneration(), nil
}

// clientMissing reports whether err is the connection service saying that no
// OAuth client is registered there: FailedPrecondition with the violation
// type OAUTH_CLIENT_MISSING (its other FailedPrecondition answers mean
// something else and stay errors).
func clientMissing(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return false
	}
	for _, d := range st.Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok {
			for _, v := range pf.GetViolations() {
				if v.GetType() == "OAUTH_CLIENT_MISSING" {
					return true
				}
			}
		}
	}
	return false
}

// RuntimeUserConnection returns the runtime user's connection under parent,
// or nil when the user has none.
func (r *Client) RuntimeUserConnection(ctx context.Context, parentID, runtimeUser string) (*connectionsv1.Connection, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupWait)
	defer cancel()
	resp, err := r.client.ListRuntimeUserConnections(ctx, &connectionsv1.ListRuntimeUserConnectionsRequest{
		ParentConnectionId: parentID, RuntimeUser: runtimeUser, PageSize: 1})
	if err != nil {
		return nil, err
	}
	if len(resp.GetConnections()) == 0 {
		return nil, nil
	}
	return resp.GetConnections()[0], nil
}

// RecordAccess stores a batch of access events.
func (r *Client) RecordAccess(ctx context.Context, batchID string, events []*connectionsv1.AccessEvent) error {
	_, err := r.client.RecordAccess(ctx, &connectionsv1.RecordAccessRequest{BatchId: batchID, Events: events})
	return err
}

// Watch follows every workspace's connection changes until ctx ends and
// calls changed with each changed connection (as it was before a deletion).
// It asks for bookmarks, so it holds a cursor from the moment the stream is
// up and resumes after it when the stream breaks: a connection-service
// outage costs nothing that was cached. resync is called once the stream is
// first up (what was read before it may be older than its start) and after
// a confirmed gap (the service can no longer resume from the cursor); it
// must replace what is cached without emptying it first. A failed resync is
// tried again at the next bookmark.
func (r *Client) Watch(ctx context.Context, changed func(*connectionsv1.WatchConnectionsResponse), resync func(context.Context) error) {
	cursor, synced := "", false
	for wait := 100 * time.Millisecond; ctx.Err() == nil; wait = min(2*wait, 5*time.Second) {
		stream, err := r.client.WatchConnections(ctx, &connectionsv1.WatchConnectionsRequest{Cursor: cursor, Bookmarks: true})
		for err == nil {
			var ev *connectionsv1.WatchConnectionsResponse
			if ev, err = stream.Recv(); err != nil {
				break
			}
			cursor, wait = ev.GetCursor(), 100*time.Millisecond
			if ev.GetType() != connectionsv1.ChangeType_CHANGE_TYPE_BOOKMARK {
				changed(ev)
			}
			if !synced {
				if rerr := resync(ctx); rerr != nil {
					r.logger.Warn("resync of cached connections failed; what is cached is kept and checked again later", "err", rerr)
				} else {
					synced = true
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		if status.Code(err) == codes.OutOfRange {
			// A gap: changes after the cursor are gone. Start from now and
			// check everything cached against it.
			r.logger.Warn("change stream cursor too old; resyncing cached connections", "cursor", cursor)
			cursor, synced = "", false
		}
		r.logger.Warn("change stream broken; resuming from its cursor", "err", err, "retry_in", wait)
		if !ctxsleep.Sleep(ctx, wait) {
			return
		}
	}
}

// fileToken is a bearer token read from a file on each call.
type fileToken string

func (f fileToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	b, err := os.ReadFile(string(f))
	if err != nil {
		return nil, fmt.Errorf("service token: %w", err)
	}
	return map[string]string{"authorization": "Bearer " + strings.TrimSpace(string(b))}, nil
}

// RequireTransportSecurity is false so that loopback and sidecar setups work;
// deployments put TLS on the connection (see the Helm charts).
func (fileToken) RequireTransportSecurity() bool { return false }
