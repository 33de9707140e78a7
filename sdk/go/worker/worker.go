// Package worker is the Go SDK for recipe workers: it gets connection
// credentials from the credential broker and puts them on the worker's
// requests to the apps, so that a worker writes neither broker calls nor
// auth headers by hand.
//
// A worker makes one Client per job (its job token covers the connections
// bound to the job's recipe) and then either asks for a credential
// (Credential, then Credential.Apply) or, simpler, sends its requests
// through HTTPClient: the credential is put on each request as the
// connector wants it (bearer token, basic auth, a named header or query
// parameter; OAuth 1.0a requests are signed by the broker, whose secret the
// worker never sees). When the app answers 401 the client reports it to the
// broker and retries once with the credential the broker then serves; a
// 403 is reported too.
//
// A worker that should hold no secret at all sends its requests through the
// broker's egress proxy instead (ProxyHTTPClient): the broker puts the
// credential on in the worker's own pod and the SDK only adds the job token.
//
// A credential goes only where its connection points: a request to a host
// that is not among the connection's hosts (Credential.AllowedHosts, as the
// broker stored them) is refused before anything is sent, with a
// HostNotAllowedError, and HTTPClient does not follow a redirect to another
// host.
//
// Credentials are cached per connection until shortly before they expire,
// and concurrent callers share one broker call. Errors are typed: use
// errors.As with ConnectionNotActiveError, RuntimeUserConnectionMissingError,
// NotCoveredError, HostNotAllowedError, TokenError, UnavailableError (the
// broker) and AppUnavailableError (the app).
package worker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
)

// Environment variables a worker pod gets from the charts.
const (
	// EnvBrokerAddr is the broker's worker API: "host:port", or
	// "unix:/path/to.sock" for the sidecar in the worker's own pod.
	EnvBrokerAddr = "INTEGRATIONHUB_BROKER_ADDR"
	// EnvJobToken is the job token, when it is not given otherwise.
	EnvJobToken = "INTEGRATIONHUB_JOB_TOKEN"
)

// Options configure a Client. The zero value reads the broker's address and
// the job token from the environment.
type Options struct {
	// Address of the broker's worker API; default $INTEGRATIONHUB_BROKER_ADDR.
	Address string
	// TLS secures the connection to a shared broker that serves TLS; nil
	// is plain text (a sidecar's unix socket, or loopback).
	TLS *tls.Config
	// Token is the job token from MintJobToken. Else TokenFile is read
	// (again whenever it changes, so a rotated token is picked up), else
	// $INTEGRATIONHUB_JOB_TOKEN.
	Token     string
	TokenFile string
	// RefreshMargin is how long before its expiry a cached credential is
	// fetched again; default one minute.
	RefreshMargin time.Duration
	// MaxAge is how long a credential is served from this client's memory
	// at most, expiring or not; default 5 s. The broker checks the job
	// token and the connection's status on every call (a connection that
	// turned invalid is refused at once), and answers from its own memory
	// in well under a millisecond: a longer MaxAge saves calls but serves a
	// refused connection's credential that much longer.
	MaxAge time.Duration
	// DialOptions are added to the gRPC connection's.
	DialOptions []grpc.DialOption
	// ProxyAddress is the broker's egress proxy, for ProxyTransport;
	// default $INTEGRATIONHUB_PROXY_ADDR ("host:port" or "unix:///path").
	ProxyAddress string
}

// Client gets credentials from the broker for one job.
type Client struct {
	conn   *grpc.ClientConn
	broker brokerv1.CredentialBrokerClient
	token  *tokenSource
	margin time.Duration
	maxAge time.Duration
	now    func() time.Time

	// proxy reaches the broker's egress proxy; nil when there is none.
	proxy *http.Transport

	sf    singleflight.Group
	mu    sync.Mutex
	cache map[string]*Credential
}

// New returns a client of the broker at o.Address. It reads the job token
// now (a missing token file is an error here, not at the first call) but
// does not connect until the first call, which ctx does not bound.
func New(ctx context.Context, o Options) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	addr := o.Address
	if addr == "" {
		addr = os.Getenv(EnvBrokerAddr)
	}
	if addr == "" {
		return nil, errors.New("worker: no broker address: set Options.Address or " + EnvBrokerAddr)
	}
	ts, err := newTokenSource(o)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if o.TLS != nil {
		creds = credentials.NewTLS(o.TLS)
	}
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, o.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("worker: broker address %q: %w", addr, err)
	}
	margin := o.RefreshMargin
	if margin <= 0 {
		margin = time.Minute
	}
	maxAge := o.MaxAge
	if maxAge <= 0 {
		maxAge = 5 * time.Second
	}
	c := &Client{conn: conn, broker: brokerv1.NewCredentialBrokerClient(conn), token: ts, margin: margin, maxAge: maxAge,
		now: time.Now, cache: map[string]*Credential{}}
	if p := proxyAddress(o); p != "" {
		c.proxy = proxyTransportTo(p)
	}
	return c, nil
}

// Close closes the connection to the broker (and the egress proxy's idle
// connections).
func (c *Client) Close() error {
	if c.proxy != nil {
		c.proxy.CloseIdleConnections()
	}
	return c.conn.Close()
}

// Credential is a connection's credential as the broker serves it.
type Credential struct {
	// ConnectionID is the connection whose credential this is: another one
	// than asked for when the job runs for a runtime user with their own.
	ConnectionID string
	Connector    string
	RuntimeUser  string
	// BaseURL is the app instance's base URL, when the connection has one.
	BaseURL string
	// AllowedHosts are the hosts the credential may be sent to, as the
	// broker stored them with it: "api.github.com" (any port),
	// "127.0.0.1:8443" (that port), "*.zendesk.com" (any host below the
	// domain). Empty from a broker that does not say, or for a credential
	// stored without hosts: then it goes only to BaseURL's scheme and host.
	// See CheckURL.
	AllowedHosts []string
	AuthType     credentialv1.AuthType
	Placement    *credentialv1.Placement
	// ExpireTime is when the credential stops working; zero when it does
	// not expire.
	ExpireTime time.Time

	material *credentialv1.Credential
	fetched  time.Time
}

// String hides the secret from fmt and loggers.
func (cr *Credential) String() string {
	return fmt.Sprintf("Credential{%s %s REDACTED}", cr.ConnectionID, strings.TrimPrefix(cr.AuthType.String(), "AUTH_TYPE_"))
}

// Credential returns connectionID's credential, from memory for up to
// MaxAge while it is not within the refresh margin of its expiry;
// concurrent callers share one broker call. An OAuth 1.0a connection has no credential to hand out (its
// requests are signed: use HTTPClient or Transport).
func (c *Client) Credential(ctx context.Context, connectionID string) (*Credential, error) {
	c.mu.Lock()
	cr, ok := c.cache[connectionID]
	c.mu.Unlock()
	if now := c.now(); ok && now.Sub(cr.fetched) < c.maxAge && (cr.ExpireTime.IsZero() || now.Add(c.margin).Before(cr.ExpireTime)) {
		return cr, nil
	}
	ch := c.sf.DoChan(connectionID, func() (any, error) {
		// Not tied to one caller: a caller that gives up does not fail the
		// others waiting on the same call.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return c.fetch(ctx, connectionID)
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Credential), nil
	}
}

func (c *Client) fetch(ctx context.Context, connectionID string) (*Credential, error) {
	ctx, err := c.token.attach(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := c.broker.GetCredential(ctx, &brokerv1.GetCredentialRequest{ConnectionId: connectionID})
	if err != nil {
		return nil, fromStatus(connectionID, err)
	}
	base := resp.GetBaseUrl()
	if base == "" {
		base = resp.GetInstance().GetBaseUrl()
	}
	cr := credentialOf(resp.GetConnectionId(), resp.GetConnector(), resp.GetRuntimeUser(), base, resp.GetAllowedHosts(),
		resp.GetPlacement(), resp.GetCredential())
	cr.fetched = c.now()
	c.keep(connectionID, cr)
	return cr, nil
}

func credentialOf(id, connector, runtimeUser, baseURL string, allowed []string, p *credentialv1.Placement, m *credentialv1.Credential) *Credential {
	cr := &Credential{ConnectionID: id, Connector: connector, RuntimeUser: runtimeUser, BaseURL: baseURL, AllowedHosts: allowed,
		AuthType: m.GetAuthType(), Placement: p, material: m}
	if m.GetExpireTime() != nil {
		cr.ExpireTime = m.GetExpireTime().AsTime()
	}
	return cr
}

func (c *Client) keep(connectionID string, cr *Credential) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cache[connectionID] = cr
}

func (c *Client) forget(connectionID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cache, connectionID)
}

// tokenSource yields the job token: fixed, or read from a file whenever the
// file changed since it was last read.
type tokenSource struct {
	fixed string
	file  string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	cached  string
}

func newTokenSource(o Options) (*tokenSource, error) {
	switch {
	case o.Token != "":
		return &tokenSource{fixed: o.Token}, nil
	case o.TokenFile != "":
		ts := &tokenSource{file: o.TokenFile}
		if _, err := ts.get(); err != nil {
			return nil, err
		}
		return ts, nil
	case os.Getenv(EnvJobToken) != "":
		return &tokenSource{fixed: os.Getenv(EnvJobToken)}, nil
	}
	return nil, ErrNoToken
}

func (t *tokenSource) get() (string, error) {
	if t.file == "" {
		return t.fixed, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fi, err := os.Stat(t.file)
	if err != nil {
		return "", fmt.Errorf("worker: job token file: %w", err)
	}
	if t.cached != "" && fi.ModTime().Equal(t.modTime) && fi.Size() == t.size {
		return t.cached, nil
	}
	b, err := os.ReadFile(t.file)
	if err != nil {
		return "", fmt.Errorf("worker: job token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("worker: job token file %s is empty", t.file)
	}
	t.cached, t.modTime, t.size = tok, fi.ModTime(), fi.Size()
	return tok, nil
}

// attach puts the job token on an outgoing call.
func (t *tokenSource) attach(ctx context.Context) (context.Context, error) {
	tok, err := t.get()
	if err != nil {
		return nil, err
	}
	return metadataWithBearer(ctx, tok), nil
}
