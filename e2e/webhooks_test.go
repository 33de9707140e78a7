package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/devstack"
)

// receiver is a webhook endpoint that verifies every delivery with the
// Standard Webhooks reference library, can fail the first ones, and can be
// taken down and brought back.
//
// Down, it keeps its port and drops every request unanswered (the sender
// sees a connection closed with no answer, as from a receiver that is gone).
// Giving the port up instead let a process started meanwhile take it (the
// restarted connection service draws its ports from the same range), and
// the receiver could not come back.
type receiver struct {
	t      *testing.T
	addr   string
	verify *standardwebhooks.Webhook

	mu       sync.Mutex
	isDown   bool                // drop requests unanswered
	failNext int                 // answer 500 to this many more deliveries
	requests int                 // deliveries seen, failed ones included
	got      map[string]delivery // by webhook-id: deduplicated
	dups     int                 // deliveries of an id already got
	bad      []string            // deliveries that did not verify
}

type delivery struct {
	Type string `json:"type"`
	Data struct {
		Connection struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"connection"`
		Actor string `json:"actor"`
	} `json:"data"`
}

func startReceiver(t *testing.T, failFirst int) *receiver {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, addr: l.Addr().String(), failNext: failFirst, got: map[string]delivery{}}
	srv := &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *receiver) url() string { return "http://" + r.addr + "/hooks" }

func (r *receiver) up()   { r.setDown(false) }
func (r *receiver) down() { r.setDown(true) }

func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.isDown = down
}

// drop closes the request's connection without an answer.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			_ = c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // the server closes the connection unanswered
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.isDown {
		drop(w)
		return
	}
	r.requests++
	if r.failNext > 0 {
		r.failNext--
		http.Error(w, "not today", http.StatusInternalServerError)
		return
	}
	id := req.Header.Get("webhook-id")
	if r.verify == nil {
		r.bad = append(r.bad, id+": delivered before the test knew the secret")
	} else if err := r.verify.Verify(body, req.Header); err != nil {
		r.bad = append(r.bad, fmt.Sprintf("%s: %v", id, err))
	}
	var d delivery
	if err := json.Unmarshal(body, &d); err != nil {
		r.bad = append(r.bad, fmt.Sprintf("%s: body %q: %v", id, body, err))
	}
	if _, ok := r.got[id]; ok {
		r.dups++
	}
	r.got[id] = d
	w.WriteHeader(http.StatusNoContent)
}

// events returns "type connection" for each distinct delivery received.
func (r *receiver) events() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, d := range r.got {
		out[d.Type+" "+d.Data.Connection.ID]++
	}
	return out
}

// Webhooks, on SQLite and PostgreSQL: a workspace subscribes a receiver
// that fails the first deliveries and is down across a kill -9 and restart
// of the connection service; it still gets every event exactly once after
// deduplication on webhook-id, every signature verifies with the Standard
// Webhooks reference library, and the delivery log shows the attempts.
func TestWebhooks(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) { testWebhooks(t, db(t)) })
	}
}

func testWebhooks(t *testing.T, database string) {
	const ws = "ws-hooks"
	args := []string{"-webhook-period=100ms", "-webhook-allow-private",
		"-webhook-retry-schedule=100ms,200ms,400ms,800ms,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s",
		"-check-period=100ms", "-check-interval=1s", "-check-rate=50"}
	e := startOAuthEnvOn(t, database, args...)
	rcv := startReceiver(t, 3)

	// Refused with a clear error: no events, not http(s), credentials in
	// the URL. (A loopback URL where private addresses are not allowed is
	// refused in the unit tests.)
	for _, bad := range []*connectionsv1.CreateWebhookRequest{
		{WorkspaceId: ws, Url: rcv.url()},
		{WorkspaceId: ws, Url: "ftp://example.com/x", Events: []connectionsv1.WebhookEventType{connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_DELETED}},
		{WorkspaceId: ws, Url: "https://user:pw@example.com/x", Events: []connectionsv1.WebhookEventType{connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_DELETED}},
	} {
		if _, err := e.cs.CreateWebhook(ctxT(t), bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("CreateWebhook(%v) = %v, want InvalidArgument", bad, err)
		}
	}
	hook, err := e.cs.CreateWebhook(ctxT(t), &connectionsv1.CreateWebhookRequest{WorkspaceId: ws, Url: rcv.url(),
		Events: []connectionsv1.WebhookEventType{
			connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_INVALID,
			connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_REAUTHORIZED,
			connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_DELETED,
			connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_CHECK_FAILED,
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hook.GetSigningSecret(), "whsec_") {
		t.Fatalf("signing secret %q is not a Standard Webhooks secret", hook.GetSigningSecret())
	}
	v, err := standardwebhooks.NewWebhook(hook.GetSigningSecret())
	if err != nil {
		t.Fatal(err)
	}
	rcv.mu.Lock()
	rcv.verify = v
	rcv.mu.Unlock()
	list, err := e.cs.ListWebhooks(ctxT(t), &connectionsv1.ListWebhooksRequest{WorkspaceId: ws})
	if err != nil || len(list.GetWebhooks()) != 1 || list.GetWebhooks()[0].GetUrl() != rcv.url() {
		t.Fatalf("ListWebhooks = %v, %v", list, err)
	}
	if strings.Contains(list.String(), strings.TrimPrefix(hook.GetSigningSecret(), "whsec_")) {
		t.Error("ListWebhooks shows the signing secret")
	}

	create := func(name string) string {
		c, err := e.cs.CreateConnection(ctxT(t), &connectionsv1.CreateConnectionRequest{WorkspaceId: ws, Name: name,
			Connector: "acme_key", Environment: prod, AuthType: key, Secret: apiKey(goodKey)})
		if err != nil {
			t.Fatal(err)
		}
		return c.GetConnection().GetId()
	}
	get := func(id string) *connectionsv1.Connection {
		c, err := e.cs.GetConnection(ctxT(t), &connectionsv1.GetConnectionRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		return c.GetConnection()
	}
	want := map[string]int{}
	// A scheduled check finds the key refused: check_failed and invalid.
	checked := create("checked")
	kept := create("kept")
	e.api.mode.Store("403")
	waitFor(t, 30*time.Second, "the scheduled check to turn the connection invalid", func() bool {
		return get(checked).GetStatus() == connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID &&
			get(kept).GetStatus() == connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID
	})
	e.api.mode.Store("")
	want["connection.check_failed "+checked], want["connection.invalid "+checked] = 1, 1
	want["connection.check_failed "+kept], want["connection.invalid "+kept] = 1, 1
	// Its key entered again: re-authorized.
	if _, err := e.cs.UpdateConnection(ctxT(t), &connectionsv1.UpdateConnectionRequest{Id: checked, Secret: apiKey(goodKey)}); err != nil {
		t.Fatal(err)
	}
	want["connection.reauthorized "+checked] = 1
	waitFor(t, 30*time.Second, "the receiver to have failed 3 deliveries and taken one", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.requests >= 4
	})

	// The receiver goes down; a delete happens; the connection service is
	// killed and started again on the same database; the receiver comes
	// back.
	rcv.down()
	if _, err := e.cs.DeleteConnection(ctxT(t), &connectionsv1.DeleteConnectionRequest{Id: kept}); err != nil {
		t.Fatal(err)
	}
	want["connection.deleted "+kept] = 1
	// The delivery is queued (an outbox row) and tried while the receiver
	// is down.
	waitFor(t, 30*time.Second, "a failed attempt at the delete's delivery", func() bool {
		return attemptsWith(t, e, ws, hook.GetWebhook().GetId(), "no answer") > 0
	})
	e.svc.Kill()
	svc, err := stack.StartConnectionService(t.Context(), e.database, devstack.Extra{
		LogName: "webhooks-restarted-" + strings.ReplaceAll(t.Name(), "/", "-") + ".log",
		Args:    append([]string{"-catalog-file=" + e.catalog}, args...)})
	if err != nil {
		t.Fatal(err)
	}
	e.cs = connectionsv1.NewConnectionServiceClient(dial(t, svc.Addr))
	rcv.up()

	waitFor(t, 60*time.Second, "every event delivered", func() bool { return len(rcv.events()) >= len(want) })
	// Nothing more arrives than was due (a pass is 100 ms; wait a few).
	list2, err := e.cs.ListWebhookDeliveries(ctxT(t), &connectionsv1.ListWebhookDeliveriesRequest{WorkspaceId: ws, WebhookId: hook.GetWebhook().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	got := rcv.events()
	for k, n := range got {
		if want[k] != n {
			t.Errorf("received %q %d times after deduplication, want %d", k, n, want[k])
		}
	}
	for k := range want {
		if got[k] == 0 {
			t.Errorf("never received %q", k)
		}
	}
	rcv.mu.Lock()
	if len(rcv.bad) > 0 {
		t.Errorf("deliveries that did not verify: %v", rcv.bad)
	}
	t.Logf("%d requests, %d distinct deliveries, %d duplicates", rcv.requests, len(rcv.got), rcv.dups)
	rcv.mu.Unlock()

	// The delivery log: every delivery succeeded in the end; the failures
	// are on record (the 500s, and no answer while the receiver was down).
	var failed500, noAnswer int
	if len(list2.GetDeliveries()) != len(want) {
		t.Errorf("%d deliveries in the log, want %d", len(list2.GetDeliveries()), len(want))
	}
	for _, d := range list2.GetDeliveries() {
		if d.GetState() != connectionsv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_SUCCEEDED && d.GetState() != connectionsv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING {
			t.Errorf("delivery %s is %v", d.GetId(), d.GetState())
		}
		for _, a := range d.GetAttempts() {
			switch {
			case a.GetHttpStatus() == 500:
				failed500++
			case strings.HasPrefix(a.GetError(), "no answer"):
				noAnswer++
			}
		}
		if !strings.HasPrefix(d.GetId(), "msg_") || d.GetPayload() == "" {
			t.Errorf("delivery %+v lacks its id or payload", d)
		}
	}
	if failed500 != 3 || noAnswer == 0 {
		t.Errorf("the log shows %d answers of 500 (want 3) and %d attempts without an answer (want some)", failed500, noAnswer)
	}

	// A redelivery sends the same message again: receivers deduplicate.
	first := list2.GetDeliveries()[0]
	rcv.mu.Lock()
	dupsBefore := rcv.dups
	rcv.mu.Unlock()
	if _, err := e.cs.RedeliverWebhook(ctxT(t), &connectionsv1.RedeliverWebhookRequest{WorkspaceId: ws, DeliveryId: first.GetId()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the redelivery", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.dups > dupsBefore
	})
	if _, err := e.cs.RedeliverWebhook(ctxT(t), &connectionsv1.RedeliverWebhookRequest{WorkspaceId: "ws-other", DeliveryId: first.GetId()}); status.Code(err) != codes.NotFound {
		t.Errorf("RedeliverWebhook from another workspace = %v, want NotFound", err)
	}

	// Deleting the webhook stops deliveries and destroys its secret; the
	// reconciler finds nothing orphaned.
	if _, err := e.cs.DeleteWebhook(ctxT(t), &connectionsv1.DeleteWebhookRequest{WorkspaceId: ws, WebhookId: hook.GetWebhook().GetId()}); err != nil {
		t.Fatal(err)
	}
	rec, err := e.cs.Reconcile(ctxT(t), &connectionsv1.ReconcileRequest{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range rec.GetOrphanedWebhookSecrets() {
		if o.GetWebhookId() == hook.GetWebhook().GetId() {
			t.Errorf("the deleted webhook's secret is still in Vault: %v", o)
		}
	}
}

// attemptsWith counts a webhook's attempts whose error starts with prefix.
func attemptsWith(t *testing.T, e *oauthEnv, ws, id, prefix string) int {
	resp, err := e.cs.ListWebhookDeliveries(ctxT(t), &connectionsv1.ListWebhookDeliveriesRequest{WorkspaceId: ws, WebhookId: id})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range resp.GetDeliveries() {
		for _, a := range d.GetAttempts() {
			if strings.HasPrefix(a.GetError(), prefix) {
				n++
			}
		}
	}
	return n
}
