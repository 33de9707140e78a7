// Package config holds the broker's one configuration struct, read from flags
// and environment variables and validated before any listener opens.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/integrationhub/connections/internal/adminauth"
	"github.com/integrationhub/connections/internal/envflag"
	"github.com/integrationhub/connections/internal/tlsconfig"
)

// Config is everything the broker needs to start.
type Config struct {
	// Listen is the worker-facing CredentialBroker address: host:port, or
	// unix:/path for a sidecar's socket.
	Listen string
	// AdminListen is the BrokerAdmin address; only the connection service
	// should be able to reach it.
	AdminListen string
	// VaultAddr is Vault's address.
	VaultAddr string
	// VaultAuthMethod is how the broker logs in to Vault: token,
	// kubernetes or approle.
	VaultAuthMethod string
	// VaultToken authenticates to Vault with the token method. Read from
	// $VAULT_TOKEN only, never a flag: flags show up in process listings.
	VaultToken string
	// VaultK8sRole, VaultK8sMount and VaultK8sTokenPath configure the
	// kubernetes method.
	VaultK8sRole, VaultK8sMount, VaultK8sTokenPath string
	// VaultAppRoleMount and VaultAppRoleRoleID configure the approle method;
	// its secret id comes from $BROKER_VAULT_APPROLE_SECRET_ID only.
	VaultAppRoleMount, VaultAppRoleRoleID, VaultAppRoleSecretID string
	// VaultKVMount is the KV v2 mount holding the secrets.
	VaultKVMount string
	// VaultPathPrefix is the path under the mount for this deployment.
	VaultPathPrefix string
	// VaultTimeout bounds each Vault request.
	VaultTimeout time.Duration
	// OAuthRefreshMargin is how long before expiry access tokens are refreshed.
	OAuthRefreshMargin time.Duration
	// OAuthLeaseTTL bounds one broker's hold on a refresh.
	OAuthLeaseTTL time.Duration
	// OAuthHTTPTimeout bounds each call to an app's token endpoint.
	OAuthHTTPTimeout time.Duration
	// InstanceID names this broker in refresh leases.
	InstanceID string
	// ConnectionsAddr is the connection service, to which the broker reports
	// revoked connections; empty turns reporting off.
	ConnectionsAddr string
	// ConnectionsTokenFile holds the broker's bearer token for it.
	ConnectionsTokenFile string
	// AdminClientNames, when set, are the only client certificate names
	// (DNS SAN, else CN) the admin API accepts over TLS.
	AdminClientNames []string
	// ConnectionsCAFile, when set, turns on TLS to the connection service,
	// verified against this CA, without a client certificate (a sidecar,
	// whose own listeners are unix sockets). With TLS files, -tls-ca-file
	// and the broker's certificate are used instead.
	ConnectionsCAFile string
	// VaultTransitMount and JobTokenKey name the transit key that signs job
	// tokens; JobTokenMaxTTL caps their lifetime.
	VaultTransitMount, JobTokenKey string
	JobTokenMaxTTL                 time.Duration
	// JWKS, JWTIssuer and JWTAudience verify the job scheduler's bearer
	// token on MintJobToken; without JWKS, MintJobToken is off.
	JWKS, JWTIssuer, JWTAudience string
	// CacheTTL bounds how long a credential is served from memory; the
	// change stream drops entries sooner. Without -connections-addr (no
	// stream) credentials are not cached.
	CacheTTL time.Duration
	// TLS files; when set, both listeners serve TLS and the admin API
	// requires client certificates signed by the CA (the connection service).
	// A unix-socket listener (sidecar) stays plaintext.
	TLS tlsconfig.Files
	// AdminAuth says which callers the admin API accepts: the connection
	// service's service token (AdminTokenFile or BROKER_ADMIN_TOKEN) and,
	// with TLS, its pinned certificate names.
	AdminAuth      adminauth.Server
	AdminTokenFile string
	// HealthListen serves only the health service, in plaintext, for probes.
	HealthListen string
	// MetricsListen serves Prometheus metrics at /metrics.
	MetricsListen string
	// ShutdownGrace is how long calls in flight may finish on shutdown.
	ShutdownGrace time.Duration
	// MaxConnectionAge closes worker connections after this long (GOAWAY;
	// calls in flight finish), so that workers spread over brokers added by
	// scaling out. Zero keeps connections forever.
	MaxConnectionAge time.Duration
	// LogLevel is the minimum level logged.
	LogLevel slog.Level
	// ProxyListen serves the credential-injecting egress proxy (loopback
	// TCP or a unix socket: the worker's own pod); empty is off.
	ProxyListen string
	// ProxyCAFile adds roots for TLS to apps (proxy and test requests) to the system's.
	ProxyCAFile string
	// ProxyTimeout bounds one proxied exchange.
	ProxyTimeout time.Duration
}

// Load reads the configuration from args and the environment.
func Load(args []string) (Config, error) {
	var c Config
	fs := envflag.New("broker")
	fs.String(&c.Listen, "listen", "BROKER_LISTEN", "127.0.0.1:7002", "CredentialBroker address (host:port or unix:/path)")
	fs.String(&c.AdminListen, "admin-listen", "BROKER_ADMIN_LISTEN", "127.0.0.1:7003", "BrokerAdmin address (host:port or unix:/path)")
	fs.String(&c.VaultAddr, "vault-addr", "VAULT_ADDR", "http://127.0.0.1:8200", "Vault address")
	fs.String(&c.VaultAuthMethod, "vault-auth-method", "BROKER_VAULT_AUTH_METHOD", "token", "Vault login: token ($VAULT_TOKEN), kubernetes or approle")
	fs.String(&c.VaultK8sRole, "vault-k8s-role", "BROKER_VAULT_K8S_ROLE", "", "Vault role for the kubernetes login")
	fs.String(&c.VaultK8sMount, "vault-k8s-mount", "BROKER_VAULT_K8S_MOUNT", "kubernetes", "mount of Vault's kubernetes auth method")
	fs.String(&c.VaultK8sTokenPath, "vault-k8s-token-path", "BROKER_VAULT_K8S_TOKEN_PATH", "/var/run/secrets/kubernetes.io/serviceaccount/token", "the pod's service-account token")
	fs.String(&c.VaultAppRoleMount, "vault-approle-mount", "BROKER_VAULT_APPROLE_MOUNT", "approle", "mount of Vault's approle auth method")
	fs.String(&c.VaultAppRoleRoleID, "vault-approle-role-id", "BROKER_VAULT_APPROLE_ROLE_ID", "", "AppRole role id")
	fs.String(&c.VaultKVMount, "vault-kv-mount", "BROKER_VAULT_KV_MOUNT", "secret", "Vault KV v2 mount")
	fs.String(&c.VaultPathPrefix, "vault-path-prefix", "BROKER_VAULT_PATH_PREFIX", "integrationhub", "path prefix under the KV mount")
	fs.Duration(&c.VaultTimeout, "vault-timeout", "BROKER_VAULT_TIMEOUT", 5*time.Second, "timeout of one Vault request")
	fs.Duration(&c.OAuthRefreshMargin, "oauth-refresh-margin", "BROKER_OAUTH_REFRESH_MARGIN", 5*time.Minute, "refresh access tokens this long before they expire")
	fs.Duration(&c.OAuthLeaseTTL, "oauth-lease-ttl", "BROKER_OAUTH_LEASE_TTL", 45*time.Second, "how long one broker holds a refresh before it must renew its lease (no token request runs into its last fifth)")
	fs.Duration(&c.OAuthHTTPTimeout, "oauth-http-timeout", "BROKER_OAUTH_HTTP_TIMEOUT", 10*time.Second, "timeout of one call to an app's token endpoint")
	host, _ := os.Hostname()
	fs.String(&c.InstanceID, "instance-id", "BROKER_INSTANCE_ID", fmt.Sprintf("%s-%d", host, os.Getpid()), "this broker's name in refresh leases")
	fs.String(&c.ConnectionsAddr, "connections-addr", "BROKER_CONNECTIONS_ADDR", "", "connection service address: connection status, the change stream, access records and status reports; required for the worker API (empty: the broker refuses every worker call)")
	fs.String(&c.ConnectionsTokenFile, "connections-token-file", "BROKER_CONNECTIONS_TOKEN_FILE", "", "file holding the broker's bearer token for the connection service")
	fs.String(&c.ConnectionsCAFile, "connections-ca-file", "BROKER_CONNECTIONS_CA_FILE", "", "PEM CA of the connection service's certificate: TLS to it without a client certificate (sidecars)")
	fs.String(&c.VaultTransitMount, "vault-transit-mount", "BROKER_VAULT_TRANSIT_MOUNT", "transit", "Vault transit mount of the job-token key")
	fs.String(&c.JobTokenKey, "vault-job-token-key", "BROKER_VAULT_JOB_TOKEN_KEY", "integrationhub-job-token", "Ed25519 transit key that signs job tokens")
	fs.Duration(&c.JobTokenMaxTTL, "job-token-max-ttl", "BROKER_JOB_TOKEN_MAX_TTL", time.Hour, "longest job token lifetime")
	fs.String(&c.JWKS, "jwks", "BROKER_JWKS", "", "job scheduler's token issuer JWKS, file or URL (empty: MintJobToken off)")
	fs.String(&c.JWTIssuer, "jwt-issuer", "BROKER_JWT_ISSUER", "", "required iss of the scheduler's token")
	fs.String(&c.JWTAudience, "jwt-audience", "BROKER_JWT_AUDIENCE", "integrationhub-broker", "required aud of the scheduler's token, and the aud of job tokens")
	fs.Duration(&c.CacheTTL, "cache-ttl", "BROKER_CACHE_TTL", 5*time.Minute, "longest a credential is served from memory (needs -connections-addr)")
	fs.String(&c.TLS.Cert, "tls-cert-file", "BROKER_TLS_CERT_FILE", "", "PEM certificate for both listeners")
	fs.String(&c.TLS.Key, "tls-key-file", "BROKER_TLS_KEY_FILE", "", "PEM key of -tls-cert-file")
	fs.String(&c.TLS.CA, "tls-ca-file", "BROKER_TLS_CA_FILE", "", "PEM CA that signs admin API clients and the connection service")
	fs.String(&c.AdminTokenFile, "admin-token-file", "BROKER_ADMIN_TOKEN_FILE", "", "file holding the service token the connection service presents to the admin API (or env BROKER_ADMIN_TOKEN)")
	var names string
	fs.String(&names, "admin-client-names", "BROKER_ADMIN_CLIENT_NAMES", "", "with TLS: comma-separated certificate names (CN or DNS) the admin API accepts")
	fs.String(&c.HealthListen, "health-listen", "BROKER_HEALTH_LISTEN", "", "plaintext health-only address for probes (empty: off)")
	fs.String(&c.MetricsListen, "metrics-listen", "METRICS_LISTEN", "", "Prometheus /metrics address (empty: off)")
	fs.Duration(&c.MaxConnectionAge, "max-connection-age", "BROKER_MAX_CONNECTION_AGE", 10*time.Minute, "close worker API connections after this long so that workers rebalance over new replicas (0: never)")
	fs.Duration(&c.ShutdownGrace, "shutdown-grace", "BROKER_SHUTDOWN_GRACE", 10*time.Second, "time calls in flight get to finish on shutdown")
	fs.Level(&c.LogLevel, "log-level", "LOG_LEVEL", "minimum log level: debug, info, warn, error")
	fs.String(&c.ProxyListen, "proxy-listen", "BROKER_PROXY_LISTEN", "", "egress proxy address: loopback host:port or unix:/path (empty: off; needs -connections-addr)")
	fs.String(&c.ProxyCAFile, "proxy-ca-file", "BROKER_PROXY_CA_FILE", "", "PEM roots trusted for apps (the egress proxy and test requests), beside the system's")
	fs.Duration(&c.ProxyTimeout, "proxy-timeout", "BROKER_PROXY_TIMEOUT", time.Minute, "longest one proxied request may take, to the answer's last byte")
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	// The names are pinned twice: in the TLS handshake, and again by the
	// admin API's authentication interceptor.
	for _, n := range strings.Split(names, ",") {
		if n = strings.TrimSpace(n); n != "" {
			c.AdminClientNames = append(c.AdminClientNames, n)
		}
	}
	c.VaultToken = os.Getenv("VAULT_TOKEN")
	c.VaultAppRoleSecretID = os.Getenv("BROKER_VAULT_APPROLE_SECRET_ID")
	c.AdminAuth.ClientNames = adminauth.Names(names)
	toks, err := adminauth.LoadTokens(c.AdminTokenFile, os.Getenv("BROKER_ADMIN_TOKEN"))
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c.AdminAuth.Tokens = toks
	return c, c.validate()
}

func (c Config) validate() error {
	var errs []error
	if c.Listen == "" || c.AdminListen == "" {
		errs = append(errs, errors.New("-listen and -admin-listen must be set"))
	}
	if c.Listen == c.AdminListen {
		errs = append(errs, errors.New("-listen and -admin-listen must differ: the admin API is reachable only by the connection service"))
	}
	if c.VaultAddr == "" {
		errs = append(errs, errors.New("-vault-addr must be set"))
	}
	switch c.VaultAuthMethod {
	case "token":
		if c.VaultToken == "" {
			errs = append(errs, errors.New("VAULT_TOKEN must be set for -vault-auth-method=token"))
		}
	case "kubernetes":
		if c.VaultK8sRole == "" {
			errs = append(errs, errors.New("-vault-k8s-role must be set for -vault-auth-method=kubernetes"))
		}
	case "approle":
		if c.VaultAppRoleRoleID == "" || c.VaultAppRoleSecretID == "" {
			errs = append(errs, errors.New("-vault-approle-role-id and BROKER_VAULT_APPROLE_SECRET_ID must be set for -vault-auth-method=approle"))
		}
	default:
		errs = append(errs, fmt.Errorf("-vault-auth-method %q: want token, kubernetes or approle", c.VaultAuthMethod))
	}
	if c.VaultKVMount == "" {
		errs = append(errs, errors.New("-vault-kv-mount must be set"))
	}
	if c.OAuthLeaseTTL < 2*c.OAuthHTTPTimeout {
		errs = append(errs, errors.New("-oauth-lease-ttl must be at least 2 x -oauth-http-timeout: a token request must fit in the first four fifths of a refresh lease"))
	}
	if c.OAuthRefreshMargin < 0 || c.OAuthHTTPTimeout <= 0 {
		errs = append(errs, errors.New("-oauth-refresh-margin must not be negative and -oauth-http-timeout must be positive"))
	}
	if c.JWKS != "" && (c.JWTIssuer == "" || c.ConnectionsAddr == "") {
		errs = append(errs, errors.New("-jwks (MintJobToken) needs -jwt-issuer and -connections-addr (for recipe bindings)"))
	}
	if c.ConnectionsAddr != "" && c.ConnectionsTokenFile == "" {
		errs = append(errs, errors.New("-connections-addr needs -connections-token-file"))
	}
	if err := c.AdminAuth.Validate(c.TLS.Enabled()); err != nil {
		errs = append(errs, err)
	}
	if c.ProxyListen != "" && !strings.HasPrefix(c.ProxyListen, "unix:") {
		host, _, err := net.SplitHostPort(c.ProxyListen)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			errs = append(errs, errors.New("-proxy-listen must be a loopback address (127.0.0.1:port, [::1]:port) or unix:/path: the proxy serves the worker in its own pod"))
		}
	}
	if c.ProxyListen != "" && c.ConnectionsAddr == "" {
		errs = append(errs, errors.New("-proxy-listen needs -connections-addr (job tokens are checked against it)"))
	}
	if c.VaultTimeout <= 0 || c.ShutdownGrace < 0 {
		errs = append(errs, errors.New("-vault-timeout must be positive and -shutdown-grace not negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}
