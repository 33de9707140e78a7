package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/privilege"
	"github.com/integrationhub/connections/internal/vaultproc"
)

// mustCreate creates an active connection with an API key or basic secret,
// or a pending OAuth one.
func mustCreate(t *testing.T, cs connectionsv1.ConnectionServiceClient, ws, connector string, env connectionsv1.Environment, at credentialv1.AuthType) *connectionsv1.Connection {
	t.Helper()
	req := &connectionsv1.CreateConnectionRequest{WorkspaceId: ws, Name: connector + " " + env.String(), Connector: connector,
		Environment: env, AuthType: at}
	switch at {
	case credentialv1.AuthType_AUTH_TYPE_BASIC:
		req.Secret = &credentialv1.Secret{Kind: &credentialv1.Secret_Basic{Basic: &credentialv1.BasicAuth{Username: "u", Password: "p"}}}
	case credentialv1.AuthType_AUTH_TYPE_API_KEY:
		req.Secret = apiKey("k-" + connector)
	}
	switch connector {
	case "http":
		req.Instance = &credentialv1.AppInstance{BaseUrl: "https://api.example.com"}
	case "zendesk":
		req.Instance = &credentialv1.AppInstance{Subdomain: "acme"}
	}
	resp, err := cs.CreateConnection(ctxT(t), req)
	if err != nil {
		t.Fatalf("CreateConnection %s: %v", connector, err)
	}
	return resp.GetConnection()
}

// violationTypes returns the PreconditionFailure types in err's details.
func violationTypes(err error) []string {
	var types []string
	for _, d := range status.Convert(err).Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok {
			for _, v := range pf.GetViolations() {
				types = append(types, v.GetType())
			}
		}
	}
	return types
}

// wantRefused fails unless err is FailedPrecondition naming the violation.
func wantRefused(t *testing.T, err error, violation string) {
	t.Helper()
	if status.Code(err) != codes.FailedPrecondition || !slices.Contains(violationTypes(err), violation) {
		t.Errorf("got %v (violations %v), want FailedPrecondition %s", err, violationTypes(err), violation)
	}
}

// waitFor polls cond until it holds, failing the test when it still does not
// after within. It is the one way e2e tests wait for something to happen.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond) // polling pace, bounded by within
	}
}

// recipeSeq names the recipes job registers, so that each is new.
var recipeSeq atomic.Int64

// job registers a recipe in the connections' workspace and environment,
// binds each connection to a step of it, has br mint a job token for it (br
// must follow the connection service cs), and returns a context carrying
// that token, as a recipe worker's calls do.
func job(t testing.TB, cs connectionsv1.ConnectionServiceClient, br brokerv1.CredentialBrokerClient, ids ...string) context.Context {
	t.Helper()
	first, err := cs.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: ids[0]})
	if err != nil {
		t.Fatal(err)
	}
	c := first.GetConnection()
	recipe := fmt.Sprintf("r-job-%d", recipeSeq.Add(1))
	if _, err := cs.RegisterRecipe(ctxT(t), &connectionsv1.RegisterRecipeRequest{RecipeId: recipe, WorkspaceId: c.GetWorkspaceId(),
		Environment: c.GetEnvironment()}); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if _, err := cs.BindConnection(ctxT(t), &connectionsv1.BindConnectionRequest{RecipeId: recipe,
			Step: fmt.Sprintf("step-%d", i), ConnectionId: id}); err != nil {
			t.Fatalf("BindConnection %s: %v", id, err)
		}
	}
	return jobFor(t, br, &brokerv1.MintJobTokenRequest{WorkspaceId: c.GetWorkspaceId(), RecipeId: recipe, JobId: "job-" + recipe})
}

// jobFor mints a job token as the scheduler and returns a context carrying it.
func jobFor(t testing.TB, br brokerv1.CredentialBrokerClient, req *brokerv1.MintJobTokenRequest) context.Context {
	t.Helper()
	resp, err := br.MintJobToken(scheduler(t, privilege.MintJobTokens), req)
	if err != nil {
		t.Fatalf("MintJobToken: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+resp.GetToken())
}

// devVault starts a Vault dev server of the test's own, with the transit
// key job tokens are signed with; it stops with the test.
func devVault(t *testing.T) *vaultproc.Server {
	t.Helper()
	vs, err := vaultproc.StartDev(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vs.Stop() })
	if err := devstack.EnableTransit(t.Context(), vs.Addr, vs.Token); err != nil {
		t.Fatal(err)
	}
	return vs
}

// persistentVault is devVault on file storage (it survives Kill and
// Restart), logging to logName in the stack's folder.
func persistentVault(t *testing.T, logName string) *vaultproc.Persistent {
	t.Helper()
	logs, err := os.Create(filepath.Join(stack.Dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	pv, err := vaultproc.StartPersistent(t.Context(), t.TempDir(), logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pv.Stop() })
	if err := devstack.EnableTransit(t.Context(), pv.Addr, pv.Token); err != nil {
		t.Fatal(err)
	}
	return pv
}

// sqlitePath is the path of a new SQLite database for one test, in the
// stack's folder rather than in t.TempDir(). A service started with
// t.Context() is stopped when the test ends, but nothing waits for it to
// exit: it may still be closing its database (SQLite writes and removes its
// journal then) while the test's cleanups remove TempDir, which then fails
// with "directory not empty". The stack's folder is removed once every
// process has stopped.
func sqlitePath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(stack.Dir, "sqlite-")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "c.db")
}
