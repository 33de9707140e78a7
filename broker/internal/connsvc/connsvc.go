// Package connsvc is the broker's client of the connection service: it
// reports what the broker learns about a connection while serving it (the
// app revoked its refresh token), and follows the change stream so that the
// broker drops cached credentials of connections that changed elsewhere.
package connsvc

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
)

// Client talks to the connection service with the broker's service token.
type Client struct {
	client connectionsv1.ConnectionServiceClient
	conn   *grpc.ClientConn
	logger *slog.Logger
}

// New dials the connection service at addr, over TLS when tlsCfg is set.
// The token is read from tokenFile on every call, so that it can be rotated
// in place.
func New(addr, tokenFile string, tlsCfg *tls.Config, logger *slog.Logger) (*Client, error) {
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds), grpc.WithPerRPCCredentials(fileToken(tokenFile)))
	if err != nil {
		return nil, fmt.Errorf("connsvc.New: %w", err)
	}
	return &Client{client: connectionsv1.NewConnectionServiceClient(conn), conn: conn, logger: logger}, nil
}

// Close closes the connection.
func (r *Client) Close() error { return r.conn.Close() }

// Revoked reports that the app refused a connection's refresh token for
// good.
func (r *Client) Revoked(connectionID string) {
	r.Invalid(connectionID, connectionsv1.StatusReason_STATUS_REASON_REVOKED,
		"the app refused the refresh token (invalid_grant); re-authorize the connection")
}

// Invalid reports that a connection no longer works, and why. It runs in
// the background with retries; failures are logged, and the next broker that
// meets the failure reports again. The connection service ignores a report
// that changes nothing, so repeats do not flap the status.
func (r *Client) Invalid(connectionID string, reason connectionsv1.StatusReason, detail string) {
	go func() {
		for attempt, wait := 0, time.Second; attempt < 5; attempt, wait = attempt+1, wait*2 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := r.client.ReportConnectionStatus(ctx, &connectionsv1.ReportConnectionStatusRequest{
				ConnectionId: connectionID,
				Status:       connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID,
				Reason:       reason,
				LastError:    detail,
			})
			cancel()
			if err == nil {
				return
			}
			r.logger.Warn("could not report an invalid connection", "connection_id", connectionID, "attempt", attempt+1, "err", err)
			time.Sleep(wait)
		}
	}()
}

// GetRecipe returns a recipe and its bindings.
func (r *Client) GetRecipe(ctx context.Context, recipeID string) (*connectionsv1.GetRecipeResponse, error) {
	return r.client.GetRecipe(ctx, &connectionsv1.GetRecipeRequest{RecipeId: recipeID})
}

// Connection reads one connection.
func (r *Client) Connection(ctx context.Context, id string) (*connectionsv1.Connection, error) {
	resp, err := r.client.GetConnection(ctx, &connectionsv1.GetConnectionRequest{Id: id})
	if err != nil {
		return nil, err
	}
	return resp.GetConnection(), nil
}

// RuntimeUserConnection returns the runtime user's connection under parent,
// or nil when the user has none.
func (r *Client) RuntimeUserConnection(ctx context.Context, parentID, runtimeUser string) (*connectionsv1.Connection, error) {
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
func (r *Client) RecordAccess(ctx context.Context, events []*connectionsv1.AccessEvent) error {
	_, err := r.client.RecordAccess(ctx, &connectionsv1.RecordAccessRequest{Events: events})
	return err
}

// Watch follows every workspace's connection changes until ctx ends and
// calls changed with each changed connection (as it was before a deletion). It resumes after
// the last change it saw when the stream breaks; with no change seen yet
// (or a cursor it cannot resume from) it calls resync first, so that a
// cache filled before the stream was up is not trusted.
func (r *Client) Watch(ctx context.Context, changed func(*connectionsv1.Connection), resync func()) {
	cursor := ""
	for wait := time.Second; ctx.Err() == nil; wait = min(2*wait, 30*time.Second) {
		if cursor == "" {
			resync()
		}
		stream, err := r.client.WatchConnections(ctx, &connectionsv1.WatchConnectionsRequest{Cursor: cursor})
		for err == nil {
			var ev *connectionsv1.WatchConnectionsResponse
			if ev, err = stream.Recv(); err == nil {
				cursor, wait = ev.GetCursor(), time.Second
				changed(ev.GetConnection())
			}
		}
		if ctx.Err() != nil {
			return
		}
		r.logger.Warn("change stream broken; cached credentials may lag until it resumes", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
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
