package api_test

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
)

// The runtime user fallback is kept and returned, and only for recipes whose
// calls carry runtime users.
func TestRegisterRecipeRuntimeUserFallback(t *testing.T) {
	ts := newService(t)
	ctx := ts.admin(t)
	tests := []struct {
		name             string
		runtimeUserConns bool
		fallback         bool
		want             codes.Code
	}{
		{"fallback without runtime user connections", false, true, codes.InvalidArgument},
		{"fallback", true, true, codes.OK},
		{"no fallback", true, false, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := ts.RegisterRecipe(ctx, &connectionsv1.RegisterRecipeRequest{
				RecipeId: "r-fallback", WorkspaceId: "ws", Environment: connectionsv1.Environment_ENVIRONMENT_PRODUCTION,
				Callable: true, RuntimeUserConnections: tt.runtimeUserConns, RuntimeUserFallback: tt.fallback,
			})
			if status.Code(err) != tt.want {
				t.Fatalf("RegisterRecipe: %v, want %s", err, tt.want)
			}
			if err != nil {
				return
			}
			got, err := ts.GetRecipe(ctx, &connectionsv1.GetRecipeRequest{RecipeId: "r-fallback"})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetRecipe().GetRuntimeUserFallback() != tt.fallback || got.GetRecipe().GetRuntimeUserFallback() != tt.fallback {
				t.Errorf("runtime_user_fallback registered %t, got %t, want %t",
					resp.GetRecipe().GetRuntimeUserFallback(), got.GetRecipe().GetRuntimeUserFallback(), tt.fallback)
			}
		})
	}
}

func TestListRuntimeUserConnectionsFilter(t *testing.T) {
	ts := newService(t)
	ctx := ts.admin(t)
	var parents []string
	for _, name := range []string{"sf", "sf-2"} {
		p, err := ts.CreateConnection(ctx, oauthReq("ws", name))
		if err != nil {
			t.Fatal(err)
		}
		parents = append(parents, p.GetConnection().GetId())
	}
	for _, c := range []struct{ parent, user string }{{parents[0], "alice"}, {parents[0], "bob"}, {parents[1], "alice"}} {
		if _, err := ts.CreateRuntimeUserConnection(ctx, &connectionsv1.CreateRuntimeUserConnectionRequest{
			ParentConnectionId: c.parent, RuntimeUser: c.user}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		user string
		want []string
	}{
		{"one user", "alice", []string{"alice"}},
		{"user without a connection", "carol", nil},
		{"every user", "", []string{"bob", "alice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := ts.ListRuntimeUserConnections(ctx, &connectionsv1.ListRuntimeUserConnectionsRequest{
				ParentConnectionId: parents[0], RuntimeUser: tt.user})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range resp.GetConnections() {
				if c.GetParentConnectionId() != parents[0] {
					t.Errorf("%s's connection of another parent", c.GetRuntimeUser())
				}
				got = append(got, c.GetRuntimeUser())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("runtime users = %v, want %v", got, tt.want)
			}
		})
	}
}
