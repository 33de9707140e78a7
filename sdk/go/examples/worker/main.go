// Command worker is a minimal recipe worker: it calls an app with a
// connection's credential through the credential broker, never holding more
// of the secret than the request needs (OAuth 1.0a: nothing at all).
//
//	INTEGRATIONHUB_BROKER_ADDR=127.0.0.1:7443 INTEGRATIONHUB_JOB_TOKEN=<job token> \
//	  go run ./examples/worker -connection <id> -url https://api.example.com/v1/me
//
// With -proxy the request goes through the broker's egress proxy
// (INTEGRATIONHUB_PROXY_ADDR), which puts the credential on: the worker
// holds no secret at all.
//
// It exits 0 on a 2xx answer, 1 on any other answer, 2 when the connection
// cannot be used (not active, not covered by the job token, runtime user
// not connected) and 3 when the broker cannot be reached.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/integrationhub/connections/sdk/go/worker"
)

func main() {
	connection := flag.String("connection", "", "connection id")
	url := flag.String("url", "", "URL to GET with the connection's credential")
	viaProxy := flag.Bool("proxy", false, "send the request through the broker's egress proxy ("+worker.EnvProxyAddr+")")
	flag.Parse()
	if *connection == "" || *url == "" {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, *connection, *url, *viaProxy))
}

func run(ctx context.Context, connection, url string, viaProxy bool) int {
	c, err := worker.New(ctx, worker.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := newRequest(ctx, url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	client := c.HTTPClient(connection)
	if viaProxy {
		client = c.ProxyHTTPClient(connection)
	}
	resp, err := client.Do(req)
	var (
		notActive *worker.ConnectionNotActiveError
		missing   *worker.RuntimeUserConnectionMissingError
		uncovered *worker.NotCoveredError
		badToken  *worker.TokenError
		down      *worker.UnavailableError
	)
	switch {
	case errors.Is(err, worker.ErrNoProxy):
		fmt.Fprintln(os.Stderr, err)
		return 2
	case errors.As(err, &notActive), errors.As(err, &missing), errors.As(err, &uncovered), errors.As(err, &badToken):
		fmt.Fprintln(os.Stderr, err)
		return 2
	case errors.As(err, &down):
		fmt.Fprintln(os.Stderr, err, "(retry later)")
		return 3
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
	_, _ = io.Copy(os.Stdout, io.LimitReader(resp.Body, 4096))
	fmt.Println()
	if resp.StatusCode/100 != 2 {
		return 1
	}
	return 0
}

func newRequest(ctx context.Context, url string) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
}
