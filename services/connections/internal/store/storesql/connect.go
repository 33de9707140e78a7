package storesql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/integrationhub/connections/services/connections/internal/store"
)

const connectColumns = `token_hash, workspace_id, subject, privileges, connectors, project_id, environment,
	parent_connection_id, runtime_user, bind_recipe_id, bind_step, return_url, expire_time, attempts, used`

// CreateConnectSession implements store.Store. Expired sessions are
// removed on the way, so the table holds only live ones.
func (s *Store) CreateConnectSession(ctx context.Context, cs *store.ConnectSession) error {
	if err := checkText("session", cs); err != nil {
		return fmt.Errorf("storesql.CreateConnectSession: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM connect_sessions WHERE expire_time < $1`, s.now().Add(-time.Hour).UnixNano()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO connect_sessions (`+connectColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, 0)`,
			cs.TokenHash, cs.WorkspaceID, cs.Subject, strings.Join(cs.Privileges, " "), strings.Join(cs.Connectors, " "),
			cs.ProjectID, cs.Environment, cs.ParentConnectionID, cs.RuntimeUser, cs.BindRecipeID, cs.BindStep, cs.ReturnURL,
			cs.ExpireTime.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("storesql.CreateConnectSession: %w", err)
	}
	return nil
}

// ConnectSession implements store.Store.
func (s *Store) ConnectSession(ctx context.Context, tokenHash string, now time.Time, attempt bool) (*store.ConnectSession, error) {
	if err := checkText("token_hash", tokenHash); err != nil {
		return nil, fmt.Errorf("storesql.ConnectSession: %w", err)
	}
	var cs store.ConnectSession
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if attempt {
			if _, err := tx.ExecContext(ctx, `UPDATE connect_sessions SET attempts = attempts + 1 WHERE token_hash = $1`, tokenHash); err != nil {
				return err
			}
		}
		var privs, connectors string
		var exp int64
		var used int
		err := tx.QueryRowContext(ctx, `SELECT `+connectColumns+` FROM connect_sessions WHERE token_hash = $1`, tokenHash).Scan(
			&cs.TokenHash, &cs.WorkspaceID, &cs.Subject, &privs, &connectors, &cs.ProjectID, &cs.Environment,
			&cs.ParentConnectionID, &cs.RuntimeUser, &cs.BindRecipeID, &cs.BindStep, &cs.ReturnURL, &exp, &cs.Attempts, &used)
		if errors.Is(err, sql.ErrNoRows) {
			return &store.NotFoundError{Kind: store.KindConnectSession}
		} else if err != nil {
			return err
		}
		cs.Privileges, cs.Connectors, cs.ExpireTime, cs.Used = strings.Fields(privs), strings.Fields(connectors), fromNanos(exp), used != 0
		if cs.Used || !now.Before(cs.ExpireTime) {
			return &store.NotFoundError{Kind: store.KindConnectSession}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storesql.ConnectSession: %w", err)
	}
	return &cs, nil
}

// UseConnectSession implements store.Store.
func (s *Store) UseConnectSession(ctx context.Context, tokenHash string, use bool) error {
	from, to := 0, 1
	if !use {
		from, to = 1, 0
	}
	res, err := s.db.ExecContext(ctx, `UPDATE connect_sessions SET used = $1 WHERE token_hash = $2 AND used = $3`, to, tokenHash, from)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n != 1 {
			err = &store.NotFoundError{Kind: store.KindConnectSession}
		}
	}
	if err != nil {
		return fmt.Errorf("storesql.UseConnectSession: %w", err)
	}
	return nil
}
