package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/sdk/go/worker"
)

const placedKey = "placed-key-4f1c"

// startPlacedKeyApp is an app that takes its key only where its catalog
// entry says: "X-Api-Key: Token <key>" on /h, "?api_key=<key>" on /q; it is
// served in plain HTTP and over TLS. /echo answers with the key it got in a
// header, /redirect sends elsewhere, /upload counts the bytes it gets and
// /download sends ?n= bytes.
func startPlacedKeyApp(t *testing.T) (*httptest.Server, *httptest.Server) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headerOK := r.Header.Get("X-Api-Key") == "Token "+placedKey && r.Header.Get("Authorization") == ""
		switch r.URL.Path {
		case "/h":
			if !headerOK {
				http.Error(w, "bad key", http.StatusUnauthorized)
				return
			}
		case "/q":
			if r.URL.Query().Get("api_key") != placedKey || r.Header.Get("Authorization") != "" {
				http.Error(w, "bad key", http.StatusUnauthorized)
				return
			}
		case "/echo":
			w.Header().Set("X-Echo", r.Header.Get("X-Api-Key"))
			// An app speaking in the broker's headers, which the proxy drops.
			w.Header().Set("X-Integrationhub-Error", "PermissionDenied")
		case "/redirect":
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
			return
		case "/upload":
			n, _ := io.Copy(io.Discard, r.Body)
			_, _ = fmt.Fprint(w, n)
			return
		case "/download":
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			_, _ = io.CopyN(w, zeros{}, int64(n))
			return
		default:
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, `{"login":"svc"}`)
	})
	plain, tlsServer := httptest.NewServer(h), httptest.NewTLSServer(h)
	t.Cleanup(plain.Close)
	t.Cleanup(tlsServer.Close)
	return plain, tlsServer
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

// tokenOf is the raw job token a job context carries.
func tokenOf(ctx context.Context) string {
	md, _ := metadata.FromOutgoingContext(ctx)
	return strings.TrimPrefix(md.Get("authorization")[0], "Bearer ")
}

// The Go worker SDK against the real broker and connection service: the
// credential goes where the connector's catalog entry says (a named header
// with a prefix, a query parameter, a bearer token; OAuth 1.0a signed by the
// broker); an access token the app stopped taking is reported and the
// request retried once with the refreshed one; refusals arrive as typed
// errors; a rotated job token file is picked up.
func TestWorkerSDK(t *testing.T) {
	e := newOAuthEnv(t)
	brokerProc := refreshBrokers(t, e, 1)[0]
	br := brokerv1.NewCredentialBrokerClient(dial(t, brokerProc.Addr))
	create := func(connector string, at credentialv1.AuthType, key string) string {
		t.Helper()
		req := &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-oauth", Name: connector, Connector: connector, Environment: prod, AuthType: at}
		if key != "" {
			req.Secret = apiKey(key)
		}
		c, err := e.cs.CreateConnection(ctxT(t), req)
		if err != nil {
			t.Fatalf("create %s: %v", connector, err)
		}
		return c.GetConnection().GetId()
	}
	hdr := create("acme_hdr", key, placedKey)
	q := create("acme_q", key, placedKey)
	oauthID := e.create(t).GetId()
	e.authorize(t, oauthID)
	oauth1ID := e.authorizedOAuth1(t)
	// A generic HTTP connection to an app that is down: a port nothing
	// listens on (any more).
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + down.Addr().String()
	down.Close()
	dc, err := e.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-oauth", Name: "down", Connector: "http",
		Environment: prod, AuthType: key, Secret: apiKey(placedKey), Instance: &credentialv1.AppInstance{BaseUrl: downURL}})
	if err != nil {
		t.Fatalf("create a connection to an app that is down: %v", err)
	}
	appDown := dc.GetConnection().GetId()
	tok := tokenOf(job(t, e.cs, br, hdr, q, oauthID, oauth1ID, appDown))
	// A listener that is not any connection's app: it must get nothing.
	var stolen atomic.Int64
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stolen.Add(1) }))
	t.Cleanup(thief.Close)

	tokenFile := filepath.Join(t.TempDir(), "job-token")
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := worker.New(t.Context(), worker.Options{Address: brokerProc.Addr, TokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	get := func(t *testing.T, id, url string) int {
		t.Helper()
		resp, err := c.HTTPClient(id).Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	t.Run("placements", func(t *testing.T) {
		if code := get(t, hdr, e.placed.URL+"/h"); code != http.StatusOK {
			t.Errorf("key in a named header: app answered %d", code)
		}
		if code := get(t, q, e.placed.URL+"/q"); code != http.StatusOK {
			t.Errorf("key in a query parameter: app answered %d", code)
		}
		cr, err := c.Credential(t.Context(), hdr)
		if err != nil {
			t.Fatal(err)
		}
		if p := cr.Placement; p.GetKind() != credentialv1.PlacementKind_PLACEMENT_KIND_HEADER || p.GetName() != "X-Api-Key" || p.GetPrefix() != "Token " {
			t.Errorf("placement %v, want the catalog's header", p)
		}
		if strings.Contains(cr.String(), placedKey) {
			t.Error("Credential.String shows the key")
		}
	})

	t.Run("OAuth 2.0: refused token reported, request retried once", func(t *testing.T) {
		if code := get(t, oauthID, e.app.URL+"/userinfo"); code != http.StatusOK {
			t.Fatalf("bearer token: app answered %d", code)
		}
		before := e.app.Refreshes()
		e.app.RevokeAccessTokens()
		if code := get(t, oauthID, e.app.URL+"/userinfo"); code != http.StatusOK {
			t.Errorf("after the app dropped the access token: %d, want 200 from the retry with the refreshed one", code)
		}
		if got := e.app.Refreshes() - before; got != 1 {
			t.Errorf("%d refreshes, want 1", got)
		}
	})

	t.Run("OAuth 1.0a signed by the broker", func(t *testing.T) {
		if code := get(t, oauth1ID, e.app1.URL+"/me?fields=all"); code != http.StatusOK {
			t.Errorf("signed request: app answered %d", code)
		}
		if _, err := c.Credential(t.Context(), oauth1ID); err == nil {
			t.Error("an OAuth 1.0a credential was handed out")
		}
	})

	t.Run("a credential goes only to its connection's hosts", func(t *testing.T) {
		cr, err := c.Credential(t.Context(), hdr)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimPrefix(e.placed.URL, "http://"); !slices.Equal(cr.AllowedHosts, []string{want}) {
			t.Errorf("AllowedHosts %q, want [%q] from the broker", cr.AllowedHosts, want)
		}
		before := stolen.Load()
		var na *worker.HostNotAllowedError
		for _, id := range []string{hdr, q, oauthID, oauth1ID} {
			resp, err := c.HTTPClient(id).Get(thief.URL + "/v1/me")
			if err == nil {
				resp.Body.Close()
			}
			if !errors.As(err, &na) {
				t.Errorf("%s: GET another host: %v, want a HostNotAllowedError", id, err)
			}
		}
		if n := stolen.Load() - before; n != 0 {
			t.Errorf("another host got %d requests", n)
		}
	})

	t.Run("a redirect to another host does not take the credential", func(t *testing.T) {
		before := stolen.Load()
		resp, err := c.HTTPClient(hdr).Get(e.placed.URL + "/redirect?to=" + thief.URL + "/steal")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Errorf("HTTPClient: %d, want the 302 returned", resp.StatusCode)
		}
		// A client of the worker's own follows redirects: the transport
		// refuses the hop.
		own := &http.Client{Transport: c.Transport(hdr, nil)}
		var na *worker.HostNotAllowedError
		if resp, err := own.Get(e.placed.URL + "/redirect?to=" + thief.URL + "/steal"); !errors.As(err, &na) {
			if err == nil {
				resp.Body.Close()
			}
			t.Errorf("an http.Client following the redirect: %v, want a HostNotAllowedError", err)
		}
		if n := stolen.Load() - before; n != 0 {
			t.Errorf("the other host got %d requests", n)
		}
		// On the app's own host a redirect is followed, the key on.
		if resp, err := c.HTTPClient(hdr).Get(e.placed.URL + "/redirect?to=/h"); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("redirect on the app's own host: %v %v, want 200 from /h", resp, err)
		} else {
			resp.Body.Close()
		}
	})

	t.Run("typed errors", func(t *testing.T) {
		var nc *worker.NotCoveredError
		if _, err := c.Credential(t.Context(), "7d6c5b4a-3333-4000-8000-0000000000aa"); !errors.As(err, &nc) {
			t.Errorf("a connection the token does not cover: %v, want NotCoveredError", err)
		}
		// The app, not the broker, is down: nothing to report, retry later.
		var appErr *worker.AppUnavailableError
		var brokerErr *worker.UnavailableError
		if _, err := c.HTTPClient(appDown).Get(downURL + "/v1/me"); !errors.As(err, &appErr) || errors.As(err, &brokerErr) || appErr.ConnectionID != appDown {
			t.Errorf("an app that cannot be reached: %v, want AppUnavailableError naming %s", err, appDown)
		}
		if _, err := e.cs.ReportConnectionStatus(ctxT(t), &connectionsv1.ReportConnectionStatusRequest{ConnectionId: q,
			Status: connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID, Reason: connectionsv1.StatusReason_STATUS_REASON_REVOKED,
			LastError: "revoked at the app"}); err != nil {
			t.Fatal(err)
		}
		c2, err := worker.New(t.Context(), worker.Options{Address: brokerProc.Addr, Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		var na *worker.ConnectionNotActiveError
		var last error
		waitFor(t, 20*time.Second, "the client to learn the connection is invalid (MaxAge 5 s)", func() bool {
			_, last = c2.Credential(t.Context(), q)
			return errors.As(last, &na)
		})
		if na.ConnectionID != q {
			t.Errorf("ConnectionNotActiveError names %q, want %s", na.ConnectionID, q)
		}
	})

	t.Run("one broker call for concurrent callers, then the cache", func(t *testing.T) {
		if _, err := e.cs.RegisterRecipe(ctxT(t), &connectionsv1.RegisterRecipeRequest{RecipeId: "r-sdk-sf", WorkspaceId: "ws-oauth",
			Environment: prod}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.cs.BindConnection(ctxT(t), &connectionsv1.BindConnectionRequest{RecipeId: "r-sdk-sf", Step: "s", ConnectionId: hdr}); err != nil {
			t.Fatal(err)
		}
		jobTok := tokenOf(jobFor(t, br, &brokerv1.MintJobTokenRequest{WorkspaceId: "ws-oauth", RecipeId: "r-sdk-sf", JobId: "job-sdk-sf"}))
		c4, err := worker.New(t.Context(), worker.Options{Address: brokerProc.Addr, Token: jobTok, MaxAge: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer c4.Close()
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if _, err := c4.Credential(t.Context(), hdr); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for range 20 {
			if _, err := c4.Credential(t.Context(), hdr); err != nil {
				t.Fatal(err)
			}
		}
		// A refused call after them is a marker: once it is in the access
		// record, so is everything the broker recorded before it.
		if _, err := c4.Credential(t.Context(), q); err == nil {
			t.Fatal("a connection the job does not cover was served")
		}
		waitFor(t, 15*time.Second, "the job's accesses to reach the access record", func() bool {
			resp, err := e.cs.ListAccessEvents(ctxT(t), &connectionsv1.ListAccessEventsRequest{WorkspaceId: "ws-oauth", JobId: "job-sdk-sf"})
			if err != nil {
				t.Fatal(err)
			}
			served, marker := int64(0), false
			for _, ev := range resp.GetEvents() {
				switch {
				case ev.GetOperation() == "GetCredential" && ev.GetRequestedConnectionId() == hdr:
					served += ev.GetCount()
				case ev.GetOperation() == "GetCredential" && ev.GetRequestedConnectionId() == q:
					marker = true
				}
			}
			if marker {
				t.Logf("GetCredential calls that reached the broker: %d", served)
				if served != 1 {
					t.Errorf("40 Credential calls made %d broker calls, want 1", served)
				}
			}
			return marker
		})
	})

	t.Run("example program", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "worker")
		build := exec.Command("go", "build", "-o", bin, "./examples/worker")
		build.Dir = filepath.Join("..", "sdk", "go") // tests run in e2e/
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build the example: %v\n%s", err, out)
		}
		run := func(id, url string) (int, string) {
			cmd := exec.Command(bin, "-connection", id, "-url", url)
			cmd.Env = append(os.Environ(), worker.EnvBrokerAddr+"="+brokerProc.Addr, worker.EnvJobToken+"="+tok)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return exit.ExitCode(), string(out)
			} else if err != nil {
				t.Fatal(err)
			}
			return 0, string(out)
		}
		if code, out := run(hdr, e.placed.URL+"/h"); code != 0 || !strings.Contains(out, "200 OK") {
			t.Errorf("example on a working connection: exit %d, %s", code, out)
		}
		if code, out := run("7d6c5b4a-3333-4000-8000-0000000000aa", e.placed.URL+"/h"); code != 2 {
			t.Errorf("example on a connection the job does not cover: exit %d, want 2; %s", code, out)
		}
		if code, out := run(hdr, e.placed.URL+"/q"); code != 1 {
			t.Errorf("example when the app refuses: exit %d, want 1; %s", code, out)
		}
		before := stolen.Load()
		if code, out := run(hdr, thief.URL+"/v1/me"); code != 2 || stolen.Load() != before {
			t.Errorf("example sending to another host: exit %d, that host got %d requests; want 2 and none; %s", code, stolen.Load()-before, out)
		}
		if code, out := run(appDown, downURL+"/v1/me"); code != 4 {
			t.Errorf("example when the app cannot be reached: exit %d, want 4; %s", code, out)
		}
		if code, out := run(hdr, "http://"+down.Addr().String()+"/v1/me"); code != 2 {
			t.Errorf("example sending another connection's host: exit %d, want 2; %s", code, out)
		}
		cmd := exec.Command(bin, "-connection", hdr, "-url", e.placed.URL+"/h")
		cmd.Env = append(os.Environ(), worker.EnvBrokerAddr+"="+down.Addr().String(), worker.EnvJobToken+"="+tok) // nothing listens there
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 3 {
			t.Errorf("example when the broker cannot be reached: exit %d, want 3; %s", code, out)
		}
	})

	t.Run("rotated token file", func(t *testing.T) {
		if err := os.WriteFile(tokenFile, []byte("not-a-job-token"), 0o600); err != nil {
			t.Fatal(err)
		}
		c3, err := worker.New(t.Context(), worker.Options{Address: brokerProc.Addr, TokenFile: tokenFile})
		if err != nil {
			t.Fatal(err)
		}
		defer c3.Close()
		var te *worker.TokenError
		if _, err := c3.Credential(t.Context(), hdr); !errors.As(err, &te) {
			t.Errorf("a bad job token: %v, want TokenError", err)
		}
		if err := os.WriteFile(tokenFile, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := c3.Credential(t.Context(), hdr); err != nil {
			t.Errorf("after the token file was rotated: %v", err)
		}
	})
}
