package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/integrationhub/connections/services/connections/internal/store"
)

// newWebhook creates a webhook of ws through the write protocol's intent.
func newWebhook(t *testing.T, s store.Store, ws string, max int) (*store.Webhook, error) {
	t.Helper()
	w := &store.Webhook{ID: uuid.NewString(), WorkspaceID: ws, URL: "https://hooks.example.com/" + ws,
		Events: []string{"connection.invalid", "connection.deleted"}, SecretGeneration: "gen1", CreatedBy: "tester"}
	if err := s.BeginSecretWrite(ctx(t), store.WebhookIntent(w.ID, w.SecretGeneration), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	return w, s.CreateWebhook(ctx(t), "tester", w, max)
}

func testWebhooks(t *testing.T, s store.Store) {
	// Without its intent the secret generation cannot become live.
	bare := &store.Webhook{ID: uuid.NewString(), WorkspaceID: "ws", URL: "https://x.example", Events: []string{"connection.deleted"},
		SecretGeneration: "g", CreatedBy: "tester"}
	if err := s.CreateWebhook(ctx(t), "tester", bare, 10); !errors.Is(err, store.ErrIntentGone) {
		t.Fatalf("CreateWebhook without intent: %v, want ErrIntentGone", err)
	}
	w1, err := newWebhook(t, s, "ws", 2)
	if err != nil {
		t.Fatal(err)
	}
	if w1.StartSeq == 0 || w1.CreateTime.IsZero() {
		t.Errorf("CreateWebhook set start %d, time %v; want both", w1.StartSeq, w1.CreateTime)
	}
	w2, err := newWebhook(t, s, "ws", 2)
	if err != nil {
		t.Fatal(err)
	}
	var limit *store.LimitError
	if _, err := newWebhook(t, s, "ws", 2); !errors.As(err, &limit) {
		t.Fatalf("third webhook with max 2: %v, want *LimitError", err)
	}
	if _, err := newWebhook(t, s, "other", 2); err != nil {
		t.Fatalf("another workspace's webhook: %v", err)
	}
	got, err := s.Webhooks(ctx(t), "ws")
	if err != nil || len(got) != 2 || got[0].ID != w1.ID || got[1].ID != w2.ID {
		t.Fatalf("Webhooks(ws) = %v, %v; want w1, w2", got, err)
	}
	if got[0].URL != w1.URL || fmt.Sprint(got[0].Events) != fmt.Sprint(w1.Events) || got[0].SecretGeneration != "gen1" ||
		got[0].StartSeq != w1.StartSeq || got[0].CreatedBy != "tester" {
		t.Errorf("Webhooks(ws)[0] = %+v, want %+v", got[0], w1)
	}
	if all, err := s.Webhooks(ctx(t), ""); err != nil || len(all) != 3 {
		t.Errorf("Webhooks(all) = %d, %v; want 3", len(all), err)
	}
	if in, err := s.WebhookSecretInUse(ctx(t), w1.ID, "gen1", time.Now(), false); err != nil || !in {
		t.Errorf("WebhookSecretInUse(live) = %v, %v; want true", in, err)
	}
	if in, err := s.WebhookSecretInUse(ctx(t), w1.ID, "old", time.Now(), false); err != nil || in {
		t.Errorf("WebhookSecretInUse(unnamed) = %v, %v; want false", in, err)
	}
	if _, err := s.DeleteWebhook(ctx(t), "tester", "other", w1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteWebhook from another workspace: %v, want ErrNotFound", err)
	}
	if d, err := s.DeleteWebhook(ctx(t), "tester", "ws", w1.ID); err != nil || d.ID != w1.ID {
		t.Fatalf("DeleteWebhook = %v, %v", d, err)
	}
	if in, err := s.WebhookSecretInUse(ctx(t), w1.ID, "gen1", time.Now(), false); err != nil || in {
		t.Errorf("WebhookSecretInUse(deleted) = %v, %v; want false", in, err)
	}
	if _, err := s.DeleteWebhook(ctx(t), "tester", "ws", w1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteWebhook twice: %v, want ErrNotFound", err)
	}
	// Creation and deletion are in the audit log.
	evs, err := s.Events(ctx(t), store.EventQuery{WorkspaceID: "ws", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range evs {
		actions = append(actions, e.Action)
	}
	if want := "[webhook.create webhook.create webhook.delete]"; fmt.Sprint(actions) != want {
		t.Errorf("audit actions %v, want %s", actions, want)
	}
}

func testWebhookOutbox(t *testing.T, s store.Store) {
	w, err := newWebhook(t, s, "ws", 10)
	if err != nil {
		t.Fatal(err)
	}
	from, err := s.WebhookCursor(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	d := func(id string, seq int64) store.WebhookDelivery {
		return store.WebhookDelivery{ID: id, WebhookID: w.ID, EventSeq: seq, EventType: "connection.deleted",
			ConnectionID: "c1", Payload: `{"type":"connection.deleted"}`}
	}
	if err := s.EnqueueDeliveries(ctx(t), from, from+5, []store.WebhookDelivery{d("msg_a", from+1), d("msg_b", from+2)}); err != nil {
		t.Fatal(err)
	}
	// The cursor moved: a second enqueuer from the old place is refused,
	// and the same deliveries again are skipped.
	if err := s.EnqueueDeliveries(ctx(t), from, from+5, []store.WebhookDelivery{d("msg_c", from+1)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("EnqueueDeliveries from a stale cursor: %v, want ErrConflict", err)
	}
	if err := s.EnqueueDeliveries(ctx(t), from+5, from+6, []store.WebhookDelivery{d("msg_c", from+1)}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.WebhookCursor(ctx(t)); err != nil || c != from+6 {
		t.Fatalf("WebhookCursor = %d, %v; want %d", c, err, from+6)
	}
	now := time.Now()
	due, err := s.DueDeliveries(ctx(t), now.Add(time.Second), 10)
	if err != nil || len(due) != 2 || due[0].ID != "msg_a" || due[1].ID != "msg_b" || due[0].State != store.DeliveryPending {
		t.Fatalf("DueDeliveries = %+v, %v; want msg_a, msg_b pending", due, err)
	}
	a := store.WebhookAttempt{Time: now, HTTPStatus: 500, Error: "500 Internal Server Error", Duration: 3 * time.Millisecond}
	if err := s.RecordAttempt(ctx(t), "msg_a", due[0].NextAttempt, a, store.DeliveryPending, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAttempt(ctx(t), "msg_zz", now, a, store.DeliveryPending, now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RecordAttempt of nothing: %v, want ErrNotFound", err)
	}
	ok := store.WebhookAttempt{Time: now, HTTPStatus: 204, Duration: time.Millisecond}
	if err := s.RecordAttempt(ctx(t), "msg_b", due[1].NextAttempt, ok, store.DeliverySucceeded, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if due, err := s.DueDeliveries(ctx(t), now.Add(time.Minute), 10); err != nil || len(due) != 0 {
		t.Errorf("DueDeliveries after attempts = %+v, %v; want none", due, err)
	}
	log, err := s.WebhookDeliveries(ctx(t), w.ID, 0, 1)
	if err != nil || len(log) != 1 || log[0].ID != "msg_b" || log[0].State != store.DeliverySucceeded || len(log[0].Log) != 1 ||
		log[0].Log[0].HTTPStatus != 204 {
		t.Fatalf("WebhookDeliveries page 1 = %+v, %v; want msg_b succeeded with one attempt", log, err)
	}
	log, err = s.WebhookDeliveries(ctx(t), w.ID, log[0].Seq, 10)
	if err != nil || len(log) != 1 || log[0].ID != "msg_a" || log[0].Attempts != 1 || len(log[0].Log) != 1 ||
		log[0].Log[0].Error != a.Error || log[0].Log[0].Duration != a.Duration || log[0].Payload != `{"type":"connection.deleted"}` {
		t.Fatalf("WebhookDeliveries page 2 = %+v, %v; want msg_a with its attempt", log, err)
	}
	// A redelivery is due at once, with a new retry schedule.
	if _, err := s.Redeliver(ctx(t), "other", "msg_b", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Redeliver from another workspace: %v, want ErrNotFound", err)
	}
	r, err := s.Redeliver(ctx(t), "ws", "msg_b", now)
	if err != nil || r.State != store.DeliveryPending || r.RetryBase != 1 || r.Attempts != 1 || len(r.Log) != 1 {
		t.Fatalf("Redeliver = %+v, %v; want pending with retry base 1", r, err)
	}
	if due, err := s.DueDeliveries(ctx(t), now.Add(time.Millisecond), 10); err != nil || len(due) != 1 || due[0].ID != "msg_b" {
		t.Errorf("DueDeliveries after redeliver = %+v, %v; want msg_b", due, err)
	}
	// An attempt that was out when the redelivery came is logged, and the
	// delivery stays queued with a fresh schedule.
	if err := s.RecordAttempt(ctx(t), "msg_b", due[1].NextAttempt, ok, store.DeliverySucceeded, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if log, err := s.WebhookDeliveries(ctx(t), w.ID, 0, 1); err != nil || log[0].State != store.DeliveryPending || log[0].Attempts != 2 ||
		log[0].RetryBase != 2 || len(log[0].Log) != 2 {
		t.Errorf("after an attempt that crossed a redelivery: %+v, %v; want pending, 2 attempts, retry base 2", log, err)
	}
	// Deleting the webhook drops its deliveries.
	if _, err := s.DeleteWebhook(ctx(t), "tester", "ws", w.ID); err != nil {
		t.Fatal(err)
	}
	if log, err := s.WebhookDeliveries(ctx(t), w.ID, 0, 10); err != nil || len(log) != 0 {
		t.Errorf("deliveries of a deleted webhook: %+v, %v", log, err)
	}
	if err := s.RecordAttempt(ctx(t), "msg_b", now, ok, store.DeliverySucceeded, time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RecordAttempt after the webhook was deleted: %v, want ErrNotFound", err)
	}
}
