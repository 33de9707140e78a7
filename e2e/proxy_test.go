package e2e

import (
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/loopback"
	"github.com/integrationhub/connections/sdk/go/worker"
)

// The broker's egress proxy, against real local HTTP and HTTPS apps: each
// auth type is put on the request as its connector says (the worker holds
// no secret); an expired-early OAuth token is refreshed and the request sent
// again; other hosts, private addresses the connector does not allow and
// redirects are refused or not followed; large bodies stream; the secret
// appears in no answer, log or access record.
func TestBrokerProxy(t *testing.T) {
	e := newOAuthEnv(t)
	addrs, err := loopback.FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	proxyAddr := addrs[0]
	caFile := filepath.Join(t.TempDir(), "app-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.placedTLS.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	logName := "broker-proxy.log"
	brokerProc, err := stack.StartBroker(t.Context(), devstack.Extra{LogName: logName,
		Args: []string{"-connections-addr=" + e.svc.Addr, "-proxy-listen=" + proxyAddr, "-proxy-ca-file=" + caFile, "-instance-id=proxy"}})
	if err != nil {
		t.Fatal(err)
	}
	br := brokerv1.NewCredentialBrokerClient(dial(t, brokerProc.Addr))
	create := func(connector string, at credentialv1.AuthType, secret string, inst *credentialv1.AppInstance) string {
		t.Helper()
		req := &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-oauth", Name: connector, Connector: connector, Environment: prod,
			AuthType: at, Instance: inst}
		if secret != "" {
			req.Secret = apiKey(secret)
		}
		c, err := e.cs.CreateConnection(ctxT(t), req)
		if err != nil {
			t.Fatalf("create %s: %v", connector, err)
		}
		return c.GetConnection().GetId()
	}
	// An app on loopback that a generic HTTP connection points at: the
	// generic connector does not allow private networks.
	var internalHits atomic.Int64
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { internalHits.Add(1) }))
	t.Cleanup(internal.Close)
	hdr := create("acme_hdr", key, placedKey, nil)
	q := create("acme_q", key, placedKey, nil)
	tlsID := create("acme_tls", key, placedKey, nil)
	bearer := create("acme_key", key, goodKey, nil)
	generic := create("http", key, placedKey, &credentialv1.AppInstance{BaseUrl: internal.URL})
	oauthID := e.create(t).GetId()
	e.authorize(t, oauthID)
	oauth1ID := e.authorizedOAuth1(t)
	tok := tokenOf(job(t, e.cs, br, hdr, q, tlsID, bearer, generic, oauthID, oauth1ID))

	noRedirects := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(method, id, path string, body io.Reader, header map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+proxyAddr+"/"+id+path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Proxy-Authorization", "Bearer "+tok)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	get := func(id, path string) (int, string) {
		resp, body := send(http.MethodGet, id, path, nil, nil)
		return resp.StatusCode, body
	}

	t.Run("each auth type injected", func(t *testing.T) {
		for _, tc := range []struct{ name, id, path string }{
			{"named header", hdr, "/h"},
			{"query parameter", q, "/q"},
			{"named header over TLS (the proxy's CA file)", tlsID, "/h"},
			{"API key as a bearer token", bearer, "/me"},
			{"OAuth 2.0 access token", oauthID, "/userinfo"},
			{"OAuth 1.0a, signed in place", oauth1ID, "/me?fields=all&filter=open%20cards"},
		} {
			if code, body := get(tc.id, tc.path); code != http.StatusOK {
				t.Errorf("%s: %d %s", tc.name, code, body)
			}
		}
	})

	t.Run("OAuth 2.0 token refused: refreshed once and sent again", func(t *testing.T) {
		before := e.app.Refreshes()
		e.app.RevokeAccessTokens()
		if code, body := get(oauthID, "/userinfo"); code != http.StatusOK {
			t.Errorf("after the app dropped the token: %d %s", code, body)
		}
		if got := e.app.Refreshes() - before; got != 1 {
			t.Errorf("%d refreshes, want 1", got)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { internalHits.Add(1000) }))
		t.Cleanup(other.Close)
		for _, tc := range []struct {
			name   string
			id     string
			path   string
			header map[string]string
			token  string
			want   int
		}{
			{"no job token", hdr, "/h", nil, "-", http.StatusProxyAuthRequired},
			{"a connection the job does not cover", "7d6c5b4a-3333-4000-8000-0000000000dd", "/h", nil, "", http.StatusForbidden},
			{"another host named as the base URL", hdr, "/h", map[string]string{"X-Integrationhub-Base-Url": "https://attacker.test"}, "", http.StatusForbidden},
			{"another loopback port as the base URL", hdr, "/h", map[string]string{"X-Integrationhub-Base-Url": other.URL}, "", http.StatusForbidden},
			{"an IP literal elsewhere", hdr, "/h", map[string]string{"X-Integrationhub-Base-Url": "http://169.254.169.254"}, "", http.StatusForbidden},
			{"a generic connection pointing at loopback", generic, "/", nil, "", http.StatusForbidden},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodGet, "http://"+proxyAddr+"/"+tc.id+tc.path, nil)
				if tc.token != "-" {
					req.Header.Set("Proxy-Authorization", "Bearer "+tok)
				}
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				resp, err := noRedirects.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.want || strings.Contains(string(b), placedKey) {
					t.Errorf("%d %s, want %d", resp.StatusCode, b, tc.want)
				}
				if tc.id == generic && !strings.Contains(string(b), "private network") {
					t.Errorf("the refusal does not say why: %s", b)
				}
			})
		}
		if n := internalHits.Load(); n != 0 {
			t.Errorf("the refused requests reached an app %d times", n)
		}
	})

	t.Run("through the Go SDK: the worker writes the app's URL, the broker puts the key on", func(t *testing.T) {
		c, err := worker.New(t.Context(), worker.Options{Address: brokerProc.Addr, Token: tok, ProxyAddress: proxyAddr})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, tc := range []struct{ name, id, url string }{
			{"the connection's base URL (no host in the request)", hdr, "/h"},
			{"the app's URL written out", hdr, e.placed.URL + "/h"},
			{"OAuth 1.0a, signed in place", oauth1ID, "/me?fields=all&filter=open%20cards"},
		} {
			resp, err := c.ProxyHTTPClient(tc.id).Get(tc.url)
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %d", tc.name, resp.StatusCode)
			}
		}
		// The broker's refusals are the SDK's typed errors, as for its gRPC calls.
		_, err = c.ProxyHTTPClient("7d6c5b4a-3333-4000-8000-0000000000dd").Get("/h")
		var notCovered *worker.NotCoveredError
		if !errors.As(err, &notCovered) {
			t.Errorf("a connection the job does not cover: %v, want a NotCoveredError", err)
		}
		bad, err := worker.New(t.Context(), worker.Options{Address: brokerProc.Addr, Token: "not-a-token", ProxyAddress: proxyAddr})
		if err != nil {
			t.Fatal(err)
		}
		defer bad.Close()
		_, err = bad.ProxyHTTPClient(hdr).Get("/h")
		var tokErr *worker.TokenError
		if !errors.As(err, &tokErr) {
			t.Errorf("a bad job token: %v, want a TokenError", err)
		}
		noProxy, err := worker.New(t.Context(), worker.Options{Address: brokerProc.Addr, Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		defer noProxy.Close()
		if _, err := noProxy.ProxyHTTPClient(hdr).Get("/h"); !errors.Is(err, worker.ErrNoProxy) {
			t.Errorf("without a proxy address: %v, want ErrNoProxy", err)
		}
	})

	t.Run("redirects are passed back, not followed", func(t *testing.T) {
		var stolen atomic.Int64
		thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stolen.Add(1) }))
		t.Cleanup(thief.Close)
		resp, _ := send(http.MethodGet, hdr, "/redirect?to="+thief.URL+"/steal", nil, nil)
		if resp.StatusCode != http.StatusFound || stolen.Load() != 0 {
			t.Errorf("%d, thief hit %d times; want 302 passed back and no hit", resp.StatusCode, stolen.Load())
		}
	})

	t.Run("the credential is stripped from answers", func(t *testing.T) {
		resp, body := send(http.MethodGet, hdr, "/echo", nil, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Echo") != "" || strings.Contains(body, placedKey) {
			t.Errorf("%d, X-Echo %q", resp.StatusCode, resp.Header.Get("X-Echo"))
		}
		if got := resp.Header.Get("X-Integrationhub-Error"); got != "" {
			t.Errorf("the app's X-Integrationhub-Error %q reached the worker as if the broker had refused", got)
		}
	})

	t.Run("large bodies stream both ways", func(t *testing.T) {
		const up, down = 8 << 20, 16 << 20
		resp, body := send(http.MethodPost, hdr, "/upload", io.LimitReader(zeros{}, up), map[string]string{"Content-Type": "application/octet-stream"})
		if resp.StatusCode != http.StatusOK || body != fmt.Sprint(up) {
			t.Errorf("upload: %d %q, want %d bytes received", resp.StatusCode, body, up)
		}
		resp, body = send(http.MethodGet, hdr, fmt.Sprintf("/download?n=%d", down), nil, nil)
		if resp.StatusCode != http.StatusOK || len(body) != down {
			t.Errorf("download: %d, %d bytes, want %d", resp.StatusCode, len(body), down)
		}
	})

	t.Run("access record, and the secret in no log", func(t *testing.T) {
		waitFor(t, 15*time.Second, "proxied requests in the access record", func() bool {
			resp, err := e.cs.ListAccessEvents(ctxT(t), &connectionsv1.ListAccessEventsRequest{WorkspaceId: "ws-oauth", ConnectionId: hdr, PageSize: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range resp.GetEvents() {
				if ev.GetOperation() == "ProxyRequest" && strings.HasPrefix(ev.GetReason(), "GET 127.0.0.1:") && strings.HasSuffix(ev.GetReason(), "-> 200") {
					if strings.Contains(ev.GetReason(), "/") {
						t.Errorf("the access record holds a path: %q", ev.GetReason())
					}
					return true
				}
			}
			return false
		})
		b, err := os.ReadFile(filepath.Join(stack.Dir, logName))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 || strings.Contains(string(b), placedKey) || strings.Contains(string(b), goodKey) {
			t.Errorf("the proxy's broker log is empty or holds a secret (%d bytes)", len(b))
		}
	})
}
