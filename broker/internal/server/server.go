// Package server wires the broker together: Vault client, gRPC services on
// their two listeners, and their shutdown.
package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	"github.com/integrationhub/connections/internal/grpcserver"
	"github.com/integrationhub/connections/internal/jwtauth"
	"github.com/integrationhub/connections/internal/tlsconfig"

	"github.com/integrationhub/connections/broker/internal/access"
	"github.com/integrationhub/connections/broker/internal/api"
	"github.com/integrationhub/connections/broker/internal/cache"
	"github.com/integrationhub/connections/broker/internal/config"
	"github.com/integrationhub/connections/broker/internal/conninfo"
	"github.com/integrationhub/connections/broker/internal/connsvc"
	"github.com/integrationhub/connections/broker/internal/invalidate"
	"github.com/integrationhub/connections/broker/internal/jobtoken"
	"github.com/integrationhub/connections/broker/internal/oauth"
	"github.com/integrationhub/connections/broker/internal/oauthclient"
	"github.com/integrationhub/connections/broker/internal/upstream"
	"github.com/integrationhub/connections/broker/internal/vault"
	"github.com/integrationhub/connections/internal/egress"
)

// Run serves until ctx ends or a listener fails.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	vc, err := vault.New(vault.Config{
		Addr:       cfg.VaultAddr,
		KVMount:    cfg.VaultKVMount,
		PathPrefix: cfg.VaultPathPrefix,
		Timeout:    cfg.VaultTimeout,
	})
	if err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}
	if err := vc.Login(ctx, vault.Auth{Method: cfg.VaultAuthMethod, Token: cfg.VaultToken,
		K8sRole: cfg.VaultK8sRole, K8sMount: cfg.VaultK8sMount, K8sTokenPath: cfg.VaultK8sTokenPath,
		AppRoleMount: cfg.VaultAppRoleMount, RoleID: cfg.VaultAppRoleRoleID, SecretID: cfg.VaultAppRoleSecretID}, logger); err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}
	// Apps are called without following redirects: a redirect must not carry
	// a credential to another host.
	hc := &http.Client{Timeout: cfg.OAuthHTTPTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ocfg := oauth.Config{Margin: cfg.OAuthRefreshMargin, LeaseTTL: cfg.OAuthLeaseTTL, RequestTimeout: cfg.OAuthHTTPTimeout,
		Holder: cfg.InstanceID, HTTP: hc, Logger: logger}
	var clientTLS *tls.Config
	if cfg.TLS.Enabled() {
		if clientTLS, err = tlsconfig.Client(cfg.TLS); err != nil {
			return fmt.Errorf("server.Run: %w", err)
		}
	} else if cfg.ConnectionsCAFile != "" {
		if clientTLS, err = tlsconfig.ClientRoots(cfg.ConnectionsCAFile); err != nil {
			return fmt.Errorf("server.Run: -connections-ca-file: %w", err)
		}
	}
	var conns *connsvc.Client
	if cfg.ConnectionsAddr != "" {
		if conns, err = connsvc.New(cfg.ConnectionsAddr, cfg.ConnectionsTokenFile, clientTLS, logger); err != nil {
			return fmt.Errorf("server.Run: %w", err)
		}
		defer conns.Close()
		// The OAuth manager works on secret keys (id/generation).
		ocfg.OnRevoked = func(key, detail string) { id, gen := vault.SplitKey(key); conns.Revoked(id, gen, detail) }
	}
	// Which OAuth client registration is live is the connection service's
	// to say; without it the OAuth flows and refreshes refuse.
	var liveClient oauthclient.Source
	if conns != nil {
		liveClient = conns.OAuthClientGeneration
	}
	clients := oauthclient.Store{Client: vc, Registry: oauthclient.New(vc, liveClient)}
	// Credentials are kept in memory only while the change stream tells
	// this broker of changes made through the others; refreshed records go
	// there too.
	creds := cache.New(0)
	if conns != nil {
		creds = cache.New(cfg.CacheTTL)
	}
	ocfg.OnRefreshed = creds.Put
	if conns != nil {
		// The connection service shows when each OAuth connection's token
		// was last obtained and when it expires.
		ocfg.OnObtained = func(key string, rec vault.Record, at time.Time) {
			id, gen := vault.SplitKey(key)
			var expires time.Time
			if rec.OAuth2 != nil {
				expires = rec.OAuth2.Expiry
			}
			conns.Refreshed(id, gen, at, expires)
		}
	}
	// Test requests and the egress proxy reach apps through one guard.
	roots, err := egress.Roots(cfg.ProxyCAFile)
	if err != nil {
		return fmt.Errorf("server.Run: -proxy-ca-file: %w", err)
	}
	deps := api.Deps{Secrets: vc, Clients: clients, OAuth: oauth.New(ocfg, clients), HTTP: hc, Apps: egress.New(roots),
		Upstream: upstream.New(roots), Logger: logger, Cache: creds, Webhooks: vc}
	var inv *invalidate.Invalidator
	var audit *access.Recorder
	if conns != nil {
		// Job tokens are checked against what the connection service says
		// of each connection, and every access is recorded there.
		tokens := jobtoken.New(jobtoken.Config{Mount: cfg.VaultTransitMount, Key: cfg.JobTokenKey,
			Issuer: "integrationhub-broker", Audience: cfg.JWTAudience, Refresh: 30 * time.Second}, vc)
		info := conninfo.New(conns, cfg.CacheTTL)
		audit = access.New(conns.RecordAccess, cfg.InstanceID, time.Second, 50_000, logger)
		deps.Workers = &api.Workers{Tokens: tokens, Connections: info, Record: audit.Record}
		if cfg.JWKS != "" {
			scheduler, err := jwtauth.NewVerifier(ctx, cfg.JWKS, cfg.JWTIssuer, cfg.JWTAudience)
			if err != nil {
				return fmt.Errorf("server.Run: %w", err)
			}
			deps.Jobs = &api.Jobs{Authority: tokens, Scheduler: scheduler, Recipes: conns.GetRecipe, MaxTTL: cfg.JobTokenMaxTTL}
		}
		deps.OnInvalid = conns.Invalid
		inv = &invalidate.Invalidator{Credentials: creds, Connections: info, Clients: clients.Registry}
	}
	workerAPI, adminAPI := api.New(deps)

	metrics, reg := grpcserver.NewMetrics()
	reg.MustRegister(vaultTokenMetrics(vc)...)
	var workerOpts, adminOpts []grpc.ServerOption
	if cfg.TLS.Enabled() {
		wt, err := tlsconfig.Server(cfg.TLS, false)
		if err != nil {
			return fmt.Errorf("server.Run: worker TLS: %w", err)
		}
		at, err := tlsconfig.Server(cfg.TLS, true)
		if err != nil {
			return fmt.Errorf("server.Run: admin TLS: %w", err)
		}
		tlsconfig.PinClientNames(at, cfg.AdminClientNames)
		if !strings.HasPrefix(cfg.Listen, "unix:") {
			workerOpts = append(workerOpts, grpc.Creds(credentials.NewTLS(wt)))
		}
		adminOpts = append(adminOpts, grpc.Creds(credentials.NewTLS(at)))
	}
	if cfg.MaxConnectionAge > 0 {
		workerOpts = append(workerOpts, grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge: cfg.MaxConnectionAge, MaxConnectionAgeGrace: cfg.ShutdownGrace}))
	}
	// Successful worker calls are logged at debug level: each is in the
	// access record already, and workers make thousands a second.
	// Ready while the broker holds a valid Vault token: a broker whose token
	// expired or was revoked can serve nothing its peers cannot serve better.
	worker, err := grpcserver.New(grpcserver.Config{Logger: logger.With("api", "worker"), Metrics: metrics, Options: workerOpts,
		QuietSuccess: true, Ready: vc.TokenValid, Unary: []grpc.UnaryServerInterceptor{workerAPI.RecordRefusals()}})
	if err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}
	brokerv1.RegisterCredentialBrokerServer(worker, workerAPI)
	admin, err := grpcserver.New(grpcserver.Config{Logger: logger.With("api", "admin"), Metrics: metrics, Options: adminOpts, Ready: vc.TokenValid,
		Unary: []grpc.UnaryServerInterceptor{cfg.AdminAuth.Unary()}, Stream: []grpc.StreamServerInterceptor{cfg.AdminAuth.Stream()}})
	if err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}
	brokerv1.RegisterBrokerAdminServer(admin, adminAPI)

	wl, err := grpcserver.Listen(cfg.Listen)
	if err != nil {
		return fmt.Errorf("server.Run: %w", err)
	}
	al, err := grpcserver.Listen(cfg.AdminListen)
	if err != nil {
		_ = wl.Close()
		return fmt.Errorf("server.Run: %w", err)
	}
	// Every listener is open before anything starts: a port that is taken
	// stops the broker here, not after goroutines began serving.
	var hl, ml, pl net.Listener
	if cfg.HealthListen != "" {
		if hl, err = grpcserver.Listen(cfg.HealthListen); err != nil {
			_, _ = wl.Close(), al.Close()
			return fmt.Errorf("server.Run: %w", err)
		}
	}
	if cfg.MetricsListen != "" {
		if ml, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			_, _ = wl.Close(), al.Close()
			if hl != nil {
				_ = hl.Close()
			}
			return fmt.Errorf("server.Run: %w", err)
		}
	}
	if cfg.ProxyListen != "" {
		if pl, err = grpcserver.Listen(cfg.ProxyListen); err != nil {
			for _, l := range []net.Listener{wl, al, hl, ml} {
				if l != nil {
					_ = l.Close()
				}
			}
			return fmt.Errorf("server.Run: %w", err)
		}
	}
	if !cfg.AdminAuth.Configured() {
		logger.Warn("no -admin-token-file or -admin-client-names: the admin API refuses every call")
	}
	logger.Info("broker serving", "worker_addr", wl.Addr().String(), "admin_addr", al.Addr().String(),
		"vault_addr", cfg.VaultAddr, "kv_mount", cfg.VaultKVMount, "path_prefix", cfg.VaultPathPrefix)

	g, ctx := errgroup.WithContext(ctx)
	if conns != nil {
		// Changes made through other brokers (or to metadata) drop cached
		// credentials; without the stream the cache would only learn of this
		// broker's own writes.
		g.Go(func() error {
			conns.Watch(ctx, inv.Changed, inv.Resync)
			return nil
		})
		g.Go(func() error { return conns.RunReports(ctx) })
	} else {
		logger.Warn("no -connections-addr: the worker API refuses every call (job tokens cannot be checked); only the admin API serves")
	}
	// The broker's Vault token: renewed while Vault allows, replaced by a new
	// login where the method can (kubernetes, approle).
	g.Go(func() error { return vc.KeepTokenAlive(ctx) })
	// Access records are flushed for the last time only after the worker
	// API has stopped and its in-flight calls have finished (and recorded).
	auditCtx, stopAudit := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAudit()
	if audit != nil {
		g.Go(func() error { audit.Run(auditCtx); return nil })
	}
	g.Go(func() error { defer stopAudit(); return worker.Serve(ctx, wl, cfg.ShutdownGrace) })
	g.Go(func() error { return admin.Serve(ctx, al, cfg.ShutdownGrace) })
	if hl != nil {
		// The worker API's health: it is what probes and workers care about.
		g.Go(func() error { return worker.HealthOnly().Serve(ctx, hl, cfg.ShutdownGrace) })
	}
	if ml != nil {
		g.Go(func() error { return grpcserver.ServeHTTP(ctx, ml, grpcserver.MetricsHandler(reg), cfg.ShutdownGrace) })
	}
	if pl != nil {
		logger.Info("egress proxy serving", "proxy_addr", pl.Addr().String())
		g.Go(func() error {
			proxy := workerAPI.Proxy(api.ProxyConfig{Timeout: cfg.ProxyTimeout, Metrics: reg, Logger: logger})
			return api.ServeProxy(ctx, proxy, pl, cfg.ShutdownGrace)
		})
	}
	return g.Wait()
}

// vaultTokenMetrics report the broker's Vault token: whether it is valid and
// when it expires unless renewed (alerts fire before the broker loses Vault).
func vaultTokenMetrics(vc *vault.Client) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "integrationhub_broker_vault_token_valid",
			Help: "1 while the broker holds a valid Vault token (renewed or logged in again), else 0."},
			func() float64 {
				if vc.TokenValid() {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "integrationhub_broker_vault_token_expiry_timestamp_seconds",
			Help: "When the broker's Vault token expires unless renewed (Unix seconds); 0 when it does not expire."},
			func() float64 {
				if e := vc.TokenExpiry(); !e.IsZero() {
					return float64(e.Unix())
				}
				return 0
			}),
	}
}
