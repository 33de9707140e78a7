// Package config holds the connection service's one configuration struct,
// read from flags and environment variables and validated before any listener
// opens.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/integrationhub/connections/internal/adminauth"
	"github.com/integrationhub/connections/internal/envflag"
	"github.com/integrationhub/connections/internal/tlsconfig"
)

// Config is everything the connection service needs to start.
type Config struct {
	// Listen is the gRPC address.
	Listen string
	// Database selects the store: "sqlite:<path>" (the embedded default) or
	// a postgres:// URL.
	Database string
	// MigrateOnly migrates the database and exits (a deploy hook's job).
	MigrateOnly bool
	// SkipMigrations starts without migrating a PostgreSQL database (the
	// deploy's migration Job does, with its own credential); the schema
	// must be current, else startup fails saying so.
	SkipMigrations bool
	// JWKS is where the token issuer's public keys are: a file or an
	// http(s) URL serving a JSON Web Key Set.
	JWKS string
	// JWTIssuer and JWTAudience are the iss and aud every token must carry.
	JWTIssuer, JWTAudience string
	// WatchPoll is how often WatchConnections looks for new changes.
	WatchPoll time.Duration
	// AccessRetention is how long access events are kept, counted from
	// their last access; older ones are deleted hourly. 0 keeps them forever.
	AccessRetention time.Duration
	// ReconcilePeriod is how often the reconciler compares the metadata
	// with Vault and repairs what disagrees (one replica at a time); 0 turns
	// it off.
	ReconcilePeriod time.Duration
	// CheckPeriod is how often the leader looks for active connections due
	// for their scheduled check (0: no scheduled checks); CheckInterval is
	// how often each is checked unless its connector says otherwise;
	// CheckRate bounds the checks per second sent to one app.
	CheckPeriod   time.Duration
	CheckInterval time.Duration
	CheckRate     float64
	// WebhookPeriod is how often the leader turns new events into webhook
	// deliveries and sends those due (0: webhooks off); WebhookSchedule is
	// the wait before each retry of a failed delivery (after the last the
	// delivery fails); WebhookTimeout bounds one attempt;
	// WebhookAllowPrivate lets receivers be on private or loopback
	// addresses.
	WebhookPeriod       time.Duration
	WebhookSchedule     []time.Duration
	WebhookTimeout      time.Duration
	WebhookAllowPrivate bool
	// SecretWriteTimeout bounds one secret write at the broker; its write
	// intent expires a little after, and the reconciler cleans up from then.
	SecretWriteTimeout time.Duration
	// ReplacedSecretGrace is how long a secret generation an update
	// replaced stays in Vault before it is destroyed (brokers stop serving
	// it as soon as the change reaches them).
	ReplacedSecretGrace time.Duration
	// HTTPListen serves the OAuth callback; empty turns OAuth off.
	HTTPListen string
	// OAuthRedirectURL is the callback's public URL (default: derived from
	// HTTPListen).
	OAuthRedirectURL string
	// OAuthStateTTL is how long a user has to complete an authorization
	// once started; an OAuth 1.0a request token's pending secret generation
	// is held as long (docs/write-protocol.md).
	OAuthStateTTL time.Duration
	// OAuthStateKey (base64, from $CONNECTIONS_OAUTH_STATE_KEY only) derives
	// PKCE verifiers; replicas must share it. Random per process when unset.
	OAuthStateKey []byte
	// BrokerAdminAddr is the broker's BrokerAdmin address (host:port or unix:/path).
	BrokerAdminAddr string
	// BrokerAdminToken is the service token presented to the broker's admin
	// API, the first line of BrokerAdminTokenFile, read again when the file
	// changes (nil for none: then only a pinned TLS client certificate gets
	// in).
	BrokerAdminToken     *adminauth.Tokens
	BrokerAdminTokenFile string
	// CatalogFile optionally adds or replaces connector catalog entries.
	CatalogFile string
	// TLS files; when set the gRPC API serves TLS, and the broker's admin API
	// is called over TLS with this certificate, verified against the CA.
	TLS tlsconfig.Files
	// HealthListen serves only the health service, in plaintext, for probes.
	HealthListen string
	// MetricsListen serves Prometheus metrics at /metrics.
	MetricsListen string
	// ShutdownGrace is how long calls in flight may finish on shutdown.
	ShutdownGrace time.Duration
	// LogLevel is the minimum level logged.
	LogLevel slog.Level
}

// Load reads the configuration from args and the environment.
func Load(args []string) (Config, error) {
	var c Config
	fs := envflag.New("connections")
	fs.String(&c.Listen, "listen", "CONNECTIONS_LISTEN", "127.0.0.1:7001", "gRPC address (host:port or unix:/path)")
	fs.String(&c.Database, "database", "CONNECTIONS_DATABASE", "sqlite:connections.db", `metadata store: "sqlite:<path>" or "postgres://..."`)
	fs.Bool(&c.MigrateOnly, "migrate-only", "CONNECTIONS_MIGRATE_ONLY", false, "migrate the database and exit")
	fs.Bool(&c.SkipMigrations, "skip-migrations", "CONNECTIONS_SKIP_MIGRATIONS", false, "do not migrate a PostgreSQL database at startup; fail unless its schema is current")
	fs.String(&c.JWKS, "jwks", "CONNECTIONS_JWKS", "", "token issuer's JSON Web Key Set: a file path or an http(s) URL")
	fs.String(&c.JWTIssuer, "jwt-issuer", "CONNECTIONS_JWT_ISSUER", "", "required iss claim of caller tokens")
	fs.String(&c.JWTAudience, "jwt-audience", "CONNECTIONS_JWT_AUDIENCE", "integrationhub-connections", "required aud claim of caller tokens")
	fs.Duration(&c.WatchPoll, "watch-poll", "CONNECTIONS_WATCH_POLL", 500*time.Millisecond, "how often WatchConnections checks for changes")
	fs.Duration(&c.CheckPeriod, "check-period", "CONNECTIONS_CHECK_PERIOD", time.Minute, "how often connections due for their scheduled check are looked for (0: no scheduled checks)")
	fs.Duration(&c.CheckInterval, "check-interval", "CONNECTIONS_CHECK_INTERVAL", 24*time.Hour, "how often an active connection is verified with its connector's test request, unless the catalog says otherwise")
	fs.Float64(&c.CheckRate, "check-rate", "CONNECTIONS_CHECK_RATE", 2, "scheduled checks per second sent to one app at most")
	fs.Duration(&c.WebhookPeriod, "webhook-period", "CONNECTIONS_WEBHOOK_PERIOD", 2*time.Second, "how often new connection events become webhook deliveries and due deliveries are sent (0: webhooks off)")
	var schedule string
	fs.String(&schedule, "webhook-retry-schedule", "CONNECTIONS_WEBHOOK_RETRY_SCHEDULE", "5s,5m,30m,2h,5h,10h,10h", "comma-separated waits before each retry of a failed webhook delivery; after the last it fails")
	fs.Duration(&c.WebhookTimeout, "webhook-timeout", "CONNECTIONS_WEBHOOK_TIMEOUT", 10*time.Second, "how long one webhook delivery attempt may take")
	fs.Bool(&c.WebhookAllowPrivate, "webhook-allow-private", "CONNECTIONS_WEBHOOK_ALLOW_PRIVATE", false, "send webhooks to private and loopback addresses too")
	fs.Duration(&c.ReconcilePeriod, "reconcile-period", "CONNECTIONS_RECONCILE_PERIOD", 30*time.Second, "how often the reconciler repairs what metadata and Vault disagree on (0: off)")
	fs.Duration(&c.SecretWriteTimeout, "secret-write-timeout", "CONNECTIONS_SECRET_WRITE_TIMEOUT", 15*time.Second, "how long one secret write at the broker may take")
	fs.Duration(&c.ReplacedSecretGrace, "replaced-secret-grace", "CONNECTIONS_REPLACED_SECRET_GRACE", 30*time.Second, "how long a replaced secret generation stays in Vault before it is destroyed (brokers stop serving it once they see the change)")
	fs.Duration(&c.AccessRetention, "access-retention", "CONNECTIONS_ACCESS_RETENTION", 90*24*time.Hour, "how long access events are kept after their last access (0: forever)")
	fs.String(&c.BrokerAdminAddr, "broker-admin-addr", "CONNECTIONS_BROKER_ADMIN_ADDR", "127.0.0.1:7003", "the broker's admin API address")
	fs.String(&c.BrokerAdminTokenFile, "broker-admin-token-file", "CONNECTIONS_BROKER_ADMIN_TOKEN_FILE", "", "file holding the service token for the broker's admin API (or env CONNECTIONS_BROKER_ADMIN_TOKEN)")
	fs.String(&c.CatalogFile, "catalog-file", "CONNECTIONS_CATALOG_FILE", "", "YAML file adding or replacing connector catalog entries")
	fs.Duration(&c.ShutdownGrace, "shutdown-grace", "CONNECTIONS_SHUTDOWN_GRACE", 10*time.Second, "time calls in flight get to finish on shutdown")
	fs.String(&c.HTTPListen, "http-listen", "CONNECTIONS_HTTP_LISTEN", "127.0.0.1:7004", "HTTP address of the OAuth callback; empty turns OAuth off")
	fs.String(&c.OAuthRedirectURL, "oauth-redirect-url", "CONNECTIONS_OAUTH_REDIRECT_URL", "", "public URL of the OAuth callback (default http://<http-listen>/oauth2/callback)")
	fs.Duration(&c.OAuthStateTTL, "oauth-state-ttl", "CONNECTIONS_OAUTH_STATE_TTL", 10*time.Minute, "how long a user has to complete an OAuth authorization once started")
	fs.String(&c.TLS.Cert, "tls-cert-file", "CONNECTIONS_TLS_CERT_FILE", "", "PEM certificate for the gRPC API and for calls to the broker")
	fs.String(&c.TLS.Key, "tls-key-file", "CONNECTIONS_TLS_KEY_FILE", "", "PEM key of -tls-cert-file")
	fs.String(&c.TLS.CA, "tls-ca-file", "CONNECTIONS_TLS_CA_FILE", "", "PEM CA that signs the broker's certificate")
	fs.String(&c.HealthListen, "health-listen", "CONNECTIONS_HEALTH_LISTEN", "", "plaintext health-only address for probes (empty: off)")
	fs.String(&c.MetricsListen, "metrics-listen", "METRICS_LISTEN", "", "Prometheus /metrics address (empty: off)")
	fs.Level(&c.LogLevel, "log-level", "LOG_LEVEL", "minimum log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	for _, f := range strings.Split(schedule, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d <= 0 {
			return Config{}, fmt.Errorf("config: -webhook-retry-schedule: %q is not a positive duration (e.g. 5s,5m,30m)", f)
		}
		c.WebhookSchedule = append(c.WebhookSchedule, d)
	}
	if c.OAuthRedirectURL == "" && c.HTTPListen != "" {
		c.OAuthRedirectURL = "http://" + c.HTTPListen + "/oauth2/callback"
	}
	if k := os.Getenv("CONNECTIONS_OAUTH_STATE_KEY"); k != "" {
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(key) < 32 {
			return Config{}, errors.New("config: CONNECTIONS_OAUTH_STATE_KEY must be at least 32 bytes, base64-encoded")
		}
		c.OAuthStateKey = key
	}
	toks, err := adminauth.LoadTokens(c.BrokerAdminTokenFile, os.Getenv("CONNECTIONS_BROKER_ADMIN_TOKEN"))
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c.BrokerAdminToken = toks
	return c, c.validate()
}

func (c Config) validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("-listen must be set"))
	}
	if !strings.HasPrefix(c.Database, "postgres://") && !strings.HasPrefix(c.Database, "postgresql://") {
		if path, ok := strings.CutPrefix(c.Database, "sqlite:"); !ok || path == "" {
			errs = append(errs, errors.New(`-database: want "sqlite:<path>" or a postgres:// URL`))
		}
	}
	if !c.MigrateOnly && (c.JWKS == "" || c.JWTIssuer == "") {
		errs = append(errs, errors.New("-jwks and -jwt-issuer must be set: every call is authenticated"))
	}
	if c.WatchPoll <= 0 {
		errs = append(errs, errors.New("-watch-poll must be positive"))
	}
	if c.CheckPeriod < 0 || c.CheckInterval <= 0 || c.CheckRate <= 0 {
		errs = append(errs, errors.New("-check-period must not be negative (0: off); -check-interval and -check-rate must be positive"))
	}
	if c.WebhookPeriod < 0 || c.WebhookTimeout <= 0 {
		errs = append(errs, errors.New("-webhook-period must not be negative (0: off); -webhook-timeout must be positive"))
	}
	if c.ReconcilePeriod < 0 {
		errs = append(errs, errors.New("-reconcile-period must not be negative (0 turns the reconciler off)"))
	}
	if c.ReplacedSecretGrace < 0 {
		errs = append(errs, errors.New("-replaced-secret-grace must not be negative (0 destroys at once)"))
	}
	if c.SecretWriteTimeout <= 0 {
		errs = append(errs, errors.New("-secret-write-timeout must be positive"))
	}
	if c.OAuthStateTTL <= 0 {
		errs = append(errs, errors.New("-oauth-state-ttl must be positive"))
	}
	if c.AccessRetention < 0 {
		errs = append(errs, errors.New("-access-retention must not be negative (0 keeps access events forever)"))
	}
	if c.BrokerAdminAddr == "" {
		errs = append(errs, errors.New("-broker-admin-addr must be set"))
	}
	if c.ShutdownGrace < 0 {
		errs = append(errs, errors.New("-shutdown-grace must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}
