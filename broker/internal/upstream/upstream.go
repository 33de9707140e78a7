// Package upstream is the egress proxy's HTTP client to apps: fasthttp's
// client, dialling through egress's guard (public addresses only unless the
// connector allows private networks) and verifying TLS with the broker's
// roots.
//
// Why fasthttp and not net/http: a proxied request is two HTTP exchanges
// where a direct one is one, and with 16 workers calling through the proxy
// on two cores net/http's server and client kept about 39% of the direct
// request rate (BENCHMARKS.md, "The broker's egress proxy"); fasthttp's
// reuse their buffers and need no goroutine hand-offs per request. What it
// does not do: HTTP/2 to apps (every API the catalog names speaks
// HTTP/1.1), or follow redirects (never: a redirect is the answer).
package upstream

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/integrationhub/connections/internal/egress"
)

// MaxHeaderBytes bounds the headers of a request or answer through the
// proxy.
const MaxHeaderBytes = 64 << 10

// Clients holds the two clients to apps: one that dials public addresses
// only, one that dials any (connectors marked private_network).
type Clients struct {
	public, any *fasthttp.Client
}

// New returns the clients, verifying TLS with roots (nil: the system's).
func New(roots *x509.CertPool) *Clients {
	return &Clients{public: newClient(roots, false), any: newClient(roots, true)}
}

func newClient(roots *x509.CertPool, private bool) *fasthttp.Client {
	d := egress.Dialer(private)
	return &fasthttp.Client{
		DialTimeout: func(addr string, timeout time.Duration) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), min(timeout, d.Timeout))
			defer cancel()
			return d.DialContext(ctx, "tcp", addr)
		},
		TLSConfig: egress.TLSConfig(roots),
		// The read buffer bounds an answer's headers (fasthttp's default,
		// 4 KiB, is less than some apps send in cookies and policies).
		ReadBufferSize:  MaxHeaderBytes,
		MaxConnsPerHost: 512,
		// With every connection to an app busy, a request waits for one
		// until its own deadline (Do always sets one), as net/http's
		// MaxConnsPerHost makes it wait, rather than failing at once.
		MaxConnWaitTimeout:  24 * time.Hour,
		MaxIdleConnDuration: 90 * time.Second,
		// A request that failed on the connection (a stale kept-alive one,
		// most often) is tried once more on a new one, when it is safe to
		// send twice: a GET or HEAD without a streamed body. Anything else
		// may have reached the app, and the worker decides.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr: func(req *fasthttp.Request, _ int, err error) (bool, bool) {
			safe := (req.Header.IsGet() || req.Header.IsHead()) && !req.IsBodyStream()
			return false, safe && !errors.Is(err, egress.ErrPrivateAddress)
		},
		// The request goes out as the worker wrote it: its path bytes and
		// values unchanged (an OAuth 1.0a signature covers the path), and
		// no User-Agent of ours.
		DisablePathNormalizing:   true,
		NoDefaultUserAgentHeader: true,
		// Answers are streamed: a large download passes through a small
		// buffer instead of being held in memory. The reader of
		// resp.BodyStream must close it (resp.CloseBodyStream).
		StreamResponseBody: true,
	}
}

// Do sends req to the app (with the client for a connector that allows
// private networks, or not) and reads the answer's headers into resp,
// whose body then streams from the app until closed. deadline bounds the
// whole exchange, body included; a timeout is context.DeadlineExceeded, a
// refused private address egress.ErrPrivateAddress.
func (c *Clients) Do(private bool, req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	cl := c.public
	if private {
		cl = c.any
	}
	req.Header.SetNoDefaultContentType(true)
	return Classify(cl.DoDeadline(req, resp, deadline))
}

// Classify makes fasthttp's timeouts read as context.DeadlineExceeded, as
// net/http's do, so that callers test one error (also for errors reading a
// streamed body).
func Classify(err error) error {
	if err == nil || errors.Is(err, egress.ErrPrivateAddress) {
		return err
	}
	var ne net.Error
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return err
}
