// Package pgtest gives tests an empty PostgreSQL database of their own on
// the local server (127.0.0.1:5432, user postgres; $TEST_POSTGRES_DSN to
// override). CI runs the same server on the same machine, so a server that
// is down fails the test rather than skipping it.
package pgtest

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// AdminDSN is the maintenance database the test databases are made from.
func AdminDSN() string {
	if d := os.Getenv("TEST_POSTGRES_DSN"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewDatabase creates an empty database, drops it when the test ends, and
// returns its DSN.
func NewDatabase(t testing.TB) string {
	t.Helper()
	name := "ih_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	exec(t, "CREATE DATABASE "+name)
	t.Cleanup(func() { exec(t, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	return strings.Replace(AdminDSN(), "/postgres?", "/"+name+"?", 1)
}

func exec(t testing.TB, stmt string) {
	t.Helper()
	db, err := sql.Open("pgx", AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		t.Fatalf("PostgreSQL at %s: %s: %v", AdminDSN(), stmt, err)
	}
}
