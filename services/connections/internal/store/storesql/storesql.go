// Package storesql implements store.Store once, over database/sql, for every
// SQL database this service supports. The SQL is written to run unchanged on
// SQLite and PostgreSQL ($N placeholders, RETURNING, ON CONFLICT); the few
// real differences are in a Dialect. storesqlite and storepostgres open the
// database, migrate it and hand it here.
package storesql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/integrationhub/connections/internal/validtext"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// Dialect holds what differs between databases.
type Dialect struct {
	// ForUpdate locks rows read for a read-modify-write (" FOR UPDATE"), or is
	// empty where the database serialises writers anyway (SQLite).
	ForUpdate string
	// ForShare locks rows read so that they cannot change until the
	// transaction ends (" FOR SHARE"), or is empty like ForUpdate.
	ForShare string
	// SerializeEvents, when set, is a call that takes a lock held to commit
	// (pg_advisory_xact_lock(n)), made in the statement that writes each
	// event, before its sequence number is drawn, so that event sequence
	// numbers are handed out in commit order: a change stream that resumes
	// after a sequence number must never miss a lower one that committed
	// later. It is one statement with the insert because every writer waits
	// while the lock is held, and a statement of its own would add a round
	// trip to this process inside it (BENCHMARKS.md: the lock was the most
	// common wait under load).
	SerializeEvents string
	// SerializeAccess does the same for access events, whose page tokens
	// are also sequence numbers that a reader resumes after (taken in a
	// statement of its own: access events are written in batches, seldom).
	SerializeAccess string
	// IsUniqueViolation reports a unique-constraint error.
	IsUniqueViolation func(error) bool
	// LeaderLock, when set, is a statement that takes the session lock
	// named by its one parameter ($1, a store.Lock) and returns true when it
	// got it (pg_try_advisory_lock); LeaderUnlock releases it. Without them this process is always the leader (SQLite:
	// one process per database file).
	LeaderLock, LeaderUnlock string
	// AsyncCommit, when set, is a call that lets the current transaction
	// commit without waiting for the disk (set_config of
	// synchronous_commit, local to the transaction), for a write whose loss
	// in a crash is harmless. It runs in a materialized CTE of that write's
	// statement, so the write stays one round trip.
	AsyncCommit string
}

// Store is a store.Store on a SQL database.
type Store struct {
	db  *sql.DB
	d   Dialect
	now func() time.Time
}

var _ store.Store = (*Store)(nil)

// New returns a store on a migrated database.
func New(db *sql.DB, d Dialect) *Store {
	return &Store{db: db, d: d, now: func() time.Time { return time.Now().UTC() }}
}

// DB returns the underlying database, for health checks and tests.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// columnList is the order of connValues() and scanConn().
var columnList = []string{"id", "workspace_id", "project_id", "name", "connector", "environment", "auth_type",
	"base_url", "subdomain", "org_id", "sandbox", "status", "status_reason", "last_error", "last_verify_time",
	"authorized_as", "granted_scopes", "owner", "parent_connection_id", "runtime_user",
	"create_time", "update_time", "version", "secret_generation", "state"}

var (
	columns      = strings.Join(columnList, ", ")
	placeholders = numbered(1, len(columnList))
	// withActivity reads a connection row (aliased c) with its usage
	// times: one query where a page used to need a second.
	withActivity = "c." + strings.Join(columnList, ", c.") +
		", COALESCE(u.last_use_time, 0), COALESCE(u.last_refresh_time, 0), COALESCE(u.token_expire_time, 0)"
	usageJoin = " LEFT JOIN connection_usage u ON u.connection_id = c.id"
	setClause = func() string {
		parts := make([]string, len(columnList))
		for i, c := range columnList {
			parts[i] = c + " = $" + strconv.Itoa(i+1)
		}
		return strings.Join(parts, ", ")
	}()
)

// numbered returns "$from, ..., $(from+n-1)".
func numbered(from, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = "$" + strconv.Itoa(from+i)
	}
	return strings.Join(parts, ", ")
}

func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, actor string, c *store.Connection) error {
	if err := checkText("actor", actor, "connection", c); err != nil {
		return fmt.Errorf("storesql.Create: %w", err)
	}
	if err := s.inTx(ctx, func(tx *sql.Tx) error { return s.createTx(ctx, tx, actor, c) }); err != nil {
		return fmt.Errorf("storesql.Create: %w", err)
	}
	return nil
}

// CreateBound implements store.Store.
func (s *Store) CreateBound(ctx context.Context, actor string, c *store.Connection, b store.Binding,
	check func(*store.Workspace, *store.Recipe, *store.Connection, []store.BindingView) error) error {
	if err := checkText("actor", actor, "connection", c, "binding", b); err != nil {
		return fmt.Errorf("storesql.CreateBound: %w", err)
	}
	b.ConnectionID = c.ID
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.createTx(ctx, tx, actor, c); err != nil {
			return err
		}
		return s.bindTx(ctx, tx, actor, b, check)
	})
	if err != nil {
		return fmt.Errorf("storesql.CreateBound: %w", err)
	}
	return nil
}

// createTx stores c within tx.
func (s *Store) createTx(ctx context.Context, tx *sql.Tx, actor string, c *store.Connection) error {
	now := s.now()
	c.CreateTime, c.UpdateTime, c.Version = now, now, 1
	if c.ParentConnectionID != "" {
		// Locked, so that a delete of the parent either sees this child
		// (and tombstones it) or happens first (and this create fails).
		if _, err := s.lockConn(ctx, tx, c.ParentConnectionID, 0); errors.Is(err, store.ErrNotFound) {
			return store.ErrParentGone
		} else if err != nil {
			return err
		}
	}
	if err := consumeIntent(ctx, tx, c.ID, c.SecretGeneration); err != nil {
		return err
	}
	args, err := connValues(c)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO connections (`+columns+`) VALUES (`+placeholders+`)`, args...); err != nil {
		if s.d.IsUniqueViolation(err) {
			return store.ErrAlreadyExists
		}
		return err
	}
	return s.event(ctx, tx, store.Event{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Actor: actor,
		Action: store.ActionConnectionCreate, After: snapshot(c)})
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (*store.Connection, error) {
	if err := checkText("id", id); err != nil {
		return nil, fmt.Errorf("storesql.Get: %w", err)
	}
	c, err := scanConnActivity(s.db.QueryRowContext(ctx, `SELECT `+withActivity+` FROM connections c`+usageJoin+
		` WHERE c.id = $1 AND c.state = ''`, id))
	if err != nil {
		return nil, fmt.Errorf("storesql.Get %s: %w", id, store.NotFound(store.KindConnection, id, err))
	}
	return c, nil
}

// GetRuntimeUserConnection implements store.Store.
func (s *Store) GetRuntimeUserConnection(ctx context.Context, parentID, runtimeUser string) (*store.Connection, error) {
	if err := checkText("parent_id", parentID, "runtime_user", runtimeUser); err != nil {
		return nil, fmt.Errorf("storesql.GetRuntimeUserConnection: %w", err)
	}
	c, err := scanConn(s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM connections
		WHERE parent_connection_id = $1 AND runtime_user = $2 AND state = ''`, parentID, runtimeUser))
	if err != nil {
		return nil, fmt.Errorf("storesql.GetRuntimeUserConnection %s: %w", parentID,
			store.NotFound(store.KindRuntimeUserConnection, runtimeUser, err))
	}
	return c, nil
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, q store.ListQuery) ([]*store.Connection, string, error) {
	if err := checkText("query", q); err != nil {
		return nil, "", fmt.Errorf("storesql.List: %w", err)
	}
	tok, after, err := store.DecodePageToken(q.PageToken)
	if err != nil {
		return nil, "", fmt.Errorf("storesql.List: %w", err)
	}
	w := listConds(q)
	if after {
		// Newest first: rows strictly after the last one returned. A row
		// comparison lets both databases seek the page index directly; the
		// equivalent OR form makes PostgreSQL scan from the top.
		w.add("(create_time, id) < (?, ?)", tok.CreateTime.UnixNano(), tok.ID)
	}
	// One more row than asked tells whether another page follows.
	var out []*store.Connection
	if q.NameContains == "" {
		limit := w.arg(q.PageSize + 1)
		out, err = s.listPage(ctx, `SELECT `+columns+` FROM connections WHERE `+w.sql()+
			` ORDER BY create_time DESC, id DESC LIMIT `+limit, w.args)
	} else {
		out, err = s.listByName(ctx, w, q)
	}
	if err != nil {
		return nil, "", fmt.Errorf("storesql.List: %w", err)
	}
	next := ""
	if len(out) > q.PageSize {
		out = out[:q.PageSize]
		last := out[len(out)-1]
		next = store.PageToken{CreateTime: last.CreateTime, ID: last.ID}.Encode()
	}
	return out, next, nil
}

// listConds are the conditions of q's filters (all but the page token).
func listConds(q store.ListQuery) conds {
	var w conds
	w.add("workspace_id = ?", q.WorkspaceID)
	w.add("state = ?", store.StateLive)
	if q.ParentConnectionID == "" && q.RuntimeUser != "" {
		w.add("parent_connection_id <> ?", "")
	} else {
		w.add("parent_connection_id = ?", q.ParentConnectionID)
	}
	w.addIf(q.RuntimeUser != "", "runtime_user = ?", q.RuntimeUser)
	w.addIf(q.Connector != "", "connector = ?", q.Connector)
	w.addIf(q.Status != "", "status = ?", q.Status)
	w.addIf(q.Environment != "", "environment = ?", q.Environment)
	w.addIf(q.AuthType != "", "auth_type = ?", q.AuthType)
	w.addIf(q.Owner != "", "owner = ?", q.Owner)
	w.addIf(q.HasProject, "project_id = ?", q.ProjectID)
	return w
}

// Count implements store.Store.
func (s *Store) Count(ctx context.Context, q store.ListQuery) (int64, error) {
	if err := checkText("query", q); err != nil {
		return 0, fmt.Errorf("storesql.Count: %w", err)
	}
	w := listConds(q)
	if q.NameContains != "" {
		w.add(`LOWER(name) LIKE ? ESCAPE '\'`, "%"+likeEscaper.Replace(strings.ToLower(q.NameContains))+"%")
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM connections WHERE `+w.sql(), w.args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("storesql.Count: %w", err)
	}
	return n, nil
}

// listByName pages through the connections whose name contains
// q.NameContains. A substring cannot seek the page index, so it looks in two
// ways. First among the newest rows after the page token (a window a few
// times the page): a text many names hold fills the page there, in order,
// at the cost of a short index scan. If the window holds less than a page,
// the whole workspace is searched (on PostgreSQL through the trigram index
// on LOWER(name), which finds a rare text without reading every row). The
// window's matches are the first in the page order, so either way the page
// is exact.
func (s *Store) listByName(ctx context.Context, w conds, q store.ListQuery) ([]*store.Connection, error) {
	pattern := "%" + likeEscaper.Replace(strings.ToLower(q.NameContains)) + "%"
	window := max(nameWindow, 4*(q.PageSize+1))
	recent := w
	recent.where, recent.args = slices.Clone(w.where), slices.Clone(w.args)
	inner := `SELECT ` + columns + ` FROM connections WHERE ` + recent.sql() +
		` ORDER BY create_time DESC, id DESC LIMIT ` + recent.arg(window)
	like := recent.arg(pattern)
	limit := recent.arg(q.PageSize + 1)
	out, err := s.listPage(ctx, `SELECT `+columns+` FROM (`+inner+`) AS recent WHERE LOWER(name) LIKE `+like+
		` ESCAPE '\' ORDER BY create_time DESC, id DESC LIMIT `+limit, recent.args)
	if err != nil || len(out) > q.PageSize {
		return out, err
	}
	// "create_time + 0" keeps PostgreSQL from walking the page index in
	// order and filtering (which reads every row newer than the matches
	// when they are old): it finds the matches through the trigram index
	// and sorts only them. Same order, so the same pages.
	w.add(`LOWER(name) LIKE ? ESCAPE '\'`, pattern)
	limit = w.arg(q.PageSize + 1)
	return s.listPage(ctx, `SELECT `+columns+` FROM connections WHERE `+w.sql()+
		` ORDER BY create_time + 0 DESC, id DESC LIMIT `+limit, w.args)
}

// listPage runs page, a query of connection rows in List's order, and
// reads each row's usage times with it: the join is on the page's rows
// only, after the page query chose them as it would alone.
func (s *Store) listPage(ctx context.Context, page string, args []any) ([]*store.Connection, error) {
	return s.listRowsWith(ctx, `SELECT `+withActivity+` FROM (`+page+`) AS c`+usageJoin+
		` ORDER BY c.create_time DESC, c.id DESC`, args, scanConnActivity)
}

// nameWindow is how many of the newest rows a name search looks through
// before it searches the whole workspace.
var nameWindow = 500

// listRows runs a query of connection rows.
func (s *Store) listRows(ctx context.Context, query string, args []any) ([]*store.Connection, error) {
	return s.listRowsWith(ctx, query, args, scanConn)
}

// listRowsWith runs a query of rows that scan reads.
func (s *Store) listRowsWith(ctx context.Context, query string, args []any, scan func(row) (*store.Connection, error)) ([]*store.Connection, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Connection
	for rows.Next() {
		c, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, actor, id string, version int64, change func(*store.Connection) error) (*store.Connection, error) {
	if err := checkText("actor", actor, "id", id); err != nil {
		return nil, fmt.Errorf("storesql.Update: %w", err)
	}
	var out *store.Connection
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		c, err := s.lockConn(ctx, tx, id, version)
		if err != nil {
			return err
		}
		before := snapshot(c)
		read, gen := c.Version, c.SecretGeneration
		if err := change(c); err != nil {
			return err
		}
		if err := checkText("connection", c); err != nil {
			return err
		}
		if c.SecretGeneration != gen {
			if err := consumeIntent(ctx, tx, id, c.SecretGeneration); err != nil {
				return err
			}
		}
		c.State = store.StateLive
		c.ID, c.Version, c.UpdateTime = id, read+1, s.now()
		args, err := connValues(c)
		if err != nil {
			return err
		}
		n := len(args)
		res, err := tx.ExecContext(ctx, `UPDATE connections SET `+setClause+
			` WHERE id = $`+strconv.Itoa(n+1)+` AND version = $`+strconv.Itoa(n+2), append(args, id, read)...)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k != 1 {
			return store.ErrConflict
		}
		out = c
		return s.event(ctx, tx, store.Event{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Actor: actor,
			Action: store.ActionConnectionUpdate, Before: before, After: snapshot(c)})
	})
	if err != nil {
		return nil, fmt.Errorf("storesql.Update %s: %w", id, err)
	}
	return out, nil
}

// lockConn reads a connection for a read-modify-write in tx; with version >
// 0 it fails with ErrConflict unless the stored version equals it.
func (s *Store) lockConn(ctx context.Context, tx *sql.Tx, id string, version int64) (*store.Connection, error) {
	c, err := scanConn(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM connections WHERE id = $1 AND state = ''`+s.d.ForUpdate, id))
	if err != nil {
		return nil, store.NotFound(store.KindConnection, id, err)
	}
	if version > 0 && c.Version != version {
		return nil, store.ErrConflict
	}
	return c, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, actor, id string, version int64, force bool) ([]*store.Connection, error) {
	var gone []*store.Connection
	if err := checkText("actor", actor, "id", id); err != nil {
		return nil, fmt.Errorf("storesql.Delete: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		c, err := s.lockConn(ctx, tx, id, version)
		if err != nil {
			return err
		}
		bindings, err := queryBindings(ctx, tx, `connection_id = $1`, id)
		if err != nil {
			return err
		}
		if len(bindings) > 0 && !force {
			return &store.InUseError{Bindings: bindings}
		}
		for _, b := range bindings {
			if _, err := tx.ExecContext(ctx, `DELETE FROM bindings WHERE recipe_id = $1 AND step = $2`, b.RecipeID, b.Step); err != nil {
				return err
			}
			if err := s.event(ctx, tx, store.Event{WorkspaceID: c.WorkspaceID, ConnectionID: id, RecipeID: b.RecipeID,
				Actor: actor, Action: store.ActionUnbind, Before: snapshot(b)}); err != nil {
				return err
			}
		}
		// Runtime user connections go with their parent.
		children, err := tx.QueryContext(ctx, `SELECT `+columns+` FROM connections WHERE parent_connection_id = $1 AND state = ''`, id)
		if err != nil {
			return err
		}
		var kids []*store.Connection
		for children.Next() {
			k, err := scanConn(children)
			if err != nil {
				children.Close()
				return err
			}
			kids = append(kids, k)
		}
		children.Close()
		gone = append(kids, c)
		for _, k := range gone {
			if _, err := tx.ExecContext(ctx, `UPDATE connections SET state = $1, update_time = $2 WHERE id = $3`,
				store.StateDeleting, nanos(s.now()), k.ID); err != nil {
				return err
			}
			k.State = store.StateDeleting
			if err := s.event(ctx, tx, store.Event{WorkspaceID: k.WorkspaceID, ConnectionID: k.ID, Actor: actor,
				Action: store.ActionConnectionDelete, Before: snapshot(k)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storesql.Delete %s: %w", id, err)
	}
	return gone, nil
}

// Purge implements store.Store.
func (s *Store) Purge(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// The last use of the purged connection and of its runtime user
		// connections goes with them.
		if _, err := tx.ExecContext(ctx, `DELETE FROM connection_usage WHERE connection_id IN
			(SELECT id FROM connections WHERE (id = $1 OR parent_connection_id = $1) AND state = $2)`, id, store.StateDeleting); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM connections WHERE parent_connection_id = $1 AND state = $2`, id, store.StateDeleting); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM connections WHERE id = $1 AND state = $2`, id, store.StateDeleting)
		return err
	})
	if err != nil {
		return fmt.Errorf("storesql.Purge %s: %w", id, err)
	}
	return nil
}

// consumeIntent deletes the write intent that lets generation gen of
// connection id become live, in tx; without one it fails with
// ErrIntentGone. The empty generation needs no intent.
func consumeIntent(ctx context.Context, tx *sql.Tx, id, gen string) error {
	if gen == "" {
		return nil
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM secret_intents WHERE connection_id = $1 AND generation = $2`, id, gen)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return store.ErrIntentGone
	}
	return nil
}

// BeginSecretWrite implements store.Store.
//
// An intent lost in a crash is harmless (its write can then never commit,
// and the reconciler destroys what it wrote), so where the database allows
// it the insert does not wait for the disk.
func (s *Store) BeginSecretWrite(ctx context.Context, k store.SecretKey, expire time.Time) error {
	const into = `INSERT INTO secret_intents (connection_id, generation, expire_time)`
	insert := into + ` VALUES ($1, $2, $3)`
	if s.d.AsyncCommit != "" {
		// One statement is its own transaction, and the setting made in its
		// CTE holds until that transaction's commit.
		insert = `WITH async AS MATERIALIZED (SELECT ` + s.d.AsyncCommit + `) ` + into + `
			SELECT $1::text, $2::text, $3::bigint FROM async`
	}
	if _, err := s.db.ExecContext(ctx, insert, k.ConnectionID, k.Generation, expire.UnixNano()); err != nil {
		return fmt.Errorf("storesql.BeginSecretWrite: %w", err)
	}
	return nil
}

// EndSecretWrite implements store.Store.
func (s *Store) EndSecretWrite(ctx context.Context, k store.SecretKey) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM secret_intents WHERE connection_id = $1 AND generation = $2`,
		k.ConnectionID, k.Generation); err != nil {
		return fmt.Errorf("storesql.EndSecretWrite: %w", err)
	}
	return nil
}

// SecretInUse implements store.Store.
func (s *Store) SecretInUse(ctx context.Context, k store.SecretKey, now time.Time, reap bool) (bool, error) {
	inUse, err := s.heldOrNamed(ctx, k, now, reap,
		`SELECT COUNT(*) FROM connections WHERE id = $1 AND state = '' AND secret_generation = $2`, k.ConnectionID, k.Generation)
	if err != nil {
		return false, fmt.Errorf("storesql.SecretInUse: %w", err)
	}
	return inUse, nil
}

// ClientSecretInUse implements store.Store.
func (s *Store) ClientSecretInUse(ctx context.Context, k store.ClientKey, now time.Time, reap bool) (bool, error) {
	inUse, err := s.heldOrNamed(ctx, k.Intent(), now, reap,
		`SELECT COUNT(*) FROM oauth_clients WHERE connector = $1 AND workspace_id = $2 AND secret_generation = $3`,
		k.Connector, k.WorkspaceID, k.Generation)
	if err != nil {
		return false, fmt.Errorf("storesql.ClientSecretInUse: %w", err)
	}
	return inUse, nil
}

// heldOrNamed reports whether an unexpired intent holds a generation, or
// (counted by the query named) a row names it. The intent is read before
// the row: a commit deletes the intent and names the generation in one
// transaction, so a generation whose intent is gone is either named by now
// or garbage. With reap an expired intent is deleted in the same
// transaction, so that its late writer can no longer commit.
func (s *Store) heldOrNamed(ctx context.Context, intent store.SecretKey, now time.Time, reap bool, named string, args ...any) (bool, error) {
	var inUse bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var exp int64
		err := tx.QueryRowContext(ctx, `SELECT expire_time FROM secret_intents WHERE connection_id = $1 AND generation = $2`+s.d.ForUpdate,
			intent.ConnectionID, intent.Generation).Scan(&exp)
		switch {
		case err == nil && now.UnixNano() < exp:
			inUse = true
			return nil
		case err == nil && !reap:
		case err == nil:
			if _, err := tx.ExecContext(ctx, `DELETE FROM secret_intents WHERE connection_id = $1 AND generation = $2`,
				intent.ConnectionID, intent.Generation); err != nil {
				return err
			}
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, named, args...).Scan(&n); err != nil {
			return err
		}
		inUse = n > 0
		return nil
	})
	return inUse, err
}

// ReapIntents implements store.Store.
func (s *Store) ReapIntents(ctx context.Context, now time.Time, dryRun bool) (int64, error) {
	var n int64
	var err error
	if dryRun {
		err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM secret_intents WHERE expire_time <= $1`, now.UnixNano()).Scan(&n)
	} else {
		var res sql.Result
		if res, err = s.db.ExecContext(ctx, `DELETE FROM secret_intents WHERE expire_time <= $1`, now.UnixNano()); err == nil {
			n, err = res.RowsAffected()
		}
	}
	if err != nil {
		return 0, fmt.Errorf("storesql.ReapIntents: %w", err)
	}
	return n, nil
}

// PendingIntents implements store.Store.
func (s *Store) PendingIntents(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM secret_intents WHERE expire_time > $1`, now.UnixNano()).Scan(&n); err != nil {
		return 0, fmt.Errorf("storesql.PendingIntents: %w", err)
	}
	return n, nil
}

// Scan implements store.Store.
func (s *Store) Scan(ctx context.Context, afterID string, limit int) ([]*store.Connection, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+columns+` FROM connections WHERE id > $1 ORDER BY id LIMIT $2`, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("storesql.Scan: %w", err)
	}
	defer rows.Close()
	var out []*store.Connection
	for rows.Next() {
		c, err := scanConn(rows)
		if err != nil {
			return nil, fmt.Errorf("storesql.Scan: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storesql.Scan: %w", err)
	}
	return out, nil
}

// Leader implements store.Store: a session lock held on one pooled
// connection for the duration of fn.
func (s *Store) Leader(ctx context.Context, lock store.Lock, fn func(context.Context) error) (bool, error) {
	if s.d.LeaderLock == "" {
		return true, fn(ctx)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("storesql.Leader: %w", err)
	}
	defer conn.Close()
	var got bool
	if err := conn.QueryRowContext(ctx, s.d.LeaderLock, int64(lock)).Scan(&got); err != nil {
		return false, fmt.Errorf("storesql.Leader: %w", err)
	}
	if !got {
		return false, nil
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), s.d.LeaderUnlock, int64(lock)); err != nil {
			// The session ends with the connection, and its lock with it.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return true, fn(ctx)
}

// PutRecipe implements store.Store.
func (s *Store) PutRecipe(ctx context.Context, actor string, r *store.Recipe) error {
	if err := checkText("actor", actor, "recipe", r); err != nil {
		return fmt.Errorf("storesql.PutRecipe: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		old, err := scanRecipe(tx.QueryRowContext(ctx, `SELECT `+recipeColumns+` FROM recipes WHERE id = $1`+s.d.ForUpdate, r.ID))
		before := ""
		switch {
		case errors.Is(err, store.ErrNotFound):
			r.CreateTime = s.now()
		case err != nil:
			return err
		default:
			before, r.CreateTime = snapshot(old), old.CreateTime
		}
		r.UpdateTime = s.now()
		if _, err := tx.ExecContext(ctx, `INSERT INTO recipes (`+recipeColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (id) DO UPDATE SET workspace_id = $2, name = $3, environment = $4, callable = $5,
				runtime_user_connections = $6, runtime_user_fallback = $7, update_time = $9`,
			r.ID, r.WorkspaceID, r.Name, r.Environment, r.Callable, r.RuntimeUserConnections, r.RuntimeUserFallback,
			r.CreateTime.UnixNano(), r.UpdateTime.UnixNano()); err != nil {
			return err
		}
		return s.event(ctx, tx, store.Event{WorkspaceID: r.WorkspaceID, RecipeID: r.ID, Actor: actor,
			Action: store.ActionRecipePut, Before: before, After: snapshot(r)})
	})
	if err != nil {
		return fmt.Errorf("storesql.PutRecipe %s: %w", r.ID, err)
	}
	return nil
}

const recipeColumns = `id, workspace_id, name, environment, callable, runtime_user_connections, runtime_user_fallback,
	create_time, update_time`

// GetRecipe implements store.Store.
func (s *Store) GetRecipe(ctx context.Context, id string) (*store.Recipe, error) {
	if err := checkText("id", id); err != nil {
		return nil, fmt.Errorf("storesql.GetRecipe: %w", err)
	}
	r, err := scanRecipe(s.db.QueryRowContext(ctx, `SELECT `+recipeColumns+` FROM recipes WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("storesql.GetRecipe %s: %w", id, store.NotFound(store.KindRecipe, id, err))
	}
	return r, nil
}

func scanRecipe(r row) (*store.Recipe, error) {
	var rec store.Recipe
	var created, updated int64
	err := r.Scan(&rec.ID, &rec.WorkspaceID, &rec.Name, &rec.Environment, &rec.Callable, &rec.RuntimeUserConnections,
		&rec.RuntimeUserFallback, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	rec.CreateTime, rec.UpdateTime = fromNanos(created), fromNanos(updated)
	return &rec, nil
}

// Bind implements store.Store.
func (s *Store) Bind(ctx context.Context, actor string, b store.Binding, check func(*store.Workspace, *store.Recipe, *store.Connection, []store.BindingView) error) error {
	if err := checkText("actor", actor, "binding", b); err != nil {
		return fmt.Errorf("storesql.Bind: %w", err)
	}
	if err := s.inTx(ctx, func(tx *sql.Tx) error { return s.bindTx(ctx, tx, actor, b, check) }); err != nil {
		return fmt.Errorf("storesql.Bind: %w", err)
	}
	return nil
}

// bindTx binds b within tx if check passes.
func (s *Store) bindTx(ctx context.Context, tx *sql.Tx, actor string, b store.Binding,
	check func(*store.Workspace, *store.Recipe, *store.Connection, []store.BindingView) error) error {
	// Locking the recipe serialises binds to it, so that two concurrent
	// binds cannot both pass the one-connection-per-app rule.
	r, err := scanRecipe(tx.QueryRowContext(ctx, `SELECT `+recipeColumns+` FROM recipes WHERE id = $1`+s.d.ForUpdate, b.RecipeID))
	if err != nil {
		return fmt.Errorf("recipe %s: %w", b.RecipeID, store.NotFound(store.KindRecipe, b.RecipeID, err))
	}
	// Locked (and live), so that a concurrent delete either sees this
	// binding or tombstones the connection first and this bind fails.
	c, err := scanConn(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM connections WHERE id = $1 AND state = ''`+s.d.ForUpdate, b.ConnectionID))
	if err != nil {
		return fmt.Errorf("connection %s: %w", b.ConnectionID, store.NotFound(store.KindConnection, b.ConnectionID, err))
	}
	// The settings are read locked against change: turning
	// cross-environment bindings off waits for this bind and then sees
	// it (PutWorkspace), or commits first and this bind sees it off.
	w, err := s.workspace(ctx, tx, r.WorkspaceID, s.d.ForShare)
	if err != nil {
		return err
	}
	others, err := queryBindings(ctx, tx, `recipe_id = $1 AND step <> $2`, b.RecipeID, b.Step)
	if err != nil {
		return err
	}
	views := make([]store.BindingView, 0, len(others))
	for _, o := range others {
		oc, err := scanConn(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM connections WHERE id = $1`, o.ConnectionID))
		if err != nil {
			return err
		}
		views = append(views, store.BindingView{Binding: o, Connection: oc})
	}
	if err := check(w, r, c, views); err != nil {
		return err
	}
	b.CreateTime = s.now()
	if _, err := tx.ExecContext(ctx, `INSERT INTO bindings (recipe_id, step, connection_id, create_time) VALUES ($1, $2, $3, $4)
		ON CONFLICT (recipe_id, step) DO UPDATE SET connection_id = $3, create_time = $4`,
		b.RecipeID, b.Step, b.ConnectionID, b.CreateTime.UnixNano()); err != nil {
		return err
	}
	return s.event(ctx, tx, store.Event{WorkspaceID: r.WorkspaceID, ConnectionID: b.ConnectionID, RecipeID: b.RecipeID,
		Actor: actor, Action: store.ActionBind, After: snapshot(b)})
}

// Unbind implements store.Store.
func (s *Store) Unbind(ctx context.Context, actor, recipeID, step string) error {
	if err := checkText("actor", actor, "recipe_id", recipeID, "step", step); err != nil {
		return fmt.Errorf("storesql.Unbind: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		bs, err := queryBindings(ctx, tx, `recipe_id = $1 AND step = $2`, recipeID, step)
		if err != nil {
			return err
		}
		if len(bs) == 0 {
			return &store.NotFoundError{Kind: store.KindBinding, ID: recipeID + "/" + step}
		}
		r, err := scanRecipe(tx.QueryRowContext(ctx, `SELECT `+recipeColumns+` FROM recipes WHERE id = $1`, recipeID))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM bindings WHERE recipe_id = $1 AND step = $2`, recipeID, step); err != nil {
			return err
		}
		return s.event(ctx, tx, store.Event{WorkspaceID: r.WorkspaceID, ConnectionID: bs[0].ConnectionID, RecipeID: recipeID,
			Actor: actor, Action: store.ActionUnbind, Before: snapshot(bs[0])})
	})
	if err != nil {
		return fmt.Errorf("storesql.Unbind: %w", err)
	}
	return nil
}

// Usage implements store.Store.
func (s *Store) Usage(ctx context.Context, connectionID string) ([]store.Binding, error) {
	if err := checkText("connection_id", connectionID); err != nil {
		return nil, fmt.Errorf("storesql.Usage: %w", err)
	}
	bs, err := queryBindings(ctx, s.db, `connection_id = $1`, connectionID)
	if err != nil {
		return nil, fmt.Errorf("storesql.Usage: %w", err)
	}
	return bs, nil
}

// crossEnvironment selects the bindings of workspace $1's recipes to
// connections of the other environment.
const crossEnvironment = `EXISTS (SELECT 1 FROM recipes r, connections c
	WHERE r.id = bindings.recipe_id AND c.id = bindings.connection_id AND r.workspace_id = $1 AND r.environment <> c.environment)`

// CrossEnvironmentBindings implements store.Store.
func (s *Store) CrossEnvironmentBindings(ctx context.Context, workspaceID string) ([]store.Binding, error) {
	if err := checkText("workspace_id", workspaceID); err != nil {
		return nil, fmt.Errorf("storesql.CrossEnvironmentBindings: %w", err)
	}
	bs, err := queryBindings(ctx, s.db, crossEnvironment, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("storesql.CrossEnvironmentBindings: %w", err)
	}
	return bs, nil
}

// RecipeBindings implements store.Store.
func (s *Store) RecipeBindings(ctx context.Context, recipeID string) ([]store.Binding, error) {
	if err := checkText("recipe_id", recipeID); err != nil {
		return nil, fmt.Errorf("storesql.RecipeBindings: %w", err)
	}
	bs, err := queryBindings(ctx, s.db, `recipe_id = $1`, recipeID)
	if err != nil {
		return nil, fmt.Errorf("storesql.RecipeBindings: %w", err)
	}
	return bs, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryBindings(ctx context.Context, q querier, where string, args ...any) ([]store.Binding, error) {
	rows, err := q.QueryContext(ctx, `SELECT recipe_id, step, connection_id, create_time FROM bindings WHERE `+where+
		` ORDER BY recipe_id, step`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Binding
	for rows.Next() {
		var b store.Binding
		var created int64
		if err := rows.Scan(&b.RecipeID, &b.Step, &b.ConnectionID, &created); err != nil {
			return nil, err
		}
		b.CreateTime = fromNanos(created)
		out = append(out, b)
	}
	return out, rows.Err()
}

// GetWorkspace implements store.Store.
func (s *Store) GetWorkspace(ctx context.Context, id string) (*store.Workspace, error) {
	if err := checkText("id", id); err != nil {
		return nil, fmt.Errorf("storesql.GetWorkspace: %w", err)
	}
	w, err := s.workspace(ctx, s.db, id, "")
	if err != nil {
		return nil, fmt.Errorf("storesql.GetWorkspace %s: %w", id, err)
	}
	return w, nil
}

// workspace reads a workspace's settings (defaults when never set), with
// lock appended to the query.
func (s *Store) workspace(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id, lock string) (*store.Workspace, error) {
	w := store.Workspace{ID: id}
	origins := "[]"
	err := q.QueryRowContext(ctx, `SELECT allow_cross_environment, allowed_origins FROM workspaces WHERE id = $1`+lock, id).
		Scan(&w.AllowCrossEnvironment, &origins)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if err := json.Unmarshal([]byte(origins), &w.AllowedOrigins); err != nil {
		return nil, fmt.Errorf("allowed_origins: %w", err)
	}
	return &w, nil
}

// PutWorkspace implements store.Store.
func (s *Store) PutWorkspace(ctx context.Context, actor string, w *store.Workspace) error {
	if err := checkText("actor", actor, "workspace", w); err != nil {
		return fmt.Errorf("storesql.PutWorkspace: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// The upsert locks the row first: a bind that read the old setting
		// has committed by the time the check below runs, and is listed.
		origins, err := json.Marshal(nonNil(w.AllowedOrigins))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO workspaces (id, allow_cross_environment, allowed_origins) VALUES ($1, $2, $3)
			ON CONFLICT (id) DO UPDATE SET allow_cross_environment = $2, allowed_origins = $3`, w.ID, w.AllowCrossEnvironment, string(origins)); err != nil {
			return err
		}
		if !w.AllowCrossEnvironment {
			cross, err := queryBindings(ctx, tx, crossEnvironment, w.ID)
			if err != nil {
				return err
			}
			if len(cross) > 0 {
				return &store.CrossEnvironmentError{Bindings: cross}
			}
		}
		return s.event(ctx, tx, store.Event{WorkspaceID: w.ID, Actor: actor, Action: store.ActionWorkspacePut, After: snapshot(w)})
	})
	if err != nil {
		return fmt.Errorf("storesql.PutWorkspace %s: %w", w.ID, err)
	}
	return nil
}

// PutOAuthClient implements store.Store.
func (s *Store) PutOAuthClient(ctx context.Context, actor string, k store.ClientKey, clientID string) (string, error) {
	if err := checkText("actor", actor, "connector", k.Connector, "workspace_id", k.WorkspaceID, "client_id", clientID,
		"secret_generation", k.Generation); err != nil {
		return "", fmt.Errorf("storesql.PutOAuthClient: %w", err)
	}
	var previous string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if k.Generation == "" {
			return errors.New("a registration needs a secret generation")
		}
		in := k.Intent()
		if err := consumeIntent(ctx, tx, in.ConnectionID, in.Generation); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `SELECT secret_generation FROM oauth_clients WHERE connector = $1 AND workspace_id = $2`+s.d.ForUpdate,
			k.Connector, k.WorkspaceID).Scan(&previous)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// A registration racing this one into an empty slot may commit
		// first; its generation is then replaced without being returned,
		// and the reconciler destroys it.
		if _, err := tx.ExecContext(ctx, `INSERT INTO oauth_clients (connector, workspace_id, client_id, secret_generation) VALUES ($1, $2, $3, $4)
			ON CONFLICT (connector, workspace_id) DO UPDATE SET client_id = $3, secret_generation = $4`,
			k.Connector, k.WorkspaceID, clientID, k.Generation); err != nil {
			return err
		}
		return s.event(ctx, tx, store.Event{WorkspaceID: k.WorkspaceID, Actor: actor, Action: store.ActionOAuthClientPut,
			After: snapshot(store.ClientSnapshot{Connector: k.Connector, WorkspaceID: k.WorkspaceID, ClientID: clientID, Generation: k.Generation})})
	})
	if err != nil {
		return "", fmt.Errorf("storesql.PutOAuthClient %s: %w", k.Connector, err)
	}
	return previous, nil
}

// OAuthClient implements store.Store.
func (s *Store) OAuthClient(ctx context.Context, connector, workspace string, fallback bool) (*store.OAuthClient, error) {
	if err := checkText("connector", connector, "workspace_id", workspace); err != nil {
		return nil, fmt.Errorf("storesql.OAuthClient: %w", err)
	}
	c := &store.OAuthClient{ClientKey: store.ClientKey{Connector: connector}}
	q := `SELECT client_id, workspace_id, secret_generation FROM oauth_clients WHERE connector = $1 AND workspace_id = $2`
	args := []any{connector, workspace}
	if fallback && workspace != "" {
		// The workspace's own app sorts before the platform's ('').
		q = `SELECT client_id, workspace_id, secret_generation FROM oauth_clients
			WHERE connector = $1 AND workspace_id IN ($2, '') ORDER BY workspace_id DESC LIMIT 1`
	}
	err := s.db.QueryRowContext(ctx, q, args...).Scan(&c.ClientID, &c.WorkspaceID, &c.Generation)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("storesql.OAuthClient %s: %w", connector, &store.NotFoundError{Kind: store.KindOAuthClient, ID: connector})
	}
	if err != nil {
		return nil, fmt.Errorf("storesql.OAuthClient %s: %w", connector, err)
	}
	return c, nil
}

// CreateAuthState implements store.Store.
func (s *Store) CreateAuthState(ctx context.Context, a *store.AuthState) error {
	if err := checkText("auth_state", a); err != nil {
		return fmt.Errorf("storesql.CreateAuthState: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO oauth_states (state_hash, connection_id, subject, scopes, redirect_uri, expire_time,
		secret_generation, bind_recipe_id, bind_step, return_url)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, a.StateHash, a.ConnectionID, a.Subject, strings.Join(a.Scopes, " "), a.RedirectURI,
		a.ExpireTime.UnixNano(), a.SecretGeneration, a.BindRecipeID, a.BindStep, a.ReturnURL); err != nil {
		return fmt.Errorf("storesql.CreateAuthState: %w", err)
	}
	return nil
}

// ConsumeAuthState implements store.Store. The delete makes it single-use
// even with two callbacks racing on several replicas.
func (s *Store) ConsumeAuthState(ctx context.Context, stateHash string, now time.Time) (*store.AuthState, error) {
	if err := checkText("state_hash", stateHash); err != nil {
		return nil, fmt.Errorf("storesql.ConsumeAuthState: %w", err)
	}
	var a store.AuthState
	var scopes string
	var exp int64
	err := s.db.QueryRowContext(ctx, `DELETE FROM oauth_states WHERE state_hash = $1
		RETURNING state_hash, connection_id, subject, scopes, redirect_uri, expire_time, secret_generation,
			bind_recipe_id, bind_step, return_url`, stateHash).
		Scan(&a.StateHash, &a.ConnectionID, &a.Subject, &scopes, &a.RedirectURI, &exp, &a.SecretGeneration,
			&a.BindRecipeID, &a.BindStep, &a.ReturnURL)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("storesql.ConsumeAuthState: %w", &store.NotFoundError{Kind: store.KindAuthorization})
	}
	if err != nil {
		return nil, fmt.Errorf("storesql.ConsumeAuthState: %w", err)
	}
	a.Scopes, a.ExpireTime = strings.Fields(scopes), fromNanos(exp)
	if !now.Before(a.ExpireTime) {
		return nil, fmt.Errorf("storesql.ConsumeAuthState: expired: %w", &store.NotFoundError{Kind: store.KindAuthorization})
	}
	return &a, nil
}

// event appends an event inside tx.
func (s *Store) event(ctx context.Context, tx *sql.Tx, e store.Event) error {
	const into = `INSERT INTO events (time, workspace_id, connection_id, recipe_id, actor, action, before, after)`
	insert := into + ` VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	if s.d.SerializeEvents != "" {
		// The materialized CTE runs before the row it feeds, and so before
		// the row's sequence number (the column's default) is drawn.
		insert = `WITH serialized AS MATERIALIZED (SELECT ` + s.d.SerializeEvents + `) ` + into + `
			SELECT $1::bigint, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text FROM serialized`
	}
	_, err := tx.ExecContext(ctx, insert,
		s.now().UnixNano(), e.WorkspaceID, e.ConnectionID, e.RecipeID, e.Actor, e.Action, e.Before, e.After)
	if err != nil {
		return fmt.Errorf("event: %w", err)
	}
	return nil
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, q store.EventQuery) ([]store.Event, error) {
	if err := checkText("query", q); err != nil {
		return nil, fmt.Errorf("storesql.Events: %w", err)
	}
	var w conds
	w.add("seq > ?", q.AfterSeq)
	w.addIf(q.WorkspaceID != "", "workspace_id = ?", q.WorkspaceID)
	w.addIf(q.ConnectionID != "", "connection_id = ?", q.ConnectionID)
	w.addIf(q.Actor != "", "actor = ?", q.Actor)
	w.addIf(!q.Since.IsZero(), "time >= ?", q.Since.UnixNano())
	w.addIf(!q.Until.IsZero(), "time < ?", q.Until.UnixNano())
	limit := w.arg(q.Limit)
	rows, err := s.db.QueryContext(ctx, `SELECT seq, time, workspace_id, connection_id, recipe_id, actor, action, before, after
		FROM events WHERE `+w.sql()+` ORDER BY seq LIMIT `+limit, w.args...)
	if err != nil {
		return nil, fmt.Errorf("storesql.Events: %w", err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var e store.Event
		var t int64
		if err := rows.Scan(&e.Seq, &t, &e.WorkspaceID, &e.ConnectionID, &e.RecipeID, &e.Actor, &e.Action, &e.Before, &e.After); err != nil {
			return nil, fmt.Errorf("storesql.Events: %w", err)
		}
		e.Time = fromNanos(t)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storesql.Events: %w", err)
	}
	return out, nil
}

// LastEventSeq implements store.Store.
func (s *Store) LastEventSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("storesql.LastEventSeq: %w", err)
	}
	return seq, nil
}

// accessColumns is the order of RecordAccess's values and scanAccess.
const accessColumns = `seq, workspace_id, operation, job_id, recipe_id, requested_connection_id, resolved_connection_id,
	runtime_user, decision, code, reason, count, first_time, last_time, broker, record_time`

// RecordAccess implements store.Store.
func (s *Store) RecordAccess(ctx context.Context, batchID string, evs []store.AccessEvent) error {
	if err := checkText("batch_id", batchID, "events", evs); err != nil {
		return fmt.Errorf("storesql.RecordAccess: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if s.d.SerializeAccess != "" {
			if _, err := tx.ExecContext(ctx, "SELECT "+s.d.SerializeAccess); err != nil {
				return fmt.Errorf("serialize access events: %w", err)
			}
		}
		if batchID != "" {
			res, err := tx.ExecContext(ctx, `INSERT INTO access_batches (batch_id, record_time) VALUES ($1, $2)
				ON CONFLICT (batch_id) DO NOTHING`, batchID, s.now().UnixNano())
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return nil // recorded already: this is a resend
			}
		}
		// One statement per event keeps sequence numbers in the order given.
		ins, err := tx.PrepareContext(ctx, `INSERT INTO access_events (`+strings.TrimPrefix(accessColumns, "seq, ")+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING seq`)
		if err != nil {
			return err
		}
		defer ins.Close()
		now := s.now()
		for i := range evs {
			e := &evs[i]
			e.RecordTime = now
			if err := ins.QueryRowContext(ctx, e.WorkspaceID, e.Operation, e.JobID, e.RecipeID, e.RequestedConnectionID,
				e.ResolvedConnectionID, e.RuntimeUser, e.Decision, e.Code, e.Reason, e.Count,
				nanos(e.FirstTime), nanos(e.LastTime), e.Broker, nanos(e.RecordTime)).Scan(&e.Seq); err != nil {
				return err
			}
		}
		return s.noteUses(ctx, tx, evs)
	})
	if err != nil {
		return fmt.Errorf("storesql.RecordAccess: %w", err)
	}
	return nil
}

// noteUses moves the last use of every connection an allowed access
// resolved to, to the minute. The minute keeps the writes few: a busy
// connection's row changes at most once a minute, however many batches
// name it. Ids are written in order, so that concurrent batches lock the
// rows in the same order.
func (s *Store) noteUses(ctx context.Context, tx *sql.Tx, evs []store.AccessEvent) error {
	last := map[string]int64{}
	for _, e := range evs {
		if e.Decision != store.AccessAllowed || e.ResolvedConnectionID == "" {
			continue
		}
		at := e.LastTime
		if at.IsZero() {
			at = e.RecordTime
		}
		if m := at.Truncate(time.Minute).UnixNano(); m > last[e.ResolvedConnectionID] {
			last[e.ResolvedConnectionID] = m
		}
	}
	for _, id := range slices.Sorted(maps.Keys(last)) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO connection_usage (connection_id, last_use_time) VALUES ($1, $2)
			ON CONFLICT (connection_id) DO UPDATE SET last_use_time = excluded.last_use_time
			WHERE connection_usage.last_use_time < excluded.last_use_time`, id, last[id]); err != nil {
			return fmt.Errorf("connection_usage: %w", err)
		}
	}
	return nil
}

// DueForCheck implements store.Store.
func (s *Store) DueForCheck(ctx context.Context, before time.Time, after *store.Connection, limit int) ([]*store.Connection, error) {
	var w conds
	w.add("status = ?", store.StatusActive)
	w.add("state = ''")
	w.add("last_verify_time < ?", before.UnixNano())
	w.add("create_time < ?", before.UnixNano())
	if after != nil {
		w.add("(last_verify_time, id) > (?, ?)", nanos(after.LastVerifyTime), after.ID)
	}
	limitArg := w.arg(limit)
	out, err := s.listRows(ctx, `SELECT `+columns+` FROM connections WHERE `+w.sql()+
		` ORDER BY last_verify_time, id LIMIT `+limitArg, w.args)
	if err != nil {
		return nil, fmt.Errorf("storesql.DueForCheck: %w", err)
	}
	return out, nil
}

// RecordRefresh implements store.Store.
func (s *Store) RecordRefresh(ctx context.Context, id string, refreshed, expires time.Time) error {
	if err := checkText("id", id); err != nil {
		return fmt.Errorf("storesql.RecordRefresh: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO connection_usage (connection_id, last_use_time, last_refresh_time, token_expire_time)
		VALUES ($1, 0, $2, $3)
		ON CONFLICT (connection_id) DO UPDATE SET last_refresh_time = excluded.last_refresh_time, token_expire_time = excluded.token_expire_time
		WHERE connection_usage.last_refresh_time < excluded.last_refresh_time`, id, nanos(refreshed), nanos(expires)); err != nil {
		return fmt.Errorf("storesql.RecordRefresh: %w", err)
	}
	return nil
}

// AccessEvents implements store.Store.
func (s *Store) AccessEvents(ctx context.Context, q store.AccessQuery) ([]store.AccessEvent, error) {
	if err := checkText("query", q); err != nil {
		return nil, fmt.Errorf("storesql.AccessEvents: %w", err)
	}
	var w conds
	w.add("seq > ?", q.AfterSeq)
	w.addIf(q.WorkspaceID != "", "workspace_id = ?", q.WorkspaceID)
	w.addIf(q.ConnectionID != "", "(requested_connection_id = ? OR resolved_connection_id = ?)", q.ConnectionID, q.ConnectionID)
	w.addIf(q.RecipeID != "", "recipe_id = ?", q.RecipeID)
	w.addIf(q.JobID != "", "job_id = ?", q.JobID)
	w.addIf(q.Decision != "", "decision = ?", q.Decision)
	limit := w.arg(q.Limit)
	rows, err := s.db.QueryContext(ctx, `SELECT `+accessColumns+` FROM access_events WHERE `+w.sql()+
		` ORDER BY seq LIMIT `+limit, w.args...)
	if err != nil {
		return nil, fmt.Errorf("storesql.AccessEvents: %w", err)
	}
	defer rows.Close()
	var out []store.AccessEvent
	for rows.Next() {
		var e store.AccessEvent
		var first, last, recorded int64
		if err := rows.Scan(&e.Seq, &e.WorkspaceID, &e.Operation, &e.JobID, &e.RecipeID, &e.RequestedConnectionID,
			&e.ResolvedConnectionID, &e.RuntimeUser, &e.Decision, &e.Code, &e.Reason, &e.Count,
			&first, &last, &e.Broker, &recorded); err != nil {
			return nil, fmt.Errorf("storesql.AccessEvents: %w", err)
		}
		e.FirstTime, e.LastTime, e.RecordTime = fromNanos(first), fromNanos(last), fromNanos(recorded)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storesql.AccessEvents: %w", err)
	}
	return out, nil
}

// PruneAccessEvents implements store.Store. Each call is one short
// statement, so a large backlog is deleted in batches that never hold locks
// for long; the index on last_time finds the old rows.
func (s *Store) PruneAccessEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("storesql.PruneAccessEvents: limit %d, want at least 1", limit)
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM access_events WHERE seq IN
		(SELECT seq FROM access_events WHERE last_time < $1 ORDER BY seq LIMIT $2)`, before.UnixNano(), limit)
	if err != nil {
		return 0, fmt.Errorf("storesql.PruneAccessEvents: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("storesql.PruneAccessEvents: %w", err)
	}
	// Batch ids go with the events: a resend comes seconds after the
	// original, never after the retention period.
	if _, err := s.db.ExecContext(ctx, `DELETE FROM access_batches WHERE batch_id IN
		(SELECT batch_id FROM access_batches WHERE record_time < $1 LIMIT $2)`, before.UnixNano(), limit); err != nil {
		return 0, fmt.Errorf("storesql.PruneAccessEvents: batches: %w", err)
	}
	return n, nil
}

// conds builds a WHERE clause with numbered placeholders ($1, $2, ...),
// which both SQLite and PostgreSQL accept.
type conds struct {
	where []string
	args  []any
}

// add appends a condition; each "?" in it takes the next of vs.
func (c *conds) add(cond string, vs ...any) {
	for _, v := range vs {
		cond = strings.Replace(cond, "?", c.arg(v), 1)
	}
	c.where = append(c.where, cond)
}

func (c *conds) addIf(ok bool, cond string, vs ...any) {
	if ok {
		c.add(cond, vs...)
	}
}

// arg adds a value and returns its placeholder.
func (c *conds) arg(v any) string {
	c.args = append(c.args, v)
	return "$" + strconv.Itoa(len(c.args))
}

func (c *conds) sql() string { return strings.Join(c.where, " AND ") }

func snapshot(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return `{"error":"unencodable"}`
	}
	return string(b)
}

// connValues lists c's fields in the order of columnList.
func connValues(c *store.Connection) ([]any, error) {
	scopes, err := json.Marshal(nonNil(c.GrantedScopes))
	if err != nil {
		return nil, err
	}
	return []any{c.ID, c.WorkspaceID, c.ProjectID, c.Name, c.Connector, c.Environment, c.AuthType,
		c.Instance.BaseURL, c.Instance.Subdomain, c.Instance.OrgID, c.Instance.Sandbox,
		c.Status, c.StatusReason, c.LastError, nanos(c.LastVerifyTime),
		c.AuthorizedAs, string(scopes), c.Owner, c.ParentConnectionID, c.RuntimeUser,
		nanos(c.CreateTime), nanos(c.UpdateTime), c.Version, c.SecretGeneration, c.State}, nil
}

type row interface{ Scan(dest ...any) error }

func scanConn(r row) (*store.Connection, error) {
	return scanConnWith(r)
}

// scanConnActivity reads a row of withActivity.
func scanConnActivity(r row) (*store.Connection, error) {
	var used, refreshed, expires int64
	c, err := scanConnWith(r, &used, &refreshed, &expires)
	if err != nil {
		return nil, err
	}
	c.Activity = store.Activity{LastUse: fromNanos(used), LastRefresh: fromNanos(refreshed), TokenExpiry: fromNanos(expires)}
	return c, nil
}

// scanConnWith reads columnList's columns, then into extra.
func scanConnWith(r row, extra ...any) (*store.Connection, error) {
	var c store.Connection
	var scopes string
	var verified, created, updated int64
	err := r.Scan(append([]any{&c.ID, &c.WorkspaceID, &c.ProjectID, &c.Name, &c.Connector, &c.Environment, &c.AuthType,
		&c.Instance.BaseURL, &c.Instance.Subdomain, &c.Instance.OrgID, &c.Instance.Sandbox,
		&c.Status, &c.StatusReason, &c.LastError, &verified,
		&c.AuthorizedAs, &scopes, &c.Owner, &c.ParentConnectionID, &c.RuntimeUser,
		&created, &updated, &c.Version, &c.SecretGeneration, &c.State}, extra...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	// Most connections have no scopes: "[]" needs no JSON decoder (a page
	// of rows spent a tenth of its read time here).
	if scopes != "[]" && scopes != "" {
		if err := json.Unmarshal([]byte(scopes), &c.GrantedScopes); err != nil {
			return nil, fmt.Errorf("granted_scopes: %w", err)
		}
	}
	if len(c.GrantedScopes) == 0 {
		c.GrantedScopes = nil
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

// checkText refuses text no database keeps alike (a NUL byte: PostgreSQL
// refuses it, SQLite stores it; invalid UTF-8), so that every store answers
// the same, whatever reaches it: pairs of a name and a value (strings, or
// structs, slices and pointers holding them).
// likeEscaper escapes LIKE's wildcards and its escape character.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

func checkText(nameValues ...any) error {
	for i := 0; i+1 < len(nameValues); i += 2 {
		if err := validtext.Value(nameValues[i].(string), nameValues[i+1]); err != nil {
			return fmt.Errorf("%w: %w", store.ErrInvalidText, err)
		}
	}
	return nil
}
