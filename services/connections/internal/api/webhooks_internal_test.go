package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/jwtauth"
	"github.com/integrationhub/connections/internal/privilege"

	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// Which audit events are which webhook events.
func TestWebhookEventsOf(t *testing.T) {
	snap := func(status, gen string) string {
		b, _ := json.Marshal(store.Connection{ID: "c1", Status: status, SecretGeneration: gen})
		return string(b)
	}
	for _, tc := range []struct {
		name string
		e    store.Event
		want []string
	}{
		{"delete", store.Event{Action: store.ActionConnectionDelete, Before: snap(store.StatusActive, "g1")}, []string{eventDeleted}},
		{"create", store.Event{Action: store.ActionConnectionCreate, After: snap(store.StatusActive, "g1")}, nil},
		{"turned invalid", store.Event{Action: store.ActionConnectionUpdate, Actor: "user",
			Before: snap(store.StatusActive, "g1"), After: snap(store.StatusInvalid, "g1")}, []string{eventInvalid}},
		{"turned invalid by a check", store.Event{Action: store.ActionConnectionUpdate, Actor: checkActor,
			Before: snap(store.StatusActive, "g1"), After: snap(store.StatusInvalid, "g1")}, []string{eventCheckFailed, eventInvalid}},
		{"invalid again", store.Event{Action: store.ActionConnectionUpdate,
			Before: snap(store.StatusInvalid, "g1"), After: snap(store.StatusInvalid, "g1")}, nil},
		{"re-authorized", store.Event{Action: store.ActionConnectionUpdate,
			Before: snap(store.StatusInvalid, "g1"), After: snap(store.StatusActive, "g2")}, []string{eventReauthorized}},
		{"key replaced while active", store.Event{Action: store.ActionConnectionUpdate,
			Before: snap(store.StatusActive, "g1"), After: snap(store.StatusActive, "g2")}, []string{eventReauthorized}},
		{"first authorization", store.Event{Action: store.ActionConnectionUpdate,
			Before: snap(store.StatusPending, ""), After: snap(store.StatusActive, "g1")}, nil},
		{"renamed", store.Event{Action: store.ActionConnectionUpdate,
			Before: snap(store.StatusActive, "g1"), After: snap(store.StatusActive, "g1")}, nil},
		{"binding", store.Event{Action: store.ActionBind}, nil},
		{"bad snapshot", store.Event{Action: store.ActionConnectionUpdate, Before: "{", After: "{"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, c := webhookEventsOf(tc.e)
			if !slices.Equal(got, tc.want) {
				t.Errorf("events %v, want %v", got, tc.want)
			}
			if len(got) > 0 && c.ID != "c1" {
				t.Errorf("about connection %+v, want c1", c)
			}
		})
	}
}

// A URL naming a private or loopback address is refused unless the
// service allows private networks.
func TestCheckWebhookURL(t *testing.T) {
	for _, tc := range []struct {
		url          string
		allowPrivate bool
		ok           bool
	}{
		{"https://hooks.example.com/x", false, true},
		{"http://203.0.113.7:8080/x", false, true},
		{"http://127.0.0.1:9000/x", false, false},
		{"http://[::1]/x", false, false},
		{"http://[::ffff:10.0.0.1]/x", false, false},
		{"http://169.254.169.254/latest", false, false},
		{"http://localhost/x", false, false},
		{"http://api.localhost/x", false, false},
		{"http://127.0.0.1:9000/x", true, true},
		{"mailto:a@example.com", true, false},
		{"https:///nohost", true, false},
	} {
		s := &Server{hooks: WebhooksConfig{AllowPrivate: tc.allowPrivate}}
		if err := s.checkWebhookURL(tc.url); (err == nil) != tc.ok {
			t.Errorf("checkWebhookURL(%q, private %v) = %v, want ok %v", tc.url, tc.allowPrivate, err, tc.ok)
		}
	}
}

// A failed delivery waits each step of the schedule (plus at most a tenth)
// and fails after the last; a redelivery starts the schedule again.
func TestWebhookRetrySchedule(t *testing.T) {
	schedule := []time.Duration{time.Second, time.Minute, time.Hour}
	s := &Server{hooks: WebhooksConfig{Schedule: schedule}}
	for attempts := 1; attempts <= 4; attempts++ {
		before := time.Now()
		// The delivery as read before its attempt number attempts.
		state, next := s.retry(store.WebhookDelivery{Attempts: attempts - 1})
		if attempts > len(schedule) {
			if state != store.DeliveryFailed {
				t.Errorf("after %d attempts: %s, want failed", attempts, state)
			}
			continue
		}
		wait := schedule[attempts-1]
		if state != store.DeliveryPending || next.Before(before.Add(wait)) || next.After(time.Now().Add(wait+wait/10)) {
			t.Errorf("after %d attempts: %s at +%v, want pending at +%v to +%v", attempts, state, next.Sub(before), wait, wait+wait/10)
		}
	}
	if state, _ := s.retry(store.WebhookDelivery{Attempts: 4, RetryBase: 4}); state != store.DeliveryPending {
		t.Errorf("first attempt of a redelivery: %s, want pending", state)
	}
	// The default retries for more than a day.
	var total time.Duration
	for _, d := range DefaultWebhookSchedule {
		total += d
	}
	if total < 24*time.Hour {
		t.Errorf("the default schedule retries for %v, want at least a day", total)
	}
}

// A webhook whose signing secret the broker could not store is not
// created: the call is Unavailable and the workspace has no webhook. With
// webhooks off the call says so.
func TestCreateWebhookRefusals(t *testing.T) {
	d := brokerDownDeps(t)
	st := d.Store
	ctx := authz.WithPrincipal(t.Context(), &authz.Principal{Subject: "tester", Workspace: jwtauth.AllWorkspaces, Privileges: privilege.All})
	req := &connectionsv1.CreateWebhookRequest{WorkspaceId: "ws", Url: "https://hooks.example.com/x",
		Events: []connectionsv1.WebhookEventType{connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_DELETED}}

	off := New(d)
	if _, err := off.CreateWebhook(ctx, req); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("CreateWebhook with webhooks off = %v, want FailedPrecondition", err)
	}
	d.Webhooks, d.WriteTimeout = WebhooksConfig{Period: time.Second}, 2*time.Second
	on := New(d)
	if _, err := on.CreateWebhook(ctx, req); status.Code(err) != codes.Unavailable {
		t.Errorf("CreateWebhook with the broker down = %v, want Unavailable", err)
	}
	if hs, err := st.Webhooks(ctx, ""); err != nil || len(hs) != 0 {
		t.Errorf("after a refused create the store holds %v, %v", hs, err)
	}
	if n, err := st.PendingIntents(ctx, time.Now()); err != nil || n != 0 {
		t.Errorf("a refused create left %d write intents (%v)", n, err)
	}
	if evs, err := st.Events(ctx, store.EventQuery{Limit: 10}); err != nil || len(evs) != 0 {
		t.Errorf("a refused create left audit events %v (%v)", evs, err)
	}
}

// With the broker down nothing can be signed: a pass leaves more than a
// batch of due deliveries untried (no attempt is spent) and returns instead
// of reading the same batch again and again.
func TestWebhookPassWithBrokerDown(t *testing.T) {
	d := brokerDownDeps(t)
	st := d.Store
	d.Webhooks = WebhooksConfig{Period: time.Second, AllowPrivate: true}
	s := New(d)
	h := &store.Webhook{ID: "6f1c1e9e-55b5-4c8f-9d55-7d4f6a1c2b3a", WorkspaceID: "ws", URL: "http://127.0.0.1:1/x",
		Events: []string{eventDeleted}, SecretGeneration: "g1", CreatedBy: "tester"}
	if err := st.BeginSecretWrite(t.Context(), store.WebhookIntent(h.ID, "g1"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateWebhook(t.Context(), "tester", h, MaxWebhooks); err != nil {
		t.Fatal(err)
	}
	from, err := st.WebhookCursor(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ds []store.WebhookDelivery
	for i := range deliveryBatch + 5 {
		ds = append(ds, store.WebhookDelivery{ID: fmt.Sprintf("msg_%d", i), WebhookID: h.ID, EventSeq: int64(i + 1000),
			EventType: eventDeleted, ConnectionID: "c", Payload: "{}"})
	}
	if err := st.EnqueueDeliveries(t.Context(), from, from, ds); err != nil {
		t.Fatal(err)
	}
	if err := s.webhookPass(t.Context()); err != nil {
		t.Fatal(err)
	}
	due, err := st.DueDeliveries(t.Context(), time.Now(), 1000)
	if err != nil || len(due) != len(ds) {
		t.Fatalf("due after the pass: %d, %v; want all %d still due", len(due), err, len(ds))
	}
	for _, d := range due {
		if d.Attempts != 0 {
			t.Fatalf("delivery %s spent an attempt while nothing could be signed", d.ID)
		}
	}
}
