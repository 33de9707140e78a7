package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/integrationhub/connections/broker/internal/upstream"
	"github.com/integrationhub/connections/broker/internal/vault"
	"github.com/integrationhub/connections/internal/egress"
)

// The egress proxy: a worker sends an ordinary HTTP request to the broker
// in its own pod, naming the connection in the path and carrying its job
// token; the broker authorizes it exactly as GetCredential, sends it to the
// connection's own host with the credential on it, and streams the answer
// back. The worker never holds the secret.
//
//	GET http://127.0.0.1:<proxy>/<connection id>/v1/me?x=1
//	Proxy-Authorization: Bearer <job token>
//	X-Integrationhub-Base-Url: https://api.example.com   (when the connection has no base URL)
//	X-Integrationhub-Timeout: 2500ms                     (optional: how long the worker waits)

// ProxyConfig tunes the proxy.
type ProxyConfig struct {
	// Timeout bounds one upstream exchange, from the request to the last
	// byte of the answer; 0 is one minute.
	Timeout time.Duration
	// MaxBody bounds a request body; 0 is 32 MiB.
	MaxBody int64
	// Metrics, when set, gets the proxy's metrics: requests by HTTP status
	// and method, their duration, those in flight, and the broker's own
	// refusals by gRPC code.
	Metrics prometheus.Registerer
	// Logger gets what the HTTP server itself reports (a connection it
	// could not read), at debug level; nil discards it.
	Logger *slog.Logger
}

// HeaderBaseURL names the app's base URL for a connection that has none.
const HeaderBaseURL = "X-Integrationhub-Base-Url"

// HeaderTimeout is how long the worker waits for the answer (a Go duration:
// "2s", "1500ms"); the broker gives up on the app then, never later than
// ProxyConfig.Timeout. fasthttp cannot tell the proxy that a worker went
// away, so without it an abandoned request holds a connection to the app
// until the proxy's own timeout; the SDK sends its context's deadline here.
const HeaderTimeout = "X-Integrationhub-Timeout"

// replayLimit is the largest request body kept to send again after a 401.
const replayLimit = 1 << 20

// Proxy returns the egress proxy's HTTP server; serve it with ServeProxy.
// It is fasthttp's, as is its client to apps (package upstream): a proxied
// request is two HTTP exchanges, and net/http's cost per exchange kept the
// proxy at well under half the direct request rate (BENCHMARKS.md).
func (s *WorkerServer) Proxy(cfg ProxyConfig) *fasthttp.Server {
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 32 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &proxy{s: s, cfg: cfg}
	if cfg.Metrics != nil {
		p.metrics = newProxyMetrics(cfg.Metrics)
	}
	return &fasthttp.Server{
		Handler: p.serve,
		// Bodies stream through; one longer than MaxBody is refused.
		StreamRequestBody:  true,
		MaxRequestBodySize: int(cfg.MaxBody),
		// The read buffer bounds a request's headers.
		ReadBufferSize: upstream.MaxHeaderBytes,
		// A worker's idle kept-alive connection is closed after this.
		IdleTimeout: 90 * time.Second,
		// The answer's headers are the app's; the broker adds none of its
		// own (no Server, Date or default Content-Type).
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		Logger:                       debugLogger{cfg.Logger},
	}
}

// ServeProxy serves the proxy on lis until ctx ends, then lets the
// requests in flight finish for up to grace.
func ServeProxy(ctx context.Context, srv *fasthttp.Server, lis net.Listener, grace time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lingerListener{lis}) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err := srv.ShutdownWithContext(sctx)
	<-done
	return err
}

// lingerListener's connections linger when the proxy closes them, as
// net/http's server's do: the proxy sends its end-of-stream, then reads
// and drops what the worker still sends for up to lingerTime before it
// closes. Without it, closing a connection with unread bytes (a worker
// still uploading a body the proxy refused, or one fasthttp will not read
// to its end) resets it, and the worker may lose the answer and see
// "connection reset by peer" instead of the proxy's 407 or the app's 413.
type lingerListener struct{ net.Listener }

// lingerTime bounds how long a closing connection waits for the worker to
// stop sending (net/http's server waits 500 ms).
const lingerTime = 500 * time.Millisecond

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c}, nil
}

type lingerConn struct {
	net.Conn
	closed atomic.Bool
}

// Close returns at once; the connection lingers in the background (the
// server closes idle connections one after another when it shuts down,
// and must not wait for each).
func (c *lingerConn) Close() error {
	if c.closed.Swap(true) {
		return net.ErrClosed
	}
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return c.Conn.Close()
	}
	go func() {
		_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
		_, _ = io.Copy(io.Discard, c.Conn)
		_ = c.Conn.Close()
	}()
	return nil
}

// debugLogger passes what fasthttp's server reports (a worker's connection
// it could not read or write) to slog at debug level, as the format string
// only: fasthttp fills in snippets of the bytes it could not parse, which
// may hold a job token or a worker's headers.
type debugLogger struct{ l *slog.Logger }

func (d debugLogger) Printf(format string, _ ...any) {
	d.l.Debug("egress proxy: a worker's connection failed", "what", format)
}

type proxy struct {
	s   *WorkerServer
	cfg ProxyConfig
	// metrics is nil without ProxyConfig.Metrics.
	metrics *proxyMetrics
}

// proxyMetrics are the proxy's metrics; the names and labels are those of
// Prometheus' HTTP handler instrumentation.
type proxyMetrics struct {
	refused  *prometheus.CounterVec
	requests *prometheus.CounterVec
	duration prometheus.Histogram
	inFlight prometheus.Gauge
}

func newProxyMetrics(reg prometheus.Registerer) *proxyMetrics {
	m := &proxyMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "integrationhub_broker_proxy_refusals_total",
			Help: "Proxied requests the broker answered itself (not sent, or the app unreachable), by gRPC code."}, []string{"grpc_code"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "integrationhub_broker_proxy_requests_total",
			Help: "Requests to the egress proxy, by the HTTP status answered and the method."}, []string{"code", "method"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "integrationhub_broker_proxy_request_duration_seconds",
			Help:    "Time from a worker's request to the end of the answer, including the app's time.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "integrationhub_broker_proxy_requests_in_flight",
			Help: "Requests the egress proxy is serving now."}),
	}
	reg.MustRegister(m.refused, m.requests, m.duration, m.inFlight)
	return m
}

// begin counts a request in flight.
func (m *proxyMetrics) begin() {
	if m != nil {
		m.inFlight.Inc()
	}
}

// done counts a request whose answer has been sent (or abandoned).
func (m *proxyMetrics) done(start time.Time, method string, code int) {
	if m == nil {
		return
	}
	m.inFlight.Dec()
	m.requests.WithLabelValues(strconv.Itoa(code), strings.ToLower(method)).Inc()
	m.duration.Observe(time.Since(start).Seconds())
}

// serve answers one proxied request. The app's answer is handed to the
// server as a stream that it sends after serve returns; closing it ends
// the request (metrics, the upstream connection).
func (p *proxy) serve(fc *fasthttp.RequestCtx) {
	start, method := time.Now(), string(fc.Method())
	p.metrics.begin()
	defer func() {
		// net/http's server recovers a handler's panic; fasthttp's does not,
		// and one request must not take the broker down. The stack names
		// functions, never a request's values.
		if r := recover(); r != nil {
			p.cfg.Logger.Error("egress proxy: panic serving a request", "stack", string(debug.Stack()))
			fc.Response.Reset()
			fc.Response.SetStatusCode(http.StatusInternalServerError)
		}
	}()
	code, stream := p.handle(fc, method)
	if stream == nil {
		p.metrics.done(start, method, code)
		return
	}
	stream.done = func() { p.metrics.done(start, method, code) }
}

// handle authorizes and sends the request, and puts the app's answer (or
// the broker's refusal) on fc; it returns the HTTP status answered and,
// for an app's answer, its body stream.
func (p *proxy) handle(fc *fasthttp.RequestCtx, method string) (code int, stream *answer) {
	id, rest, _ := strings.Cut(strings.TrimPrefix(string(fc.Request.URI().PathOriginal()), "/"), "/")
	if !isUUID(id) {
		// As GetCredential's validation refuses it, before the job token
		// is looked at: a request without the connection id is the
		// worker's mistake, not a connection its job may not use.
		return p.fail(fc, refuse(codes.InvalidArgument,
			"the path must begin with the connection id (a UUID), as in /<connection id>/v1/me: the rest is the path at the app")), nil
	}
	tok, _ := strings.CutPrefix(string(fc.Request.Header.Peek("Proxy-Authorization")), "Bearer ")
	timeout, terr := requestTimeout(fc.Request.Header.Peek(HeaderTimeout), p.cfg.Timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	tok = strings.TrimSpace(tok)
	g, err := p.s.authorizeToken(ctx, tok, id, false)
	if tok == "" && status.Code(err) == codes.Unauthenticated {
		// authorizeToken's advice is for gRPC callers.
		err = refuse(codes.Unauthenticated, `send the job token from MintJobToken as "Proxy-Authorization: Bearer <token>" (the Authorization header is the app's)`)
	}
	host := ""
	defer func() { p.s.recordProxy(g, method, host, code, bodyLimitRefusal(err)) }()
	if err == nil {
		err = terr // refused after authorization, so that the record names the job
	}
	if err != nil {
		return p.fail(fc, err), nil
	}
	rec, err := p.s.liveRecord(ctx, g.key())
	if err != nil {
		return p.fail(fc, err), nil
	}
	target, err := targetURL(string(fc.Request.Header.Peek(HeaderBaseURL)), rec, rest, string(fc.URI().QueryString()))
	raw := ""
	if err == nil {
		host, raw = target.Host, target.String()
		err = checkHostURL(rec, target, "proxied request")
	}
	if err != nil {
		return p.fail(fc, err), nil
	}
	body, replay, err := p.body(fc)
	if err != nil {
		return p.fail(fc, err), nil
	}
	out := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(out)
	resp := fasthttp.AcquireResponse()
	err = p.send(ctx, fc, out, resp, raw, rec, body, replay, deadline)
	if err == nil && resp.StatusCode() == fasthttp.StatusUnauthorized && rec.OAuth2 != nil && (replay != nil || body == nil) {
		// The access token was refused: refresh once (several workers
		// reporting the same token cause one refresh) and send again.
		next, rerr := p.s.oauth.Replace(ctx, g.key(), rec.OAuth2.AccessToken)
		if rerr == nil {
			p.s.cache.Put(g.key(), next)
			_ = resp.CloseBodyStream()
			resp.Reset()
			rec = next
			out.Reset()
			err = p.send(ctx, fc, out, resp, raw, rec, body, replay, deadline)
		}
	}
	if err != nil {
		_ = resp.CloseBodyStream()
		fasthttp.ReleaseResponse(resp)
		return p.fail(fc, err), nil
	}
	code = resp.StatusCode()
	fc.Response.SetStatusCode(code)
	secrets := secretsOf(rec)
	for k, v := range resp.Header.All() {
		// The app's own X-Integrationhub-* headers are dropped: only the
		// broker speaks in them (X-Integrationhub-Error marks its refusals).
		if hopByHop(k) || bytes.EqualFold(k, headerContentLength) || hasPrefixFold(k, headerOwnPrefix) {
			continue
		}
		if !containsAny(v, secrets) { // an app echoing the credential back gets it stripped
			fc.Response.Header.AddBytesKV(k, v)
		}
	}
	n := resp.Header.ContentLength()
	if n > 0 && n <= smallAnswer && !fc.IsHead() {
		// A small answer is read whole and sent as the server's own body:
		// the stream's hand-off costs more than the copy. (A HEAD answer
		// has no body but keeps its Content-Length: it streams.)
		err = readAnswer(&fc.Response, resp, n)
		_ = resp.CloseBodyStream()
		fasthttp.ReleaseResponse(resp)
		if err != nil {
			// Nothing has been sent yet: the worker gets the broker's 502
			// (or 504), never a short body.
			if err = upstreamError(upstream.Classify(err)); status.Code(err) == codes.Unavailable {
				err = appError(codes.Unavailable, reasonAppUnavailable, fmt.Sprintf("the app's answer was cut off after its headers (HTTP %d)", code))
			}
			return p.fail(fc, err), nil
		}
		return code, nil
	}
	if n < 0 {
		// A body of unknown length may be a stream (server-sent events, a
		// long download): the headers go at once and each chunk as it
		// comes.
		n = -1
		fc.Response.ImmediateHeaderFlush = true
	}
	stream = &answer{resp: resp}
	fc.Response.SetBodyStream(stream, n)
	return code, stream
}

// smallAnswer is the largest answer body (of known length) read whole
// before it is sent; longer ones, and those of unknown length, stream.
const smallAnswer = 64 << 10

// answerBuffers holds the buffers small answers are read into.
var answerBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readAnswer reads the n-byte body of from into to's body. An app that
// sends fewer bytes than it announced is an error, never a short body.
func readAnswer(to *fasthttp.Response, from *fasthttp.Response, n int) error {
	r := from.BodyStream()
	if r == nil { // no body (HEAD, 204), or one read in full
		to.SetBody(from.Body())
		return nil
	}
	buf := answerBuffers.Get().(*bytes.Buffer)
	defer answerBuffers.Put(buf)
	buf.Reset()
	buf.Grow(n)
	if _, err := io.CopyN(buf, r, int64(n)); err != nil {
		return err
	}
	to.SetBody(buf.Bytes())
	return nil
}

// answer is the app's answer body, streamed to the worker by the server;
// closing it gives the app's connection back and ends the request.
type answer struct {
	resp *fasthttp.Response
	r    io.Reader
	done func()
}

func (a *answer) Read(b []byte) (int, error) {
	if a.resp == nil {
		return 0, io.ErrClosedPipe
	}
	if a.r == nil {
		if a.r = a.resp.BodyStream(); a.r == nil { // no body (HEAD, 204), or one read in full
			a.r = bytes.NewReader(a.resp.Body())
		}
	}
	n, err := a.r.Read(b)
	if err != nil && !errors.Is(err, io.EOF) {
		err = upstream.Classify(err)
	}
	return n, err
}

func (a *answer) Close() error {
	if a.resp == nil {
		return nil
	}
	err := a.resp.CloseBodyStream()
	fasthttp.ReleaseResponse(a.resp)
	a.resp = nil
	if a.done != nil {
		a.done()
	}
	return err
}

// targetURL is the app URL a proxied request goes to: the connection's base
// URL (or the one the worker names, base, which must be among the
// connection's hosts too), the rest of the path as the worker wrote it and
// the query.
func targetURL(base string, rec vault.Record, rest, query string) (*url.URL, error) {
	if base == "" {
		base = baseURLOfRecord(rec)
	}
	if base == "" {
		return nil, refuse(codes.InvalidArgument, "this connection has no base URL: name the app's with the %s header", HeaderBaseURL)
	}
	u, err := url.Parse(strings.TrimRight(base, "/") + "/" + rest)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return nil, refuse(codes.InvalidArgument, "the base URL must be an http or https URL without user info")
	}
	u.RawQuery = query
	return u, nil
}

// body returns the request body to send: all of it in memory when it is
// small enough to send again after a 401 (replay), else a bounded stream.
func (p *proxy) body(fc *fasthttp.RequestCtx) (io.Reader, []byte, error) {
	n := fc.Request.Header.ContentLength()
	if n == 0 || n < -1 { // -1 is a chunked body; -2 none
		return nil, nil, nil
	}
	if int64(n) > p.cfg.MaxBody {
		return nil, nil, errBodyTooLarge
	}
	limited := &maxBytes{r: fc.RequestBodyStream(), left: p.cfg.MaxBody}
	if n > 0 && n <= replayLimit {
		b, err := io.ReadAll(limited)
		if err != nil {
			return nil, nil, refuse(codes.InvalidArgument, "request body: %v", err)
		}
		return nil, b, nil
	}
	return limited, nil, nil
}

// maxBytes reads at most left bytes, then fails: a streamed body of
// unknown length longer than ProxyConfig.MaxBody is cut off, not sent.
type maxBytes struct {
	r    io.Reader
	left int64
}

func (m *maxBytes) Read(b []byte) (int, error) {
	if int64(len(b)) > m.left+1 {
		b = b[:m.left+1] // one byte more tells a body at the limit from a longer one
	}
	n, err := m.r.Read(b)
	if m.left -= int64(n); m.left < 0 {
		return n, errBodyTooLarge
	}
	return n, err
}

var errBodyTooLarge = errors.New("the request body is larger than the proxy accepts (32 MiB unless configured otherwise)")

// requestTimeout is the worker's X-Integrationhub-Timeout, at most max
// (and max when there is none).
func requestTimeout(v []byte, max time.Duration) (time.Duration, error) {
	if len(v) == 0 {
		return max, nil
	}
	d, err := time.ParseDuration(string(v))
	if err != nil || d <= 0 {
		return max, refuse(codes.InvalidArgument, HeaderTimeout+" must be a positive duration, such as 2s or 1500ms")
	}
	return min(d, max), nil
}

// send sends one request to the app with rec's credential on it, and reads
// the answer's headers into resp.
func (p *proxy) send(ctx context.Context, in *fasthttp.RequestCtx, out *fasthttp.Request, resp *fasthttp.Response,
	raw string, rec vault.Record, body io.Reader, replay []byte, deadline time.Time) error {
	out.SetRequestURI(raw)
	out.Header.SetMethodBytes(in.Method())
	for k, v := range in.Request.Header.All() {
		// Expect: 100-continue was the worker's exchange with the proxy,
		// which the server has answered.
		if hopByHop(k) || bytes.EqualFold(k, headerHost) || bytes.EqualFold(k, headerContentLength) ||
			bytes.EqualFold(k, headerExpect) || bytes.EqualFold(k, headerAuthorization) || hasPrefixFold(k, headerOwnPrefix) {
			continue
		}
		out.Header.AddBytesKV(k, v)
	}
	switch {
	case replay != nil:
		out.SetBody(replay)
	case body != nil:
		out.SetBodyStream(body, in.Request.Header.ContentLength())
		// An app may answer a large upload early (413, 401) without reading
		// it; the connection is not used again after such an exchange.
		out.SetConnectionClose()
	}
	if rec.OAuth1 != nil {
		form := map[string]string{}
		if strings.HasPrefix(string(in.Request.Header.ContentType()), "application/x-www-form-urlencoded") {
			if replay == nil && body != nil {
				return refuse(codes.InvalidArgument, "an OAuth 1.0a form body over 1 MiB cannot be signed")
			}
			vals, _ := url.ParseQuery(string(replay))
			for k, v := range vals {
				form[k] = v[0]
			}
		}
		h, err := p.s.oauth1.Sign(ctx, rec, string(in.Method()), raw, form)
		if err != nil {
			return err
		}
		out.Header.Set("Authorization", h)
	} else {
		switch c := credentialOn(rec); {
		case c.query != "":
			out.URI().QueryArgs().Set(c.query, c.value)
		case c.header != "":
			out.Header.Set(c.header, c.value)
		}
	}
	if err := p.s.upstream.Do(rec.PrivateNetwork, out, resp, deadline); err != nil {
		if errors.Is(err, errBodyTooLarge) { // the worker's body, not the app
			return err
		}
		return upstreamError(err)
	}
	return nil
}

// fail answers a refused or failed proxied request with a JSON body and the
// HTTP status that fits its gRPC code; it never carries the secret.
func (p *proxy) fail(fc *fasthttp.RequestCtx, err error) int {
	st := status.Convert(p.s.toStatus(context.Background(), bodyLimitRefusal(err)))
	if p.metrics != nil {
		p.metrics.refused.WithLabelValues(st.Code().String()).Inc()
	}
	code := map[codes.Code]int{
		codes.Unauthenticated: http.StatusProxyAuthRequired, codes.PermissionDenied: http.StatusForbidden,
		codes.NotFound: http.StatusNotFound, codes.InvalidArgument: http.StatusBadRequest,
		codes.FailedPrecondition: http.StatusConflict, codes.Unavailable: http.StatusBadGateway,
		codes.DeadlineExceeded: http.StatusGatewayTimeout,
	}[st.Code()]
	if code == 0 {
		code = http.StatusInternalServerError
	}
	fc.Response.Reset()
	if n := fc.Request.Header.ContentLength(); n > 0 || n == -1 {
		// The worker may still be sending a body the proxy will not read:
		// it is told that the connection ends with this answer, which
		// lingerConn then lets it read before the close.
		fc.Response.SetConnectionClose()
	}
	fc.Response.Header.SetContentType("application/json")
	fc.Response.Header.Set("X-Integrationhub-Error", st.Code().String())
	fc.Response.SetStatusCode(code)
	body := proxyRefusal{Code: st.Code().String(), Error: st.Message()}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			body.Reason, body.Metadata = info.GetReason(), info.GetMetadata()
		}
	}
	_ = json.NewEncoder(fc).Encode(body)
	return code
}

// bodyLimitRefusal is err, or for a body over the limit the refusal the
// worker gets and the access record notes (InvalidArgument).
func bodyLimitRefusal(err error) error {
	if errors.Is(err, errBodyTooLarge) {
		return refuse(codes.InvalidArgument, "%v", errBodyTooLarge)
	}
	return err
}

// proxyRefusal is the JSON body of the broker's own answer: the gRPC code
// and message GetCredential would give, and the ErrorInfo reason and
// metadata when there is one (e.g. CONNECTION_NOT_ACTIVE), so that an SDK
// can tell refusals apart as it does for gRPC calls.
type proxyRefusal struct {
	Code     string            `json:"code"`
	Error    string            `json:"error"`
	Reason   string            `json:"reason,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Reasons (ErrorInfo) of the proxy's answers about the app itself, so that
// a worker can tell them from the broker being unavailable.
const (
	reasonAppUnavailable = "APP_UNAVAILABLE" // not reached, or its answer cut off
	reasonAppTimeout     = "APP_TIMEOUT"     // no answer within the deadline
)

// upstreamError says why the app could not be reached.
func upstreamError(err error) error {
	switch {
	case errors.Is(err, egress.ErrPrivateAddress):
		return refuse(codes.PermissionDenied, "%v", egress.ErrPrivateAddress)
	case errors.Is(err, context.DeadlineExceeded):
		return appError(codes.DeadlineExceeded, reasonAppTimeout, "the app did not answer in time")
	}
	return appError(codes.Unavailable, reasonAppUnavailable, "the app could not be reached")
}

// appError is the proxy's answer about the app, with its reason.
func appError(code codes.Code, reason, msg string) error {
	return &accessError{code: code, msg: msg, info: &errdetails.ErrorInfo{Reason: reason, Domain: "integrationhub.broker"}}
}

// recordProxy notes a proxied request in the access record: method, host
// and status, never the path, query or body.
func (s *core) recordProxy(g *grant, method, host string, httpStatus int, err error) {
	if err != nil {
		s.note(eventOf("ProxyRequest", g), err)
		return
	}
	e := eventOf("ProxyRequest", g)
	e.Code, e.Reason = codes.OK.String(), method+" "+host+" -> "+strconv.Itoa(httpStatus)
	s.workers.Record(e)
}

// secretsOf lists the secret strings of rec, to be kept out of answers.
func secretsOf(rec vault.Record) []string {
	var out []string
	add := func(v string) {
		if len(v) >= 6 {
			out = append(out, v)
		}
	}
	if b := rec.Basic; b != nil {
		add(b.Password)
	}
	if k := rec.APIKey; k != nil {
		add(k.Key)
		add(k.Secret)
	}
	if o := rec.OAuth2; o != nil {
		add(o.AccessToken)
		add(o.RefreshToken)
	}
	if o := rec.OAuth1; o != nil {
		add(o.Token)
		add(o.TokenSecret)
	}
	return out
}

func containsAny(v []byte, subs []string) bool {
	for _, s := range subs {
		if bytes.Contains(v, []byte(s)) {
			return true
		}
	}
	return false
}

// The header names the proxy filters, compared without allocating (a
// proxied request passes every header of the request and of the answer
// through these).
var (
	headerHost          = []byte("Host")
	headerContentLength = []byte("Content-Length")
	headerExpect        = []byte("Expect")
	headerAuthorization = []byte("Authorization")
	headerOwnPrefix     = []byte("X-Integrationhub-")
	hopByHopHeaders     = [][]byte{[]byte("Connection"), []byte("Keep-Alive"), []byte("Proxy-Authenticate"),
		[]byte("Proxy-Authorization"), []byte("Proxy-Connection"), []byte("Te"), []byte("Trailer"),
		[]byte("Transfer-Encoding"), []byte("Upgrade")}
)

func hopByHop(h []byte) bool {
	for _, n := range hopByHopHeaders {
		if bytes.EqualFold(h, n) {
			return true
		}
	}
	return false
}

// isUUID reports whether s is a UUID in its canonical text form, as the
// broker's API validates connection ids.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		switch c := s[i]; {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'):
			return false
		}
	}
	return true
}

// hasPrefixFold reports whether s begins with prefix, ignoring case.
func hasPrefixFold(s, prefix []byte) bool {
	return len(s) >= len(prefix) && bytes.EqualFold(s[:len(prefix)], prefix)
}
