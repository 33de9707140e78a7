package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
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

// cliTokens are a platform token with every privilege (for the connection
// service) and the job scheduler's (for the broker).
func cliTokens(t *testing.T) (token, scheduler string) {
	t.Helper()
	token, err := stack.Token("cli@test", jwtauth.AllWorkspaces, privilege.All...)
	if err != nil {
		t.Fatal(err)
	}
	scheduler, err = stack.Issuer.Mint(devstack.BrokerAudience, "job-scheduler", jwtauth.AllWorkspaces, []string{privilege.MintJobTokens}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return token, scheduler
}

// The hub CLI, built and run as a binary against the local stack: table and
// JSON output, and exit codes a script can trust.
func TestHubCLI(t *testing.T) {
	bin := buildHub(t)
	token, schedTok := cliTokens(t)
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
		return hubIn(t, bin, "", env, args...)
	}
	withToken := []string{"HUB_TOKEN=" + token}
	hubStdin := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		return hubIn(t, bin, stdin, withToken, args...)
	}

	t.Run("disconnect, reconnect, promote", func(t *testing.T) {
		sb, err := cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: "ws-cli-life", Name: "cli sandbox", Connector: "http",
			Environment: connectionsv1.Environment_ENVIRONMENT_SANDBOX, AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY,
			Instance: &credentialv1.AppInstance{BaseUrl: "https://sandbox.example.com"}, Secret: apiKey("cli-sandbox-key")})
		if err != nil {
			t.Fatal(err)
		}
		sid := sb.GetConnection().GetId()
		if code, out, errOut := hub(withToken, "connections", "disconnect", sid); code != 0 || !strings.Contains(out, "DISCONNECTED") {
			t.Errorf("disconnect: exit %d\n%s%s", code, out, errOut)
		}
		if code, out, errOut := hubStdin("cli-sandbox-key-2\n", "connections", "update", sid, "--secret-stdin"); code != 0 || !strings.Contains(out, "ACTIVE") {
			t.Errorf("reconnect: exit %d\n%s%s", code, out, errOut)
		}
		code, out, errOut := hubStdin("cli-live-key\n", "connections", "promote", sid, "--secret-stdin", "--base-url", "https://live.example.com", "--name", "cli live")
		if code != 0 || !strings.Contains(out, "PRODUCTION") || !strings.Contains(out, "cli live") || strings.Contains(out, sid) {
			t.Errorf("promote: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("webhooks", func(t *testing.T) {
		code, out, errOut := hub(withToken, "webhooks", "create", "--workspace", "ws-cli", "--url", "https://hooks.example.invalid/cli", "--events", "deleted,invalid")
		if code != 0 || !strings.Contains(out, "whsec_") {
			t.Fatalf("create: exit %d\n%s%s", code, out, errOut)
		}
		if code, _, errOut := hub(withToken, "webhooks", "create", "--workspace", "ws-cli", "--url", "https://x.example", "--events", "nope"); code == 0 || !strings.Contains(errOut, "--events") {
			t.Errorf("create with a bad event: exit %d\n%s", code, errOut)
		}
		code, out, errOut = hub(withToken, "webhooks", "list", "--workspace", "ws-cli", "-o", "json")
		var got struct {
			Webhooks []struct{ ID, URL string } `json:"webhooks"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil || len(got.Webhooks) != 1 || strings.Contains(out, "whsec_") {
			t.Fatalf("list: exit %d\n%s%s", code, out, errOut)
		}
		hid := got.Webhooks[0].ID
		if code, out, errOut := hub(withToken, "webhooks", "deliveries", hid, "--workspace", "ws-cli"); code != 0 || !strings.HasPrefix(out, "ID") {
			t.Errorf("deliveries: exit %d\n%s%s", code, out, errOut)
		}
		if code, out, errOut := hub(withToken, "webhooks", "delete", hid, "--workspace", "ws-cli"); code != 0 {
			t.Errorf("delete: exit %d\n%s%s", code, out, errOut)
		}
		if code, _, errOut := hub(withToken, "webhooks", "delete", hid, "--workspace", "ws-cli"); code == 0 || !strings.Contains(errOut, "not found") {
			t.Errorf("delete again: exit %d\n%s", code, errOut)
		}
	})

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
		// Filters: name (any case), project (the root), auth type.
		for _, tc := range []struct {
			args []string
			want bool
		}{
			{[]string{"--name", "CLI C"}, true},
			{[]string{"--name", "other"}, false},
			{[]string{"--project", ""}, true},
			{[]string{"--project", "p-1"}, false},
			{[]string{"--auth-type", "api_key"}, true},
			{[]string{"--auth-type", "basic"}, false},
		} {
			code, out, errOut := hub(withToken, append([]string{"connections", "list", "--workspace", "ws-cli"}, tc.args...)...)
			if code != 0 || strings.Contains(out, id) != tc.want {
				t.Errorf("list %v: exit %d, lists the connection %t, want %t\n%s%s", tc.args, code, strings.Contains(out, id), tc.want, out, errOut)
			}
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
		// The table has a row for everything the reconciler reports.
		code, out, errOut = hub(withToken, "reconcile", "--dry-run")
		for _, row := range []string{"orphaned secret generations", "orphaned OAuth client secrets", "orphaned webhook signing secrets",
			"connections missing their secret", "unfinished deletes", "pending connections", "expired write intents", "writes in progress"} {
			if code != 0 || !strings.Contains(out, row) {
				t.Errorf("reconcile table: exit %d, no %q row\n%s%s", code, row, out, errOut)
			}
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

	t.Run("connections create, update, delete, recipes; the secret only through stdin", func(t *testing.T) {
		const key = "cli-created-key-77"
		code, out, errOut := hubStdin(key+"\n", "connections", "create", "--workspace", "ws-cli", "--name", "made by hub", "--connector", "http",
			"--auth-type", "api_key", "--base-url", "https://api.example.com", "--secret-stdin", "-o", "json")
		var made struct {
			ID   string `json:"id"`
			Etag string `json:"etag"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &made) != nil || made.ID == "" || strings.Contains(out+errOut, key) {
			t.Fatalf("create: exit %d\n%s%s", code, out, errOut)
		}
		for _, step := range []struct {
			name  string
			stdin string
			args  []string
			want  int
		}{
			{"update with the etag", "", []string{"connections", "update", made.ID, "--name", "renamed", "--etag", made.Etag}, 0},
			{"update with a stale etag", "", []string{"connections", "update", made.ID, "--name", "again", "--etag", made.Etag}, 6},
			{"--secret-stdin with nothing on stdin", "", []string{"connections", "update", made.ID, "--secret-stdin"}, 2},
			{"recipes register", "", []string{"recipes", "register", "--id", "r-cli-2", "--workspace", "ws-cli"}, 0},
			{"recipes bind", "", []string{"recipes", "bind", "--recipe", "r-cli-2", "--step", "s1", "--connection", made.ID}, 0},
			{"delete while bound, no --force", "", []string{"connections", "delete", made.ID}, 6},
			{"recipes unbind", "", []string{"recipes", "unbind", "--recipe", "r-cli-2", "--step", "s1"}, 0},
			{"delete", "", []string{"connections", "delete", made.ID}, 0},
			{"get after delete", "", []string{"connections", "get", made.ID}, 3},
		} {
			if code, out, errOut := hubStdin(step.stdin, step.args...); code != step.want {
				t.Errorf("%s: exit %d, want %d\n%s%s", step.name, code, step.want, out, errOut)
			}
		}
		code, out, _ = hubStdin("", "audit", "list", "--workspace", "ws-cli")
		if code != 0 || !strings.Contains(out, "connection.delete") || strings.Contains(out, key) {
			t.Errorf("audit list: exit %d\n%s", code, out)
		}
		// Create and bind in one step; a bind to a recipe that does not exist
		// creates nothing (exit 3).
		bound := ""
		for _, tc := range []struct {
			bind string
			want int
		}{{"r-cli-2/s2", 0}, {"r-missing/s1", 3}, {"no-step", 2}} {
			code, out, errOut := hubStdin(key+"\n", "connections", "create", "--workspace", "ws-cli", "--name", "bound by hub",
				"--connector", "http", "--auth-type", "api_key", "--base-url", "https://api.example.com", "--secret-stdin",
				"--bind", tc.bind, "-o", "json")
			if code != tc.want {
				t.Errorf("create --bind %s: exit %d, want %d\n%s%s", tc.bind, code, tc.want, out, errOut)
			}
			if code == 0 {
				var made struct {
					ID string `json:"id"`
				}
				_ = json.Unmarshal([]byte(out), &made)
				bound = made.ID
			}
		}
		if code, out, _ := hubStdin("", "recipes", "usage", bound); code != 0 || !strings.Contains(out, "r-cli-2") || !strings.Contains(out, "s2") {
			t.Errorf("the usage of the connection made with --bind: exit %d\n%s", code, out)
		}
	})

	t.Run("watch", func(t *testing.T) {
		cmd := exec.Command(bin, "watch", "--workspace", "ws-cli", "-o", "json")
		cmd.Env = append(os.Environ(), "HUB_CONNECTIONS_ADDR="+stack.ConnectionsAddr, "HUB_TOKEN="+token)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// The stream starts at "now": rename until a change shows.
		deadline := time.Now().Add(20 * time.Second)
		for i := 0; ; i++ {
			hubStdin("", "connections", "update", id, "--name", fmt.Sprintf("cli conn %d", i))
			select {
			case l, ok := <-lines:
				if !ok || !strings.Contains(l, id) || !strings.Contains(l, "CHANGE_TYPE_UPDATED") {
					t.Fatalf("watch printed %q", l)
				}
				return
			case <-time.After(300 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatal("watch printed nothing within 20s")
			}
		}
	})

	t.Run("access list", func(t *testing.T) {
		waitFor(t, 15*time.Second, "the job's GetCredential in the access record", func() bool {
			code, out, _ := hubStdin("", "access", "list", "--workspace", "ws-cli", "--job", "j-cli")
			return code == 0 && strings.Contains(out, "GetCredential") && strings.Contains(out, id)
		})
	})

	t.Run("connections test and runtime users, against an app", func(t *testing.T) {
		e := newOAuthEnv(t)
		at := []string{"HUB_CONNECTIONS_ADDR=" + e.svc.Addr, "HUB_TOKEN=" + token}
		create := func(key string) string {
			t.Helper()
			code, out, errOut := hubIn(t, bin, key+"\n", at, "connections", "create", "--workspace", "ws-oauth", "--name", "k",
				"--connector", "acme_key", "--auth-type", "api_key", "--secret-stdin", "-o", "json")
			var made struct {
				ID string `json:"id"`
			}
			if code != 0 || json.Unmarshal([]byte(out), &made) != nil {
				t.Fatalf("create: exit %d\n%s%s", code, out, errOut)
			}
			return made.ID
		}
		good := create(goodKey)
		for _, tc := range []struct {
			name, mode, id string
			want           int
		}{
			{"the app takes the key", "", good, 0},
			{"the app is down: the connection stays active", "503", good, 5},
			{"the app refuses the key", "", create("not-the-key"), 6},
		} {
			e.api.mode.Store(tc.mode)
			if code, out, errOut := hubIn(t, bin, "", at, "connections", "test", tc.id); code != tc.want {
				t.Errorf("%s: exit %d, want %d\n%s%s", tc.name, code, tc.want, out, errOut)
			}
		}
		e.api.mode.Store("")
		code, out, errOut := hubIn(t, bin, "alice-key\n", at, "runtime-users", "create", "--parent", good, "--user", "alice", "-o", "json")
		var child struct {
			ID string `json:"id"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &child) != nil || child.ID == "" || strings.Contains(out+errOut, "alice-key") {
			t.Fatalf("runtime-users create: exit %d\n%s%s", code, out, errOut)
		}
		if code, out, _ := hubIn(t, bin, "", at, "runtime-users", "list", "--parent", good); code != 0 || !strings.Contains(out, "alice") {
			t.Errorf("runtime-users list: exit %d\n%s", code, out)
		}
		if code, out, errOut := hubIn(t, bin, "", at, "runtime-users", "delete", child.ID); code != 0 {
			t.Errorf("runtime-users delete: exit %d\n%s%s", code, out, errOut)
		}
		if code, out, _ := hubIn(t, bin, "", at, "runtime-users", "list", "--parent", good); code != 0 || strings.Contains(out, "alice") {
			t.Errorf("runtime-users list after delete: exit %d\n%s", code, out)
		}
	})
}

// What a newcomer following the README ran into: messages that name what
// the command reads, secrets shown only when asked for and never in help,
// bad input refused before it reaches a server, tables that stay tables.
func TestHubCLINewcomer(t *testing.T) {
	bin := buildHub(t)
	token, schedTok := cliTokens(t)
	const ws = "ws-cli-new"
	secret := "cli-new-key-" + fmt.Sprint(time.Now().UnixNano())
	cs := connections(t)
	c, err := cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: ws, Name: "tab\there\nnewline\x1b[31m", Connector: "http",
		Environment: prod, AuthType: credentialv1.AuthType_AUTH_TYPE_API_KEY,
		Instance: &credentialv1.AppInstance{BaseUrl: "https://api.example.com"}, Secret: apiKey(secret)})
	if err != nil {
		t.Fatal(err)
	}
	id, etag := c.GetConnection().GetId(), c.GetConnection().GetEtag()
	if _, err := cs.RegisterRecipe(ctxT(t), &connectionsv1.RegisterRecipeRequest{RecipeId: "r-cli-new", WorkspaceId: ws, Environment: prod}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.BindConnection(ctxT(t), &connectionsv1.BindConnectionRequest{RecipeId: "r-cli-new", Step: "s", ConnectionId: id}); err != nil {
		t.Fatal(err)
	}
	withToken := []string{"HUB_TOKEN=" + token}
	hub := func(stdin string, env []string, args ...string) (int, string, string) {
		t.Helper()
		return hubIn(t, bin, stdin, env, args...)
	}
	code, out, errOut := hub("", []string{"HUB_TOKEN=" + schedTok}, "jobs", "mint-token", "--workspace", ws, "--recipe", "r-cli-new", "--job", "j-new")
	if code != 0 {
		t.Fatalf("mint-token: exit %d\n%s%s", code, out, errOut)
	}
	jobEnv := []string{"HUB_JOB_TOKEN=" + strings.TrimSpace(out)}

	t.Run("no job token: the message names --job-token and HUB_JOB_TOKEN", func(t *testing.T) {
		code, out, errOut := hub("", append(withToken, "HUB_JOB_TOKEN="), "credential", "get", id)
		if code != 4 || !strings.Contains(errOut, "--job-token") || !strings.Contains(errOut, "HUB_JOB_TOKEN") || strings.Contains(errOut, "HUB_TOKEN ") ||
			strings.HasSuffix(strings.TrimSpace(errOut), "HUB_TOKEN") {
			t.Errorf("exit %d\n%s%s", code, out, errOut)
		}
		code, out, errOut = hub("", []string{"HUB_TOKEN="}, "connections", "get", id)
		if code != 4 || !strings.Contains(errOut, "--token") || !strings.Contains(errOut, "HUB_TOKEN") {
			t.Errorf("connections get without a token: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("credential get: the table shows the secret only with --show-secret", func(t *testing.T) {
		code, out, errOut := hub("", jobEnv, "credential", "get", id, "--show-secret")
		if code != 0 || !strings.Contains(out, secret) || !strings.Contains(out, "SECRET") {
			t.Errorf("--show-secret: exit %d\n%s%s", code, out, errOut)
		}
		for _, args := range [][]string{{}, {"-o", "json"}} {
			code, out, errOut := hub("", jobEnv, append([]string{"credential", "get", id}, args...)...)
			if code != 0 || strings.Contains(out+errOut, secret) {
				t.Errorf("without --show-secret %v: exit %d, secret shown: %v", args, code, strings.Contains(out+errOut, secret))
			}
		}
	})

	t.Run("invalid UTF-8 is bad input, named, before any call", func(t *testing.T) {
		for _, tc := range []struct {
			name, stdin, names string
			env                []string
			args               []string
		}{
			{"create --name", "k\n", "--name", withToken, []string{"connections", "create", "--workspace", ws, "--name", "bad\xffname", "--connector", "http",
				"--auth-type", "api_key", "--base-url", "https://api.example.com", "--secret-stdin"}},
			{"list --workspace", "", "--workspace", withToken, []string{"connections", "list", "--workspace", "de\xffmo"}},
			{"mint-token --job", "", "--job", []string{"HUB_TOKEN=" + schedTok}, []string{"jobs", "mint-token", "--workspace", ws, "--recipe", "r-cli-new", "--job", "j\xff"}},
			{"a global flag", "", "--addr", withToken, []string{"connections", "get", id, "--addr", "127.0.0.1:\xff"}},
			{"an argument", "", "argument", withToken, []string{"connections", "get", "\xff"}},
			{"the worker's argument", "", "argument", jobEnv, []string{"credential", "get", "x\xfe"}},
			{"a secret on stdin", "bad\xffkey\n", "standard input", withToken, []string{"connections", "create", "--workspace", ws, "--name", "n", "--connector", "http",
				"--auth-type", "api_key", "--base-url", "https://api.example.com", "--secret-stdin"}},
			{"an update's secret on stdin", "bad\xffkey\n", "standard input", withToken, []string{"connections", "update", id, "--secret-stdin"}},
		} {
			code, out, errOut := hub(tc.stdin, tc.env, tc.args...)
			if code != 6 || !strings.Contains(errOut, tc.names) || !strings.Contains(errOut, "UTF-8") || strings.Contains(errOut, "rpc error") {
				t.Errorf("%s: exit %d, want 6 and a message naming %s\n%s%s", tc.name, code, tc.names, out, errOut)
			}
		}
		if code, out, _ := hub("", withToken, "connections", "list", "--workspace", ws, "-o", "json"); code != 0 || strings.Count(out, `"id"`) != 1 {
			t.Errorf("the refused creates made a connection: exit %d\n%s", code, out)
		}
	})

	t.Run("help never shows a token", func(t *testing.T) {
		env := []string{"HUB_TOKEN=canary-xyz", "HUB_JOB_TOKEN=canary-job-xyz"}
		seen := 0
		var walk func(path []string)
		walk = func(path []string) {
			code, out, errOut := hub("", env, append(path, "--help")...)
			seen++
			if code != 0 || strings.Contains(out+errOut, "canary") {
				t.Errorf("%v --help: exit %d\n%s%s", path, code, out, errOut)
			}
			_, cmds, ok := strings.Cut(out, "Available Commands:\n")
			if !ok {
				return
			}
			for _, l := range strings.Split(cmds, "\n") {
				f := strings.Fields(l)
				if len(f) == 0 || !strings.HasPrefix(l, "  ") {
					break
				}
				if f[0] != "help" && f[0] != "completion" && f[0] != "dev" {
					walk(append(append([]string{}, path...), f[0]))
				}
			}
		}
		walk(nil)
		if seen < 30 {
			t.Errorf("walked only %d commands' help", seen)
		}
		if code, out, errOut := hub("", env, "webhooks", "--help"); code != 0 || strings.Contains(out, "canary-xyz") {
			t.Errorf("webhooks --help: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("get and list tables show the etag", func(t *testing.T) {
		for _, args := range [][]string{{"connections", "get", id}, {"connections", "list", "--workspace", ws}} {
			code, out, errOut := hub("", withToken, args...)
			if code != 0 || !strings.Contains(strings.SplitN(out, "\n", 2)[0], "ETAG") || !strings.Contains(out, etag) {
				t.Errorf("%v: exit %d\n%s%s", args, code, out, errOut)
			}
		}
	})

	t.Run("a cell with a tab, newline or escape stays in its row", func(t *testing.T) {
		code, out, errOut := hub("", withToken, "connections", "list", "--workspace", ws)
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if code != 0 || len(lines) != 2 || !strings.Contains(lines[1], id) || !strings.Contains(lines[1], `tab\there\nnewline`) || strings.Contains(out, "\x1b") {
			t.Errorf("exit %d, %d lines\n%s%s", code, len(lines), out, errOut)
		}
		// protojson varies its spacing on purpose: compare the parsed value.
		code, out, _ = hub("", withToken, "connections", "get", id, "-o", "json")
		var got struct{ Name string }
		if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || got.Name != "tab\there\nnewline\x1b[31m" {
			t.Errorf("json changed: exit %d, %v\n%s", code, err, out)
		}
	})

	t.Run("messages name the environment variables and the known values", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			env  []string
			args []string
			want int
			says []string
		}{
			{"no connection service address", append(withToken, "HUB_CONNECTIONS_ADDR="), []string{"connections", "get", id}, 2, []string{"--addr", "HUB_CONNECTIONS_ADDR"}},
			{"no connection service address: watch", append(withToken, "HUB_CONNECTIONS_ADDR="), []string{"watch"}, 2, []string{"--addr", "HUB_CONNECTIONS_ADDR"}},
			{"no broker address", append(jobEnv, "HUB_BROKER_ADDR="), []string{"credential", "get", id}, 2, []string{"--broker-addr", "HUB_BROKER_ADDR"}},
			{"an unknown auth type", withToken, []string{"connections", "list", "--workspace", ws, "--auth-type", "apikey"}, 2, []string{`"apikey"`, "api_key", "basic", "oauth2_client_credentials"}},
			{"an unknown environment", withToken, []string{"recipes", "register", "--id", "r", "--workspace", ws, "--environment", "prod"}, 2, []string{"production", "sandbox"}},
		} {
			code, out, errOut := hub("", tc.env, tc.args...)
			for _, s := range tc.says {
				if code != tc.want || !strings.Contains(errOut, s) {
					t.Errorf("%s: exit %d (want %d), want %q in\n%s%s", tc.name, code, tc.want, s, out, errOut)
					break
				}
			}
			if strings.Contains(errOut, "UNSPECIFIED") {
				t.Errorf("%s: offers UNSPECIFIED: %s", tc.name, errOut)
			}
		}
	})

	t.Run("mutating commands confirm in one line; -o json stays JSON", func(t *testing.T) {
		create := func() string {
			t.Helper()
			code, out, errOut := hub("k-2\n", withToken, "connections", "create", "--workspace", ws, "--name", "to delete", "--connector", "http",
				"--auth-type", "api_key", "--base-url", "https://api.example.com", "--secret-stdin", "-o", "json")
			var made struct {
				ID string `json:"id"`
			}
			if code != 0 || json.Unmarshal([]byte(out), &made) != nil {
				t.Fatalf("create: exit %d\n%s%s", code, out, errOut)
			}
			return made.ID
		}
		a, b := create(), create()
		for _, tc := range []struct {
			args []string
			says string // "": -o json
		}{
			{[]string{"recipes", "register", "--id", "r-cli-new-2", "--workspace", ws}, "r-cli-new-2"},
			{[]string{"recipes", "register", "--id", "r-cli-new-2", "--workspace", ws, "-o", "json"}, ""},
			{[]string{"recipes", "bind", "--recipe", "r-cli-new-2", "--step", "s1", "--connection", a}, a},
			{[]string{"recipes", "unbind", "--recipe", "r-cli-new-2", "--step", "s1"}, "s1"},
			{[]string{"recipes", "bind", "--recipe", "r-cli-new-2", "--step", "s1", "--connection", a, "-o", "json"}, ""},
			{[]string{"recipes", "unbind", "--recipe", "r-cli-new-2", "--step", "s1", "-o", "json"}, ""},
			{[]string{"connections", "delete", a}, a},
			{[]string{"connections", "delete", b, "-o", "json"}, ""},
		} {
			code, out, errOut := hub("", withToken, tc.args...)
			switch {
			case code != 0:
				t.Errorf("%v: exit %d\n%s%s", tc.args, code, out, errOut)
			case tc.says != "" && (strings.Count(out, "\n") != 1 || !strings.Contains(out, tc.says)):
				t.Errorf("%v: printed %q, want one line naming %s", tc.args, out, tc.says)
			case tc.says == "" && !json.Valid([]byte(out)):
				t.Errorf("%v: printed %q, not JSON", tc.args, out)
			}
		}
	})

	t.Run("connectors list", func(t *testing.T) {
		code, out, errOut := hub("", withToken, "connectors", "list")
		if code != 0 || !strings.HasPrefix(out, "NAME") || !strings.Contains(out, "\nhttp ") {
			t.Errorf("table: exit %d\n%s%s", code, out, errOut)
		}
		code, out, errOut = hub("", withToken, "connectors", "list", "-o", "json")
		var got struct {
			Connectors []struct{ Name string } `json:"connectors"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil || len(got.Connectors) == 0 {
			t.Errorf("json: exit %d\n%s%s", code, out, errOut)
		}
	})
}

// buildHub builds the hub binary into a temporary folder.
func buildHub(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hub")
	build := exec.Command("go", "build", "-o", bin, "./cmd/hub")
	build.Dir = ".." // tests run in e2e/
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build hub: %v\n%s", err, out)
	}
	return bin
}

// hubIn runs the hub binary with stdin and extra environment and returns
// its exit code, standard output and standard error.
func hubIn(t *testing.T, bin, stdin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HUB_CONNECTIONS_ADDR="+stack.ConnectionsAddr, "HUB_BROKER_ADDR="+stack.BrokerAddr)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
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
