// Package storesqlite is the embedded default store: SQLite through
// modernc.org/sqlite (no cgo), schema managed by goose.
package storesqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/integrationhub/connections/services/connections/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a store.Store on one SQLite file.
type Store struct {
	db  *sql.DB
	now func() time.Time
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("storesqlite.Open: %w", err)
	}
	// One connection serialises writers; SQLite allows one at a time anyway,
	// and this keeps read-modify-write transactions free of SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	if err := migrate(ctx, db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("storesqlite.Open: %w", err)
	}
	return &Store{db: db, now: func() time.Time { return time.Now().UTC() }}, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	p, err := goose.NewProvider(goose.DialectSQLite3, db, mustSub(migrations, "migrations"))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// columnList is the order of values() and scan().
var columnList = []string{"id", "workspace_id", "project_id", "name", "connector", "environment", "auth_type",
	"base_url", "subdomain", "org_id", "sandbox", "status", "status_reason", "last_error", "last_verify_time",
	"authorized_as", "granted_scopes", "owner", "parent_connection_id", "runtime_user",
	"create_time", "update_time", "version"}

var (
	columns   = strings.Join(columnList, ", ")
	setClause = strings.Join(columnList, " = ?, ") + " = ?"
)

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, c *store.Connection) error {
	now := s.now()
	c.CreateTime, c.UpdateTime, c.Version = now, now, 1
	args, err := values(c)
	if err != nil {
		return fmt.Errorf("storesqlite.Create: %w", err)
	}
	q := `INSERT INTO connections (` + columns + `) VALUES (?` + strings.Repeat(", ?", len(args)-1) + `)`
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("storesqlite.Create: %w", err)
	}
	return nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (*store.Connection, error) {
	c, err := scan(s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM connections WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("storesqlite.Get %s: %w", id, err)
	}
	return c, nil
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, q store.ListQuery) ([]*store.Connection, string, error) {
	tok, after, err := store.DecodePageToken(q.PageToken)
	if err != nil {
		return nil, "", fmt.Errorf("storesqlite.List: %w", err)
	}
	where := []string{"workspace_id = ?"}
	args := []any{q.WorkspaceID}
	if after {
		where = append(where, "(create_time < ? OR (create_time = ? AND id < ?))")
		n := tok.CreateTime.UnixNano()
		args = append(args, n, n, tok.ID)
	}
	for col, v := range map[string]string{"connector": q.Connector, "status": q.Status, "environment": q.Environment} {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	// One more row than asked tells whether another page follows.
	args = append(args, q.PageSize+1)
	rows, err := s.db.QueryContext(ctx, `SELECT `+columns+` FROM connections WHERE `+
		strings.Join(where, " AND ")+` ORDER BY create_time DESC, id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("storesqlite.List: %w", err)
	}
	defer rows.Close()
	var out []*store.Connection
	for rows.Next() {
		c, err := scan(rows)
		if err != nil {
			return nil, "", fmt.Errorf("storesqlite.List: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("storesqlite.List: %w", err)
	}
	next := ""
	if len(out) > q.PageSize {
		out = out[:q.PageSize]
		last := out[len(out)-1]
		next = store.PageToken{CreateTime: last.CreateTime, ID: last.ID}.Encode()
	}
	return out, next, nil
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, id string, version int64, change func(*store.Connection) error) (*store.Connection, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("storesqlite.Update %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()
	c, err := scan(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM connections WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("storesqlite.Update %s: %w", id, err)
	}
	if version > 0 && c.Version != version {
		return nil, fmt.Errorf("storesqlite.Update %s: %w", id, store.ErrConflict)
	}
	read := c.Version
	if err := change(c); err != nil {
		return nil, fmt.Errorf("storesqlite.Update %s: %w", id, err)
	}
	c.ID, c.Version, c.UpdateTime = id, read+1, s.now()
	args, err := values(c)
	if err != nil {
		return nil, fmt.Errorf("storesqlite.Update %s: %w", id, err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE connections SET `+setClause+` WHERE id = ? AND version = ?`, append(args, id, read)...)
	if err != nil {
		return nil, fmt.Errorf("storesqlite.Update %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil, fmt.Errorf("storesqlite.Update %s: %w", id, store.ErrConflict)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("storesqlite.Update %s: %w", id, err)
	}
	return c, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, id string, version int64) error {
	q, args := `DELETE FROM connections WHERE id = ?`, []any{id}
	if version > 0 {
		q, args = q+` AND version = ?`, append(args, version)
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("storesqlite.Delete %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	// Nothing deleted: tell a missing row from a changed one.
	if _, err := s.Get(ctx, id); err != nil {
		return fmt.Errorf("storesqlite.Delete %s: %w", id, store.ErrNotFound)
	}
	return fmt.Errorf("storesqlite.Delete %s: %w", id, store.ErrConflict)
}

// values lists c's fields in the order of columns.
func values(c *store.Connection) ([]any, error) {
	scopes, err := json.Marshal(nonNil(c.GrantedScopes))
	if err != nil {
		return nil, err
	}
	return []any{c.ID, c.WorkspaceID, c.ProjectID, c.Name, c.Connector, c.Environment, c.AuthType,
		c.Instance.BaseURL, c.Instance.Subdomain, c.Instance.OrgID, c.Instance.Sandbox,
		c.Status, c.StatusReason, c.LastError, nanos(c.LastVerifyTime),
		c.AuthorizedAs, string(scopes), c.Owner, c.ParentConnectionID, c.RuntimeUser,
		nanos(c.CreateTime), nanos(c.UpdateTime), c.Version}, nil
}

type row interface{ Scan(dest ...any) error }

func scan(r row) (*store.Connection, error) {
	var c store.Connection
	var scopes string
	var verified, created, updated int64
	err := r.Scan(&c.ID, &c.WorkspaceID, &c.ProjectID, &c.Name, &c.Connector, &c.Environment, &c.AuthType,
		&c.Instance.BaseURL, &c.Instance.Subdomain, &c.Instance.OrgID, &c.Instance.Sandbox,
		&c.Status, &c.StatusReason, &c.LastError, &verified,
		&c.AuthorizedAs, &scopes, &c.Owner, &c.ParentConnectionID, &c.RuntimeUser,
		&created, &updated, &c.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(scopes), &c.GrantedScopes); err != nil {
		return nil, fmt.Errorf("granted_scopes: %w", err)
	}
	c.LastVerifyTime, c.CreateTime, c.UpdateTime = fromNanos(verified), fromNanos(created), fromNanos(updated)
	return &c, nil
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
