package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/encoding/protojson"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	"github.com/integrationhub/connections/internal/egress"

	"github.com/integrationhub/connections/services/connections/internal/store"
)

// WebhooksConfig tunes webhook delivery (RunWebhooks).
type WebhooksConfig struct {
	// Period is how often the leader looks for new events and due
	// deliveries (0: webhooks off). A redelivery or a new event made on
	// this replica wakes it sooner.
	Period time.Duration
	// Schedule is the wait before each retry of a failed delivery; when it
	// runs out the delivery fails. Nil is DefaultWebhookSchedule.
	Schedule []time.Duration
	// Timeout bounds one delivery attempt; 0 is 10 s.
	Timeout time.Duration
	// AllowPrivate lets webhooks be sent to private and loopback
	// addresses (development, or receivers inside the cluster).
	AllowPrivate bool
}

// DefaultWebhookSchedule retries a failed delivery for a little over a day
// (the Standard Webhooks / Svix schedule): after 5 s, 5 min, 30 min, 2 h,
// 5 h, 10 h and 10 h; eight attempts in all.
var DefaultWebhookSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// Delivery batch sizes and concurrency: one pass sends at most
// deliveryBatch deliveries, deliveryParallel at a time.
const (
	eventBatch       = 500
	deliveryBatch    = 100
	deliveryParallel = 8
)

// webhookPayload is the JSON body of a delivery (the Standard Webhooks
// shape: type, timestamp, data).
type webhookPayload struct {
	Type      string      `json:"type"`
	Timestamp time.Time   `json:"timestamp"`
	Data      webhookData `json:"data"`
}

type webhookData struct {
	// Connection is the connection as ConnectionService returns it
	// (protojson), as it was after the change (before it, for a delete).
	Connection json.RawMessage `json:"connection"`
	Actor      string          `json:"actor"`
	// EventSequence is the audit event (AuditEvent.sequence).
	EventSequence int64 `json:"event_sequence"`
}

// RunWebhooks turns connection events into webhook deliveries and sends
// them, until ctx ends, on whichever replica holds the webhooks lock.
// Deliveries are made in the transaction that moves the cursor past their
// event (the outbox), and each is retried on the schedule until the
// receiver answers 2xx: at least once, with the same webhook-id.
func (s *Server) RunWebhooks(ctx context.Context) {
	if s.hooks.Period <= 0 {
		return
	}
	s.runAsLeader(ctx, "webhook pass", s.hooks.Period, store.LockWebhooks, s.hookWake, s.webhookPass)
}

// wakeWebhooks makes RunWebhooks run a pass now (if it runs here).
func (s *Server) wakeWebhooks() {
	select {
	case s.hookWake <- struct{}{}:
	default:
	}
}

// webhookPass queues the deliveries of new events, then sends those due.
//
// Only events up to the newest one committed before the webhooks were read
// are turned into deliveries in this pass: a webhook created meanwhile
// (whose own creation event comes later) must not have later events of
// this pass pass it by.
func (s *Server) webhookPass(ctx context.Context) error {
	bound, err := s.store.LastEventSeq(ctx)
	if err != nil {
		return err
	}
	hooks, err := s.store.Webhooks(ctx, "")
	if err != nil {
		return err
	}
	if len(hooks) == 0 {
		// Nothing to deliver to: move the cursor without reading events.
		from, err := s.store.WebhookCursor(ctx)
		if err != nil || from >= bound {
			return err
		}
		if err := s.store.EnqueueDeliveries(ctx, from, bound, nil); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		return nil
	}
	byWorkspace := map[string][]*store.Webhook{}
	byID := map[string]*store.Webhook{}
	for _, h := range hooks {
		byWorkspace[h.WorkspaceID] = append(byWorkspace[h.WorkspaceID], h)
		byID[h.ID] = h
	}
	if err := s.enqueue(ctx, byWorkspace, bound); err != nil {
		return err
	}
	return s.deliverDue(ctx, byID)
}

// enqueue turns the events after the cursor, up to bound, into
// deliveries, a batch at a time.
func (s *Server) enqueue(ctx context.Context, byWorkspace map[string][]*store.Webhook, bound int64) error {
	for {
		from, err := s.store.WebhookCursor(ctx)
		if err != nil {
			return err
		}
		evs, err := s.store.Events(ctx, store.EventQuery{AfterSeq: from, Limit: eventBatch})
		if err != nil {
			return err
		}
		full := len(evs) == eventBatch
		for len(evs) > 0 && evs[len(evs)-1].Seq > bound {
			evs, full = evs[:len(evs)-1], false
		}
		if len(evs) == 0 {
			return nil
		}
		var ds []store.WebhookDelivery
		for _, e := range evs {
			hooks := byWorkspace[e.WorkspaceID]
			if len(hooks) == 0 {
				continue
			}
			types, c := webhookEventsOf(e)
			for _, typ := range types {
				payload, err := webhookBody(typ, e, c)
				if err != nil {
					return err
				}
				for _, h := range hooks {
					if e.Seq > h.StartSeq && slices.Contains(h.Events, typ) {
						ds = append(ds, store.WebhookDelivery{ID: "msg_" + strings.ToLower(rand.Text()), WebhookID: h.ID,
							EventSeq: e.Seq, EventType: typ, ConnectionID: c.ID, Payload: payload})
					}
				}
			}
		}
		if err := s.store.EnqueueDeliveries(ctx, from, evs[len(evs)-1].Seq, ds); err != nil {
			return err
		}
		if !full {
			return nil
		}
	}
}

// webhookEventsOf says which webhook events an audit event is, and the
// connection they are about.
func webhookEventsOf(e store.Event) ([]string, *store.Connection) {
	decode := func(snap string) *store.Connection {
		var c store.Connection
		if snap == "" || json.Unmarshal([]byte(snap), &c) != nil {
			return nil
		}
		return &c
	}
	switch e.Action {
	case store.ActionConnectionDelete:
		if c := decode(e.Before); c != nil {
			return []string{eventDeleted}, c
		}
	case store.ActionConnectionUpdate:
		before, after := decode(e.Before), decode(e.After)
		if before == nil || after == nil {
			return nil, nil
		}
		var types []string
		if after.Status == store.StatusInvalid && before.Status != store.StatusInvalid {
			if e.Actor == checkActor {
				types = append(types, eventCheckFailed)
			}
			types = append(types, eventInvalid)
		}
		// A new credential for a connection that had been authorized
		// before (a first authorization is no re-authorization).
		if after.Status == store.StatusActive && before.Status != store.StatusPending &&
			after.SecretGeneration != before.SecretGeneration {
			types = append(types, eventReauthorized)
		}
		return types, after
	}
	return nil, nil
}

// webhookBody is the JSON body of a delivery of event type typ.
func webhookBody(typ string, e store.Event, c *store.Connection) (string, error) {
	conn, err := protojson.Marshal(toProto(c))
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(webhookPayload{Type: typ, Timestamp: e.Time.UTC(),
		Data: webhookData{Connection: conn, Actor: e.Actor, EventSequence: e.Seq}})
	return string(b), err
}

// deliverDue sends the deliveries that are due, a few at a time.
func (s *Server) deliverDue(ctx context.Context, byID map[string]*store.Webhook) error {
	for {
		due, err := s.store.DueDeliveries(ctx, time.Now(), deliveryBatch)
		if err != nil || len(due) == 0 {
			return err
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(deliveryParallel)
		var skipped atomic.Bool
		for _, d := range due {
			h := byID[d.WebhookID]
			if h == nil {
				skipped.Store(true)
				continue // made after this pass read the webhooks; next pass
			}
			g.Go(func() error {
				tried, err := s.deliver(gctx, h, d)
				if !tried {
					skipped.Store(true)
				}
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		// A delivery left due (not signed, or not yet known) would be read
		// again at once: the next pass tries it.
		if len(due) < deliveryBatch || skipped.Load() {
			return nil
		}
	}
}

// deliver makes one attempt at d and records it; tried is false when
// nothing was sent. Only a failure to record is an error: the receiver's
// failures are the attempt's outcome.
func (s *Server) deliver(ctx context.Context, h *store.Webhook, d store.WebhookDelivery) (tried bool, err error) {
	start := time.Now()
	sig, err := s.broker.SignWebhook(ctx, &brokerv1.SignWebhookRequest{WebhookId: h.ID, SecretGeneration: h.SecretGeneration,
		MessageId: d.ID, Timestamp: start.Unix(), Payload: []byte(d.Payload)})
	if err != nil {
		// Nothing was sent: not an attempt. The next pass tries again.
		s.logger.WarnContext(ctx, "could not sign a webhook delivery; retrying next pass", "webhook_id", h.ID, "delivery_id", d.ID, "err", err)
		return false, nil
	}
	code, sendErr := s.post(ctx, h.URL, d, start, sig.GetSignature())
	a := store.WebhookAttempt{Time: start, HTTPStatus: code, Duration: time.Since(start)}
	state, next := store.DeliverySucceeded, time.Time{}
	if sendErr != nil {
		a.Error = sendErr.Error()
		state, next = s.retry(d)
	}
	err = s.store.RecordAttempt(ctx, d.ID, d.NextAttempt, a, state, next)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil // deleted with its webhook meanwhile
	}
	return true, err
}

// retry is the state and next attempt time of a delivery whose attempt
// just failed: the next wait of its schedule, with up to a tenth more so
// that receivers coming back are not hit by every retry at once.
func (s *Server) retry(d store.WebhookDelivery) (string, time.Time) {
	schedule := s.hooks.Schedule
	if schedule == nil {
		schedule = DefaultWebhookSchedule
	}
	n := d.Attempts - d.RetryBase // retries already made in this schedule
	if n >= len(schedule) {
		return store.DeliveryFailed, time.Time{}
	}
	wait := schedule[n]
	wait += time.Duration(mrand.Int64N(int64(wait)/10 + 1))
	return store.DeliveryPending, time.Now().Add(wait)
}

// post sends one delivery and reports the receiver's status and, unless it
// was 2xx, what went wrong.
func (s *Server) post(ctx context.Context, target string, d store.WebhookDelivery, at time.Time, signature string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.hookTimeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader([]byte(d.Payload)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "IntegrationHub-Webhooks/1")
	req.Header.Set("webhook-id", d.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	req.Header.Set("webhook-signature", signature)
	resp, err := s.hookClient.Do(req)
	if err != nil {
		if errors.Is(err, egress.ErrPrivateAddress) {
			return 0, errors.New("the receiver's address is on a private network, where this service does not send webhooks")
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which the log already names
		}
		return 0, fmt.Errorf("no answer: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("the receiver answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

func (s *Server) hookTimeout() time.Duration {
	if s.hooks.Timeout > 0 {
		return s.hooks.Timeout
	}
	return 10 * time.Second
}
