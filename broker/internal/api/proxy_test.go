package api_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"
	"google.golang.org/grpc/metadata"

	"github.com/integrationhub/connections/broker/internal/access"
	"github.com/integrationhub/connections/broker/internal/api"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
)

// The proxy's metrics count what it answered: the app's statuses and the
// broker's own refusals by gRPC code, never anything of the request beyond
// its method.
func TestProxyMetrics(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(app.Close)
	c := newBroker(t)
	req := put(&credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: "metrics-key-1"}}},
		credentialv1.AuthType_AUTH_TYPE_API_KEY, app.URL)
	req.PrivateNetwork, req.AllowedHosts = true, []string{strings.TrimPrefix(app.URL, "http://")} // the app is on loopback
	if _, err := c.admin.PutSecret(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	proxyURL := serveProxy(t, c.workers.Proxy(api.ProxyConfig{Metrics: reg}))
	md, _ := metadata.FromOutgoingContext(c.job(t))
	send := func(tok string) (int, string) {
		r, _ := http.NewRequest(http.MethodGet, proxyURL+"/"+id+"/secret-path?q=secret-query", nil)
		if tok != "" {
			r.Header.Set("Proxy-Authorization", tok)
		} else {
			// A newcomer's mistake: the job token in the app's header.
			r.Header.Set("Authorization", md.Get("authorization")[0])
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := send(md.Get("authorization")[0]); code != http.StatusOK {
		t.Fatalf("proxied request: %d", code)
	}
	if code, body := send(""); code != http.StatusProxyAuthRequired || !strings.Contains(body, "Proxy-Authorization: Bearer") {
		t.Fatalf("request without a job token: %d %q, want 407 saying to send it in Proxy-Authorization", code, body)
	}
	want := `
# HELP integrationhub_broker_proxy_refusals_total Proxied requests the broker answered itself (not sent, or the app unreachable), by gRPC code.
# TYPE integrationhub_broker_proxy_refusals_total counter
integrationhub_broker_proxy_refusals_total{grpc_code="Unauthenticated"} 1
# HELP integrationhub_broker_proxy_requests_total Requests to the egress proxy, by the HTTP status answered and the method.
# TYPE integrationhub_broker_proxy_requests_total counter
integrationhub_broker_proxy_requests_total{code="200",method="get"} 1
integrationhub_broker_proxy_requests_total{code="407",method="get"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"integrationhub_broker_proxy_refusals_total", "integrationhub_broker_proxy_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "integrationhub_broker_proxy_request_duration_seconds"); n != 1 {
		t.Errorf("duration histogram: %d series, want 1", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if all := fmt.Sprint(mfs); strings.Contains(all, "secret") || strings.Contains(all, "metrics-key-1") {
		t.Errorf("the metrics carry the request's path, query or key:\n%s", all)
	}
}

// proxyFixture is a broker with one API-key connection to app (on
// loopback) and its proxy served with cfg: the proxy's URL for the
// connection and a job token for it.
func proxyFixture(t *testing.T, app *httptest.Server, cfg api.ProxyConfig, opts ...func(*api.Deps)) (connURL, tok string) {
	t.Helper()
	c := newBroker(t, opts...)
	req := put(&credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: "fixture-key-1"}}},
		credentialv1.AuthType_AUTH_TYPE_API_KEY, app.URL)
	req.PrivateNetwork, req.AllowedHosts = true, []string{strings.TrimPrefix(app.URL, "http://")}
	if _, err := c.admin.PutSecret(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	md, _ := metadata.FromOutgoingContext(c.job(t))
	return serveProxy(t, c.workers.Proxy(cfg)) + "/" + id, md.Get("authorization")[0]
}

// A body over the proxy's limit is refused with the broker's 400, whether
// its length is known up front or found out while it streams (also when
// the worker is still sending), and never reaches the app whole; one at
// the limit goes through.
func TestProxyBodyLimit(t *testing.T) {
	var mu sync.Mutex
	var received []int64 // bodies the app read to their end
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err == nil {
			mu.Lock()
			received = append(received, n)
			mu.Unlock()
		}
		_, _ = fmt.Fprint(w, n)
	}))
	t.Cleanup(app.Close)
	const limit = 2 << 20       // above the 1 MiB kept for a resend, so the body streams
	var recorded []access.Event // the access record's proxied requests
	connURL, tok := proxyFixture(t, app, api.ProxyConfig{MaxBody: limit}, func(d *api.Deps) {
		d.Workers.Record = func(e access.Event) {
			mu.Lock()
			defer mu.Unlock()
			if e.Operation == "ProxyRequest" {
				recorded = append(recorded, e)
			}
		}
	})
	for _, tc := range []struct {
		name     string
		body     io.Reader
		length   int64 // -1: chunked
		expect   bool  // Expect: 100-continue, as curl sends for a body over 1 KiB
		want     int
		received int64 // by the app, when it answers
	}{
		{"known length at the limit", io.LimitReader(zeros{}, limit), limit, false, http.StatusOK, limit},
		{"chunked at the limit", io.LimitReader(zeros{}, limit), -1, false, http.StatusOK, limit},
		{"Expect: 100-continue", io.LimitReader(zeros{}, 4096), 4096, true, http.StatusOK, 4096},
		{"known length over the limit", io.LimitReader(zeros{}, limit+1), limit + 1, false, http.StatusBadRequest, 0},
		{"chunked over the limit", io.LimitReader(zeros{}, 3*limit), -1, false, http.StatusBadRequest, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPost, connURL+"/upload", tc.body)
			r.ContentLength = tc.length
			r.Header.Set("Proxy-Authorization", tok)
			if tc.expect {
				r.Header.Set("Expect", "100-continue")
			}
			resp, err := http.DefaultClient.Do(r)
			// Refused while the worker was still sending: the proxy answers
			// without reading the rest, and lingers before it closes, so the
			// worker reads the answer rather than a reset.
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%d %s, want %d", resp.StatusCode, b, tc.want)
			}
			if tc.want == http.StatusOK && string(b) != fmt.Sprint(tc.received) {
				t.Errorf("the app received %s bytes, want %d", b, tc.received)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for _, n := range received {
		if n > limit {
			t.Errorf("the app received a whole body of %d bytes, over the limit", n)
		}
	}
	// The record says what the worker was told: InvalidArgument, not Unknown.
	refused := 0
	for _, e := range recorded {
		if !e.Allowed || e.Code != "OK" {
			if refused++; e.Code != "InvalidArgument" {
				t.Errorf("a body over the limit recorded as %s (%s), want InvalidArgument", e.Code, e.Reason)
			}
		}
	}
	if refused == 0 {
		t.Error("no refused upload in the access record")
	}
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// An answer of unknown length (server-sent events) reaches the worker chunk
// by chunk, while the app is still writing; HEAD gets the app's headers.
func TestProxyStreamsAsItComes(t *testing.T) {
	next := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		if r.Method == http.MethodGet {
			<-next // the second event only once the worker has read the first
		}
		_, _ = io.WriteString(w, "data: two\n\n")
	}))
	t.Cleanup(app.Close)
	connURL, tok := proxyFixture(t, app, api.ProxyConfig{})
	r, _ := http.NewRequest(http.MethodGet, connURL+"/events", nil)
	r.Header.Set("Proxy-Authorization", tok)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("%d %q", resp.StatusCode, ct)
	}
	first := make([]byte, len("data: one\n\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "data: one\n\n" {
		t.Fatalf("first event %q: %v", first, err)
	}
	close(next)
	if rest, _ := io.ReadAll(resp.Body); string(rest) != "data: two\n\n" {
		t.Errorf("second event %q", rest)
	}

	r, _ = http.NewRequest(http.MethodHead, connURL+"/events", nil)
	r.Header.Set("Proxy-Authorization", tok)
	head, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != http.StatusOK || head.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("HEAD: %d %q", head.StatusCode, head.Header.Get("Content-Type"))
	}
}

// HEAD gets the length the app announces for the body it leaves out, and
// GET the whole body, for an answer the proxy reads whole and for one it
// streams.
func TestProxyKnownLengths(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, strings.Repeat("x", n))
		}
	}))
	t.Cleanup(app.Close)
	connURL, tok := proxyFixture(t, app, api.ProxyConfig{})
	for _, n := range []int{1234, 200 << 10} {
		for _, method := range []string{http.MethodHead, http.MethodGet} {
			r, _ := http.NewRequest(method, connURL+"/"+strconv.Itoa(n), nil)
			r.Header.Set("Proxy-Authorization", tok)
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := n
			if method == http.MethodHead {
				want = 0
			}
			if err != nil || resp.StatusCode != http.StatusOK || resp.ContentLength != int64(n) || len(b) != want {
				t.Errorf("%s of %d bytes: %d, Content-Length %d, %d bytes read, %v", method, n, resp.StatusCode, resp.ContentLength, len(b), err)
			}
		}
	}
}

// Headers far larger than fasthttp's default buffer pass both ways.
func TestProxyLargeHeaders(t *testing.T) {
	big := strings.Repeat("h", 20<<10)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big-Answer", big)
		_, _ = fmt.Fprint(w, len(r.Header.Get("X-Big-Request")))
	}))
	t.Cleanup(app.Close)
	connURL, tok := proxyFixture(t, app, api.ProxyConfig{})
	r, _ := http.NewRequest(http.MethodGet, connURL+"/v1/me", nil)
	r.Header.Set("Proxy-Authorization", tok)
	r.Header.Set("X-Big-Request", big)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != fmt.Sprint(len(big)) || resp.Header.Get("X-Big-Answer") != big {
		t.Errorf("%d %.100s, answer header of %d bytes", resp.StatusCode, b, len(resp.Header.Get("X-Big-Answer")))
	}
}

// Bad bytes in the request line and headers get a 4xx and change nothing;
// the proxy serves the next request as before. A request in absolute form
// naming another host still goes to the connection's own app.
func TestProxyBadBytes(t *testing.T) {
	var seen sync.Map // paths the app received
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.URL.EscapedPath(), true)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(app.Close)
	var logs lockedBuffer
	connURL, tok := proxyFixture(t, app, api.ProxyConfig{
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	proxyHost := strings.TrimPrefix(strings.TrimSuffix(connURL, "/"+id), "http://")
	raw := func(requestLine string, headers ...string) (int, string) {
		t.Helper()
		conn, err := net.DialTimeout("tcp", proxyHost, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		req := requestLine + "\r\nHost: " + proxyHost + "\r\nProxy-Authorization: " + tok + "\r\nConnection: close\r\n"
		for _, h := range headers {
			req += h + "\r\n"
		}
		if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%q: %v", requestLine, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, line string
		headers    []string
	}{
		{"invalid UTF-8 as the connection id", "GET /\xff\xfe/v1/me HTTP/1.1", nil},
		{"a NUL in the path", "GET /" + id + "/v1/\x00me HTTP/1.1", nil},
		{"a control byte in a header", "GET /" + id + "/v1/me HTTP/1.1", []string{"X-Odd: a\x01b"}},
		{"invalid UTF-8 as the base URL", "GET /" + id + "/v1/me HTTP/1.1", []string{"X-Integrationhub-Base-Url: http://\xff\xfe/"}},
		{"loopback IPv6 as the base URL", "GET /" + id + "/v1/me HTTP/1.1", []string{"X-Integrationhub-Base-Url: http://[::1]:1/"}},
		{"no path at all", "GET * HTTP/1.1", nil},
		{"a header line without a colon", "GET /" + id + "/v1/me HTTP/1.1", []string{"X-Echo " + tok}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := raw(tc.line, tc.headers...)
			if code < 400 || code >= 500 {
				t.Errorf("%d %.200q, want a 4xx", code, body)
			}
		})
	}
	// A worker that leaves the connection id out is told so (400), not
	// that its job may not use a connection named "v1" (403).
	for _, path := range []string{"/v1/me", "/", "/" + strings.ToUpper(id) + "x/v1/me", "/" + strings.ReplaceAll(id, "-", "") + "/v1/me"} {
		if code, body := raw("GET " + path + " HTTP/1.1"); code != http.StatusBadRequest || !strings.Contains(body, "must begin with the connection id") {
			t.Errorf("GET %s: %d %.200q, want 400 naming the connection id", path, code, body)
		}
	}
	if code, _ := raw("GET http://attacker.test/" + id + "/v1/absolute HTTP/1.1"); code != http.StatusOK {
		t.Errorf("absolute form: %d", code)
	}
	if _, ok := seen.Load("/v1/absolute"); !ok {
		t.Error("a request in absolute form did not reach the connection's app")
	}
	if code, body := raw("GET /" + id + "/v1/me HTTP/1.1"); code != http.StatusOK || body != "ok" {
		t.Errorf("after the bad requests: %d %q", code, body)
	}
	// What the server could not parse held the job token; the log must not.
	if l := logs.String(); l == "" || strings.Contains(l, strings.TrimPrefix(tok, "Bearer ")) {
		t.Errorf("the proxy's log is empty or holds the job token:\n%s", l)
	}
}

// An app that is too slow gets the broker's 504, one that is gone its 502,
// each with the gRPC code in X-Integrationhub-Error; an answer cut off by
// the app reaches the worker as a cut-off body, never as a whole one.
func TestProxyAppFailures(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			select { // answer once the proxy has given up (bounded, should it not)
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		case "/cut", "/cut-long":
			n := 1000
			if r.URL.Path == "/cut-long" { // longer than the proxy reads whole: streamed
				n = 1 << 20
			}
			w.Header().Set("Content-Length", strconv.Itoa(n))
			_, _ = io.WriteString(w, strings.Repeat("only part", n/20))
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}
	}))
	t.Cleanup(app.Close)
	connURL, tok := proxyFixture(t, app, api.ProxyConfig{Timeout: time.Second}) // room for the broker's own work on a loaded machine
	get := func(path string) (*http.Response, []byte, error) {
		r, _ := http.NewRequest(http.MethodGet, connURL+path, nil)
		r.Header.Set("Proxy-Authorization", tok)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	if resp, b, err := get("/slow"); err != nil {
		t.Errorf("slow app: %v", err)
	} else if resp.StatusCode != http.StatusGatewayTimeout || resp.Header.Get("X-Integrationhub-Error") != "DeadlineExceeded" {
		t.Errorf("slow app: %d %s %s", resp.StatusCode, resp.Header.Get("X-Integrationhub-Error"), b)
	}
	// A small answer is read whole before anything is sent: cut off, it
	// gets the broker's 502; a long one is streamed and reaches the worker
	// cut off. Either way the worker can tell.
	if resp, b, err := get("/cut"); err == nil && (resp.StatusCode != http.StatusBadGateway ||
		resp.Header.Get("X-Integrationhub-Error") != "Unavailable" || !strings.Contains(string(b), "cut off")) {
		t.Errorf("an answer the app cut off reached the worker whole: %d %q", resp.StatusCode, b)
	}
	if resp, b, err := get("/cut-long"); err == nil {
		t.Errorf("a long answer the app cut off reached the worker whole: %d, %d bytes", resp.StatusCode, len(b))
	}
	app.Close() // from now on nothing listens at the app's address
	if resp, b, err := get("/gone"); err != nil {
		t.Errorf("app gone: %v", err)
	} else if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Integrationhub-Error") != "Unavailable" ||
		!strings.Contains(string(b), `"reason":"APP_UNAVAILABLE"`) {
		// The reason tells a worker the app failed, not the broker.
		t.Errorf("app gone: %d %s %s", resp.StatusCode, resp.Header.Get("X-Integrationhub-Error"), b)
	}
}

// A worker's X-Integrationhub-Timeout shortens the proxy's wait for the app
// (never lengthens it); a bad one is refused before the app is called.
func TestProxyWorkerTimeout(t *testing.T) {
	var hits atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/slow" {
			select { // answers 200 unless the proxy gives up first
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
		}
	}))
	t.Cleanup(app.Close)
	connURL, tok := proxyFixture(t, app, api.ProxyConfig{Timeout: time.Minute})
	for _, tc := range []struct {
		path, timeout string
		code          int
		grpcCode      string
		reachesApp    bool
	}{
		{"/slow", "300ms", http.StatusGatewayTimeout, "DeadlineExceeded", true},
		{"/fast", "10m", http.StatusOK, "", true}, // more than the proxy's own: its own
		{"/fast", "2.5s", http.StatusOK, "", true},
		{"/fast", "soon", http.StatusBadRequest, "InvalidArgument", false},
		{"/fast", "0s", http.StatusBadRequest, "InvalidArgument", false},
		{"/fast", "-1s", http.StatusBadRequest, "InvalidArgument", false},
		{"/fast", "10", http.StatusBadRequest, "InvalidArgument", false}, // a unit is required
	} {
		before := hits.Load()
		r, _ := http.NewRequest(http.MethodGet, connURL+tc.path, nil)
		r.Header.Set("Proxy-Authorization", tok)
		r.Header.Set(api.HeaderTimeout, tc.timeout)
		client := &http.Client{Timeout: 15 * time.Second} // the proxy's own minute would fail this
		resp, err := client.Do(r)
		if err != nil {
			t.Errorf("%s with %q: %v", tc.path, tc.timeout, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || resp.Header.Get("X-Integrationhub-Error") != tc.grpcCode {
			t.Errorf("%s with %q: %d %s %s, want %d %s", tc.path, tc.timeout, resp.StatusCode,
				resp.Header.Get("X-Integrationhub-Error"), b, tc.code, tc.grpcCode)
		}
		if reached := hits.Load() > before; reached != tc.reachesApp {
			t.Errorf("%s with %q: reached the app %v, want %v", tc.path, tc.timeout, reached, tc.reachesApp)
		}
	}
}

// serveProxy serves the egress proxy on loopback until the test ends and
// returns its URL.
func serveProxy(t testing.TB, srv *fasthttp.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.ServeProxy(ctx, srv, lis, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
	})
	return "http://" + lis.Addr().String()
}

// An app that answers an upload before reading it (413) and closes: the
// worker gets the app's answer through the proxy, as it would calling the
// app directly, not a 502 or a reset. The same for the proxy's own refusal
// of a request whose body the worker is still sending.
func TestProxyEarlyAnswers(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			_, _ = io.WriteString(w, "too large")
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(app.Close)
	connURL, tok := proxyFixture(t, app, api.ProxyConfig{})
	send := func(token string, body io.Reader, n int64) (int, string, error) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, connURL+"/upload", body)
		req.ContentLength = n // -1: chunked
		req.Header.Set("Proxy-Authorization", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	for _, size := range []int64{2 << 20, 10 << 20, 30 << 20} {
		for i := range 3 {
			n := size
			if i == 2 {
				n = -1
			}
			code, body, err := send(tok, io.LimitReader(zeros{}, size), n)
			if err != nil || code != http.StatusRequestEntityTooLarge || body != "too large" {
				t.Errorf("%d-byte upload (length %d) the app refused early: %d %q %v, want its 413", size, n, code, body, err)
			}
			code, body, err = send("Bearer not-a-token", io.LimitReader(zeros{}, size), n)
			if err != nil || code != http.StatusProxyAuthRequired {
				t.Errorf("%d-byte upload (length %d) with a bad job token: %d %.100q %v, want 407", size, n, code, body, err)
			}
		}
	}
	req, _ := http.NewRequest(http.MethodGet, connURL+"/v1/me", nil)
	req.Header.Set("Proxy-Authorization", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "ok" {
		t.Errorf("afterwards: %d %q", resp.StatusCode, b)
	}
}
