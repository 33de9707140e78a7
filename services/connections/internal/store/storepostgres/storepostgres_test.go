package storepostgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/integrationhub/connections/services/connections/internal/store"
	"github.com/integrationhub/connections/services/connections/internal/store/storepostgres"
	"github.com/integrationhub/connections/services/connections/internal/store/storetest"
)

// adminDSN is the local PostgreSQL the tests use ($TEST_POSTGRES_DSN to
// override). CI runs it on the same machine; there is no skip when it is down.
func adminDSN() string {
	if d := os.Getenv("TEST_POSTGRES_DSN"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// freshDatabase creates an empty database for one test and drops it after.
func freshDatabase(t testing.TB) string {
	t.Helper()
	admin, err := sql.Open("pgx", adminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := "conn_test_" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
	if _, err := admin.ExecContext(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("PostgreSQL at %s: %v", adminDSN(), err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", adminDSN())
		if err == nil {
			_, _ = a.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
			a.Close()
		}
	})
	return strings.Replace(adminDSN(), "/postgres?", fmt.Sprintf("/%s?", name), 1)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := storepostgres.Open(t.Context(), freshDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
