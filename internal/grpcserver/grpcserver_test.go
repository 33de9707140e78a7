package grpcserver_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	"github.com/integrationhub/connections/internal/grpcserver"
	"github.com/integrationhub/connections/internal/grpctest"
)

// broker is a CredentialBroker whose GetCredential does what the test says.
type broker struct {
	brokerv1.UnimplementedCredentialBrokerServer
	fn func(context.Context) error
}

func (b *broker) GetCredential(ctx context.Context, _ *brokerv1.GetCredentialRequest) (*brokerv1.GetCredentialResponse, error) {
	if err := b.fn(ctx); err != nil {
		return nil, err
	}
	return &brokerv1.GetCredentialResponse{}, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func serve(t testing.TB, fn func(context.Context) error, logs *syncBuffer) (cc *grpc.ClientConn, cancel context.CancelFunc, wait func() error) {
	t.Helper()
	srv, err := grpcserver.New(grpcserver.Config{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	brokerv1.RegisterCredentialBrokerServer(srv, &broker{fn: fn})
	return grpctest.Serve(t, srv)
}

const validID = "1e2d3c4b-5555-4000-8000-000000000001"

// A panicking handler becomes Internal; neither the caller nor the log sees
// the panic value, which could hold request data.
func TestPanicIsInternalAndHidden(t *testing.T) {
	logs := &syncBuffer{}
	cc, _, _ := serve(t, func(context.Context) error { panic("secret-in-panic-value") }, logs)
	_, err := brokerv1.NewCredentialBrokerClient(cc).GetCredential(t.Context(), &brokerv1.GetCredentialRequest{ConnectionId: validID})
	if status.Code(err) != codes.Internal {
		t.Fatalf("got %v, want Internal", err)
	}
	if strings.Contains(err.Error(), "secret-in-panic-value") || strings.Contains(logs.String(), "secret-in-panic-value") {
		t.Error("the panic value reached the caller or the log")
	}
	if !strings.Contains(logs.String(), "panic in handler") {
		t.Error("the panic was not logged at all")
	}
}

// Validation runs before the handler.
func TestValidation(t *testing.T) {
	called := false
	cc, _, _ := serve(t, func(context.Context) error { called = true; return nil }, &syncBuffer{})
	_, err := brokerv1.NewCredentialBrokerClient(cc).GetCredential(t.Context(), &brokerv1.GetCredentialRequest{ConnectionId: "nope"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "connection_id") {
		t.Errorf("got %v, want InvalidArgument naming connection_id", err)
	}
	if called {
		t.Error("the handler ran on an invalid request")
	}
}

// On shutdown a call in flight finishes and health turns NOT_SERVING.
func TestGracefulStop(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	cc, cancel, wait := serve(t, func(context.Context) error {
		close(started)
		<-release
		return nil
	}, &syncBuffer{})
	health := healthpb.NewHealthClient(cc)
	if r, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "integrationhub.broker.v1.CredentialBroker"}); err != nil ||
		r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health before shutdown = %v, %v", r, err)
	}
	callErr := make(chan error, 1)
	go func() {
		_, err := brokerv1.NewCredentialBrokerClient(cc).GetCredential(context.Background(), &brokerv1.GetCredentialRequest{ConnectionId: validID})
		callErr <- err
	}()
	<-started
	cancel()
	// Shutdown has begun, with the call still held, once health stops
	// answering SERVING (NOT_SERVING, or the connection going away).
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "integrationhub.broker.v1.CredentialBroker"})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("health still SERVING 10s after shutdown began")
		}
		time.Sleep(5 * time.Millisecond) // polling pace
	}
	close(release)
	if err := <-callErr; err != nil {
		t.Errorf("call in flight during shutdown: %v, want success", err)
	}
	if err := wait(); err != nil {
		t.Errorf("Serve returned %v after a graceful stop", err)
	}
}

// A sidecar's unix socket replaces a stale one and is group-writable, so a
// worker running as another user in the pod can connect.
func TestListenUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.sock")
	if err := os.WriteFile(path, nil, 0o600); err != nil { // left over from a previous run
		t.Fatal(err)
	}
	l, err := grpcserver.Listen("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, want a socket with 0660", fi.Mode())
	}
}

// QuietSuccess logs successful calls at debug level, refusals as before.
func TestQuietSuccess(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		logs := &syncBuffer{}
		srv, err := grpcserver.New(grpcserver.Config{Logger: slog.New(slog.NewJSONHandler(logs, nil)), QuietSuccess: quiet})
		if err != nil {
			t.Fatal(err)
		}
		fail := false
		brokerv1.RegisterCredentialBrokerServer(srv, &broker{fn: func(context.Context) error {
			if fail {
				return status.Error(codes.PermissionDenied, "no")
			}
			return nil
		}})
		cc, _, _ := grpctest.Serve(t, srv)
		c := brokerv1.NewCredentialBrokerClient(cc)
		if _, err := c.GetCredential(t.Context(), &brokerv1.GetCredentialRequest{ConnectionId: validID}); err != nil {
			t.Fatal(err)
		}
		okLogged := strings.Contains(logs.String(), `"grpc.code":"OK"`)
		fail = true
		_, _ = c.GetCredential(t.Context(), &brokerv1.GetCredentialRequest{ConnectionId: validID})
		if okLogged == quiet {
			t.Errorf("QuietSuccess=%v: successful call at info level logged = %v", quiet, okLogged)
		}
		if !strings.Contains(logs.String(), `"grpc.code":"PermissionDenied"`) {
			t.Errorf("QuietSuccess=%v: the refusal was not logged: %s", quiet, logs.String())
		}
	}
}

// With Ready set, the services' health follows it: NOT_SERVING while it says no (a broker
// without a valid Vault token), SERVING once it says yes, and back. The overall status (what
// liveness probes ask) stays SERVING: the process is alive.
func TestHealthFollowsReady(t *testing.T) {
	var ready atomic.Bool
	srv, err := grpcserver.New(grpcserver.Config{Logger: slog.New(slog.DiscardHandler), Ready: ready.Load, ReadyInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	brokerv1.RegisterCredentialBrokerServer(srv, &broker{fn: func(context.Context) error { return nil }})
	cc, _, _ := grpctest.Serve(t, srv)
	hc := healthpb.NewHealthClient(cc)
	waitStatus := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "integrationhub.broker.v1.CredentialBroker"})
			if err == nil && resp.GetStatus() == want {
				overall, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{})
				if err != nil || overall.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					t.Fatalf("overall health %v, %v; want SERVING (liveness)", overall.GetStatus(), err)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("health %v, %v; want %s", resp.GetStatus(), err, want)
			}
			time.Sleep(5 * time.Millisecond) // polling pace, bounded by the deadline
		}
	}
	waitStatus(healthpb.HealthCheckResponse_NOT_SERVING)
	ready.Store(true)
	waitStatus(healthpb.HealthCheckResponse_SERVING)
	ready.Store(false)
	waitStatus(healthpb.HealthCheckResponse_NOT_SERVING)
}
