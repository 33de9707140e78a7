package e2e

import (
	"slices"
	"testing"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
)

const (
	prod    = connectionsv1.Environment_ENVIRONMENT_PRODUCTION
	sandbox = connectionsv1.Environment_ENVIRONMENT_SANDBOX
	basic   = credentialv1.AuthType_AUTH_TYPE_BASIC
	key     = credentialv1.AuthType_AUTH_TYPE_API_KEY
	oauth2  = credentialv1.AuthType_AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE
)

// The binding rules, each shown refused and then, where the rule allows it,
// accepted; removing a rule makes its refusal case fail.
func TestBindingRules(t *testing.T) {
	cs := connections(t)
	ctx := ctxT(t)
	const ws = "ws-bind"
	for _, r := range []*connectionsv1.RegisterRecipeRequest{
		{RecipeId: "r-prod", WorkspaceId: ws, Name: "Sync tickets", Environment: prod},
		{RecipeId: "r-other", WorkspaceId: ws, Name: "Other", Environment: prod},
	} {
		if _, err := cs.RegisterRecipe(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	zdA := mustCreate(t, cs, ws, "zendesk", prod, basic)
	zdB := mustCreate(t, cs, ws, "zendesk", prod, basic)
	h1, h2, h3 := mustCreate(t, cs, ws, "http", prod, key), mustCreate(t, cs, ws, "http", prod, key), mustCreate(t, cs, ws, "http", prod, key)
	pending := mustCreate(t, cs, ws, "salesforce", prod, oauth2)
	sandboxStripe := mustCreate(t, cs, ws, "stripe", sandbox, key)
	child, err := cs.CreateRuntimeUserConnection(ctx, &connectionsv1.CreateRuntimeUserConnectionRequest{
		ParentConnectionId: zdA.GetId(), RuntimeUser: "alice@acme.test",
		Secret: &credentialv1.Secret{Kind: &credentialv1.Secret_Basic{Basic: &credentialv1.BasicAuth{Username: "alice", Password: "a"}}},
	})
	if err != nil {
		t.Fatal(err)
	}

	bind := func(recipe, step, conn string) error {
		_, err := cs.BindConnection(ctx, &connectionsv1.BindConnectionRequest{RecipeId: recipe, Step: step, ConnectionId: conn})
		return err
	}
	mustBind := func(recipe, step, conn string) {
		t.Helper()
		if err := bind(recipe, step, conn); err != nil {
			t.Fatalf("bind %s/%s: %v", recipe, step, err)
		}
	}

	mustBind("r-prod", "trigger", zdA.GetId())
	mustBind("r-prod", "action-1", zdA.GetId()) // one connection, several steps
	t.Run("second connection to an app", func(t *testing.T) {
		wantRefused(t, bind("r-prod", "action-2", zdB.GetId()), "SECOND_CONNECTION_FOR_APP")
	})
	t.Run("secondary connection where the connector allows one", func(t *testing.T) {
		mustBind("r-prod", "h1", h1.GetId())
		mustBind("r-prod", "h2", h2.GetId())
		wantRefused(t, bind("r-prod", "h3", h3.GetId()), "SECOND_CONNECTION_FOR_APP")
	})
	t.Run("inactive connection", func(t *testing.T) {
		wantRefused(t, bind("r-prod", "sf", pending.GetId()), "CONNECTION_NOT_ACTIVE")
	})
	t.Run("runtime user connection", func(t *testing.T) {
		wantRefused(t, bind("r-other", "trigger", child.GetConnection().GetId()), "RUNTIME_USER_CONNECTION")
	})
	t.Run("environment guard", func(t *testing.T) {
		wantRefused(t, bind("r-prod", "stripe", sandboxStripe.GetId()), "ENVIRONMENT_MISMATCH")
		if _, err := cs.UpdateWorkspaceSettings(ctx, &connectionsv1.UpdateWorkspaceSettingsRequest{
			Settings: &connectionsv1.WorkspaceSettings{WorkspaceId: ws, AllowCrossEnvironmentBindings: true}}); err != nil {
			t.Fatal(err)
		}
		mustBind("r-prod", "stripe", sandboxStripe.GetId())
	})

	t.Run("reauthorization keeps id and bindings", func(t *testing.T) {
		if _, err := cs.UpdateConnection(ctx, &connectionsv1.UpdateConnectionRequest{Id: h1.GetId(), Secret: apiKey("rotated")}); err != nil {
			t.Fatal(err)
		}
		usage, err := cs.ListConnectionUsage(ctx, &connectionsv1.ListConnectionUsageRequest{ConnectionId: h1.GetId()})
		if err != nil || len(usage.GetBindings()) != 1 || usage.GetBindings()[0].GetStep() != "h1" {
			t.Errorf("usage after reauthorization = %v, %v; want the h1 binding", usage, err)
		}
	})

	t.Run("delete in use", func(t *testing.T) {
		_, err := cs.DeleteConnection(ctx, &connectionsv1.DeleteConnectionRequest{Id: zdA.GetId()})
		wantRefused(t, err, "CONNECTION_IN_USE")
		if got := len(violationTypes(err)); got != 2 {
			t.Errorf("refusal lists %d recipe steps, want 2 (trigger and action-1)", got)
		}
		if _, err := cs.GetConnection(ctx, &connectionsv1.GetConnectionRequest{Id: zdA.GetId()}); err != nil {
			t.Fatalf("refused delete removed the connection: %v", err)
		}
		if code, _ := vaultRead(t, zdA.GetId()); code != 200 {
			t.Errorf("refused delete removed the secret from Vault (status %d)", code)
		}
		if _, err := cs.DeleteConnection(ctx, &connectionsv1.DeleteConnectionRequest{Id: zdA.GetId(), Force: true}); err != nil {
			t.Fatalf("forced delete: %v", err)
		}
		usage, _ := cs.ListConnectionUsage(ctx, &connectionsv1.ListConnectionUsageRequest{ConnectionId: h1.GetId()})
		if len(usage.GetBindings()) != 1 {
			t.Errorf("forced delete touched other connections' bindings")
		}
		// The runtime user connection and its secret went with the parent.
		if code, _ := vaultRead(t, child.GetConnection().GetId()); code != 404 {
			t.Errorf("runtime user connection's secret after parent delete: status %d, want 404", code)
		}
	})

	t.Run("audit trail", func(t *testing.T) {
		evs, err := cs.ListAuditEvents(ctx, &connectionsv1.ListAuditEventsRequest{WorkspaceId: ws, ConnectionId: zdA.GetId(), PageSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range evs.GetEvents() {
			actions = append(actions, e.GetAction())
			if e.GetActor() != "e2e-tester" {
				t.Errorf("event %s by %q, want the token's subject", e.GetAction(), e.GetActor())
			}
		}
		// One create record: a secret-taking connection is stored active,
		// after its secret, in one transaction.
		want := []string{"connection.create", "binding.create", "binding.create",
			"binding.delete", "binding.delete", "connection.delete"}
		if !slices.Equal(actions, want) {
			t.Errorf("audit actions = %v, want %v", actions, want)
		}
	})
}
