package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/jwtauth"
	"github.com/integrationhub/connections/internal/privilege"
	"github.com/integrationhub/connections/sdk/go/worker"
)

// runDev starts the local stack in .dev/ (fresh each time: the Vault dev
// server keeps nothing), runs the demo and serves until interrupted.
func runDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	noWait := fs.Bool("exit-after-demo", false, "stop the stack after the demo instead of serving")
	dir := fs.String("dir", "", "folder for the built services, logs and SQLite file (default .dev in the repository)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root, err := devstack.Root()
	if err != nil {
		return err
	}
	if *dir == "" {
		*dir = filepath.Join(root, ".dev")
	}
	return dev(ctx, root, *dir, *noWait)
}

func dev(ctx context.Context, root, dir string, noWait bool) error {
	if err := os.RemoveAll(filepath.Join(dir, "run")); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o700); err != nil {
		return err
	}
	fmt.Println("building the services...")
	bins, err := devstack.Build(ctx, root, filepath.Join(dir, "bin"))
	if err != nil {
		return err
	}
	// The demo app stands in for a customer's app; its key is fresh each
	// run and printed only as a fingerprint.
	key := rand.Text()
	app, err := startDemoApp(key)
	if err != nil {
		return err
	}
	defer app.Close()
	catalog, err := app.writeCatalog(filepath.Join(dir, "run"))
	if err != nil {
		return err
	}
	fmt.Println("starting Vault (dev mode), the credential broker (with its egress proxy) and the connection service...")
	stack, err := devstack.Start(ctx, bins, filepath.Join(dir, "run"), devstack.Options{CatalogFile: catalog, Proxy: true})
	if err != nil {
		return err
	}
	defer stack.Stop()

	token, err := stack.Token("dev@localhost", jwtauth.AllWorkspaces, privilege.All...)
	if err != nil {
		return err
	}
	fmt.Printf(`
local stack is up (all on loopback):
  connection service  %s   (ConnectionService; OAuth callback on http://%s)
  credential broker   %s   (CredentialBroker, for workers)
  broker egress proxy %s   (HTTP, for workers that hold no secret)
  broker admin API    %s   (BrokerAdmin, for the connection service)
  Vault dev server    %s
  demo app            %s   (a stand-in for a customer's API: GET /v1/me with its key)
  logs and SQLite     %s

`, stack.ConnectionsAddr, stack.ConnectionsHTTPAddr, stack.BrokerAddr, stack.ProxyAddr, stack.BrokerAdminAddr, stack.Vault.Addr, app.URL, stack.Dir)

	connID, job, err := demo(ctx, stack, app, token)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if noWait {
		return nil
	}
	// The broker takes tokens for its own audience: the job scheduler's
	// token differs from the platform's.
	schedTok, err := stack.Issuer.Mint(devstack.BrokerAudience, "job-scheduler", jwtauth.AllWorkspaces, []string{privilege.MintJobTokens}, time.Hour)
	if err != nil {
		return err
	}
	fmt.Printf(`
dev token (every privilege, every workspace, for the connection service, valid 1 hour):
  export TOKEN=%[1]s
job scheduler's token (jobs:mint, for the broker, valid 1 hour):
  export SCHEDULER_TOKEN=%[2]s
the demo's job token (job demo-job-1 of recipe demo-recipe, valid until %[8]s):
  export HUB_JOB_TOKEN=%[9]s

try it yourself with the hub CLI, e.g.:
  export HUB_CONNECTIONS_ADDR=%[3]s HUB_BROKER_ADDR=%[4]s
  %[10]s connections list --workspace demo --token "$TOKEN"
  %[10]s connections test %[5]s --token "$TOKEN"
  %[10]s reconcile --dry-run --token "$TOKEN"
  # the demo connection's credential as the job's worker sees it (the key hidden unless --show-secret)
  %[10]s credential get %[5]s
  # a job token for another run of the demo recipe, minted as the job scheduler does
  export HUB_JOB_TOKEN=$(%[10]s jobs mint-token --workspace demo --recipe demo-recipe --job my-job --token "$SCHEDULER_TOKEN")
  # the demo app through the broker's egress proxy: the worker holds no secret, the broker puts the key on
  curl -sS -H "Proxy-Authorization: Bearer $HUB_JOB_TOKEN" http://%[6]s/%[5]s/v1/me
  # a worker program on the Go SDK: the SDK puts the key on, or (-proxy) the broker's proxy does
  export INTEGRATIONHUB_BROKER_ADDR=%[4]s INTEGRATIONHUB_PROXY_ADDR=%[6]s INTEGRATIONHUB_JOB_TOKEN=$HUB_JOB_TOKEN
  go run ./sdk/go/examples/worker -connection %[5]s -url %[7]s/v1/me
  go run ./sdk/go/examples/worker -connection %[5]s -url %[7]s/v1/me -proxy

serving until interrupted (Ctrl-C)...
`, token, schedTok, stack.ConnectionsAddr, stack.BrokerAddr, connID, stack.ProxyAddr, app.URL,
		job.GetExpireTime().AsTime().Format(time.RFC3339), job.GetToken(), hubCommand())
	<-ctx.Done()
	fmt.Println("\nstopping...")
	return nil
}

// demo acts as a platform service (creates an API-key connection to the
// demo app) and as a recipe worker (fetches its credential, then calls the
// app through the broker's egress proxy), and prints the outcome without
// the secret: only a fingerprint and whether it matches what was stored.
func demo(ctx context.Context, stack *devstack.Stack, app *demoApp, token string) (string, *brokerv1.MintJobTokenResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	cc, err := grpc.NewClient(stack.ConnectionsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", nil, err
	}
	defer cc.Close()
	bc, err := grpc.NewClient(stack.BrokerAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", nil, err
	}
	defer bc.Close()

	key := app.key
	created, err := connectionsv1.NewConnectionServiceClient(cc).CreateConnection(ctx, &connectionsv1.CreateConnectionRequest{
		WorkspaceId: "demo",
		Name:        "Demo API",
		Connector:   demoConnector,
		Environment: connectionsv1.Environment_ENVIRONMENT_SANDBOX,
		AuthType:    credentialv1.AuthType_AUTH_TYPE_API_KEY,
		Secret:      &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: key}}},
	})
	if err != nil {
		return "", nil, fmt.Errorf("CreateConnection: %w", err)
	}
	c := created.GetConnection()
	fmt.Printf("platform service: created connection %s %q (%s, %s) -> %s\n",
		c.GetId(), c.GetName(), c.GetConnector(), c.GetAuthType(), c.GetStatus())

	// The platform registers the recipe that uses the connection, and its
	// job scheduler mints a job token for one run of it.
	cs := connectionsv1.NewConnectionServiceClient(cc)
	const recipe = "demo-recipe"
	if _, err := cs.RegisterRecipe(ctx, &connectionsv1.RegisterRecipeRequest{RecipeId: recipe, WorkspaceId: "demo",
		Name: "Demo recipe", Environment: connectionsv1.Environment_ENVIRONMENT_SANDBOX}); err != nil {
		return "", nil, fmt.Errorf("RegisterRecipe: %w", err)
	}
	if _, err := cs.BindConnection(ctx, &connectionsv1.BindConnectionRequest{RecipeId: recipe, Step: "action-1", ConnectionId: c.GetId()}); err != nil {
		return "", nil, fmt.Errorf("BindConnection: %w", err)
	}
	schedTok, err := stack.Issuer.Mint(devstack.BrokerAudience, "job-scheduler", jwtauth.AllWorkspaces, []string{privilege.MintJobTokens}, time.Hour)
	if err != nil {
		return "", nil, err
	}
	broker := brokerv1.NewCredentialBrokerClient(bc)
	minted, err := broker.MintJobToken(metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", "Bearer "+schedTok)),
		&brokerv1.MintJobTokenRequest{WorkspaceId: "demo", RecipeId: recipe, JobId: "demo-job-1"})
	if err != nil {
		return "", nil, fmt.Errorf("MintJobToken: %w", err)
	}
	fmt.Printf("job scheduler:    MintJobToken(%s, demo-job-1) -> token for %v until %s\n",
		recipe, minted.GetConnectionIds(), minted.GetExpireTime().AsTime().Format(time.RFC3339))

	worker := metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", "Bearer "+minted.GetToken()))
	got, err := broker.GetCredential(worker, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
	if err != nil {
		return "", nil, fmt.Errorf("GetCredential: %w", err)
	}
	gotKey := got.GetCredential().GetApiKey().GetKey()
	fmt.Printf("recipe worker:    GetCredential(%s) -> %s for %s, key %s (matches what was stored: %v)\n",
		got.GetConnectionId(), got.GetCredential().GetAuthType(), got.GetBaseUrl(),
		fingerprint(gotKey), gotKey == key)
	if gotKey != key {
		return "", nil, fmt.Errorf("the credential served differs from the one stored")
	}
	if err := callThroughProxy(ctx, stack, app, minted.GetToken(), c.GetId()); err != nil {
		return "", nil, err
	}
	// The broker ships its access record to the connection service about
	// once a second.
	printed := map[string]bool{}
	for range 50 {
		list, err := cs.ListAccessEvents(ctx, &connectionsv1.ListAccessEventsRequest{WorkspaceId: "demo", JobId: "demo-job-1"})
		if err != nil {
			return "", nil, fmt.Errorf("ListAccessEvents: %w", err)
		}
		for _, e := range list.GetEvents() {
			if op := e.GetOperation(); (op == "GetCredential" || op == "ProxyRequest") && !printed[op] {
				printed[op] = true
				fmt.Printf("auditor:          ListAccessEvents -> %s %s of %s by job %s (recipe %s)\n",
					op, e.GetDecision(), e.GetResolvedConnectionId(), e.GetJobId(), e.GetRecipeId())
			}
		}
		if len(printed) == 2 {
			return c.GetId(), minted, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", nil, fmt.Errorf("the accesses were not recorded within 5 seconds")
}

// callThroughProxy is the worker that holds no secret: the SDK sends the
// request to the broker's egress proxy with the job token, and the broker
// puts the connection's key on it.
func callThroughProxy(ctx context.Context, stack *devstack.Stack, app *demoApp, jobToken, connID string) error {
	wc, err := worker.New(ctx, worker.Options{Address: stack.BrokerAddr, Token: jobToken, ProxyAddress: stack.ProxyAddr})
	if err != nil {
		return err
	}
	defer wc.Close()
	before := app.authorized.Load()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, app.URL+"/v1/me", nil)
	if err != nil {
		return err
	}
	resp, err := wc.ProxyHTTPClient(connID).Do(req)
	if err != nil {
		return fmt.Errorf("through the proxy: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return fmt.Errorf("through the proxy: %w", err)
	}
	fmt.Printf("recipe worker:    GET %s/v1/me through the broker's proxy -> %s %s (the app got the key: %v; the worker never held it)\n",
		app.URL, resp.Status, bytes.TrimSpace(body), app.authorized.Load() > before)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("through the proxy: the app answered %s", resp.Status)
	}
	return nil
}

func fingerprint(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:4]) + "…"
}

// hubCommand is how the commands printed for pasting run this CLI: the
// binary running now when it lies below the working directory (scripts/dev.sh
// builds .bin/hub), since its exit codes are the ones the README lists;
// otherwise (under go run, say) "go run ./cmd/hub", whose failures all exit 1.
func hubCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "go run ./cmd/hub"
	}
	wd, err := os.Getwd()
	if err != nil {
		return "go run ./cmd/hub"
	}
	rel, err := filepath.Rel(wd, exe)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "go run ./cmd/hub"
	}
	return "./" + filepath.ToSlash(rel)
}
