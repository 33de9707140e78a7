package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewMetrics returns gRPC server metrics (grpc_server_handled_total,
// grpc_server_handling_seconds, ...) registered with a fresh registry that
// also carries the Go runtime and process collectors.
func NewMetrics() (*grpcprom.ServerMetrics, *prometheus.Registry) {
	m := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m, reg
}

// MetricsHandler serves reg at /metrics.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// ServeHTTP serves h on l until ctx ends, then shuts down, letting requests
// in flight finish for up to grace. It is the one way both services serve
// plain HTTP (metrics, the OAuth callback).
func ServeHTTP(ctx context.Context, l net.Listener, h http.Handler, grace time.Duration) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	stopped := make(chan error, 1)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		defer cancel()
		stopped <- hs.Shutdown(sctx)
	}()
	if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("grpcserver.ServeHTTP %s: %w", l.Addr(), err)
	}
	return <-stopped
}
