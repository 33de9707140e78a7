package e2e

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/adminauth"
	"github.com/integrationhub/connections/internal/privilege"
)

// The holes of the security review, closed, with canary secrets that must
// reach neither the attacker's host nor any log, database or error:
//   - an editor cannot point a stored credential at another host;
//   - the admin API refuses callers without the connection service's token,
//     and sends a credential only to its connection's own hosts;
//   - a NUL byte in a job id is refused at the edge and the access record
//     keeps flowing.
func TestHardeningCanaries(t *testing.T) {
	cs, br := connections(t), broker(t)
	ctx := ctxT(t)
	canary := func() string { return "CANARY" + rand.Text() }
	ghKey, httpKey, putKey, nulJob := canary(), canary(), canary(), canary()
	var hits atomic.Int64
	var leaked atomic.Bool
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if strings.Contains(r.Header.Get("Authorization"), "CANARY") {
			leaked.Store(true)
		}
	}))
	t.Cleanup(attacker.Close)
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}

	gh, err := cs.CreateConnection(ctx, &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-hardening", Name: "gh",
		Connector: "github", Environment: prod, AuthType: key, Secret: apiKey(ghKey)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := cs.CreateConnection(ctx, &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-hardening", Name: "http",
		Connector: "http", Environment: prod, AuthType: key, Secret: apiKey(httpKey),
		Instance: &credentialv1.AppInstance{BaseUrl: "https://api.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	editor := as(t, "ws-hardening", privilege.EditConnections, privilege.ViewConnections)

	t.Run("an editor cannot point a credential elsewhere", func(t *testing.T) {
		_, err := cs.UpdateConnection(editor, &connectionsv1.UpdateConnectionRequest{Id: gh.GetConnection().GetId(),
			Instance: &credentialv1.AppInstance{BaseUrl: attacker.URL}})
		wantCode(t, err, codes.InvalidArgument, "instance.base_url")
		note(err)
		_, err = cs.UpdateConnection(editor, &connectionsv1.UpdateConnectionRequest{Id: h.GetConnection().GetId(),
			Instance: &credentialv1.AppInstance{BaseUrl: attacker.URL}})
		wantCode(t, err, codes.InvalidArgument, "secret")
		note(err)
	})

	adminCC := dial(t, stack.BrokerAdminAddr)
	admin := brokerv1.NewBrokerAdminClient(adminCC)
	tok, err := os.ReadFile(stack.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	withToken := grpc.PerRPCCredentials(adminauth.Token(strings.TrimSpace(string(tok))))

	t.Run("the admin API needs the connection service's token", func(t *testing.T) {
		put := &brokerv1.PutSecretRequest{ConnectionId: "6c1b4d3e-0000-4000-8000-0000000000aa", WorkspaceId: "ws-hardening",
			Connector: "http", AuthType: key, Secret: apiKey(putKey), AllowedHosts: []string{"127.0.0.1"}}
		_, err := admin.PutSecret(t.Context(), put)
		wantCode(t, err, codes.Unauthenticated, "")
		note(err)
		_, err = admin.PutSecret(t.Context(), put, grpc.PerRPCCredentials(adminauth.Token(canary())))
		wantCode(t, err, codes.Unauthenticated, "")
		note(err)
		_, err = admin.TestCredential(t.Context(), &brokerv1.TestCredentialRequest{ConnectionId: h.GetConnection().GetId(),
			Method: "GET", Url: attacker.URL + "/steal"})
		wantCode(t, err, codes.Unauthenticated, "")
		note(err)
		// Nothing was stored by the refused PutSecret.
		_, err = admin.TestCredential(t.Context(), &brokerv1.TestCredentialRequest{ConnectionId: put.GetConnectionId(),
			Method: "GET", Url: "https://api.example.com/"}, withToken)
		wantCode(t, err, codes.NotFound, "")
	})

	t.Run("TestCredential sends only to the connection's own host", func(t *testing.T) {
		for _, c := range []*connectionsv1.Connection{gh.GetConnection(), h.GetConnection()} {
			_, err := admin.TestCredential(t.Context(), &brokerv1.TestCredentialRequest{ConnectionId: c.GetId(),
				SecretGeneration: c.GetSecretGeneration(), Method: "GET", Url: attacker.URL + "/steal"}, withToken)
			wantCode(t, err, codes.PermissionDenied, "not a host")
			note(err)
		}
	})

	t.Run("a NUL byte is refused at the edge; the access record keeps flowing", func(t *testing.T) {
		_, err := br.MintJobToken(scheduler(t, privilege.MintJobTokens), &brokerv1.MintJobTokenRequest{WorkspaceId: "ws-hardening",
			RecipeId: "r-nul", JobId: "job\x00" + nulJob})
		wantCode(t, err, codes.InvalidArgument, "job_id")
		note(err)
		jc := job(t, cs, br, h.GetConnection().GetId())
		if _, err := br.GetCredential(jc, &brokerv1.GetCredentialRequest{ConnectionId: h.GetConnection().GetId()}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the condition", func() bool {
			evs, err := cs.ListAccessEvents(ctx, &connectionsv1.ListAccessEventsRequest{ConnectionId: h.GetConnection().GetId(),
				Decision: connectionsv1.AccessDecision_ACCESS_DECISION_ALLOWED})
			return err == nil && len(evs.GetEvents()) > 0
		})
	})

	if n := hits.Load(); n != 0 || leaked.Load() {
		t.Errorf("the attacker's host got %d requests (credential leaked: %v)", n, leaked.Load())
	}
	canaries := []string{ghKey, httpKey, putKey, nulJob}
	haystacks := stackHaystacks(t, errs)
	for where, b := range haystacks {
		for _, c := range canaries {
			if bytes.Contains(b, []byte(c)) {
				t.Errorf("a canary leaked into %s", where)
			}
		}
	}
}

// wantCode fails unless err has code and (when set) mentions text.
func wantCode(t *testing.T, err error, code codes.Code, text string) {
	t.Helper()
	if status.Code(err) != code || (text != "" && !strings.Contains(err.Error(), text)) {
		t.Errorf("got %v, want %s mentioning %q", err, code, text)
	}
}
