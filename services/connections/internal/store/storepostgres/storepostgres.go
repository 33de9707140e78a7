// Package storepostgres opens the production store: PostgreSQL through pgx
// (database/sql adapter), schema managed by goose, queries shared with SQLite
// in storesql. Several connection-service replicas may share one database.
package storepostgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/integrationhub/connections/services/connections/internal/store/storesql"
)

//go:embed migrations/*.sql
var migrations embed.FS

// eventsLock and accessLock are the advisory lock keys that order event
// and access event writes.
const (
	eventsLock = 7245001
	accessLock = 7245002
	leaderLock = 7245003
)

// Open connects to the database at dsn (a postgres:// URL) and migrates it.
func Open(ctx context.Context, dsn string) (*storesql.Store, error) {
	return open(ctx, dsn, true)
}

// OpenMigrated connects to the database at dsn without changing its schema,
// so that the runtime database user needs no DDL rights: the schema must
// already be at this binary's version (the deploy's migration Job ran),
// else it fails saying so.
func OpenMigrated(ctx context.Context, dsn string) (*storesql.Store, error) {
	return open(ctx, dsn, false)
}

func open(ctx context.Context, dsn string, migrate bool) (*storesql.Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("storepostgres.Open: %w", err)
	}
	db.SetMaxOpenConns(20)
	db.SetConnMaxIdleTime(5 * time.Minute)
	check := Migrate
	if !migrate {
		check = CheckMigrated
	}
	if err := check(ctx, db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("storepostgres.Open: %w", err)
	}
	return storesql.New(db, storesql.Dialect{
		ForUpdate: " FOR UPDATE",
		ForShare:  " FOR SHARE",
		// Held to commit, so events commit in the order of their sequence
		// numbers and a WatchConnections cursor never skips one.
		SerializeEvents: fmt.Sprintf("pg_advisory_xact_lock(%d)", eventsLock),
		SerializeAccess: fmt.Sprintf("pg_advisory_xact_lock(%d)", accessLock),
		// One reconciler (and one of each job with a leader) across the
		// replicas: the lock's key is leaderLock plus the store.Lock.
		LeaderLock:   fmt.Sprintf("SELECT pg_try_advisory_lock(%d + $1::bigint)", leaderLock),
		LeaderUnlock: fmt.Sprintf("SELECT pg_advisory_unlock(%d + $1::bigint)", leaderLock),
		AsyncCommit:  "set_config('synchronous_commit', 'off', true)",
		IsUniqueViolation: func(err error) bool {
			var pe *pgconn.PgError
			return errors.As(err, &pe) && pe.Code == "23505"
		},
	}), nil
}

// CheckMigrated fails unless the schema is at the version this binary
// needs. It reads the version table only.
func CheckMigrated(ctx context.Context, db *sql.DB) error {
	sub, _ := fs.Sub(migrations, "migrations")
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("schema version: %w", err)
	}
	if current < target {
		return fmt.Errorf("the database schema is at version %d, this binary needs %d: run the migrations first (connections -migrate-only, the chart's migration Job)", current, target)
	}
	return nil
}

// Migrate brings the schema up to date. Replicas starting together are safe:
// goose takes a session lock while it migrates.
func Migrate(ctx context.Context, db *sql.DB) error {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sub, _ := fs.Sub(migrations, "migrations")
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
