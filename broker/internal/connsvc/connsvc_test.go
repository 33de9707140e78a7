package connsvc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// oauthClients answers GetOAuthClient with a fixed error, shaped as the
// connection service shapes its answers.
type oauthClients struct {
	connectionsv1.UnimplementedConnectionServiceServer
	err error
}

func (o oauthClients) GetOAuthClient(context.Context, *connectionsv1.GetOAuthClientRequest) (*connectionsv1.GetOAuthClientResponse, error) {
	return nil, o.err
}

func precondition(kind string) error {
	st, err := status.New(codes.FailedPrecondition, "refused").WithDetails(&errdetails.PreconditionFailure{
		Violations: []*errdetails.PreconditionFailure_Violation{{Type: kind, Subject: "zendesk"}}})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// A registration the connection service does not have is vault.ErrNotFound
// (which the OAuth managers turn into "no OAuth client is registered"), not
// an internal error; other refusals stay what they were.
func TestOAuthClientGenerationMissing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		notFound bool
		code     codes.Code
	}{
		{"not found", status.Error(codes.NotFound, "no"), true, codes.NotFound},
		{"client missing", precondition("OAUTH_CLIENT_MISSING"), true, codes.FailedPrecondition},
		{"other precondition", precondition("CONNECTION_INACTIVE"), false, codes.FailedPrecondition},
		{"unavailable", status.Error(codes.Unavailable, "down"), false, codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := grpc.NewServer()
			connectionsv1.RegisterConnectionServiceServer(srv, oauthClients{err: tc.err})
			go srv.Serve(lis)
			t.Cleanup(srv.Stop)
			tok := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(tok, []byte("t"), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := New(lis.Addr().String(), tok, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			_, err = c.OAuthClientGeneration(t.Context(), "zendesk", "ws-1")
			if got := errors.Is(err, vault.ErrNotFound); got != tc.notFound {
				t.Fatalf("errors.Is(%v, vault.ErrNotFound) = %v, want %v", err, got, tc.notFound)
			}
			if !tc.notFound && status.Code(errors.Unwrap(err)) != tc.code {
				t.Fatalf("code %v, want %v", status.Code(errors.Unwrap(err)), tc.code)
			}
		})
	}
}
