package api_test

import (
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
)

// A NotFound answer names the kind and id of what is missing, in its
// message and in a ResourceInfo detail.
func TestNotFoundNamesWhat(t *testing.T) {
	ts := newService(t)
	const missing = "7d6c5b4a-3333-4000-8000-0000000000ff"
	for _, c := range []struct {
		name       string
		call       func() error
		kind, id   string
		wantInText string
	}{
		{"GetConnection", func() error {
			_, err := ts.GetConnection(ts.admin(t), &connectionsv1.GetConnectionRequest{Id: missing})
			return err
		}, "connection", missing, "connection " + missing + " not found"},
		{"UpdateConnection", func() error {
			_, err := ts.UpdateConnection(ts.admin(t), &connectionsv1.UpdateConnectionRequest{Id: missing, Name: proto.String("x")})
			return err
		}, "connection", missing, "connection " + missing + " not found"},
		{"BindConnection to a missing connection", func() error {
			if _, err := ts.RegisterRecipe(ts.admin(t), &connectionsv1.RegisterRecipeRequest{RecipeId: "r-nf", WorkspaceId: "ws",
				Environment: connectionsv1.Environment_ENVIRONMENT_PRODUCTION}); err != nil {
				t.Fatal(err)
			}
			_, err := ts.BindConnection(ts.admin(t), &connectionsv1.BindConnectionRequest{RecipeId: "r-nf", Step: "s1", ConnectionId: missing})
			return err
		}, "connection", missing, "connection " + missing + " not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			st := status.Convert(err)
			if st.Code() != codes.NotFound || st.Message() != c.wantInText {
				t.Fatalf("got %v %q, want NotFound %q", st.Code(), st.Message(), c.wantInText)
			}
			var info *errdetails.ResourceInfo
			for _, d := range st.Details() {
				if ri, ok := d.(*errdetails.ResourceInfo); ok {
					info = ri
				}
			}
			if info == nil || info.GetResourceType() != c.kind || info.GetResourceName() != c.id {
				t.Errorf("ResourceInfo = %v, want %s %s", info, c.kind, c.id)
			}
		})
	}
}
