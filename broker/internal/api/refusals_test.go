package api_test

import (
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	"github.com/integrationhub/connections/internal/grpcserver"
	"github.com/integrationhub/connections/internal/grpctest"

	"github.com/integrationhub/connections/broker/internal/access"
	"github.com/integrationhub/connections/broker/internal/api"
)

// Worker calls refused by validation, before any handler ran, are in the
// access record too, with nothing the caller sent: operation, code and
// reason only.
func TestValidationRefusalsRecorded(t *testing.T) {
	var mu sync.Mutex
	var got []access.Event
	logger := slog.New(slog.DiscardHandler)
	impl, _ := api.New(api.Deps{HTTP: http.DefaultClient, Logger: logger,
		Workers: &api.Workers{Record: func(e access.Event) { mu.Lock(); got = append(got, e); mu.Unlock() }}})
	srv, err := grpcserver.New(grpcserver.Config{Logger: logger, Unary: []grpc.UnaryServerInterceptor{impl.RecordRefusals()}})
	if err != nil {
		t.Fatal(err)
	}
	brokerv1.RegisterCredentialBrokerServer(srv, impl)
	cc, _, _ := grpctest.Serve(t, srv)
	c := brokerv1.NewCredentialBrokerClient(cc)
	_, err = c.GetCredential(t.Context(), &brokerv1.GetCredentialRequest{ConnectionId: "not-a-uuid-canary"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("GetCredential: %v, want InvalidArgument", err)
	}
	_, err = c.MintJobToken(t.Context(), &brokerv1.MintJobTokenRequest{WorkspaceId: "ws", RecipeId: "r", JobId: "j\x00canary"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("MintJobToken: %v, want InvalidArgument", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Operation != "GetCredential" || got[1].Operation != "MintJobToken" {
		t.Fatalf("recorded %+v, want one GetCredential and one MintJobToken refusal", got)
	}
	for _, e := range got {
		if e.Allowed || e.Code != "InvalidArgument" || e.Reason == "" || e.Workspace != "" || e.Job != "" || e.Requested != "" ||
			strings.Contains(e.Reason, "canary") {
			t.Errorf("recorded %+v: want a denied InvalidArgument with its reason and nothing the caller sent", e)
		}
	}
}
