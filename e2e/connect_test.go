package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/types/known/durationpb"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
)

// browser starts a headless Debian Chromium driven by chromedp; the test
// is skipped where Chromium is missing, except in CI (scripts/test.sh
// installs it).
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is missing; scripts/test.sh installs Debian's chromium package")
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(900, 900))
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// artifacts is where the flow's screenshots are kept
// ($INTEGRATIONHUB_ARTIFACTS, default .artifacts/ in the repository).
func artifacts(t *testing.T) string {
	dir := os.Getenv("INTEGRATIONHUB_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", ".artifacts")
	}
	dir = filepath.Join(dir, "connect")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// returned is the platform page a finished flow sends the browser back to.
type returned struct {
	*httptest.Server
	mu   sync.Mutex
	last url.Values
}

func startReturn(t *testing.T) *returned {
	r := &returned{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/done" {
			http.NotFound(w, req) // the browser's favicon.ico
			return
		}
		r.mu.Lock()
		r.last = req.URL.Query()
		r.mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<!doctype html><title>Back on the platform</title><p id=back>Back on the platform</p>"))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *returned) query() url.Values {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// The hosted connect flow in a real browser: an API-key connection (a
// wrong key first, then the right one), the app chooser, an OAuth
// connection through the local provider (consent given, then denied), a
// runtime user's own connection, expired and reused links, and forged
// form posts. Screenshots of each page are kept; the secrets typed appear
// in no page, log, database row or audit event.
func TestConnectFlowInBrowser(t *testing.T) {
	bctx := browser(t)
	e := startOAuthEnv(t)
	e.registerClients(t)
	back := startReturn(t)
	const ws = "ws-connect"
	if _, err := e.cs.UpdateWorkspaceSettings(ctxT(t), &connectionsv1.UpdateWorkspaceSettingsRequest{Settings: &connectionsv1.WorkspaceSettings{
		WorkspaceId: ws, AllowedOrigins: []string{back.URL}}}); err != nil {
		t.Fatal(err)
	}
	dir := artifacts(t)
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.FullScreenshot(100)(ctx, tg) // quality 100 is a PNG
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
		})
	}
	var html string
	// page keeps the page's HTML in html.
	page := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) (err error) {
		html, err = chromedp.OuterHTML(chromedp.CSS("html"))(ctx, tg)
		return err
	})
	session := func(req *connectionsv1.CreateConnectSessionRequest) string {
		t.Helper()
		req.WorkspaceId, req.ReturnUrl = ws, back.URL+"/done"
		resp, err := e.cs.CreateConnectSession(ctxT(t), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetUrl()
	}
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	wrongKey := "CANARY" + rand.Text()

	// An API-key connection: the wrong key is refused by the app (nothing
	// stored), the right one connects and the browser goes back.
	keyURL := session(&connectionsv1.CreateConnectSessionRequest{Connectors: []string{"acme_key"}, ProjectId: "p1"})
	run("the API-key form", chromedp.Navigate(keyURL), chromedp.WaitVisible(chromedp.CSS("#api_key")), shot("1-api-key-form"))
	run("a wrong key", chromedp.SendKeys(chromedp.CSS("#api_key"), wrongKey), chromedp.Click(chromedp.CSS("#submit")),
		chromedp.WaitVisible(chromedp.CSS("#error")), page, shot("2-api-key-refused"))
	if !strings.Contains(html, "refused these credentials") {
		t.Errorf("the refusal page does not say the app refused the key:\n%s", html)
	}
	if strings.Contains(html, wrongKey) {
		t.Error("the refusal page shows the key that was typed")
	}
	if n := len(listIn(t, e, ws)); n != 0 {
		t.Fatalf("a refused key left %d connections", n)
	}
	run("the right key", chromedp.SendKeys(chromedp.CSS("#api_key"), goodKey), chromedp.Click(chromedp.CSS("#submit")),
		chromedp.WaitVisible(chromedp.CSS("#back")))
	q := back.query()
	if q.Get("outcome") != "connected" || q.Get("connection_id") == "" {
		t.Fatalf("returned with %v", q)
	}
	c := getIn(t, e, q.Get("connection_id"))
	if c.GetStatus() != connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE || c.GetLastVerifyTime() == nil || c.GetProjectId() != "p1" ||
		c.GetAuthorizedAs() != "svc-reporting" {
		t.Errorf("the connection made: %v", c)
	}
	// The link is single-use.
	run("the used link", chromedp.Navigate(keyURL), chromedp.WaitVisible(chromedp.CSS("h1")), page, shot("3-link-used"))
	if !strings.Contains(html, "no longer works") {
		t.Errorf("a used link still opens:\n%s", html)
	}

	// Several apps: the chooser, then OAuth through the app's consent.
	oauthURL := session(&connectionsv1.CreateConnectSessionRequest{Connectors: []string{"acme_key", "acme"}})
	run("the chooser", chromedp.Navigate(oauthURL), chromedp.WaitVisible(chromedp.CSS(".apps")), shot("4-choose-app"),
		chromedp.Click(chromedp.CSS(`a[href="?app=acme"]`)), chromedp.WaitVisible(chromedp.CSS("#submit")), shot("5-oauth-form"),
		chromedp.Click(chromedp.CSS("#submit")), chromedp.WaitVisible(chromedp.CSS("#back")))
	if q := back.query(); q.Get("outcome") != "connected" || getIn(t, e, q.Get("connection_id")).GetAuthorizedAs() != e.app.Subject {
		t.Errorf("OAuth returned with %v", q)
	}
	e.app.DenyConsent(true)
	deniedURL := session(&connectionsv1.CreateConnectSessionRequest{Connectors: []string{"acme"}})
	run("consent denied", chromedp.Navigate(deniedURL), chromedp.WaitVisible(chromedp.CSS("#submit")),
		chromedp.Click(chromedp.CSS("#submit")), chromedp.WaitVisible(chromedp.CSS("#back")))
	e.app.DenyConsent(false)
	if q := back.query(); q.Get("outcome") != "denied" || q.Get("error") == "" {
		t.Errorf("denied consent returned with %v", q)
	}

	// A runtime user's own connection under a parent that a callable
	// recipe uses.
	parent := c.GetId()
	if _, err := e.cs.RegisterRecipe(ctxT(t), &connectionsv1.RegisterRecipeRequest{RecipeId: "r-callable", WorkspaceId: ws,
		Environment: prod, Callable: true, RuntimeUserConnections: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.BindConnection(ctxT(t), &connectionsv1.BindConnectionRequest{RecipeId: "r-callable", Step: "call", ConnectionId: parent}); err != nil {
		t.Fatal(err)
	}
	ruURL := session(&connectionsv1.CreateConnectSessionRequest{ParentConnectionId: parent, RuntimeUser: "alice@customer.test"})
	run("a runtime user's connection", chromedp.Navigate(ruURL), chromedp.WaitVisible(chromedp.CSS("#api_key")), shot("6-runtime-user-form"),
		chromedp.SendKeys(chromedp.CSS("#api_key"), goodKey), chromedp.Click(chromedp.CSS("#submit")), chromedp.WaitVisible(chromedp.CSS("#back")))
	ru, err := e.cs.ListRuntimeUserConnections(ctxT(t), &connectionsv1.ListRuntimeUserConnectionsRequest{ParentConnectionId: parent, RuntimeUser: "alice@customer.test"})
	if err != nil || len(ru.GetConnections()) != 1 || ru.GetConnections()[0].GetId() != back.query().Get("connection_id") {
		t.Errorf("the runtime user's connection: %v, %v", ru, err)
	}

	// An expired link.
	expired := session(&connectionsv1.CreateConnectSessionRequest{Connectors: []string{"acme_key"}, Ttl: durationpb.New(time.Second)})
	waitFor(t, 10*time.Second, "the link to expire", func() bool {
		resp, err := http.Get(expired)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusGone
	})
	run("the expired link", chromedp.Navigate(expired), chromedp.WaitVisible(chromedp.CSS("h1")), shot("7-link-expired"))

	// Forged posts: without the page's cookie, or from another site, are
	// refused and store nothing.
	forged := session(&connectionsv1.CreateConnectSessionRequest{Connectors: []string{"acme_key"}})
	before := len(listIn(t, e, ws))
	form := url.Values{"csrf": {"guessed"}, "app": {"acme_key"}, "name": {"forged"}, "api_key": {goodKey}}
	for name, req := range map[string]*http.Request{
		"no cookie":    mustPost(t, forged, form, nil, ""),
		"another site": mustPost(t, forged, form, &http.Cookie{Name: "ih_connect_csrf", Value: "guessed"}, "https://evil.example"),
	} {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("a forged post (%s) answered %d, want 403", name, resp.StatusCode)
		}
	}
	if after := len(listIn(t, e, ws)); after != before {
		t.Errorf("forged posts changed the connections: %d, were %d", after, before)
	}
	// A session allows 10 submissions, then refuses (429).
	limited := session(&connectionsv1.CreateConnectSessionRequest{Connectors: []string{"acme_key"}})
	jar := http.Client{Timeout: 20 * time.Second}
	resp, err := jar.Get(limited)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "ih_connect_csrf" {
			cookie = ck
		}
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if cookie == nil || m == nil {
		t.Fatalf("the form page set no anti-forgery cookie or value:\n%s", body)
	}
	codes := map[int]int{}
	for range 11 {
		resp, err := jar.Do(mustPost(t, limited, url.Values{"csrf": {string(m[1])}, "app": {"acme_key"}, "name": {"n"},
			"api_key": {wrongKey}}, cookie, ""))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	if codes[http.StatusUnprocessableEntity] != 10 || codes[http.StatusTooManyRequests] != 1 {
		t.Errorf("11 wrong keys answered %v; want 10 refusals (422), then 429", codes)
	}

	// The page's own headers.
	resp, err = http.Get(forged)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors "+back.URL) ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("page headers: CSP %q, Cache-Control %q", csp, resp.Header.Get("Cache-Control"))
	}

	// Canary: the keys typed are in no log, database row or audit event.
	audit, err := e.cs.ListAuditEvents(ctxT(t), &connectionsv1.ListAuditEventsRequest{WorkspaceId: ws})
	if err != nil {
		t.Fatal(err)
	}
	haystacks := map[string][]byte{"audit": []byte(audit.String())}
	files, _ := filepath.Glob(e.dbPath + "*")
	files = append(files, stack.LogFiles()...)
	if logs, _ := filepath.Glob(filepath.Join(filepath.Dir(stack.LogFiles()[0]), "oauth-TestConnectFlowInBrowser*.log")); len(logs) > 0 {
		files = append(files, logs...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		haystacks[filepath.Base(f)] = b
	}
	for where, b := range haystacks {
		for _, secret := range []string{wrongKey, goodKey} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("a typed key leaked into %s", where)
			}
		}
	}
	t.Logf("screenshots in %s", dir)
}

func mustPost(t *testing.T, target string, form url.Values, ck *http.Cookie, origin string) *http.Request {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if ck != nil {
		req.AddCookie(ck)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return req
}

func listIn(t *testing.T, e *oauthEnv, ws string) []*connectionsv1.Connection {
	resp, err := e.cs.ListConnections(ctxT(t), &connectionsv1.ListConnectionsRequest{WorkspaceId: ws, PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetConnections()
}

func getIn(t *testing.T, e *oauthEnv, id string) *connectionsv1.Connection {
	resp, err := e.cs.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetConnection()
}
