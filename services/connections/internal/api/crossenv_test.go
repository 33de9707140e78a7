package api_test

import (
	"testing"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"

	"github.com/integrationhub/connections/services/connections/internal/store"
)

// Turning cross-environment bindings off is refused while a recipe step
// still uses a connection of the other environment (they are listed); once
// they are unbound it goes through. Both stores alike.
func TestCrossEnvironmentOffRefusedWhileBindingsExist(t *testing.T) {
	bothStores(t, func(t *testing.T, ts *testService, st store.Store) {
		ctx := ts.admin(t)
		sbx := &store.Connection{ID: uuid.NewString(), WorkspaceID: "ws", Name: "sandbox key", Connector: "stripe",
			Environment: "sandbox", AuthType: "api_key", Status: store.StatusActive}
		if err := st.Create(ctx, "tester", sbx); err != nil {
			t.Fatal(err)
		}
		settings := func(on bool) error {
			_, err := ts.UpdateWorkspaceSettings(ctx, &connectionsv1.UpdateWorkspaceSettingsRequest{Settings: &connectionsv1.WorkspaceSettings{
				WorkspaceId: "ws", AllowCrossEnvironmentBindings: on}})
			return err
		}
		if err := settings(true); err != nil {
			t.Fatal(err)
		}
		if _, err := ts.RegisterRecipe(ctx, &connectionsv1.RegisterRecipeRequest{RecipeId: "r-prod", WorkspaceId: "ws",
			Environment: connectionsv1.Environment_ENVIRONMENT_PRODUCTION}); err != nil {
			t.Fatal(err)
		}
		if _, err := ts.BindConnection(ctx, &connectionsv1.BindConnectionRequest{RecipeId: "r-prod", Step: "pay", ConnectionId: sbx.ID}); err != nil {
			t.Fatal(err)
		}
		err := settings(false)
		if status.Code(err) != codes.FailedPrecondition || len(violationSubjects(err)) != 1 || violationSubjects(err)[0] != "recipes/r-prod/steps/pay" {
			t.Fatalf("turning off with a cross-environment binding: %v (%v), want FailedPrecondition listing it", err, violationSubjects(err))
		}
		if w, _ := st.GetWorkspace(ctx, "ws"); !w.AllowCrossEnvironment {
			t.Error("the refused change was stored")
		}
		if _, err := ts.UnbindConnection(ctx, &connectionsv1.UnbindConnectionRequest{RecipeId: "r-prod", Step: "pay"}); err != nil {
			t.Fatal(err)
		}
		if err := settings(false); err != nil {
			t.Errorf("turning off without such bindings: %v", err)
		}
	})
}

// violationSubjects returns the PreconditionFailure subjects in err.
func violationSubjects(err error) []string {
	var out []string
	for _, d := range status.Convert(err).Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok {
			for _, v := range pf.GetViolations() {
				out = append(out, v.GetSubject())
			}
		}
	}
	return out
}
