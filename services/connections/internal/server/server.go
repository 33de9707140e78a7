// Package server wires the connection service together: store, catalog,
// broker client and the gRPC server.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/grpcserver"
	"github.com/integrationhub/connections/internal/jwtauth"

	"github.com/integrationhub/connections/services/connections/internal/api"
	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/catalog"
	"github.com/integrationhub/connections/services/connections/internal/config"
	"github.com/integrationhub/connections/services/connections/internal/store"
	"github.com/integrationhub/connections/services/connections/internal/store/storepostgres"
	"github.com/integrationhub/connections/services/connections/internal/store/storesqlite"
)

// Run serves until ctx ends or the listener fails.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	st, err := Open(ctx, cfg.Database)
	if err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}
	defer st.Close()
	if cfg.MigrateOnly {
		logger.Info("database migrated", "database", redactDSN(cfg.Database))
		return nil
	}
	cat, err := catalog.Load(cfg.CatalogFile)
	if err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}
	verifier, err := jwtauth.NewVerifier(ctx, cfg.JWKS, cfg.JWTIssuer, cfg.JWTAudience)
	if err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}

	conn, err := grpc.NewClient(cfg.BrokerAdminAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("server.Run: broker client: %w", err)
	}
	defer conn.Close()

	unaryAuth, streamAuth := authz.Interceptors(verifier)
	srv, err := grpcserver.New(grpcserver.Config{
		Logger: logger,
		Unary:  []grpc.UnaryServerInterceptor{unaryAuth},
		Stream: []grpc.StreamServerInterceptor{streamAuth},
	})
	if err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}
	connectionsv1.RegisterConnectionServiceServer(srv, api.New(st, cat, brokerv1.NewBrokerAdminClient(conn), logger, cfg.WatchPoll))

	lis, err := grpcserver.Listen(cfg.Listen)
	if err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}
	logger.Info("connection service serving", "addr", lis.Addr().String(), "database", redactDSN(cfg.Database),
		"broker_admin_addr", cfg.BrokerAdminAddr, "connectors", len(cat.All()))
	return srv.Serve(ctx, lis, cfg.ShutdownGrace)
}

// Open opens the store a -database value names, migrating it.
func Open(ctx context.Context, database string) (store.Store, error) {
	if path, ok := strings.CutPrefix(database, "sqlite:"); ok {
		return storesqlite.Open(ctx, path)
	}
	return storepostgres.Open(ctx, database)
}

// redactDSN drops a DSN's password before it is logged.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	return u.String()
}
