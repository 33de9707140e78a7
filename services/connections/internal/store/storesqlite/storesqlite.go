// Package storesqlite opens the embedded default store: SQLite through
// modernc.org/sqlite (no cgo), schema managed by goose, queries shared with
// PostgreSQL in storesql.
package storesqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"strings"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/integrationhub/connections/services/connections/internal/store/storesql"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*storesql.Store, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("storesqlite.Open: %w", err)
	}
	// One connection serialises writers; SQLite allows one at a time anyway,
	// and this keeps read-modify-write transactions free of SQLITE_BUSY and
	// event sequence numbers in commit order.
	db.SetMaxOpenConns(1)
	sub, _ := fs.Sub(migrations, "migrations")
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub)
	if err == nil {
		_, err = p.Up(ctx)
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("storesqlite.Open: migrate: %w", err)
	}
	return storesql.New(db, storesql.Dialect{
		IsUniqueViolation: func(err error) bool { return strings.Contains(err.Error(), "UNIQUE constraint failed") },
	}), nil
}
