package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

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
}

// HeaderBaseURL names the app's base URL for a connection that has none.
const HeaderBaseURL = "X-Integrationhub-Base-Url"

// replayLimit is the largest request body kept to send again after a 401.
const replayLimit = 1 << 20

// Proxy returns the egress proxy's HTTP handler.
func (s *WorkerServer) Proxy(cfg ProxyConfig) http.Handler {
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 32 << 20
	}
	p := &proxy{s: s, cfg: cfg}
	if cfg.Metrics == nil {
		return p
	}
	p.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "integrationhub_broker_proxy_refusals_total",
		Help: "Proxied requests the broker answered itself (not sent, or the app unreachable), by gRPC code."}, []string{"grpc_code"})
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "integrationhub_broker_proxy_requests_total",
		Help: "Requests to the egress proxy, by the HTTP status answered and the method."}, []string{"code", "method"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "integrationhub_broker_proxy_request_duration_seconds",
		Help:    "Time from a worker's request to the end of the answer, including the app's time.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, nil)
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{Name: "integrationhub_broker_proxy_requests_in_flight",
		Help: "Requests the egress proxy is serving now."})
	cfg.Metrics.MustRegister(p.refused, requests, duration, inFlight)
	return promhttp.InstrumentHandlerInFlight(inFlight, promhttp.InstrumentHandlerDuration(duration,
		promhttp.InstrumentHandlerCounter(requests, p)))
}

type proxy struct {
	s   *WorkerServer
	cfg ProxyConfig
	// refused counts the broker's own answers by gRPC code (nil: no metrics).
	refused *prometheus.CounterVec
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	tok, _ := strings.CutPrefix(r.Header.Get("Proxy-Authorization"), "Bearer ")
	ctx := metadata.NewIncomingContext(r.Context(), metadata.Pairs("authorization", "Bearer "+strings.TrimSpace(tok)))
	g, err := p.s.authorize(ctx, id, false)
	host, code := "", 0
	defer func() { p.s.recordProxy(g, r.Method, host, code, err) }()
	if err != nil {
		code = p.fail(w, err)
		return
	}
	rec, err := p.s.liveRecord(ctx, g.key())
	if err != nil {
		code = p.fail(w, err)
		return
	}
	target, err := targetURL(r, rec, rest)
	if err == nil {
		host = target.Host
		err = checkHost(rec, target.String(), "proxied request")
	}
	if err != nil {
		code = p.fail(w, err)
		return
	}
	body, replay, err := p.body(w, r)
	if err != nil {
		code = p.fail(w, err)
		return
	}
	uctx, cancel := context.WithTimeout(r.Context(), p.cfg.Timeout)
	defer cancel()
	resp, err := p.send(uctx, r, target, rec, body, replay)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && rec.OAuth2 != nil && (replay != nil || body == nil) {
		// The access token was refused: refresh once (several workers
		// reporting the same token cause one refresh) and send again.
		next, rerr := p.s.oauth.Replace(ctx, g.key(), rec.OAuth2.AccessToken)
		if rerr == nil {
			p.s.cache.Put(g.key(), next)
			_ = resp.Body.Close()
			rec = next
			resp, err = p.send(uctx, r, target, rec, body, replay)
		}
	}
	if err != nil {
		code = p.fail(w, err)
		return
	}
	defer resp.Body.Close()
	code = resp.StatusCode
	secrets := secretsOf(rec)
	for k, vs := range resp.Header {
		// The app's own X-Integrationhub-* headers are dropped: only the
		// broker speaks in them (X-Integrationhub-Error marks its refusals).
		if hopByHop(k) || strings.HasPrefix(strings.ToLower(k), "x-integrationhub-") {
			continue
		}
		for _, v := range vs {
			if !containsAny(v, secrets) { // an app echoing the credential back gets it stripped
				w.Header().Add(k, v)
			}
		}
	}
	w.WriteHeader(resp.StatusCode)
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	var out io.Writer = w
	if resp.ContentLength < 0 {
		// A body of unknown length may be a stream (server-sent events, a
		// long download): pass each chunk on as it comes. One of known
		// length is sent as the server buffers it, flushed when done.
		out = flushWriter{w}
	}
	_, _ = io.CopyBuffer(out, resp.Body, *buf)
}

// copyBuffers hold the buffers answers are copied through, so that a busy
// proxy does not allocate 32 KiB per request.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// targetURL is the app URL a proxied request goes to: the connection's base
// URL (or the one the worker names, which must be among the connection's
// hosts too), the rest of the path and the query.
func targetURL(r *http.Request, rec vault.Record, rest string) (*url.URL, error) {
	base := r.Header.Get(HeaderBaseURL)
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
	u.RawQuery = r.URL.RawQuery
	return u, nil
}

// body returns the request body to send: all of it in memory when it is
// small enough to send again after a 401 (replay), else a bounded stream.
func (p *proxy) body(w http.ResponseWriter, r *http.Request) (io.Reader, []byte, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, nil, nil
	}
	limited := http.MaxBytesReader(w, r.Body, p.cfg.MaxBody)
	if r.ContentLength > 0 && r.ContentLength <= replayLimit {
		b, err := io.ReadAll(limited)
		if err != nil {
			return nil, nil, refuse(codes.InvalidArgument, "request body: %v", err)
		}
		return bytes.NewReader(b), b, nil
	}
	return limited, nil, nil
}

// send sends one request to the app with rec's credential on it.
func (p *proxy) send(ctx context.Context, in *http.Request, target *url.URL, rec vault.Record, body io.Reader, replay []byte) (*http.Response, error) {
	if replay != nil {
		body = bytes.NewReader(replay)
	}
	out, err := http.NewRequestWithContext(ctx, in.Method, target.String(), body)
	if err != nil {
		return nil, refuse(codes.InvalidArgument, "request: %v", err)
	}
	if replay != nil {
		out.ContentLength = int64(len(replay))
	} else {
		out.ContentLength = in.ContentLength
	}
	for k, vs := range in.Header {
		if hopByHop(k) || strings.EqualFold(k, "Authorization") || strings.HasPrefix(strings.ToLower(k), "x-integrationhub-") {
			continue
		}
		out.Header[k] = vs
	}
	if rec.OAuth1 != nil {
		form := map[string]string{}
		if strings.HasPrefix(in.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			if replay == nil && body != nil {
				return nil, refuse(codes.InvalidArgument, "an OAuth 1.0a form body over 1 MiB cannot be signed")
			}
			vals, _ := url.ParseQuery(string(replay))
			for k, v := range vals {
				form[k] = v[0]
			}
		}
		h, err := p.s.oauth1.Sign(ctx, rec, in.Method, target.String(), form)
		if err != nil {
			return nil, err
		}
		out.Header.Set("Authorization", h)
	} else {
		authorize(out, rec)
	}
	resp, err := p.s.upstream.For(rec.PrivateNetwork).RoundTrip(out)
	if err != nil {
		return nil, upstreamError(err)
	}
	return resp, nil
}

// fail answers a refused or failed proxied request with a JSON body and the
// HTTP status that fits its gRPC code; it never carries the secret.
func (p *proxy) fail(w http.ResponseWriter, err error) int {
	st := status.Convert(p.s.toStatus(context.Background(), err))
	if p.refused != nil {
		p.refused.WithLabelValues(st.Code().String()).Inc()
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
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Integrationhub-Error", st.Code().String())
	w.WriteHeader(code)
	body := proxyRefusal{Code: st.Code().String(), Error: st.Message()}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			body.Reason, body.Metadata = info.GetReason(), info.GetMetadata()
		}
	}
	_ = json.NewEncoder(w).Encode(body)
	return code
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

// upstreamError says why the app could not be reached.
func upstreamError(err error) error {
	switch {
	case errors.Is(err, egress.ErrPrivateAddress):
		return refuse(codes.PermissionDenied, "%v", egress.ErrPrivateAddress)
	case errors.Is(err, context.DeadlineExceeded):
		return refuse(codes.DeadlineExceeded, "the app did not answer in time")
	}
	return refuse(codes.Unavailable, "the app could not be reached")
}

// recordProxy notes a proxied request in the access record: method, host
// and status, never the path, query or body.
func (s *core) recordProxy(g *grant, method, host string, httpStatus int, err error) {
	if err != nil {
		s.note(eventOf("ProxyRequest", g), err)
		return
	}
	e := eventOf("ProxyRequest", g)
	e.Code, e.Reason = codes.OK.String(), fmt.Sprintf("%s %s -> %d", method, host, httpStatus)
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

func containsAny(v string, subs []string) bool {
	for _, s := range subs {
		if strings.Contains(v, s) {
			return true
		}
	}
	return false
}

func hopByHop(h string) bool {
	switch http.CanonicalHeaderKey(h) {
	case "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// flushWriter streams: every chunk the app sends is passed on at once.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}
