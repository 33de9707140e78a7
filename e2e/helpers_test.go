package e2e

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
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

func sleep100ms() { time.Sleep(100 * time.Millisecond) }
