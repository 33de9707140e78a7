// Package server wires the connection service together: store, catalog,
// broker client and the gRPC server.
package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/grpcserver"
	"github.com/integrationhub/connections/internal/jwtauth"
	"github.com/integrationhub/connections/internal/tlsconfig"

	"github.com/integrationhub/connections/services/connections/internal/api"
	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/catalog"
	"github.com/integrationhub/connections/services/connections/internal/config"
	"github.com/integrationhub/connections/services/connections/internal/connectpage"
	"github.com/integrationhub/connections/services/connections/internal/store"
	"github.com/integrationhub/connections/services/connections/internal/store/storepostgres"
	"github.com/integrationhub/connections/services/connections/internal/store/storesqlite"
)

// Run serves until ctx ends or the listener fails.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	st, err := open(ctx, cfg.Database, cfg.MigrateOnly || !cfg.SkipMigrations)
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

	brokerCreds := insecure.NewCredentials()
	var serverOpts []grpc.ServerOption
	if cfg.TLS.Enabled() {
		ct, err := tlsconfig.Client(cfg.TLS)
		if err != nil {
			return fmt.Errorf("server.Run: broker TLS: %w", err)
		}
		st, err := tlsconfig.Server(cfg.TLS, false)
		if err != nil {
			return fmt.Errorf("server.Run: TLS: %w", err)
		}
		brokerCreds = credentials.NewTLS(ct)
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(st)))
	}
	// A broker that comes back is used within a second: reconnect attempts
	// back off to at most that (gRPC's default grows to two minutes).
	brokerOpts := []grpc.DialOption{grpc.WithTransportCredentials(brokerCreds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 5 * time.Second,
		})}
	if cfg.BrokerAdminToken != nil {
		// Read again when its file changes: a rotated token needs no restart.
		brokerOpts = append(brokerOpts, grpc.WithPerRPCCredentials(cfg.BrokerAdminToken))
	}
	conn, err := grpc.NewClient(cfg.BrokerAdminAddr, brokerOpts...)
	if err != nil {
		return fmt.Errorf("server.Run: broker client: %w", err)
	}
	defer conn.Close()

	unaryAuth, streamAuth := authz.Interceptors(verifier)
	metrics, reg := grpcserver.NewMetrics()
	srv, err := grpcserver.New(grpcserver.Config{
		Logger:  logger,
		Metrics: metrics,
		Options: serverOpts,
		Unary:   []grpc.UnaryServerInterceptor{unaryAuth},
		Stream:  []grpc.StreamServerInterceptor{streamAuth},
	})
	if err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}
	stateKey := cfg.OAuthStateKey
	if len(stateKey) == 0 {
		stateKey = []byte(rand.Text() + rand.Text())
		logger.Warn("CONNECTIONS_OAUTH_STATE_KEY is not set: using a random key, so an authorization started on one replica cannot finish on another")
	}
	impl := api.New(api.Deps{Store: st, Catalog: cat, Broker: brokerv1.NewBrokerAdminClient(conn), Logger: logger,
		Checks: api.ChecksConfig{Period: cfg.CheckPeriod, Interval: cfg.CheckInterval, Rate: cfg.CheckRate},
		Webhooks: api.WebhooksConfig{Period: cfg.WebhookPeriod, Schedule: cfg.WebhookSchedule, Timeout: cfg.WebhookTimeout,
			AllowPrivate: cfg.WebhookAllowPrivate},
		Connect:   api.ConnectConfig{BaseURL: connectBaseURL(cfg)},
		WatchPoll: cfg.WatchPoll, OAuth: api.OAuthConfig{RedirectURL: cfg.OAuthRedirectURL, StateKey: stateKey, StateTTL: cfg.OAuthStateTTL},
		WriteTimeout: cfg.SecretWriteTimeout, Destroyer: true, DestroyGrace: cfg.ReplacedSecretGrace})
	connectionsv1.RegisterConnectionServiceServer(srv, impl)

	lis, err := grpcserver.Listen(cfg.Listen)
	if err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}
	// Every listener is open before anything starts: a port that is taken
	// stops the service here, not after goroutines began serving (and the
	// deferred store close pulled the store out from under them).
	var healthL, httpL, metricsL net.Listener
	closeAll := func() {
		for _, l := range []net.Listener{lis, healthL, httpL, metricsL} {
			if l != nil {
				_ = l.Close()
			}
		}
	}
	if cfg.HealthListen != "" {
		if healthL, err = grpcserver.Listen(cfg.HealthListen); err != nil {
			closeAll()
			return fmt.Errorf("server.Run: %w", err)
		}
	}
	if cfg.HTTPListen != "" {
		if httpL, err = net.Listen("tcp", cfg.HTTPListen); err != nil {
			closeAll()
			return fmt.Errorf("server.Run: %w", err)
		}
	}
	if cfg.MetricsListen != "" {
		if metricsL, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			closeAll()
			return fmt.Errorf("server.Run: %w", err)
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ctx, lis, cfg.ShutdownGrace) })
	if healthL != nil {
		g.Go(func() error { return srv.HealthOnly().Serve(ctx, healthL, cfg.ShutdownGrace) })
	}
	if metricsL != nil {
		g.Go(func() error {
			return grpcserver.ServeHTTP(ctx, metricsL, grpcserver.MetricsHandler(reg), cfg.ShutdownGrace)
		})
	}
	g.Go(func() error { impl.RunDestroyer(ctx); return nil })
	if cfg.ReconcilePeriod > 0 {
		g.Go(func() error {
			impl.RunReconciler(ctx, cfg.ReconcilePeriod)
			return nil
		})
	}
	if cfg.CheckPeriod > 0 {
		g.Go(func() error {
			impl.RunChecks(ctx)
			return nil
		})
	}
	if cfg.WebhookPeriod > 0 {
		g.Go(func() error {
			impl.RunWebhooks(ctx)
			return nil
		})
	}
	if cfg.AccessRetention > 0 {
		g.Go(func() error {
			newAccessRetention(st, cfg.AccessRetention, logger).run(ctx)
			return nil
		})
	}
	if httpL != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /oauth2/callback", impl.OAuthCallback)
		mux.Handle(api.ConnectPath, &connectpage.Handler{API: impl, Store: st, Catalog: cat, Logger: logger})
		g.Go(func() error { return grpcserver.ServeHTTP(ctx, httpL, mux, cfg.ShutdownGrace) })
	}
	logger.Info("connection service serving", "addr", lis.Addr().String(), "http_addr", cfg.HTTPListen,
		"oauth_redirect_url", cfg.OAuthRedirectURL, "database", redactDSN(cfg.Database),
		"broker_admin_addr", cfg.BrokerAdminAddr, "connectors", len(cat.All()), "access_retention", cfg.AccessRetention)
	return g.Wait()
}

// Open opens the store a -database value names, migrating it.
func Open(ctx context.Context, database string) (store.Store, error) {
	return open(ctx, database, true)
}

// open opens the store; without migrate a PostgreSQL schema is only checked
// (an embedded SQLite file is always migrated: it has no separate operator).
func open(ctx context.Context, database string, migrate bool) (store.Store, error) {
	if path, ok := strings.CutPrefix(database, "sqlite:"); ok {
		return storesqlite.Open(ctx, path)
	}
	if !migrate {
		return storepostgres.OpenMigrated(ctx, database)
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

// connectBaseURL is where the hosted connect flow's pages are: beside the
// OAuth callback, on the same public origin ("" without an HTTP listener).
func connectBaseURL(cfg config.Config) string {
	if cfg.HTTPListen == "" {
		return ""
	}
	u, err := url.Parse(cfg.OAuthRedirectURL)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
