package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/jwtauth"
	"github.com/integrationhub/connections/internal/privilege"
)

// The hub CLI, built and run as a binary against the local stack: table and
// JSON output, and exit codes a script can trust.
func TestHubCLI(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hub")
	build := exec.Command("go", "build", "-o", bin, "./cmd/hub")
	build.Dir = ".." // tests run in e2e/
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build hub: %v\n%s", err, out)
	}
	token, err := stack.Token("cli@test", jwtauth.AllWorkspaces, privilege.All...)
	if err != nil {
		t.Fatal(err)
	}
	schedTok, err := stack.Issuer.Mint(devstack.BrokerAudience, "job-scheduler", jwtauth.AllWorkspaces, []string{privilege.MintJobTokens}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secret := "cli-key-" + t.Name()
	cs := connections(t)
	c, err := cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-cli", Name: "cli conn", Connector: "http",
		Environment: prod, AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY,
		Instance: &credentialv1.AppInstance{BaseUrl: "https://api.example.com"}, Secret: apiKey(secret)})
	if err != nil {
		t.Fatal(err)
	}
	id := c.GetConnection().GetId()
	if _, err := cs.RegisterRecipe(ctxT(t), &connectionsv1.RegisterRecipeRequest{RecipeId: "r-cli", WorkspaceId: "ws-cli", Environment: prod}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.BindConnection(ctxT(t), &connectionsv1.BindConnectionRequest{RecipeId: "r-cli", Step: "s", ConnectionId: id}); err != nil {
		t.Fatal(err)
	}
	hub := func(env []string, args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "HUB_CONNECTIONS_ADDR="+stack.ConnectionsAddr, "HUB_BROKER_ADDR="+stack.BrokerAddr)
		cmd.Env = append(cmd.Env, env...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), stdout.String(), stderr.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, stdout.String(), stderr.String()
	}
	withToken := []string{"HUB_TOKEN=" + token}

	t.Run("connections list, table and JSON", func(t *testing.T) {
		code, out, errOut := hub(withToken, "connections", "list", "--workspace", "ws-cli")
		if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "ACTIVE") || !strings.HasPrefix(out, "ID") {
			t.Errorf("table: exit %d\n%s%s", code, out, errOut)
		}
		code, out, errOut = hub(withToken, "connections", "list", "--workspace", "ws-cli", "-o", "json")
		var got struct {
			Connections []struct{ ID string } `json:"connections"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil || len(got.Connections) != 1 || got.Connections[0].ID != id {
			t.Errorf("json: exit %d\n%s%s", code, out, errOut)
		}
	})
	t.Run("exit codes", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			env  []string
			args []string
			want int
		}{
			{"get", withToken, []string{"connections", "get", id}, 0},
			{"not found", withToken, []string{"connections", "get", "7d6c5b4a-3333-4000-8000-0000000000cc"}, 3},
			{"no token", nil, []string{"connections", "get", id}, 4},
			{"a refused token", []string{"HUB_TOKEN=not-a-token"}, []string{"connections", "get", id}, 4},
			{"bad input", withToken, []string{"connections", "get", "not-a-uuid"}, 6},
			{"usage: missing argument", withToken, []string{"connections", "get"}, 2},
			{"usage: unknown flag", withToken, []string{"connections", "list", "--nope"}, 2},
			{"usage: unknown command", withToken, []string{"nope"}, 2},
			{"usage: bad output", withToken, []string{"connections", "list", "--workspace", "ws-cli", "-o", "yaml"}, 2},
			{"unavailable", append(withToken, "HUB_CONNECTIONS_ADDR=127.0.0.1:1"), []string{"connections", "get", id, "--timeout", "2s"}, 5},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if code, out, errOut := hub(tc.env, tc.args...); code != tc.want {
					t.Errorf("exit %d, want %d\n%s%s", code, tc.want, out, errOut)
				}
			})
		}
	})
	t.Run("reconcile dry run", func(t *testing.T) {
		code, out, errOut := hub(withToken, "reconcile", "--dry-run", "-o", "json")
		var r struct {
			Repaired bool `json:"repaired"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Repaired {
			t.Errorf("exit %d\n%s%s", code, out, errOut)
		}
	})
	t.Run("job token and the worker's view, secret hidden", func(t *testing.T) {
		code, jobTok, errOut := hub([]string{"HUB_TOKEN=" + schedTok}, "jobs", "mint-token", "--workspace", "ws-cli", "--recipe", "r-cli", "--job", "j-cli")
		if code != 0 || strings.Count(strings.TrimSpace(jobTok), ".") != 2 {
			t.Fatalf("mint-token: exit %d\n%s%s", code, jobTok, errOut)
		}
		env := []string{"HUB_JOB_TOKEN=" + strings.TrimSpace(jobTok)}
		code, out, errOut := hub(env, "credential", "get", id)
		if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "AUTHORIZATION_BEARER") || strings.Contains(out+errOut, secret) {
			t.Errorf("credential get: exit %d\n%s%s", code, out, errOut)
		}
		if code, out, _ := hub(env, "credential", "get", id, "--show-secret", "-o", "json"); code != 0 || !strings.Contains(out, secret) {
			t.Errorf("credential get --show-secret: exit %d, secret shown: %v", code, strings.Contains(out, secret))
		}
		if code, _, _ := hub(env, "credential", "get", "7d6c5b4a-3333-4000-8000-0000000000cc"); code != 4 {
			t.Errorf("credential get of a connection the job does not cover: exit %d, want 4", code)
		}
	})
}
