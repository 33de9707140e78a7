package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/privilege"
)

// CreateConnection with a recipe step (the recipe editor's "create and
// use"): the connection and its binding are made together, and a job of
// the recipe gets the credential. A create whose bind is refused (a second
// connection for the same app on the recipe, a recipe that does not exist)
// leaves nothing: no connection, no binding, and after one reconciler pass
// no secret in Vault (this environment's broker has a Vault path prefix of its own).
func TestCreateAndBind(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) { testCreateAndBind(t, db(t)) })
	}
}

func testCreateAndBind(t *testing.T, database string) {
	e := newRaceEnv(t, database, devstack.Extra{})
	const recipe = "r-create-bind"
	if _, err := e.a.RegisterRecipe(ctxT(t), &connectionsv1.RegisterRecipeRequest{RecipeId: recipe, WorkspaceId: raceWS, Environment: prod}); err != nil {
		t.Fatal(err)
	}
	create := func(name, step, recipe string) (*connectionsv1.Connection, error) {
		resp, err := e.a.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: raceWS, Name: name,
			Connector: "stripe", Environment: prod, AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY, Secret: apiKey("k-" + name),
			Bind: &connectionsv1.RecipeStep{RecipeId: recipe, Step: step}})
		return resp.GetConnection(), err
	}
	c, err := create("bound", "trigger", recipe)
	if err != nil {
		t.Fatalf("create and bind: %v", err)
	}
	usage, err := e.a.ListConnectionUsage(ctxT(t), &connectionsv1.ListConnectionUsageRequest{ConnectionId: c.GetId()})
	if err != nil || len(usage.GetBindings()) != 1 || usage.GetBindings()[0].GetRecipeId() != recipe {
		t.Fatalf("usage after create and bind: %v, %v", usage, err)
	}
	jc := jobFor(t, e.worker, &brokerv1.MintJobTokenRequest{WorkspaceId: raceWS, RecipeId: recipe, JobId: "j-create-bind"})
	if key, code := e.served(jc, c.GetId()); key != "k-bound" {
		t.Errorf("the recipe's job: %q, %v; want the new connection's key", key, code)
	}

	for _, tc := range []struct {
		name, recipe string
		want         codes.Code
	}{
		{"a second stripe connection for the recipe", recipe, codes.FailedPrecondition},
		{"a recipe that does not exist", "r-missing", codes.NotFound},
	} {
		if _, err := create("refused", "action", tc.recipe); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	list, err := e.a.ListConnections(ctxT(t), &connectionsv1.ListConnectionsRequest{WorkspaceId: raceWS})
	if err != nil || len(list.GetConnections()) != 1 {
		t.Errorf("after the refused creates: %d connections, %v; want only the bound one", len(list.GetConnections()), err)
	}
	e.converged(t, nil)
	secrets := 0
	for _, id := range e.secretOwners(t) {
		if id != c.GetId() {
			secrets++
		}
	}
	if secrets != 0 {
		t.Errorf("%d secrets of refused creates are in Vault after reconciliation", secrets)
	}
}

// The recipe editor's OAuth flow: StartAuthorization names the recipe step
// and where to send the browser back. The callback binds the authorized
// connection and redirects to the return URL with the connection id and
// the outcome; denied consent comes back as "denied". A return URL whose
// origin the workspace has not allowed is refused at the start.
func TestAuthorizeBindAndReturn(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) { testAuthorizeBindAndReturn(t, db(t)) })
	}
}

func testAuthorizeBindAndReturn(t *testing.T, database string) {
	e := startOAuthEnvOn(t, database)
	e.registerClients(t)
	const recipe, origin = "r-oauth-bind", "https://platform.example.com"
	if _, err := e.cs.RegisterRecipe(ctxT(t), &connectionsv1.RegisterRecipeRequest{RecipeId: recipe, WorkspaceId: "ws-oauth", Environment: prod}); err != nil {
		t.Fatal(err)
	}
	start := func(id, returnURL string) (string, error) {
		resp, err := e.cs.StartAuthorization(ctxT(t), &connectionsv1.StartAuthorizationRequest{ConnectionId: id,
			Bind: &connectionsv1.RecipeStep{RecipeId: recipe, Step: "trigger"}, ReturnUrl: returnURL})
		return resp.GetAuthorizeUrl(), err
	}
	c := e.create(t)
	if _, err := start(c.GetId(), origin+"/connections/done"); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a return URL of an origin not allowed: %v, want InvalidArgument", err)
	}
	editor := as(t, "ws-oauth", privilege.EditConnections) // may authorize, may not bind
	if _, err := e.cs.StartAuthorization(editor, &connectionsv1.StartAuthorizationRequest{ConnectionId: c.GetId(),
		Bind: &connectionsv1.RecipeStep{RecipeId: recipe, Step: "trigger"}}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("bind without the recipes privilege: %v, want PermissionDenied", err)
	}
	if _, err := e.cs.StartAuthorization(ctxT(t), &connectionsv1.StartAuthorizationRequest{ConnectionId: c.GetId(),
		Bind: &connectionsv1.RecipeStep{RecipeId: "r-missing", Step: "trigger"}}); status.Code(err) != codes.NotFound {
		t.Errorf("bind to a recipe that does not exist: %v, want NotFound", err)
	}
	if _, err := e.cs.UpdateWorkspaceSettings(ctxT(t), &connectionsv1.UpdateWorkspaceSettingsRequest{Settings: &connectionsv1.WorkspaceSettings{
		WorkspaceId: "ws-oauth", AllowedOrigins: []string{"https://Platform.Example.com"}}}); err != nil {
		t.Fatal(err)
	}
	// Follow the redirects up to the platform's page, which does not exist
	// here: the last Location is what the browser would open.
	returned := func(authorizeURL string) url.Values {
		t.Helper()
		agent := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), origin) {
				return http.ErrUseLastResponse
			}
			return nil
		}}
		resp, err := agent.Get(authorizeURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), origin+"/connections/done?") {
			t.Fatalf("the callback answered %d, Location %q; want 303 to the return URL", resp.StatusCode, resp.Header.Get("Location"))
		}
		return loc.Query()
	}

	authURL, err := start(c.GetId(), origin+"/connections/done?tab=apps")
	if err != nil {
		t.Fatal(err)
	}
	q := returned(authURL)
	if q.Get("outcome") != "connected" || q.Get("connection_id") != c.GetId() || q.Get("tab") != "apps" || q.Get("error") != "" {
		t.Errorf("back at the platform with %v; want outcome=connected, the connection id and the page's own query", q)
	}
	usage, err := e.cs.ListConnectionUsage(ctxT(t), &connectionsv1.ListConnectionUsageRequest{ConnectionId: c.GetId()})
	if err != nil || len(usage.GetBindings()) != 1 || usage.GetBindings()[0].GetRecipeId() != recipe {
		t.Errorf("bindings of the authorized connection: %v, %v; want the recipe step", usage, err)
	}

	denied := e.create(t)
	authURL, err = start(denied.GetId(), origin+"/connections/done")
	if err != nil {
		t.Fatal(err)
	}
	if q := returned(authURL + "&deny=1"); q.Get("outcome") != "denied" || q.Get("connection_id") != denied.GetId() ||
		!strings.Contains(q.Get("error"), "access_denied") {
		t.Errorf("denied consent, back at the platform with %v; want outcome=denied and why", q)
	}
	// The second ACME connection for the recipe step's recipe: connected,
	// but the recipe already uses the first (one connection per app).
	second := e.create(t)
	if _, err := e.cs.BindConnection(ctxT(t), &connectionsv1.BindConnectionRequest{RecipeId: recipe, Step: "action", ConnectionId: c.GetId()}); err != nil {
		t.Fatal(err)
	}
	resp, err := e.cs.StartAuthorization(ctxT(t), &connectionsv1.StartAuthorizationRequest{ConnectionId: second.GetId(),
		Bind: &connectionsv1.RecipeStep{RecipeId: recipe, Step: "other"}, ReturnUrl: origin + "/connections/done"})
	if err != nil {
		t.Fatal(err)
	}
	if q := returned(resp.GetAuthorizeUrl()); q.Get("outcome") != "connected_not_bound" || q.Get("error") == "" {
		t.Errorf("a bind the rules refuse: back with %v; want outcome=connected_not_bound and why", q)
	}
}
