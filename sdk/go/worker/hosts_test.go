package worker

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
)

const testKey = "k-3f9a"

// fakeBroker answers GetCredential with an API key (a bearer token) and the
// hosts and base URL a test sets: what an older broker, or a credential
// stored without hosts, would answer too.
type fakeBroker struct {
	brokerv1.UnimplementedCredentialBrokerServer
	allowed []string
	baseURL string
}

func (b *fakeBroker) GetCredential(_ context.Context, req *brokerv1.GetCredentialRequest) (*brokerv1.GetCredentialResponse, error) {
	return &brokerv1.GetCredentialResponse{ConnectionId: req.GetConnectionId(), Connector: "http", BaseUrl: b.baseURL, AllowedHosts: b.allowed,
		Placement: &credentialv1.Placement{Kind: credentialv1.PlacementKind_PLACEMENT_KIND_AUTHORIZATION_BEARER},
		Credential: &credentialv1.Credential{AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY,
			Material: &credentialv1.Credential_ApiKey{ApiKey: &credentialv1.ApiKey{Key: testKey}}}}, nil
}

func startFakeBroker(t *testing.T, b *fakeBroker) *Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	brokerv1.RegisterCredentialBrokerServer(srv, b)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	c, err := New(t.Context(), Options{Address: lis.Addr().String(), Token: "job-token"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// listener is a loopback server that counts the requests it gets and those
// that carried the key; /redirect?to= sends elsewhere.
type listener struct {
	*httptest.Server
	hits, withKey atomic.Int64
}

func newListener(t *testing.T) *listener {
	l := &listener{}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.hits.Add(1)
		if strings.Contains(r.Header.Get("Authorization"), testKey) {
			l.withKey.Add(1)
		}
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
		}
	}))
	t.Cleanup(l.Close)
	return l
}

// The transport sends the credential only to the connection's hosts; to
// anything else it sends nothing and returns a HostNotAllowedError. Without
// hosts from the broker it keeps to the base URL's scheme and host; with
// neither it sends nowhere.
func TestTransportKeepsToTheConnectionsHosts(t *testing.T) {
	app, other := newListener(t), newListener(t)
	appHost := strings.TrimPrefix(app.URL, "http://")
	_, appPort, _ := net.SplitHostPort(appHost)
	for _, tc := range []struct {
		name    string
		broker  fakeBroker
		url     string
		allowed bool
	}{
		{"the app's host", fakeBroker{allowed: []string{appHost}}, app.URL + "/me", true},
		{"the app's host by another name", fakeBroker{allowed: []string{"localhost:" + appPort}}, app.URL + "/me", false},
		{"another port of the app's host", fakeBroker{allowed: []string{appHost}}, other.URL + "/me", false},
		{"a host on any port", fakeBroker{allowed: []string{"127.0.0.1"}}, other.URL + "/me", true},
		{"user information", fakeBroker{allowed: []string{appHost}}, "http://x@" + appHost + "/me", false},
		{"no hosts: the base URL's host", fakeBroker{baseURL: app.URL + "/api"}, app.URL + "/me", true},
		{"no hosts: another host than the base URL's", fakeBroker{baseURL: app.URL}, other.URL + "/me", false},
		{"no hosts: another scheme than the base URL's", fakeBroker{baseURL: "https://" + appHost}, app.URL + "/me", false},
		{"neither hosts nor a base URL", fakeBroker{}, app.URL + "/me", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startFakeBroker(t, &tc.broker)
			appBefore, otherBefore := app.hits.Load(), other.hits.Load()
			resp, err := c.HTTPClient("c1").Get(tc.url)
			sent := app.hits.Load() - appBefore + other.hits.Load() - otherBefore
			if tc.allowed {
				if err != nil || resp.StatusCode != http.StatusOK || sent != 1 {
					t.Fatalf("GET %s: %v, %d requests arrived; want it sent", tc.url, err, sent)
				}
				resp.Body.Close()
				return
			}
			var na *HostNotAllowedError
			if !errors.As(err, &na) || na.ConnectionID != "c1" {
				t.Fatalf("GET %s: %v, want a HostNotAllowedError", tc.url, err)
			}
			if sent != 0 {
				t.Errorf("GET %s was refused, but %d requests arrived", tc.url, sent)
			}
			t.Log(err)
		})
	}
}

// A redirect to another host does not take the credential there: HTTPClient
// returns the redirect, and an http.Client of the worker's own that follows
// it gets a HostNotAllowedError. A redirect to the same host is followed.
func TestRedirectsKeepTheCredentialHome(t *testing.T) {
	app, other := newListener(t), newListener(t)
	c := startFakeBroker(t, &fakeBroker{allowed: []string{strings.TrimPrefix(app.URL, "http://")}})

	resp, err := c.HTTPClient("c1").Get(app.URL + "/redirect?to=" + other.URL + "/steal")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || other.hits.Load() != 0 {
		t.Errorf("redirect to another host: %d, the other host got %d requests; want 302 returned and none", resp.StatusCode, other.hits.Load())
	}

	own := &http.Client{Transport: c.Transport("c1", nil)}
	_, err = own.Get(app.URL + "/redirect?to=" + other.URL + "/steal")
	var na *HostNotAllowedError
	if !errors.As(err, &na) || other.hits.Load() != 0 {
		t.Errorf("a client following the redirect: %v, the other host got %d requests; want a HostNotAllowedError and none", err, other.hits.Load())
	}

	before := app.withKey.Load()
	resp, err = c.HTTPClient("c1").Get(app.URL + "/redirect?to=/me")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || app.withKey.Load()-before != 2 {
		t.Errorf("redirect on the same host: %d, %d requests with the key; want 200 and 2", resp.StatusCode, app.withKey.Load()-before)
	}
}
