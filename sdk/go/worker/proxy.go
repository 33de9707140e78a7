package worker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// EnvProxyAddr is the broker's egress proxy, when the worker's pod has one:
// "host:port" on loopback, or "unix:///path/to.sock" (the sidecar).
const EnvProxyAddr = "INTEGRATIONHUB_PROXY_ADDR"

// HeaderTimeout tells the proxy how long the worker waits for the answer;
// ProxyTransport sets it from the request context's deadline.
const HeaderTimeout = "X-Integrationhub-Timeout"

// ErrNoProxy means no proxy address was given (Options.ProxyAddress or
// $INTEGRATIONHUB_PROXY_ADDR).
var ErrNoProxy = errors.New("worker: no egress proxy: set Options.ProxyAddress or " + EnvProxyAddr)

// ProxyHTTPClient returns an HTTP client whose requests go through the
// broker's egress proxy (see ProxyTransport).
func (c *Client) ProxyHTTPClient(connectionID string) *http.Client {
	return &http.Client{Transport: c.ProxyTransport(connectionID),
		// The proxy never follows redirects with the credential on; neither
		// does this client follow one to another host on its own.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// ProxyTransport returns a RoundTripper that sends each request through
// the broker's egress proxy instead of to the app: the worker writes the
// app's URL as usual, and the broker puts connectionID's credential on the
// request (refreshing and resending once on a 401), so the worker never
// holds the secret. The request's scheme and host name the app's base URL,
// which must be among the connection's hosts; a request with no host goes
// to the connection's base URL.
//
// The broker's own refusals come back as this package's typed errors
// (ConnectionNotActiveError, NotCoveredError, TokenError, ...); the
// request context's deadline goes to the broker too (HeaderTimeout), so it
// stops waiting for the app when the worker does. The app's
// answers, whatever their status, come back as responses. ErrNoProxy is
// returned when the client has no proxy address.
func (c *Client) ProxyTransport(connectionID string) http.RoundTripper {
	return &proxyTransport{c: c, id: connectionID}
}

type proxyTransport struct {
	c  *Client
	id string
}

func (t *proxyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.c.proxy == nil {
		closeBody(req)
		return nil, ErrNoProxy
	}
	tok, err := t.c.token.get()
	if err != nil {
		closeBody(req)
		return nil, err
	}
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host = "http", "integrationhub-proxy" // dialled through t.c.proxy
	out.URL.Path = "/" + t.id + "/" + strings.TrimPrefix(req.URL.Path, "/")
	out.URL.RawPath = ""
	if req.URL.RawPath != "" {
		out.URL.RawPath = "/" + t.id + "/" + strings.TrimPrefix(req.URL.RawPath, "/")
	}
	out.Host = ""
	out.Header.Set("Proxy-Authorization", "Bearer "+tok)
	out.Header.Del("Authorization") // the broker's credential goes there
	if req.URL.Host != "" {
		out.Header.Set("X-Integrationhub-Base-Url", req.URL.Scheme+"://"+req.URL.Host)
	}
	if dl, ok := req.Context().Deadline(); ok {
		// The broker cannot see this worker give up: it stops waiting for
		// the app when the worker does.
		ms := max(time.Until(dl).Milliseconds()+1, 1)
		out.Header.Set(HeaderTimeout, strconv.FormatInt(ms, 10)+"ms")
	}
	resp, err := t.c.proxy.RoundTrip(out)
	if err != nil {
		if req.Context().Err() != nil {
			return nil, err // the caller gave up (its deadline or cancel), not the broker
		}
		return nil, &UnavailableError{Detail: "egress proxy: " + err.Error()}
	}
	if code := resp.Header.Get("X-Integrationhub-Error"); code != "" {
		defer resp.Body.Close()
		return nil, refusal(t.id, code, resp.Body)
	}
	return resp, nil
}

// refusal turns the proxy's own answer (a JSON body with the gRPC code,
// message and ErrorInfo) into the error a gRPC call would have given.
func refusal(connectionID, code string, body io.Reader) error {
	var r struct {
		Error    string            `json:"error"`
		Reason   string            `json:"reason"`
		Metadata map[string]string `json:"metadata"`
	}
	_ = json.NewDecoder(io.LimitReader(body, 64<<10)).Decode(&r)
	c := codes.Unknown
	_ = c.UnmarshalJSON([]byte(`"` + strings.ToUpper(snake(code)) + `"`))
	st := status.New(c, r.Error)
	if r.Reason != "" {
		if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: r.Reason, Metadata: r.Metadata}); err == nil {
			st = withInfo
		}
	}
	return fromStatus(connectionID, st.Err())
}

// snake turns a gRPC code's Go name (PermissionDenied) into its canonical
// name (PERMISSION_DENIED).
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// proxyTransportTo dials the egress proxy at addr ("host:port",
// "unix:/path" or "unix:///path").
func proxyTransportTo(addr string) *http.Transport {
	network, address := "tcp", addr
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, address = "unix", "/"+strings.TrimLeft(p, "/")
	}
	d := &net.Dialer{}
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, address)
		},
		MaxIdleConnsPerHost: 64,
		// The proxy is in the worker's pod; nothing here goes through
		// another proxy.
		Proxy: nil,
	}
}

func proxyAddress(o Options) string {
	if o.ProxyAddress != "" {
		return o.ProxyAddress
	}
	return os.Getenv(EnvProxyAddr)
}
