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
	"sync/atomic"
	"syscall"
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
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return &earlyAnswerConn{Conn: c}, nil
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
		// send twice: a GET or HEAD without a streamed body, or any request
		// without one that met a connection known to be closed before it
		// was sent. Anything else may have reached the app, and the worker
		// decides.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr: func(req *fasthttp.Request, _ int, err error) (bool, bool) {
			safe := (req.Header.IsGet() || req.Header.IsHead() || errors.Is(err, errClosedBefore)) && !req.IsBodyStream()
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

// earlyAnswerConn lets the app answer before it has read the whole request:
// an app that refuses an upload (413, 401) often answers at once and closes
// the connection, and the rest of the body then fails to send. fasthttp
// would report that write error and never read the answer, so the worker
// would get a 502 where a direct call gets the app's 413. Here a write the
// app has reset or closed is taken as sent, the rest of the request is
// dropped, and the answer is read: the app's own, or, when there is none,
// the error of reading it.
//
// A connection that dropped a request is dead: once its answer has been
// read, the next request's first write fails, as it would on any
// connection the app has closed, and fasthttp dials a new one where that
// is safe.
type earlyAnswerConn struct {
	net.Conn
	state atomic.Int32 // connOK, connDropping or connDead
}

// errClosedBefore is a write to a connection that dropped an earlier
// request: nothing of this one was sent.
var errClosedBefore = errors.New("the app closed the connection before this request")

const (
	connOK       = iota
	connDropping // the app stopped reading: the request's writes are dropped
	connDead     // the answer is being read: nothing more is written
)

func (c *earlyAnswerConn) Write(b []byte) (int, error) {
	switch c.state.Load() {
	case connDropping:
		return len(b), nil
	case connDead:
		return 0, fmt.Errorf("%w: %w", errClosedBefore, syscall.EPIPE)
	}
	n, err := c.Conn.Write(b)
	if err != nil && (errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
		c.state.Store(connDropping)
		return len(b), nil
	}
	return n, err
}

func (c *earlyAnswerConn) Read(b []byte) (int, error) {
	if c.state.Load() == connDropping { // a load on every read; the swap only once
		c.state.CompareAndSwap(connDropping, connDead)
	}
	return c.Conn.Read(b)
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
