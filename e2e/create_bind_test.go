package e2e

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
)

// CreateConnection with a recipe step (the recipe editor's "create and
// use"): the connection and its binding are made together, and a job of
// the recipe gets the credential. A create whose bind is refused (a second
// connection for the same app on the recipe, a recipe that does not exist)
// leaves nothing: no connection, no binding, and after one reconciler pass
// no secret in Vault (this environment's broker has a Vault path prefix of its own).
func TestCreateAndBind(t *testing.T) {
	e := newRaceEnv(t, "sqlite:"+t.TempDir()+"/c.db", devstack.Extra{})
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
	for tok := ""; ; {
		page, err := e.admin.ListSecrets(ctxT(t), &brokerv1.ListSecretsRequest{PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.GetSecrets() {
			if s.GetConnectionId() != c.GetId() {
				secrets++
			}
		}
		if tok = page.GetNextPageToken(); tok == "" {
			break
		}
	}
	if secrets != 0 {
		t.Errorf("%d secrets of refused creates are in Vault after reconciliation", secrets)
	}
}
