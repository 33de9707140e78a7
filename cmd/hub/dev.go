package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
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
)

// runDev starts the local stack in .dev/ (fresh each time: the Vault dev
// server keeps nothing), runs the demo and serves until interrupted.
func runDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	noWait := fs.Bool("exit-after-demo", false, "stop the stack after the demo instead of serving")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root, err := devstack.Root()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, ".dev")
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
	fmt.Println("starting Vault (dev mode), the credential broker and the connection service...")
	stack, err := devstack.Start(ctx, bins, filepath.Join(dir, "run"))
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
  broker admin API    %s   (BrokerAdmin, for the connection service)
  Vault dev server    %s
  logs and SQLite     %s

`, stack.ConnectionsAddr, stack.ConnectionsHTTPAddr, stack.BrokerAddr, stack.BrokerAdminAddr, stack.Vault.Addr, stack.Dir)

	connID, err := demo(ctx, stack, token)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if *noWait {
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

try it yourself with the hub CLI (go run ./cmd/hub, or a built hub), e.g.:
  export HUB_CONNECTIONS_ADDR=%[3]s HUB_BROKER_ADDR=%[4]s
  go run ./cmd/hub connections list --workspace demo --token "$TOKEN"
  go run ./cmd/hub reconcile --dry-run --token "$TOKEN"
  # a job token for one run of the demo recipe, then its credential, as a worker sees it:
  export HUB_JOB_TOKEN=$(go run ./cmd/hub jobs mint-token --workspace demo --recipe demo-recipe --job my-job --token "$SCHEDULER_TOKEN")
  go run ./cmd/hub credential get %[5]s
  # or a worker program on the Go SDK (from sdk/go):
  #   INTEGRATIONHUB_BROKER_ADDR=%[4]s INTEGRATIONHUB_JOB_TOKEN=$HUB_JOB_TOKEN go run ./examples/worker -connection %[5]s -url <URL>

serving until interrupted (Ctrl-C)...
`, token, schedTok, stack.ConnectionsAddr, stack.BrokerAddr, connID)
	<-ctx.Done()
	fmt.Println("\nstopping...")
	return nil
}

// demo acts as a platform service (creates an API-key connection) and as a
// recipe worker (fetches its credential), and prints the outcome without the
// secret: only a fingerprint and whether it matches what was stored.
func demo(ctx context.Context, stack *devstack.Stack, token string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	cc, err := grpc.NewClient(stack.ConnectionsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer cc.Close()
	bc, err := grpc.NewClient(stack.BrokerAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer bc.Close()

	key := rand.Text() // a fresh demo key; printed only as a fingerprint
	created, err := connectionsv1.NewConnectionServiceClient(cc).CreateConnection(ctx, &connectionsv1.CreateConnectionRequest{
		WorkspaceId: "demo",
		Name:        "Demo HTTP API",
		Connector:   "http",
		Environment: connectionsv1.Environment_ENVIRONMENT_SANDBOX,
		AuthType:    credentialv1.AuthType_AUTH_TYPE_API_KEY,
		Instance:    &credentialv1.AppInstance{BaseUrl: "https://api.example.com"},
		Secret:      &credentialv1.Secret{Kind: &credentialv1.Secret_ApiKey{ApiKey: &credentialv1.ApiKey{Key: key}}},
	})
	if err != nil {
		return "", fmt.Errorf("CreateConnection: %w", err)
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
		return "", fmt.Errorf("RegisterRecipe: %w", err)
	}
	if _, err := cs.BindConnection(ctx, &connectionsv1.BindConnectionRequest{RecipeId: recipe, Step: "action-1", ConnectionId: c.GetId()}); err != nil {
		return "", fmt.Errorf("BindConnection: %w", err)
	}
	schedTok, err := stack.Issuer.Mint(devstack.BrokerAudience, "job-scheduler", jwtauth.AllWorkspaces, []string{privilege.MintJobTokens}, time.Hour)
	if err != nil {
		return "", err
	}
	broker := brokerv1.NewCredentialBrokerClient(bc)
	minted, err := broker.MintJobToken(metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", "Bearer "+schedTok)),
		&brokerv1.MintJobTokenRequest{WorkspaceId: "demo", RecipeId: recipe, JobId: "demo-job-1"})
	if err != nil {
		return "", fmt.Errorf("MintJobToken: %w", err)
	}
	fmt.Printf("job scheduler:    MintJobToken(%s, demo-job-1) -> token for %v until %s\n",
		recipe, minted.GetConnectionIds(), minted.GetExpireTime().AsTime().Format(time.RFC3339))

	worker := metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", "Bearer "+minted.GetToken()))
	got, err := broker.GetCredential(worker, &brokerv1.GetCredentialRequest{ConnectionId: c.GetId()})
	if err != nil {
		return "", fmt.Errorf("GetCredential: %w", err)
	}
	gotKey := got.GetCredential().GetApiKey().GetKey()
	fmt.Printf("recipe worker:    GetCredential(%s) -> %s for %s, key %s (matches what was stored: %v)\n",
		got.GetConnectionId(), got.GetCredential().GetAuthType(), got.GetInstance().GetBaseUrl(),
		fingerprint(gotKey), gotKey == key)
	if gotKey != key {
		return "", fmt.Errorf("the credential served differs from the one stored")
	}
	// The broker ships its access record to the connection service about
	// once a second.
	for range 50 {
		list, err := cs.ListAccessEvents(ctx, &connectionsv1.ListAccessEventsRequest{WorkspaceId: "demo", JobId: "demo-job-1"})
		if err != nil {
			return "", fmt.Errorf("ListAccessEvents: %w", err)
		}
		for _, e := range list.GetEvents() {
			if e.GetOperation() == "GetCredential" {
				fmt.Printf("auditor:          ListAccessEvents -> %s %s of %s by job %s (recipe %s)\n",
					e.GetOperation(), e.GetDecision(), e.GetResolvedConnectionId(), e.GetJobId(), e.GetRecipeId())
				return c.GetId(), nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", fmt.Errorf("the access was not recorded within 5 seconds")
}

func fingerprint(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:4]) + "…"
}
