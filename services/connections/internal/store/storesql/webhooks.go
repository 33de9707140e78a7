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

// Webhook audit actions (not part of the change stream).
const (
	actionWebhookCreate = "webhook.create"
	actionWebhookDelete = "webhook.delete"
)

// webhookSnapshot is a webhook as the audit log records it (no secret).
type webhookSnapshot struct {
	ID     string   `json:"id"`
	URL    string   `json:"url"`
	Events []string `json:"events"`
}

const webhookColumns = `id, workspace_id, url, events, secret_generation, created_by, create_time, start_seq`

func scanWebhook(r row) (*store.Webhook, error) {
	var w store.Webhook
	var events string
	var made int64
	if err := r.Scan(&w.ID, &w.WorkspaceID, &w.URL, &events, &w.SecretGeneration, &w.CreatedBy, &made, &w.StartSeq); err != nil {
		return nil, err
	}
	w.Events, w.CreateTime = strings.Fields(events), fromNanos(made)
	return &w, nil
}

// CreateWebhook implements store.Store. The count is read with the
// workspace's webhooks locked where the database can lock them, and the
// event serialisation (taken first) orders concurrent creates anyway.
func (s *Store) CreateWebhook(ctx context.Context, actor string, w *store.Webhook, max int) error {
	if err := checkText("actor", actor, "webhook", w); err != nil {
		return fmt.Errorf("storesql.CreateWebhook: %w", err)
	}
	w.CreateTime = s.now()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.event(ctx, tx, store.Event{WorkspaceID: w.WorkspaceID, Actor: actor, Action: actionWebhookCreate,
			After: snapshot(webhookSnapshot{ID: w.ID, URL: w.URL, Events: w.Events})}); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM webhooks WHERE workspace_id = $1`, w.WorkspaceID).Scan(&n); err != nil {
			return err
		}
		if n >= max {
			return &store.LimitError{What: "webhooks", Max: max}
		}
		if err := consumeIntent(ctx, tx, store.WebhookIntent(w.ID, "").ConnectionID, w.SecretGeneration); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT MAX(seq) FROM events`).Scan(&w.StartSeq); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO webhooks (`+webhookColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			w.ID, w.WorkspaceID, w.URL, strings.Join(w.Events, " "), w.SecretGeneration, w.CreatedBy, w.CreateTime.UnixNano(), w.StartSeq)
		if err != nil && s.d.IsUniqueViolation(err) {
			return store.ErrAlreadyExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("storesql.CreateWebhook: %w", err)
	}
	return nil
}

// Webhooks implements store.Store.
func (s *Store) Webhooks(ctx context.Context, workspaceID string) ([]*store.Webhook, error) {
	if err := checkText("workspace_id", workspaceID); err != nil {
		return nil, fmt.Errorf("storesql.Webhooks: %w", err)
	}
	var w conds
	w.add("1 = 1")
	w.addIf(workspaceID != "", "workspace_id = ?", workspaceID)
	rows, err := s.db.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE `+w.sql()+` ORDER BY create_time, id`, w.args...)
	if err != nil {
		return nil, fmt.Errorf("storesql.Webhooks: %w", err)
	}
	defer rows.Close()
	var out []*store.Webhook
	for rows.Next() {
		h, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("storesql.Webhooks: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storesql.Webhooks: %w", err)
	}
	return out, nil
}

// DeleteWebhook implements store.Store.
func (s *Store) DeleteWebhook(ctx context.Context, actor, workspaceID, id string) (*store.Webhook, error) {
	if err := checkText("actor", actor, "workspace_id", workspaceID, "id", id); err != nil {
		return nil, fmt.Errorf("storesql.DeleteWebhook: %w", err)
	}
	var h *store.Webhook
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		h, err = scanWebhook(tx.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = $1 AND workspace_id = $2`+s.d.ForUpdate,
			id, workspaceID))
		if errors.Is(err, sql.ErrNoRows) {
			return &store.NotFoundError{Kind: store.KindWebhook, ID: id}
		} else if err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = $1)`,
			`DELETE FROM webhook_deliveries WHERE webhook_id = $1`,
			`DELETE FROM webhooks WHERE id = $1`,
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		return s.event(ctx, tx, store.Event{WorkspaceID: workspaceID, Actor: actor, Action: actionWebhookDelete,
			Before: snapshot(webhookSnapshot{ID: h.ID, URL: h.URL, Events: h.Events})})
	})
	if err != nil {
		return nil, fmt.Errorf("storesql.DeleteWebhook: %w", err)
	}
	return h, nil
}

// WebhookSecretInUse implements store.Store.
func (s *Store) WebhookSecretInUse(ctx context.Context, id, gen string, now time.Time, reap bool) (bool, error) {
	inUse, err := s.heldOrNamed(ctx, store.WebhookIntent(id, gen), now, reap,
		`SELECT COUNT(*) FROM webhooks WHERE id = $1 AND secret_generation = $2`, id, gen)
	if err != nil {
		return false, fmt.Errorf("storesql.WebhookSecretInUse: %w", err)
	}
	return inUse, nil
}

// WebhookCursor implements store.Store.
func (s *Store) WebhookCursor(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.db.QueryRowContext(ctx, `SELECT last_seq FROM webhook_cursor WHERE id = 1`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("storesql.WebhookCursor: %w", err)
	}
	return seq, nil
}

// EnqueueDeliveries implements store.Store.
func (s *Store) EnqueueDeliveries(ctx context.Context, from, to int64, ds []store.WebhookDelivery) error {
	if err := checkText("deliveries", ds); err != nil {
		return fmt.Errorf("storesql.EnqueueDeliveries: %w", err)
	}
	now := s.now().UnixNano()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_cursor SET last_seq = $1 WHERE id = 1 AND last_seq = $2`, to, from)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return store.ErrConflict
		}
		for _, d := range ds {
			_, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (id, webhook_id, event_seq, event_type, connection_id,
				payload, create_time, state, next_attempt_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
				ON CONFLICT (webhook_id, event_seq, event_type) DO NOTHING`,
				d.ID, d.WebhookID, d.EventSeq, d.EventType, d.ConnectionID, d.Payload, now, store.DeliveryPending, now)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storesql.EnqueueDeliveries: %w", err)
	}
	return nil
}

const deliveryColumns = `seq, id, webhook_id, event_seq, event_type, connection_id, payload, create_time, state, attempts,
	retry_base, next_attempt_time`

func scanDelivery(r row) (store.WebhookDelivery, error) {
	var d store.WebhookDelivery
	var made, next int64
	err := r.Scan(&d.Seq, &d.ID, &d.WebhookID, &d.EventSeq, &d.EventType, &d.ConnectionID, &d.Payload, &made, &d.State,
		&d.Attempts, &d.RetryBase, &next)
	d.CreateTime, d.NextAttempt = fromNanos(made), fromNanos(next)
	return d, err
}

func (s *Store) deliveries(ctx context.Context, q querier, where string, args ...any) ([]store.WebhookDelivery, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.WebhookDelivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DueDeliveries implements store.Store.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]store.WebhookDelivery, error) {
	out, err := s.deliveries(ctx, s.db, `state = $1 AND next_attempt_time <= $2 ORDER BY next_attempt_time, seq LIMIT $3`,
		store.DeliveryPending, now.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("storesql.DueDeliveries: %w", err)
	}
	return out, nil
}

// RecordAttempt implements store.Store.
func (s *Store) RecordAttempt(ctx context.Context, id string, due time.Time, a store.WebhookAttempt, state string, next time.Time) error {
	if err := checkText("id", id, "attempt", a, "state", state); err != nil {
		return fmt.Errorf("storesql.RecordAttempt: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var attempts int
		var queued int64
		err := tx.QueryRowContext(ctx, `SELECT attempts, next_attempt_time FROM webhook_deliveries WHERE id = $1`+s.d.ForUpdate, id).Scan(&attempts, &queued)
		if errors.Is(err, sql.ErrNoRows) {
			return &store.NotFoundError{Kind: store.KindWebhookDelivery, ID: id}
		} else if err != nil {
			return err
		}
		if queued == due.UnixNano() {
			_, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1, state = $1, next_attempt_time = $2
				WHERE id = $3`, state, next.UnixNano(), id)
		} else {
			// Queued again while this attempt was out: it stays queued.
			_, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1, retry_base = retry_base + 1
				WHERE id = $1`, id)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO webhook_attempts (delivery_id, n, time, http_status, error, duration)
			VALUES ($1, $2, $3, $4, $5, $6)`, id, attempts+1, a.Time.UnixNano(), a.HTTPStatus, a.Error, int64(a.Duration))
		return err
	})
	if err != nil {
		return fmt.Errorf("storesql.RecordAttempt: %w", err)
	}
	return nil
}

// WebhookDeliveries implements store.Store.
func (s *Store) WebhookDeliveries(ctx context.Context, webhookID string, beforeSeq int64, limit int) ([]store.WebhookDelivery, error) {
	if err := checkText("webhook_id", webhookID); err != nil {
		return nil, fmt.Errorf("storesql.WebhookDeliveries: %w", err)
	}
	if beforeSeq <= 0 {
		beforeSeq = 1<<63 - 1
	}
	out, err := s.deliveries(ctx, s.db, `webhook_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`, webhookID, beforeSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("storesql.WebhookDeliveries: %w", err)
	}
	for i := range out {
		if out[i].Log, err = s.attempts(ctx, out[i].ID); err != nil {
			return nil, fmt.Errorf("storesql.WebhookDeliveries: %w", err)
		}
	}
	return out, nil
}

func (s *Store) attempts(ctx context.Context, id string) ([]store.WebhookAttempt, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT time, http_status, error, duration FROM webhook_attempts WHERE delivery_id = $1 ORDER BY n`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.WebhookAttempt
	for rows.Next() {
		var a store.WebhookAttempt
		var t, d int64
		if err := rows.Scan(&t, &a.HTTPStatus, &a.Error, &d); err != nil {
			return nil, err
		}
		a.Time, a.Duration = fromNanos(t), time.Duration(d)
		out = append(out, a)
	}
	return out, rows.Err()
}

// Redeliver implements store.Store.
func (s *Store) Redeliver(ctx context.Context, workspaceID, id string, now time.Time) (*store.WebhookDelivery, error) {
	if err := checkText("workspace_id", workspaceID, "id", id); err != nil {
		return nil, fmt.Errorf("storesql.Redeliver: %w", err)
	}
	var d store.WebhookDelivery
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = $1, next_attempt_time = $2, retry_base = attempts
			WHERE id = $3 AND webhook_id IN (SELECT id FROM webhooks WHERE workspace_id = $4)`,
			store.DeliveryPending, now.UnixNano(), id, workspaceID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return &store.NotFoundError{Kind: store.KindWebhookDelivery, ID: id}
		}
		ds, err := s.deliveries(ctx, tx, `id = $1`, id)
		if err != nil {
			return err
		}
		d = ds[0]
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storesql.Redeliver: %w", err)
	}
	if d.Log, err = s.attempts(ctx, id); err != nil {
		return nil, fmt.Errorf("storesql.Redeliver: %w", err)
	}
	return &d, nil
}
