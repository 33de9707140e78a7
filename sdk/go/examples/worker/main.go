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
// The credential goes only to the connection's hosts: a URL elsewhere is
// refused before anything is sent.
//
// It exits 0 on a 2xx answer, 1 on any other answer, 2 when the connection
// cannot be used (not active, not covered by the job token, runtime user
// not connected, the URL not one of its hosts), 3 when the broker cannot be
// reached and 4 when the app cannot be reached (or does not answer in 30 s),
// directly or through the proxy.
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

	"google.golang.org/grpc/status"

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
		elsewhere *worker.HostNotAllowedError
		badToken  *worker.TokenError
		down      *worker.UnavailableError
		appDown   *worker.AppUnavailableError
	)
	switch {
	case errors.Is(err, worker.ErrNoProxy):
		fmt.Fprintln(os.Stderr, err)
		return 2
	case errors.As(err, &notActive), errors.As(err, &missing), errors.As(err, &uncovered), errors.As(err, &elsewhere), errors.As(err, &badToken):
		fmt.Fprintln(os.Stderr, err)
		return 2
	case errors.As(err, &appDown):
		fmt.Fprintln(os.Stderr, err, "(the app could not be reached)")
		return 4
	case errors.As(err, &down):
		fmt.Fprintln(os.Stderr, err, "(retry later)")
		return 3
	case isBrokerAnswer(err):
		// The broker refused the call for another reason (e.g. a malformed
		// connection id).
		fmt.Fprintln(os.Stderr, err)
		return 2
	case err != nil:
		// Not the broker's: the request to the app failed.
		fmt.Fprintln(os.Stderr, err, "(the app could not be reached)")
		return 4
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

// isBrokerAnswer reports whether err is an answer of the broker's (a gRPC
// status) that the SDK has no type for.
func isBrokerAnswer(err error) bool {
	_, ok := status.FromError(err)
	return err != nil && ok
}

func newRequest(ctx context.Context, url string) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
}
