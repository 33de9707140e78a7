// Package upstream is the egress proxy's HTTP client to apps: an
// http.RoundTripper over fasthttp's client, dialling through egress's guard
// (public addresses only unless the connector allows private networks) and
// verifying TLS with the broker's roots.
//
// Why not net/http's Transport: with 16 workers calling through the proxy
// on two cores, net/http's client kept about 39% of the direct request rate
// (each exchange hands off between the caller's goroutine and the
// connection's read and write loops); this client keeps the proxy's own
// CPU per request low enough for the proxy to stay within its latency
// budget (BENCHMARKS.md, "The broker's egress proxy"). What it does not do:
// HTTP/2 to apps (every API the catalog names speaks HTTP/1.1), follow
// redirects (never: a redirect is the answer), or stop on the caller's
// cancellation before the answer's headers (the request's deadline bounds
// every exchange, and a caller that goes away during the body stops the
// copy).
package upstream

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/integrationhub/connections/internal/egress"
)

// Transports holds the two round trippers to apps: one that dials public
// addresses only, one that dials any (connectors marked private_network).
type Transports struct {
	public, any *transport
}

// New returns the round trippers, verifying TLS with roots (nil: the
// system's).
func New(roots *x509.CertPool) *Transports {
	return &Transports{public: newTransport(roots, false), any: newTransport(roots, true)}
}

// For is the round tripper for a connection whose connector allows
// (private) or refuses private networks.
func (t *Transports) For(private bool) http.RoundTripper {
	if private {
		return t.any
	}
	return t.public
}

type transport struct{ c *fasthttp.Client }

func newTransport(roots *x509.CertPool, private bool) *transport {
	d := egress.Dialer(private)
	return &transport{c: &fasthttp.Client{
		DialTimeout: func(addr string, timeout time.Duration) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), min(timeout, d.Timeout))
			defer cancel()
			return d.DialContext(ctx, "tcp", addr)
		},
		TLSConfig:           egress.TLSConfig(roots),
		MaxConnsPerHost:     512,
		MaxIdleConnDuration: 90 * time.Second,
		// A stale kept-alive connection is tried once more on a new one,
		// as net/http does for a request that was not sent.
		MaxIdemponentCallAttempts: 2,
		// The request goes out as the worker wrote it: its path bytes and
		// headers unchanged (an OAuth 1.0a signature covers the path), and
		// no User-Agent of ours.
		DisablePathNormalizing:   true,
		NoDefaultUserAgentHeader: true,
		// Answers are streamed: a large download passes through a small
		// buffer instead of being held in memory.
		StreamResponseBody: true,
	}}
}

// RoundTrip sends r and returns the answer, its body streamed from the
// app's connection until closed. r's context deadline bounds the whole
// exchange, body included.
func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI(r.URL.String())
	req.Header.SetMethod(r.Method)
	for k, vs := range r.Header {
		if k == "Content-Length" || k == "Host" {
			continue
		}
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.Body != nil && r.Body != http.NoBody {
		n := int(r.ContentLength)
		if n == 0 { // net/http: a body with length 0 is of unknown length
			n = -1
		}
		req.SetBodyStream(r.Body, n)
	}
	resp := fasthttp.AcquireResponse()
	var err error
	if d, ok := r.Context().Deadline(); ok {
		err = t.c.DoDeadline(req, resp, d)
	} else {
		err = t.c.Do(req, resp)
	}
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		return nil, classify(err)
	}
	h := make(http.Header, resp.Header.Len())
	for k, v := range resp.Header.All() {
		h.Add(string(k), string(v))
	}
	cl := int64(resp.Header.ContentLength())
	if cl < 0 {
		cl = -1
	}
	var body io.Reader = resp.BodyStream()
	if body == nil {
		body = bytes.NewReader(resp.Body())
	}
	code := resp.StatusCode()
	return &http.Response{Status: strconv.Itoa(code) + " " + http.StatusText(code), StatusCode: code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, ContentLength: cl,
		Body: &streamBody{r: body, resp: resp}, Request: r}, nil
}

// streamBody is an answer's body; closing it gives the connection back (or
// closes it, when the body was not read to its end) and the response to
// fasthttp's pool.
type streamBody struct {
	r    io.Reader
	resp *fasthttp.Response
}

func (b *streamBody) Read(p []byte) (int, error) {
	if b.resp == nil {
		return 0, io.ErrClosedPipe
	}
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = classify(err)
	}
	return n, err
}

func (b *streamBody) Close() error {
	if b.resp == nil {
		return nil
	}
	err := b.resp.CloseBodyStream()
	fasthttp.ReleaseResponse(b.resp)
	b.resp = nil
	return err
}

// classify makes fasthttp's timeouts read as context.DeadlineExceeded, as
// net/http's do, so that callers test one error.
func classify(err error) error {
	var ne net.Error
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) ||
		(errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, egress.ErrPrivateAddress)) {
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return err
}
