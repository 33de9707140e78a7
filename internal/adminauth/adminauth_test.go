package adminauth_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	"github.com/integrationhub/connections/internal/adminauth"
	"github.com/integrationhub/connections/internal/grpcserver"
	"github.com/integrationhub/connections/internal/grpctest"
)

// tokens is a fixed token set.
func tokens(t *testing.T, list string) *adminauth.Tokens {
	t.Helper()
	toks, err := adminauth.LoadTokens("", list)
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

type admin struct {
	brokerv1.UnimplementedBrokerAdminServer
	called int
}

func (a *admin) DeleteSecret(context.Context, *brokerv1.DeleteSecretRequest) (*brokerv1.DeleteSecretResponse, error) {
	a.called++
	return &brokerv1.DeleteSecretResponse{}, nil
}

const token = "0123456789abcdef0123456789abcdef-service-token"

// Without the service token nothing but health reaches the admin API; with
// it, calls go through.
func TestServiceToken(t *testing.T) {
	auth := adminauth.Server{Tokens: tokens(t, token)}
	srv, err := grpcserver.New(grpcserver.Config{Logger: slog.New(slog.DiscardHandler),
		Unary: []grpc.UnaryServerInterceptor{auth.Unary()}, Stream: []grpc.StreamServerInterceptor{auth.Stream()}})
	if err != nil {
		t.Fatal(err)
	}
	impl := &admin{}
	brokerv1.RegisterBrokerAdminServer(srv, impl)
	cc, _, _ := grpctest.Serve(t, srv)
	c := brokerv1.NewBrokerAdminClient(cc)
	req := &brokerv1.DeleteSecretRequest{ConnectionId: "1e2d3c4b-5555-4000-8000-000000000001"}
	for name, md := range map[string][]string{
		"no token":        nil,
		"wrong token":     {"authorization", "Bearer " + strings.Repeat("x", len(token))},
		"a prefix of it":  {"authorization", "Bearer " + token[:len(token)-1]},
		"not a bearer":    {"authorization", token},
		"token elsewhere": {"x-token", token},
	} {
		ctx := t.Context()
		if md != nil {
			ctx = metadata.AppendToOutgoingContext(ctx, md...)
		}
		if _, err := c.DeleteSecret(ctx, req); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: got %v, want Unauthenticated", name, err)
		}
	}
	if impl.called != 0 {
		t.Fatalf("an unauthenticated call reached the handler %d times", impl.called)
	}
	if _, err := c.DeleteSecret(t.Context(), req, grpc.PerRPCCredentials(tokens(t, token))); err != nil {
		t.Errorf("with the token: %v", err)
	}
	if _, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health without a token: %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		s    adminauth.Server
		tls  bool
		ok   bool
	}{
		{"nothing (every call refused)", adminauth.Server{}, false, true},
		{"token, plaintext", adminauth.Server{Tokens: tokens(t, token)}, false, true},
		{"names, plaintext", adminauth.Server{ClientNames: []string{"connections"}}, false, false},
		{"names, TLS", adminauth.Server{ClientNames: []string{"connections"}}, true, true},
	}
	for _, tt := range tests {
		if err := tt.s.Validate(tt.tls); (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	if _, err := adminauth.LoadTokens("", "short"); err == nil {
		t.Error("a short token was accepted")
	}
	if toks, err := adminauth.LoadTokens("", " \n"); toks != nil || err != nil {
		t.Errorf("blank token: %v, %v; want none", toks, err)
	}
}

// A broker given no admin credentials refuses every admin call.
func TestNothingConfiguredRefusesAll(t *testing.T) {
	auth := adminauth.Server{}
	srv, err := grpcserver.New(grpcserver.Config{Logger: slog.New(slog.DiscardHandler), Unary: []grpc.UnaryServerInterceptor{auth.Unary()}})
	if err != nil {
		t.Fatal(err)
	}
	impl := &admin{}
	brokerv1.RegisterBrokerAdminServer(srv, impl)
	cc, _, _ := grpctest.Serve(t, srv)
	_, err = brokerv1.NewBrokerAdminClient(cc).DeleteSecret(t.Context(),
		&brokerv1.DeleteSecretRequest{ConnectionId: "1e2d3c4b-5555-4000-8000-000000000001"}, grpc.PerRPCCredentials(adminauth.Token("")))
	if status.Code(err) != codes.Unauthenticated || impl.called != 0 {
		t.Errorf("got %v (handler ran %d times), want Unauthenticated", err, impl.called)
	}
}

// A token file is read again when it changes: a rotation (new token added
// as the first line, then the old one removed) needs no restart on either
// side, and a broken file keeps the tokens read before.
func TestTokenFileRotation(t *testing.T) {
	const next = "fedcba9876543210fedcba9876543210-rotated-token"
	file := filepath.Join(t.TempDir(), "token")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	synctest.Test(t, func(t *testing.T) {
		write(token + "\n")
		server, err := adminauth.LoadTokens(file, "")
		if err != nil {
			t.Fatal(err)
		}
		client, err := adminauth.LoadTokens(file, "")
		if err != nil {
			t.Fatal(err)
		}
		sent := func() string {
			md, _ := client.GetRequestMetadata(t.Context())
			return strings.TrimPrefix(md["authorization"], "Bearer ")
		}
		steps := []struct {
			file     string
			accepted []string
			sent     string
		}{
			{next + "\n" + token + "\n", []string{next, token}, next},
			{next + "\n", []string{next}, next},
			{"short\n", []string{next}, next}, // broken: kept
		}
		for _, st := range steps {
			write(st.file)
			time.Sleep(1100 * time.Millisecond) // the recheck interval, on synctest's clock
			if got := server.List(); !slices.Equal(got, st.accepted) {
				t.Errorf("after writing %q: accepted %d tokens, want %d", st.file, len(got), len(st.accepted))
			}
			if got := sent(); got != st.sent {
				t.Errorf("after writing %q: the caller sends another token than the first line", st.file)
			}
		}
	})
}
