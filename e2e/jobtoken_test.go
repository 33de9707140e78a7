package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/jwtauth"
	"github.com/integrationhub/connections/internal/privilege"
)

// scheduler is a context carrying the job scheduler's token for the broker.
func scheduler(t testing.TB, privileges ...string) context.Context {
	t.Helper()
	tok, err := stack.Issuer.Mint(devstack.BrokerAudience, "job-scheduler", jwtauth.AllWorkspaces, privileges, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// MintJobToken: only the scheduler mints; the token lists the recipe's
// bound connections, lives 10 minutes by default and no longer than the cap;
// a runtime user is refused for a recipe that is not callable with runtime
// user connections on.
func TestMintJobToken(t *testing.T) {
	cs, br := connections(t), broker(t)
	const ws = "ws-jobs"
	for _, r := range []*connectionsv1.RegisterRecipeRequest{
		{RecipeId: "r-plain", WorkspaceId: ws, Environment: prod},
		{RecipeId: "r-callable", WorkspaceId: ws, Environment: prod, Callable: true, RuntimeUserConnections: true},
	} {
		if _, err := cs.RegisterRecipe(ctxT(t), r); err != nil {
			t.Fatal(err)
		}
	}
	a, b := mustCreate(t, cs, ws, "stripe", prod, key), mustCreate(t, cs, ws, "zendesk", prod, basic)
	for step, id := range map[string]string{"trigger": a.GetId(), "action-1": b.GetId(), "action-2": a.GetId()} {
		if _, err := cs.BindConnection(ctxT(t), &connectionsv1.BindConnectionRequest{RecipeId: "r-plain", Step: step, ConnectionId: id}); err != nil {
			t.Fatal(err)
		}
	}
	mint := &brokerv1.MintJobTokenRequest{WorkspaceId: ws, RecipeId: "r-plain", JobId: "job-1"}
	resp, err := br.MintJobToken(scheduler(t, privilege.MintJobTokens), mint)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{a.GetId(), b.GetId()}
	slices.Sort(want)
	if !slices.Equal(resp.GetConnectionIds(), want) {
		t.Errorf("token lists %v, want the recipe's two connections %v", resp.GetConnectionIds(), want)
	}
	if d := time.Until(resp.GetExpireTime().AsTime()); d < 9*time.Minute || d > 10*time.Minute {
		t.Errorf("default lifetime %v, want 10 minutes", d)
	}
	var claims struct {
		Recipe      string   `json:"recipe"`
		Job         string   `json:"job"`
		Connections []string `json:"connections"`
		Audience    any      `json:"aud"`
	}
	parts := strings.Split(resp.GetToken(), ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Recipe != "r-plain" || claims.Job != "job-1" || len(claims.Connections) != 2 {
		t.Errorf("token claims = %+v, %v", claims, err)
	}
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if !strings.Contains(string(header), `"kid":"v1"`) || !strings.Contains(string(header), `"alg":"EdDSA"`) {
		t.Errorf("token header %s, want EdDSA with the transit key version as kid", header)
	}

	long := &brokerv1.MintJobTokenRequest{WorkspaceId: ws, RecipeId: "r-plain", JobId: "job-2", Ttl: durationpb.New(48 * time.Hour)}
	if resp, err := br.MintJobToken(scheduler(t, privilege.MintJobTokens), long); err != nil || time.Until(resp.GetExpireTime().AsTime()) > time.Hour {
		t.Errorf("a 48h request: %v, %v; want the 1h cap", resp.GetExpireTime(), err)
	}

	tests := []struct {
		name string
		ctx  context.Context
		req  *brokerv1.MintJobTokenRequest
		want codes.Code
	}{
		{"no token", ctxT(t), mint, codes.Unauthenticated}, // a connection-service token is not the scheduler's
		{"without the privilege", scheduler(t, privilege.ViewConnections), mint, codes.PermissionDenied},
		{"runtime user, recipe not callable", scheduler(t, privilege.MintJobTokens),
			&brokerv1.MintJobTokenRequest{WorkspaceId: ws, RecipeId: "r-plain", JobId: "job-3", RuntimeUser: "alice"}, codes.FailedPrecondition},
		{"unknown recipe", scheduler(t, privilege.MintJobTokens),
			&brokerv1.MintJobTokenRequest{WorkspaceId: ws, RecipeId: "r-none", JobId: "job-4"}, codes.NotFound},
		{"recipe of another workspace", scheduler(t, privilege.MintJobTokens),
			&brokerv1.MintJobTokenRequest{WorkspaceId: "ws-other", RecipeId: "r-plain", JobId: "job-5"}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := br.MintJobToken(tt.ctx, tt.req); status.Code(err) != tt.want {
				t.Errorf("got %v, want %s", err, tt.want)
			}
		})
	}
	if _, err := br.MintJobToken(scheduler(t, privilege.MintJobTokens),
		&brokerv1.MintJobTokenRequest{WorkspaceId: ws, RecipeId: "r-callable", JobId: "job-6", RuntimeUser: "alice"}); err != nil {
		t.Errorf("runtime user for a callable recipe: %v", err)
	}
}
