package e2e

import (
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/loopback"
)

// TestProxyThroughput measures, in one run, 16 concurrent callers sending
// GETs to a local app directly (with the key put on by hand) and through the
// broker's egress proxy: requests per second and p50/p99 latency. It runs
// only with INTEGRATIONHUB_BENCH_PROXY=1 (BENCHMARKS.md):
//
//	INTEGRATIONHUB_BENCH_PROXY=1 go test -count=1 -run TestProxyThroughput -v ./e2e/
func TestProxyThroughput(t *testing.T) {
	if os.Getenv("INTEGRATIONHUB_BENCH_PROXY") == "" {
		t.Skip("a load run: set INTEGRATIONHUB_BENCH_PROXY=1")
	}
	e := newOAuthEnv(t)
	addrs, err := loopback.FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	proxyAddr := addrs[0]
	// The broker logs at info level, as in production (the e2e stack's
	// default is debug).
	brokerProc, err := stack.StartBroker(t.Context(), devstack.Extra{LogName: "broker-proxy-bench.log",
		Args: []string{"-connections-addr=" + e.svc.Addr, "-proxy-listen=" + proxyAddr, "-log-level=info"}})
	if err != nil {
		t.Fatal(err)
	}
	br := brokerv1.NewCredentialBrokerClient(dial(t, brokerProc.Addr))
	c, err := e.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-oauth", Name: "bench",
		Connector: "acme_hdr", Environment: prod, AuthType: key, Secret: apiKey(placedKey)})
	if err != nil {
		t.Fatal(err)
	}
	id := c.GetConnection().GetId()
	tok := tokenOf(job(t, e.cs, br, id))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	run := func(name string, req func() *http.Request) {
		const callers, each = 16, 400
		lat := make([]time.Duration, 0, callers*each)
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for range callers {
			wg.Go(func() {
				mine := make([]time.Duration, 0, each)
				for range each {
					t0 := time.Now()
					resp, err := client.Do(req())
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Errorf("%s: %d", name, resp.StatusCode)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		slices.Sort(lat)
		if len(lat) == 0 {
			t.Fatalf("%s: no successful request", name)
		}
		t.Logf("%-7s %8.0f req/s  p50 %6.3f ms  p99 %6.3f ms", name, float64(len(lat))/elapsed.Seconds(),
			float64(lat[len(lat)/2].Microseconds())/1000, float64(lat[len(lat)*99/100].Microseconds())/1000)
	}
	direct := func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, e.placed.URL+"/h", nil)
		r.Header.Set("X-Api-Key", "Token "+placedKey)
		return r
	}
	proxied := func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://"+proxyAddr+"/"+id+"/h", nil)
		r.Header.Set("Proxy-Authorization", "Bearer "+tok)
		return r
	}
	for range 2 { // warm both paths, then measure each twice, alternating
		run("warmup", proxied)
	}
	for range 2 {
		run("direct", direct)
		run("proxy", proxied)
	}
}
