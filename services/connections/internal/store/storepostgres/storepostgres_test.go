package storepostgres_test

import (
	"database/sql"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/integrationhub/connections/internal/pgtest"

	"github.com/integrationhub/connections/services/connections/internal/store"
	"github.com/integrationhub/connections/services/connections/internal/store/storepostgres"
	"github.com/integrationhub/connections/services/connections/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := storepostgres.Open(t.Context(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// Replicas starting together migrate the same database safely.
func TestConcurrentMigrations(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			s, err := storepostgres.Open(t.Context(), dsn)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
}

// With migrations left to the deploy's Job (-skip-migrations), opening an unmigrated database
// fails, saying what to do, and changes nothing; a role without DDL rights can then run the
// service on a migrated database.
func TestOpenMigrated(t *testing.T) {
	// The runtime role is cluster-wide: dropped last, after its database (cleanups run in reverse).
	role := "ih_rt_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	t.Cleanup(func() {
		if admin, err := sql.Open("pgx", pgtest.AdminDSN()); err == nil {
			_, _ = admin.Exec("DROP ROLE IF EXISTS " + role)
			admin.Close()
		}
	})
	dsn := pgtest.NewDatabase(t)
	if _, err := storepostgres.OpenMigrated(t.Context(), dsn); err == nil || !strings.Contains(err.Error(), "run the migrations first") {
		t.Fatalf("OpenMigrated on an empty database: %v, want a clear refusal", err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'goose_db_version'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("OpenMigrated created %d tables (%v)", tables, err)
	}
	s, err := storepostgres.Open(t.Context(), dsn) // the migration Job
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	// The runtime role: DML only, no CREATE on the schema.
	for _, stmt := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
		"GRANT USAGE ON SCHEMA public TO " + role,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + role,
		"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO " + role,
	} {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	u, _ := url.Parse(dsn)
	u.User = url.User(role)
	rt, err := storepostgres.OpenMigrated(t.Context(), u.String())
	if err != nil {
		t.Fatalf("OpenMigrated as a role without DDL rights: %v", err)
	}
	rt.Close()
}
