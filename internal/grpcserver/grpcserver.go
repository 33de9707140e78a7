// Package grpcserver builds the gRPC servers of every binary in this project
// the same way: one interceptor chain (logging, caller-supplied auth,
// text check, protovalidate, recovery), the health and reflection services, and a
// graceful shutdown bounded by a deadline.
package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"buf.build/go/protovalidate"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	protovalidatemw "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/protovalidate"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// Config says how to build a server.
type Config struct {
	// Logger receives one line per finished call. Payloads are never logged:
	// requests carry secrets.
	Logger *slog.Logger
	// Unary and Stream run after logging and before validation (auth goes here).
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	// Options are extra server options (credentials, stats handlers).
	Options []grpc.ServerOption
	// Metrics, when set, records every call (outermost interceptor).
	Metrics *grpcprom.ServerMetrics
	// QuietSuccess logs successful calls at debug level instead of info:
	// for hot paths (the broker's worker API) whose calls are on record
	// elsewhere (the access log) and would otherwise write a line each.
	QuietSuccess bool
	// Ready, when set, is asked every ReadyInterval (default 1s) whether
	// the server can do its work (e.g. it holds a valid Vault token); the
	// health service reports the registered services (not the overall ""
	// one, which liveness probes check) NOT_SERVING while it says no, so
	// that readiness probes naming a service take the pod out of its Service
	// without the kubelet restarting it.
	Ready         func() bool
	ReadyInterval time.Duration
}

// Server is a gRPC server with its health service.
type Server struct {
	*grpc.Server
	Health *health.Server
	logger *slog.Logger
	ready  func() bool
	every  time.Duration
	codec  *codec
}

// New returns a server with the shared interceptor chain, health and
// reflection registered. Register services on it, then call Serve.
func New(cfg Config) (*Server, error) {
	validator, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("grpcserver.New: protovalidate: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	if cfg.QuietSuccess {
		logOpts = append(logOpts, logging.WithLevels(func(c codes.Code) logging.Level {
			if c == codes.OK {
				return logging.LevelDebug
			}
			return logging.DefaultServerCodeToLevel(c)
		}))
	}
	recoverOpts := []recovery.Option{recovery.WithRecoveryHandlerContext(recoverFrom(logger))}

	var unary []grpc.UnaryServerInterceptor
	var stream []grpc.StreamServerInterceptor
	if cfg.Metrics != nil {
		unary = append(unary, cfg.Metrics.UnaryServerInterceptor())
		stream = append(stream, cfg.Metrics.StreamServerInterceptor())
	}
	unary = append(unary, logging.UnaryServerInterceptor(slogAdapter(logger), logOpts...))
	unary = append(unary, cfg.Unary...)
	unary = append(unary,
		textUnary,
		protovalidatemw.UnaryServerInterceptor(validator),
		recovery.UnaryServerInterceptor(recoverOpts...),
	)
	stream = append(stream, logging.StreamServerInterceptor(slogAdapter(logger), logOpts...))
	stream = append(stream, cfg.Stream...)
	stream = append(stream,
		textStream,
		protovalidatemw.StreamServerInterceptor(validator),
		recovery.StreamServerInterceptor(recoverOpts...),
	)

	cdc := newCodec()
	opts := append([]grpc.ServerOption{
		grpc.ForceServerCodecV2(cdc),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	}, cfg.Options...)
	s := &Server{Server: grpc.NewServer(opts...), Health: health.NewServer(), logger: logger, ready: cfg.Ready, every: cfg.ReadyInterval, codec: cdc}
	if s.every <= 0 {
		s.every = time.Second
	}
	healthpb.RegisterHealthServer(s, s.Health)
	reflection.Register(s)
	if cfg.Metrics != nil {
		cfg.Metrics.InitializeMetrics(s.Server)
	}
	return s, nil
}

// HealthOnly returns a plaintext server with only this server's health
// service: Kubernetes' gRPC probes can neither speak TLS nor reach a unix
// socket, so a probe listener stands beside such listeners.
func (s *Server) HealthOnly() *Server {
	h := &Server{Server: grpc.NewServer(), Health: s.Health, logger: s.logger, ready: s.ready, every: s.every, codec: newCodec()}
	healthpb.RegisterHealthServer(h.Server, s.Health)
	return h
}

// Serve serves on lis until ctx ends, then stops gracefully, waiting at most
// grace for calls in flight before cutting them off. Every registered service
// reports SERVING while the server runs and NOT_SERVING once shutdown starts.
func (s *Server) Serve(ctx context.Context, lis net.Listener, grace time.Duration) error {
	setAll := func(st healthpb.HealthCheckResponse_ServingStatus) {
		for name := range s.GetServiceInfo() {
			if name != healthpb.Health_ServiceDesc.ServiceName {
				s.Health.SetServingStatus(name, st)
			}
		}
	}
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	current := func() healthpb.HealthCheckResponse_ServingStatus {
		if s.ready == nil || s.ready() {
			return healthpb.HealthCheckResponse_SERVING
		}
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	last := current()
	setAll(last)
	var tick <-chan time.Time
	if s.ready != nil {
		t := time.NewTicker(s.every)
		defer t.Stop()
		tick = t.C
	}

	errc := make(chan error, 1)
	go func() { errc <- s.Server.Serve(lis) }()
wait:
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("grpcserver.Serve %s: %w", lis.Addr(), err)
		case <-tick:
			if st := current(); st != last {
				s.logger.Warn("health changed", "addr", lis.Addr().String(), "status", st.String())
				last = st
				setAll(st)
			}
		case <-ctx.Done():
			break wait
		}
	}
	s.Health.Shutdown()
	stopped := make(chan struct{})
	go func() { s.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(grace):
		s.logger.Warn("graceful stop timed out; closing open calls", "addr", lis.Addr().String())
		s.Stop()
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("grpcserver.Serve %s: %w", lis.Addr(), err)
	}
	return nil
}

// ContextStatus maps a canceled or timed-out request to its gRPC status, and
// returns nil for any other error. Services' error mappers call it first.
func ContextStatus(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	return nil
}

// recoverFrom turns a panic into Internal. The panic value is not logged or
// returned: it may hold request data, and requests hold secrets.
func recoverFrom(logger *slog.Logger) recovery.RecoveryHandlerFuncContext {
	return func(ctx context.Context, _ any) error {
		logger.ErrorContext(ctx, "panic in handler", "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	}
}

// slogAdapter lets the logging interceptor write through slog.
func slogAdapter(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}

// Listen opens a listener for addr: "unix:/path/to.sock" for a unix socket
// (the broker as a sidecar), otherwise a TCP host:port.
func Listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		// A socket left by a previous run would make Listen fail.
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("grpcserver.Listen %s: %w", addr, err)
		}
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("grpcserver.Listen %s: %w", addr, err)
		}
		// Group-writable: a worker container running as another user shares
		// the socket through the pod's fsGroup.
		if err := os.Chmod(path, 0o660); err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("grpcserver.Listen %s: %w", addr, err)
		}
		return l, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("grpcserver.Listen %s: %w", addr, err)
	}
	return l, nil
}
