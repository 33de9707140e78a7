package api_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/metadata"

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
	proxy := httptest.NewServer(c.workers.Proxy(api.ProxyConfig{Metrics: reg}))
	t.Cleanup(proxy.Close)
	md, _ := metadata.FromOutgoingContext(c.job(t))
	send := func(tok string) int {
		r, _ := http.NewRequest(http.MethodGet, proxy.URL+"/"+id+"/secret-path?q=secret-query", nil)
		if tok != "" {
			r.Header.Set("Proxy-Authorization", tok)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(md.Get("authorization")[0]); code != http.StatusOK {
		t.Fatalf("proxied request: %d", code)
	}
	if code := send(""); code != http.StatusProxyAuthRequired {
		t.Fatalf("request without a job token: %d, want 407", code)
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
