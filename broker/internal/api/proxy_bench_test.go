package api_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"google.golang.org/grpc/metadata"

	"github.com/integrationhub/connections/broker/internal/api"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/loopback"
)

// BenchmarkProxy compares, in one run on one machine, parallel GETs to a
// local app (httptest on loopback, checking an API key in a named header):
//   - direct: the caller puts the key on itself, the floor;
//   - proxy: through the broker's egress proxy handler served on loopback,
//     with the job token in Proxy-Authorization and the key put on by the
//     broker (authorization, the access record, the upstream exchange);
//   - bare-forwarder: the least any proxy must do, the baseline for the
//     proxy's own work: a fasthttp server that takes the connection id off
//     the path, puts the key on and forwards with fasthttp's client (no
//     authorization, no record, no header filtering, the answer in memory).
//
// Each way in is measured over loopback TCP and over a unix socket (the
// sidecar's other way in). The difference is what the proxy adds. Profile the broker's share with
//
//	go test -run '^$' -bench Proxy -benchtime 3s -cpuprofile cpu.out ./internal/api/
func BenchmarkProxy(b *testing.B) {
	const key = "bench-proxy-key-0123"
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != "Token "+key {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	b.Cleanup(app.Close)
	c := newBroker(b)
	req := put(&credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: key}}},
		credentialv1.AuthType_AUTH_TYPE_API_KEY, app.URL)
	req.PrivateNetwork, req.AllowedHosts = true, []string{strings.TrimPrefix(app.URL, "http://")} // the app is on loopback
	req.Placement = &credentialv1.Placement{Kind: credentialv1.PlacementKind_PLACEMENT_KIND_HEADER, Name: "X-Api-Key", Prefix: "Token "}
	if _, err := c.admin.PutSecret(b.Context(), req); err != nil {
		b.Fatal(err)
	}
	proxyURL := serveProxy(b, c.workers.Proxy(api.ProxyConfig{}))
	md, _ := metadata.FromOutgoingContext(c.job(b))
	tok := strings.TrimPrefix(md.Get("authorization")[0], "Bearer ")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(client.CloseIdleConnections)

	do := func(r *http.Request) error { return doWith(client, r) }
	// 16 concurrent callers, as in the target (RunParallel starts
	// parallelism x GOMAXPROCS goroutines).
	b.Run("direct", func(b *testing.B) {
		b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
		measure(b, func() error {
			r, _ := http.NewRequest(http.MethodGet, app.URL+"/v1/me", nil)
			r.Header.Set("X-Api-Key", "Token "+key)
			return do(r)
		})
	})
	b.Run("proxy", func(b *testing.B) {
		b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
		measure(b, func() error {
			r, _ := http.NewRequest(http.MethodGet, proxyURL+"/"+id+"/v1/me", nil)
			r.Header.Set("Proxy-Authorization", "Bearer "+tok)
			return do(r)
		})
	})
	// The sidecar's other way in: the proxy on a unix socket in the pod.
	sock := filepath.Join(b.TempDir(), "proxy.sock")
	serveFasthttp(b, c.workers.Proxy(api.ProxyConfig{}), "unix", sock)
	unix := unixClient(b, sock)
	b.Run("proxy-unix", func(b *testing.B) {
		b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
		measure(b, func() error {
			r, _ := http.NewRequest(http.MethodGet, "http://proxy/"+id+"/v1/me", nil)
			r.Header.Set("Proxy-Authorization", "Bearer "+tok)
			return doWith(unix, r)
		})
	})

	bare := bareForwarder(strings.TrimPrefix(app.URL, "http://"), "X-Api-Key", "Token "+key)
	bareURL := serveFasthttp(b, bare, "tcp", "127.0.0.1:0")
	b.Run("bare-forwarder", func(b *testing.B) {
		b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
		measure(b, func() error {
			r, _ := http.NewRequest(http.MethodGet, bareURL+"/"+id+"/v1/me", nil)
			return do(r)
		})
	})
	bareSock := filepath.Join(b.TempDir(), "bare.sock")
	serveFasthttp(b, bare, "unix", bareSock)
	bareUnix := unixClient(b, bareSock)
	b.Run("bare-forwarder-unix", func(b *testing.B) {
		b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
		measure(b, func() error {
			r, _ := http.NewRequest(http.MethodGet, "http://proxy/"+id+"/v1/me", nil)
			return doWith(bareUnix, r)
		})
	})

	// Purpose-built proxies doing the bare forwarder's work, each in its own
	// process with one thread (their fastest setting on 2 shared cores):
	// what a proxy written in C keeps of the direct rate on this machine.
	for _, ref := range referenceProxies(b, strings.TrimPrefix(app.URL, "http://"), "X-Api-Key", "Token "+key) {
		b.Run(ref.name, func(b *testing.B) {
			b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
			measure(b, func() error {
				r, _ := http.NewRequest(http.MethodGet, "http://"+ref.addr+"/"+id+"/v1/me", nil)
				return do(r)
			})
		})
	}
}

// referenceProxy is a proxy program serving on addr.
type referenceProxy struct{ name, addr string }

// referenceProxies starts HAProxy and nginx, those of them installed
// (apt-get install haproxy nginx-light), forwarding to app (host:port) as
// bareForwarder does: the first path segment dropped, header set to value.
// They run until the benchmark ends. The test process's CPU per request
// that measure reports does not include theirs.
func referenceProxies(b *testing.B, app, header, value string) []referenceProxy {
	dir := b.TempDir()
	addrs, err := loopback.FreeAddrs(2)
	if err != nil {
		b.Fatal(err)
	}
	configs := []struct {
		name, program, config string
		args                  []string
	}{
		{"haproxy", "haproxy", `global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend worker
  bind ` + addrs[0] + `
  http-request set-header ` + header + ` "` + value + `"
  http-request set-path %[path,regsub(^/[^/]*/,/)]
  default_backend app
backend app
  server app ` + app + `
`, []string{"-f"}},
		{"nginx", "nginx", `daemon off;
master_process off;
worker_processes 1;
pid ` + dir + `/nginx.pid;
error_log ` + dir + `/nginx.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream app { server ` + app + `; keepalive 64; }
  server {
    listen ` + addrs[1] + `;
    location ~ ^/[^/]+(/.*)$ {
      proxy_pass http://app$1;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header ` + header + ` "` + value + `";
    }
  }
}
`, []string{"-p", dir, "-c"}},
	}
	var out []referenceProxy
	for i, c := range configs {
		path, err := exec.LookPath(c.program)
		if err != nil {
			if path, err = exec.LookPath("/usr/sbin/" + c.program); err != nil {
				b.Logf("%s is not installed: not measured", c.program)
				continue
			}
		}
		conf := filepath.Join(dir, c.name+".conf")
		if err := os.WriteFile(conf, []byte(c.config), 0o600); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(path, append(c.args, conf)...)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		b.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
		if !listening(addrs[i], exited) {
			b.Fatalf("%s did not start listening on %s:\n%s", c.name, addrs[i], stderr.String())
		}
		out = append(out, referenceProxy{c.name, addrs[i]})
	}
	return out
}

// listening waits, up to 10 s, until addr takes connections, or the
// program serving it has exited.
func listening(addr string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// bareForwarder is the benchmark's floor for any proxy: it sends each
// request to app (host:port) with the path after the first segment and
// header set to value, and answers with what came back.
func bareForwarder(app, header, value string) *fasthttp.Server {
	client := &fasthttp.HostClient{Addr: app, MaxConns: 512}
	return &fasthttp.Server{Handler: func(fc *fasthttp.RequestCtx) {
		path := fc.Path()
		if i := bytes.IndexByte(path[1:], '/'); i >= 0 {
			path = path[i+1:]
		}
		out := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(out)
		out.SetRequestURIBytes(path)
		out.SetHost(app)
		out.Header.Set(header, value)
		if err := client.Do(out, &fc.Response); err != nil {
			fc.Error(err.Error(), http.StatusBadGateway)
		}
	}}
}

// unixClient is an HTTP client that sends every request to the unix
// socket sock.
func unixClient(b *testing.B, sock string) *http.Client {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	b.Cleanup(c.CloseIdleConnections)
	return c
}

// serveFasthttp serves srv on a new listener (network, addr) until the
// benchmark ends, and returns its URL.
func serveFasthttp(b *testing.B, srv *fasthttp.Server, network, addr string) string {
	lis, err := net.Listen(network, addr)
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + lis.Addr().String()
}

// doWith sends r with client and reads the answer; a status other than
// 200 is an error.
func doWith(client *http.Client, r *http.Request) error {
	resp, err := client.Do(r)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &statusError{resp.StatusCode}
	}
	return nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }
