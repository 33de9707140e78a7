// Package grpctest serves a grpcserver.Server in process over bufconn for
// tests, with the production interceptors, and dials it.
package grpctest

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/integrationhub/connections/internal/grpcserver"
)

// Serve runs srv until the test ends and returns a client connection to it.
// stop ends the server early (graceful, as on SIGTERM); wait returns what
// Serve returned and may be called any number of times.
func Serve(t testing.TB, srv *grpcserver.Server) (cc *grpc.ClientConn, stop context.CancelFunc, wait func() error) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	ctx, stop := context.WithCancel(context.Background())
	var serveErr error
	done := make(chan struct{})
	go func() { serveErr = srv.Serve(ctx, lis, 5*time.Second); close(done) }()
	wait = func() error { <-done; return serveErr }
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); stop(); _ = wait() })
	return cc, stop, wait
}
