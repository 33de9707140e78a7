package api

import (
	"log/slog"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	"github.com/integrationhub/connections/internal/loopback"

	"github.com/integrationhub/connections/services/connections/internal/catalog"
	"github.com/integrationhub/connections/services/connections/internal/store/storesqlite"
)

// brokerDownDeps are a server's dependencies for tests of what it does
// when the broker cannot be reached: a SQLite store of the test's own, the
// built-in catalog, and a broker client for an address nothing listens on.
func brokerDownDeps(t *testing.T) Deps {
	t.Helper()
	st, err := storesqlite.Open(t.Context(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	return Deps{Store: st, Catalog: cat, Broker: DeadBroker(t), Logger: slog.New(slog.DiscardHandler)}
}

// DeadBroker is a broker admin client for an address nothing listens on
// (exported for the package's external tests).
func DeadBroker(t testing.TB) brokerv1.BrokerAdminClient {
	t.Helper()
	dead, err := loopback.FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := grpc.NewClient(dead[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bc.Close() })
	return brokerv1.NewBrokerAdminClient(bc)
}
