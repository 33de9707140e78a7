package grpcserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// ServeHTTP lets a request in flight when ctx ends finish (within the
// grace), then returns nil.
func TestServeHTTPGraceful(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = w.Write([]byte("done"))
	})
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- ServeHTTP(ctx, l, h, 10*time.Second) }()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + l.Addr().String() + "/")
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	cancel()
	close(release)
	if body := <-got; body != "done" {
		t.Errorf("request in flight at shutdown: %q, want it answered", body)
	}
	if err := <-served; err != nil {
		t.Errorf("ServeHTTP: %v", err)
	}
}
