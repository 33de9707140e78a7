package upstream

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/integrationhub/connections/internal/egress"
)

// request builds a request bounded by a deadline, as the proxy's are.
func request(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	r, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRoundTrip(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, "/here", http.StatusFound)
		case "/echo":
			w.Header().Set("X-Seen-Ua", r.Header.Get("User-Agent"))
			w.Header().Add("X-Multi", "a")
			w.Header().Add("X-Multi", "b")
			b, _ := io.ReadAll(r.Body)
			_, _ = w.Write(b)
		case "/stream":
			// A body of unknown length, written in chunks.
			for range 64 {
				_, _ = w.Write(make([]byte, 64<<10))
				w.(http.Flusher).Flush()
			}
		case "/slow":
			// Answer only once the caller has given up (bounded, should it not).
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
	}))
	defer app.Close()
	rt := New(nil).For(true)

	t.Run("body and headers both ways", func(t *testing.T) {
		// A body of unknown length (ContentLength 0 with a body) goes out chunked.
		r := request(t, http.MethodPost, app.URL+"/echo?q=1", io.MultiReader(strings.NewReader("hello "), strings.NewReader("app")))
		r.Header.Set("User-Agent", "worker/1")
		resp, err := rt.RoundTrip(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "hello app" || resp.StatusCode != 200 || resp.ContentLength != int64(len(b)) {
			t.Errorf("answer %d %q (length %d)", resp.StatusCode, b, resp.ContentLength)
		}
		if got := resp.Header.Values("X-Multi"); len(got) != 2 {
			t.Errorf("X-Multi: %q, want both values", got)
		}
		if got := resp.Header.Get("X-Seen-Ua"); got != "worker/1" {
			t.Errorf("the app saw User-Agent %q, want the worker's", got)
		}
	})
	t.Run("redirect is the answer", func(t *testing.T) {
		resp, err := rt.RoundTrip(request(t, http.MethodGet, app.URL+"/away", nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/here" {
			t.Errorf("redirect: %d %q, want 302 returned as it is", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("HEAD has no body", func(t *testing.T) {
		resp, err := rt.RoundTrip(request(t, http.MethodHead, app.URL+"/echo", nil))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) != 0 {
			t.Errorf("HEAD: %d with %d bytes", resp.StatusCode, len(b))
		}
	})
	t.Run("a large answer is streamed, not held", func(t *testing.T) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		resp, err := rt.RoundTrip(request(t, http.MethodGet, app.URL+"/stream", nil))
		if err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		// Do returned before the 4 MiB body was read: it is not in memory.
		if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 1<<20 {
			t.Errorf("the heap grew by %d bytes before the body was read", grown)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != 64*64<<10 || resp.ContentLength != -1 {
			t.Errorf("streamed %d bytes (length %d): %v", n, resp.ContentLength, err)
		}
	})
	t.Run("the deadline bounds the exchange", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		r, _ := http.NewRequestWithContext(ctx, http.MethodGet, app.URL+"/slow", nil)
		_, err := rt.RoundTrip(r)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("slow app: %v, want DeadlineExceeded", err)
		}
	})
}

// The public round tripper refuses an app on loopback when it dials; the
// other one verifies TLS with the roots it was given.
func TestGuardAndTLS(t *testing.T) {
	app := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer app.Close()
	if _, err := New(nil).For(false).RoundTrip(request(t, http.MethodGet, app.URL, nil)); !errors.Is(err, egress.ErrPrivateAddress) {
		t.Errorf("public round tripper to loopback: %v, want ErrPrivateAddress", err)
	}
	if _, err := New(x509.NewCertPool()).For(true).RoundTrip(request(t, http.MethodGet, app.URL, nil)); err == nil {
		t.Error("an app whose certificate the roots do not sign was reached")
	}
	roots := x509.NewCertPool()
	roots.AddCert(app.Certificate())
	resp, err := New(roots).For(true).RoundTrip(request(t, http.MethodGet, app.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Errorf("TLS answer %q", b)
	}
}
