// Package server wires the connection service together: store, catalog,
// broker client and the gRPC server.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/grpcserver"

	"github.com/integrationhub/connections/services/connections/internal/api"
	"github.com/integrationhub/connections/services/connections/internal/catalog"
	"github.com/integrationhub/connections/services/connections/internal/config"
	"github.com/integrationhub/connections/services/connections/internal/store/storesqlite"
)

// Run serves until ctx ends or the listener fails.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	cat, err := catalog.Load(cfg.CatalogFile)
	if err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}
	st, err := storesqlite.Open(ctx, strings.TrimPrefix(cfg.Database, "sqlite:"))
	if err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}
	defer st.Close()

	conn, err := grpc.NewClient(cfg.BrokerAdminAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("server.Run: broker client: %w", err)
	}
	defer conn.Close()

	srv, err := grpcserver.New(grpcserver.Config{Logger: logger})
	if err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}
	connectionsv1.RegisterConnectionServiceServer(srv, api.New(st, cat, brokerv1.NewBrokerAdminClient(conn), logger))

	lis, err := grpcserver.Listen(cfg.Listen)
	if err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}
	logger.Info("connection service serving", "addr", lis.Addr().String(), "database", cfg.Database,
		"broker_admin_addr", cfg.BrokerAdminAddr, "connectors", len(cat.All()))
	return srv.Serve(ctx, lis, cfg.ShutdownGrace)
}

