// Package e2e tests the services as real processes: the Vault binary the
// project builds, the broker and the connection service, all on loopback.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/adminauth"
	"github.com/integrationhub/connections/internal/devstack"
	"github.com/integrationhub/connections/internal/jwtauth"
	"github.com/integrationhub/connections/internal/privilege"
)

// stack is shared by the tests of this package: starting Vault per test would
// cost more than the tests themselves.
var stack *devstack.Stack

// binaries are the service programs the stack runs, built once for the package.
var binaries devstack.Binaries

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Debug logging makes the canary test stricter: more is written that could leak.
	os.Setenv("LOG_LEVEL", "debug")
	tmp, err := os.MkdirTemp("", "e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if os.Getenv("E2E_KEEP_LOGS") == "" {
		defer os.RemoveAll(tmp)
	} else {
		fmt.Fprintln(os.Stderr, "e2e: logs kept in", tmp)
	}
	root, err := devstack.Root()
	if err == nil {
		if binaries, err = devstack.Build(ctx, root, filepath.Join(tmp, "bin")); err == nil {
			stack, err = devstack.Start(ctx, binaries, tmp, devstack.Options{})
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting the stack:", err)
		return 1
	}
	defer stack.Stop()
	return m.Run()
}

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// dialAdmin connects to a broker's admin API as the connection service
// does: with the stack's service token.
func dialAdmin(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	tok, err := os.ReadFile(stack.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(adminauth.Token(strings.TrimSpace(string(tok)))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func connections(t *testing.T) connectionsv1.ConnectionServiceClient {
	return connectionsv1.NewConnectionServiceClient(dial(t, stack.ConnectionsAddr))
}

func broker(t *testing.T) brokerv1.CredentialBrokerClient {
	return brokerv1.NewCredentialBrokerClient(dial(t, stack.BrokerAddr))
}

// ctxT is a test context that carries a token with every privilege in
// every workspace, as a platform service account would hold.
func ctxT(t testing.TB) context.Context {
	return as(t, jwtauth.AllWorkspaces, privilege.All...)
}

// as is a test context carrying a token for workspace with privileges.
func as(t testing.TB, workspace string, privileges ...string) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	tok, err := stack.Token("e2e-tester", workspace, privileges...)
	if err != nil {
		t.Fatal(err)
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}
