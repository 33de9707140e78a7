package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/integrationhub/connections/internal/egress"
)

// do sends one request with c and returns the answer, released when the
// test ends.
func do(t *testing.T, c *Clients, private bool, method, url string, prepare func(*fasthttp.Request)) (*fasthttp.Response, error) {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI(url)
	req.Header.SetMethod(method)
	if prepare != nil {
		prepare(req)
	}
	resp := fasthttp.AcquireResponse()
	t.Cleanup(func() {
		_ = resp.CloseBodyStream()
		fasthttp.ReleaseResponse(resp)
	})
	return resp, c.Do(private, req, resp, time.Now().Add(10*time.Second))
}

func body(t *testing.T, resp *fasthttp.Response) []byte {
	t.Helper()
	if resp.BodyStream() == nil {
		return resp.Body()
	}
	b, err := io.ReadAll(resp.BodyStream())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDo(t *testing.T) {
	release := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/away":
			http.Redirect(w, r, "/here", http.StatusFound)
		case strings.HasPrefix(p, "/echo"):
			w.Header().Set("X-Seen-Ua", r.Header.Get("User-Agent"))
			w.Header().Set("X-Seen-Type", r.Header.Get("Content-Type"))
			w.Header().Set("X-Seen-Path", r.URL.EscapedPath())
			b, _ := io.ReadAll(r.Body)
			_, _ = w.Write(b)
		case p == "/stream":
			// A body of unknown length, written in chunks; the rest only
			// once the caller has the first (bounded, should it not).
			_, _ = w.Write(make([]byte, 64<<10))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
			for range 63 {
				_, _ = w.Write(make([]byte, 64<<10))
			}
		case p == "/slow":
			// Answer only once the caller has given up (bounded, should it not).
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
	}))
	defer app.Close()
	c := New(nil)

	t.Run("body streamed out, path and headers as written", func(t *testing.T) {
		resp, err := do(t, c, true, http.MethodPost, app.URL+"/echo/a%2Fb?q=1", func(r *fasthttp.Request) {
			r.SetBodyStream(io.MultiReader(strings.NewReader("hello "), strings.NewReader("app")), -1)
		})
		if err != nil {
			t.Fatal(err)
		}
		if b := body(t, resp); string(b) != "hello app" || resp.StatusCode() != 200 {
			t.Errorf("answer %d %q", resp.StatusCode(), b)
		}
		for h, want := range map[string]string{"X-Seen-Ua": "", "X-Seen-Type": "", "X-Seen-Path": "/echo/a%2Fb"} {
			if got := string(resp.Header.Peek(h)); got != want {
				t.Errorf("%s: %q, want %q (nothing of the client's own)", h, got, want)
			}
		}
	})
	t.Run("redirect is the answer", func(t *testing.T) {
		resp, err := do(t, c, true, http.MethodGet, app.URL+"/away", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != http.StatusFound || string(resp.Header.Peek("Location")) != "/here" {
			t.Errorf("redirect: %d %q, want 302 returned as it is", resp.StatusCode(), resp.Header.Peek("Location"))
		}
	})
	t.Run("a large answer is streamed, not held", func(t *testing.T) {
		// Do returns while the app is still writing: the answer was not
		// read in full first.
		resp, err := do(t, c, true, http.MethodGet, app.URL+"/stream", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(resp.BodyStream(), make([]byte, 64<<10)); err != nil {
			t.Fatal(err)
		}
		close(release)
		if n, err := io.Copy(io.Discard, resp.BodyStream()); err != nil || n != 63*64<<10 {
			t.Errorf("streamed %d more bytes: %v", n, err)
		}
	})
	t.Run("the deadline bounds the exchange", func(t *testing.T) {
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		req.SetRequestURI(app.URL + "/slow")
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		if err := c.Do(true, req, resp, time.Now().Add(200*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("slow app: %v, want DeadlineExceeded", err)
		}
	})
}

// A request the app dropped without an answer is sent again only when that
// is safe: a GET once more, a POST never.
func TestRetryOnlySafeRequests(t *testing.T) {
	var hits atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 || r.Method == http.MethodPost {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close() // dropped without an answer
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer app.Close()
	c := New(nil)
	resp, err := do(t, c, true, http.MethodGet, app.URL, nil)
	if err != nil || resp.StatusCode() != 200 || hits.Load() != 2 {
		t.Errorf("GET: %v, %d hits, want answered on the second", err, hits.Load())
	}
	hits.Store(10)
	if _, err := do(t, c, true, http.MethodPost, app.URL, func(r *fasthttp.Request) { r.SetBodyString("x") }); err == nil || hits.Load() != 11 {
		t.Errorf("POST: %v, %d hits, want one and an error", err, hits.Load()-10)
	}
}

// The public client refuses an app on loopback when it dials; the other one
// verifies TLS with the roots it was given.
func TestGuardAndTLS(t *testing.T) {
	app := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer app.Close()
	if _, err := do(t, New(nil), false, http.MethodGet, app.URL, nil); !errors.Is(err, egress.ErrPrivateAddress) {
		t.Errorf("public client to loopback: %v, want ErrPrivateAddress", err)
	}
	if _, err := do(t, New(x509.NewCertPool()), true, http.MethodGet, app.URL, nil); err == nil {
		t.Error("an app whose certificate the roots do not sign was reached")
	}
	roots := x509.NewCertPool()
	roots.AddCert(app.Certificate())
	resp, err := do(t, New(roots), true, http.MethodGet, app.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); string(b) != "ok" {
		t.Errorf("TLS answer %q", b)
	}
}

// With every connection to an app busy, a request waits for a free one
// until its deadline: one that cannot wait long enough times out (it used
// to fail at once with fasthttp's ErrNoFreeConns, which the proxy answered
// as an app it could not reach), one that can is sent once the connection
// is free.
func TestWaitsForAFreeConnection(t *testing.T) {
	release := make(chan struct{})
	var held atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			held.Add(1)
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
	}))
	t.Cleanup(app.Close)
	c := New(nil)
	c.any.MaxConnsPerHost = 1
	get := func(path string, wait time.Duration) error {
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		req.SetRequestURI(app.URL + path)
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		err := c.Do(true, req, resp, time.Now().Add(wait))
		if err == nil {
			_, err = io.Copy(io.Discard, resp.BodyStream())
			_ = resp.CloseBodyStream()
		}
		return err
	}
	first := make(chan error, 1)
	go func() { first <- get("/hold", 10*time.Second) }()
	for deadline := time.Now().Add(5 * time.Second); held.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the first request never reached the app")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := get("/short", 200*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("with the only connection busy past its deadline: %v, want a timeout", err)
	}
	second := make(chan error, 1)
	go func() { second <- get("/after", 10*time.Second) }()
	close(release)
	for name, ch := range map[string]chan error{"the first request": first, "a request that waited": second} {
		if err := <-ch; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// An app that answers an upload early, without reading it, and resets the
// connection: the caller gets the app's answer (a direct HTTP client
// would), not the error of sending the rest. The connection is not used
// again, and a request that meets it is sent on a new one.
func TestEarlyAnswer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	var conns atomic.Int32
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if req.ContentLength > 1<<20 {
						// Answered at once and closed with the upload
						// unread (a reset), without "Connection: close".
						_, _ = io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n\r\ntoo large")
						return
					}
					n, _ := io.Copy(io.Discard, req.Body)
					_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d", len(strconv.FormatInt(n, 10)), n)
				}
			}()
		}
	}()
	c := New(nil)
	url := "http://" + lis.Addr().String() + "/upload"
	small := func() (*fasthttp.Response, error) {
		return do(t, c, true, http.MethodPost, url, func(req *fasthttp.Request) { req.SetBodyString("small") })
	}
	upload := func(n int) (*fasthttp.Response, error) {
		return do(t, c, true, http.MethodPost, url, func(req *fasthttp.Request) { req.SetBodyStream(bytes.NewReader(make([]byte, n)), n) })
	}
	if resp, err := small(); err != nil || resp.StatusCode() != http.StatusOK {
		t.Fatalf("small upload: %v %v", resp, err)
	} else {
		_ = resp.CloseBodyStream()
	}
	for _, n := range []int{4 << 20, 16 << 20} {
		resp, err := upload(n)
		if err != nil || resp.StatusCode() != http.StatusRequestEntityTooLarge || string(body(t, resp)) != "too large" {
			t.Fatalf("%d-byte upload answered early: %v %v, want the app's 413", n, resp, err)
		}
		_ = resp.CloseBodyStream() // gives the connection back
		// The next request may meet the connection the app closed: it is
		// sent again on a new one, as nothing of it was sent.
		if resp, err := small(); err != nil || resp.StatusCode() != http.StatusOK {
			t.Fatalf("small upload after an early answer: %v %v", resp, err)
		} else {
			_ = resp.CloseBodyStream()
		}
	}
	if n := conns.Load(); n < 3 {
		t.Errorf("%d connections: the ones the app closed were used again", n)
	}
}
