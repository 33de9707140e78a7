package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The proxy's JSON refusals become the errors a gRPC call would give.
func TestProxyRefusal(t *testing.T) {
	for _, tc := range []struct {
		code, body string
		check      func(error) bool
	}{
		{"Unauthenticated", `{"code":"Unauthenticated","error":"bad token"}`,
			func(err error) bool { var e *TokenError; return errors.As(err, &e) }},
		{"PermissionDenied", `{"code":"PermissionDenied","error":"not covered"}`,
			func(err error) bool { var e *NotCoveredError; return errors.As(err, &e) && e.ConnectionID == "c1" }},
		{"PermissionDenied", `{"code":"PermissionDenied","error":"not a host","reason":"HOST_NOT_ALLOWED","metadata":{"host":"evil.test"}}`,
			func(err error) bool { var e *HostNotAllowedError; return errors.As(err, &e) && e.Host == "evil.test" }},
		{"FailedPrecondition", `{"code":"FailedPrecondition","error":"invalid","reason":"CONNECTION_NOT_ACTIVE","metadata":{"connection_id":"c1","status":"invalid"}}`,
			func(err error) bool {
				var e *ConnectionNotActiveError
				return errors.As(err, &e) && e.Status == "invalid"
			}},
		{"FailedPrecondition", `{"code":"FailedPrecondition","error":"no","reason":"RUNTIME_USER_CONNECTION_MISSING","metadata":{"runtime_user":"alice"}}`,
			func(err error) bool {
				var e *RuntimeUserConnectionMissingError
				return errors.As(err, &e) && e.RuntimeUser == "alice"
			}},
		{"Unavailable", `{"code":"Unavailable","error":"the connection service is unavailable; retry later"}`,
			func(err error) bool { var e *UnavailableError; return errors.As(err, &e) }},
		// The app failed, not the broker.
		{"Unavailable", `{"code":"Unavailable","error":"the app could not be reached","reason":"APP_UNAVAILABLE"}`,
			func(err error) bool {
				var e *AppUnavailableError
				var b *UnavailableError
				return errors.As(err, &e) && !e.Timeout && e.ConnectionID == "c1" && !errors.As(err, &b)
			}},
		{"DeadlineExceeded", `{"code":"DeadlineExceeded","error":"the app did not answer in time","reason":"APP_TIMEOUT"}`,
			func(err error) bool { var e *AppUnavailableError; return errors.As(err, &e) && e.Timeout }},
		{"DeadlineExceeded", `not json`,
			func(err error) bool { var e *UnavailableError; return errors.As(err, &e) }},
	} {
		if err := refusal("c1", tc.code, strings.NewReader(tc.body)); !tc.check(err) {
			t.Errorf("%s %s: got %T %v", tc.code, tc.body, err, err)
		}
	}
}

// A request with a deadline tells the proxy how long the worker waits (the
// broker cannot see the worker give up); one without names no timeout.
func TestProxyTimeoutHeader(t *testing.T) {
	got := make(chan string, 2)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := r.Header[HeaderTimeout]
		got <- fmt.Sprint(ok, v)
	}))
	t.Cleanup(proxy.Close)
	c, err := New(t.Context(), Options{Address: "127.0.0.1:1", Token: "job-token", ProxyAddress: strings.TrimPrefix(proxy.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	hc := c.ProxyHTTPClient("c1")

	ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/v1/me", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	v := <-got
	var ms int64
	if _, err := fmt.Sscanf(v, "true [%dms]", &ms); err != nil || ms <= 0 || ms > time.Hour.Milliseconds()+1 {
		t.Errorf("with a one-hour deadline: header %s", v)
	}

	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, "/v1/me", nil)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v := <-got; v != "false []" {
		t.Errorf("without a deadline: header %s", v)
	}
}

// A worker that gives up (its context cancelled or past its deadline) gets
// its own context's error, not a broker outage.
func TestProxyCallerGivesUp(t *testing.T) {
	proxy := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(proxy.Close)
	c, err := New(t.Context(), Options{Address: "127.0.0.1:1", Token: "job-token", ProxyAddress: strings.TrimPrefix(proxy.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/v1/me", nil)
	_, err = c.ProxyHTTPClient("c1").Do(req)
	var down *UnavailableError
	if !errors.Is(err, context.Canceled) || errors.As(err, &down) {
		t.Errorf("a cancelled request: %v, want context.Canceled, not UnavailableError", err)
	}
}
