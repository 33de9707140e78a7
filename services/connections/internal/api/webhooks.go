package api

// Webhooks: a workspace subscribes a URL to connection events. The signing
// secret is written to Vault through the broker under the write protocol
// (an intent keyed "webhook:<id>", consumed by the commit that names the
// generation), and only the broker ever signs with it. Deliveries are made
// by RunWebhooks (webhook_delivery.go) from an outbox in the metadata store.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/egress"
	"github.com/integrationhub/connections/internal/failpoint"

	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// MaxWebhooks is how many webhooks one workspace may have.
const MaxWebhooks = 50

// The webhook event types, as stored and as the payload's "type".
const (
	eventInvalid      = "connection.invalid"
	eventReauthorized = "connection.reauthorized"
	eventDeleted      = "connection.deleted"
	eventCheckFailed  = "connection.check_failed"
)

// signingKeyBytes is the length of a new signing key (Standard Webhooks
// asks for 24 to 64).
const signingKeyBytes = 32

// errWebhooksOff refuses webhook calls on a service that does not deliver.
var errWebhooksOff = errors.New("webhooks are off on this connection service (-webhook-period 0); ask the operator to turn them on")

// CreateWebhook subscribes a URL to a workspace's connection events and
// answers the signing secret, once.
func (s *Server) CreateWebhook(ctx context.Context, req *connectionsv1.CreateWebhookRequest) (*connectionsv1.CreateWebhookResponse, error) {
	if err := authz.CheckWorkspace(ctx, req.GetWorkspaceId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if s.hooks.Period <= 0 {
		return nil, s.toStatus(ctx, rule("WEBHOOKS_OFF", "webhooks", errWebhooksOff.Error()))
	}
	if err := s.checkWebhookURL(req.GetUrl()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	h := &store.Webhook{ID: uuid.NewString(), WorkspaceID: req.GetWorkspaceId(), URL: req.GetUrl(), CreatedBy: authz.Actor(ctx)}
	for _, e := range req.GetEvents() {
		h.Events = append(h.Events, webhookEvents.stored(e))
	}
	key := make([]byte, signingKeyBytes)
	_, _ = rand.Read(key)
	w, err := s.beginWebhookWrite(ctx, h.ID)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("CreateWebhook: %w", err))
	}
	h.SecretGeneration = w.key.Generation
	bctx, cancel := s.brokerCtx(ctx)
	_, err = s.broker.PutWebhookSecret(bctx, &brokerv1.PutWebhookSecretRequest{WebhookId: h.ID, SecretGeneration: h.SecretGeneration, Secret: key})
	cancel()
	if err != nil {
		s.abort(ctx, w, true)
		return nil, s.toStatus(ctx, fmt.Errorf("CreateWebhook: %w", brokerErr("store signing secret", err)))
	}
	if err := s.afterBroker(ctx, w); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("CreateWebhook: %w", err))
	}
	if err := s.store.CreateWebhook(ctx, authz.Actor(ctx), h, MaxWebhooks); err != nil {
		s.abortAfter(ctx, w, err)
		var le *store.LimitError
		if errors.As(err, &le) {
			err = rule("WEBHOOK_LIMIT", "workspaces/"+h.WorkspaceID+"/webhooks",
				fmt.Sprintf("the workspace has %d webhooks, the most it may have; delete one first", le.Max))
		}
		return nil, s.toStatus(ctx, fmt.Errorf("CreateWebhook: %w", err))
	}
	_ = failpoint.Inject(ctx, FPAfterCommit) // nothing was replaced: nothing to destroy
	return &connectionsv1.CreateWebhookResponse{Webhook: webhookToProto(h),
		SigningSecret: "whsec_" + base64.StdEncoding.EncodeToString(key)}, nil
}

// checkWebhookURL refuses a URL deliveries could not be sent to: one
// without a host, or (unless private networks are allowed) one naming a
// private address. A name that resolves to a private address is refused
// when a delivery dials it.
func (s *Server) checkWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return invalid("url", "must be an http or https URL with a host")
	}
	if s.hooks.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); (err == nil && !egress.Public(a)) || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return invalid("url", "names a private or loopback address, which this service does not send webhooks to (-webhook-allow-private)")
	}
	return nil
}

// ListWebhooks lists a workspace's webhooks.
func (s *Server) ListWebhooks(ctx context.Context, req *connectionsv1.ListWebhooksRequest) (*connectionsv1.ListWebhooksResponse, error) {
	if err := authz.CheckWorkspace(ctx, req.GetWorkspaceId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	hs, err := s.store.Webhooks(ctx, req.GetWorkspaceId())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ListWebhooks: %w", err))
	}
	resp := &connectionsv1.ListWebhooksResponse{}
	for _, h := range hs {
		resp.Webhooks = append(resp.Webhooks, webhookToProto(h))
	}
	return resp, nil
}

// DeleteWebhook removes a webhook; its signing secret is destroyed after
// the commit (a failure is left to the reconciler: no webhook names it).
func (s *Server) DeleteWebhook(ctx context.Context, req *connectionsv1.DeleteWebhookRequest) (*connectionsv1.DeleteWebhookResponse, error) {
	if err := authz.CheckWorkspace(ctx, req.GetWorkspaceId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	h, err := s.store.DeleteWebhook(ctx, authz.Actor(ctx), req.GetWorkspaceId(), req.GetWebhookId())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("DeleteWebhook: %w", err))
	}
	// The delete is committed: a failure or crash from here leaves the
	// secret to the reconciler (no webhook names it now).
	if err := failpoint.Inject(ctx, FPAfterTomb); err == nil {
		s.destroyWebhookSecret(ctx, h.ID, "")
	}
	return &connectionsv1.DeleteWebhookResponse{}, nil
}

// ListWebhookDeliveries pages through a webhook's deliveries, newest first.
func (s *Server) ListWebhookDeliveries(ctx context.Context, req *connectionsv1.ListWebhookDeliveriesRequest) (*connectionsv1.ListWebhookDeliveriesResponse, error) {
	if err := authz.CheckWorkspace(ctx, req.GetWorkspaceId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if _, err := s.workspaceWebhook(ctx, req.GetWorkspaceId(), req.GetWebhookId()); err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ListWebhookDeliveries: %w", err))
	}
	before, err := parseCursor(req.GetPageToken(), "page_token")
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 50
	}
	ds, err := s.store.WebhookDeliveries(ctx, req.GetWebhookId(), before, size+1)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ListWebhookDeliveries: %w", err))
	}
	resp := &connectionsv1.ListWebhookDeliveriesResponse{}
	if len(ds) > size {
		ds = ds[:size]
		resp.NextPageToken = strconv.FormatInt(ds[size-1].Seq, 10)
	}
	for i := range ds {
		resp.Deliveries = append(resp.Deliveries, deliveryToProto(&ds[i]))
	}
	return resp, nil
}

// workspaceWebhook returns a workspace's webhook, or NotFound.
func (s *Server) workspaceWebhook(ctx context.Context, ws, id string) (*store.Webhook, error) {
	hs, err := s.store.Webhooks(ctx, ws)
	if err != nil {
		return nil, err
	}
	for _, h := range hs {
		if h.ID == id {
			return h, nil
		}
	}
	return nil, &store.NotFoundError{Kind: store.KindWebhook, ID: id}
}

// RedeliverWebhook queues a delivery again, to be sent at once.
func (s *Server) RedeliverWebhook(ctx context.Context, req *connectionsv1.RedeliverWebhookRequest) (*connectionsv1.RedeliverWebhookResponse, error) {
	if err := authz.CheckWorkspace(ctx, req.GetWorkspaceId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	d, err := s.store.Redeliver(ctx, req.GetWorkspaceId(), req.GetDeliveryId(), time.Now())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("RedeliverWebhook: %w", err))
	}
	s.wakeWebhooks()
	return &connectionsv1.RedeliverWebhookResponse{Delivery: deliveryToProto(d)}, nil
}

// destroyWebhookSecret destroys one generation of a webhook's signing
// secret ("" every one), best effort: the reconciler destroys what no
// webhook names.
func (s *Server) destroyWebhookSecret(ctx context.Context, id, gen string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.broker.DeleteWebhookSecret(ctx, &brokerv1.DeleteWebhookSecretRequest{WebhookId: id, SecretGeneration: gen,
		AllGenerations: gen == ""}); err != nil {
		s.logger.WarnContext(ctx, "could not destroy a webhook signing secret; the reconciler will", "webhook_id", id, "err", err)
	}
}

// reconcileWebhooks destroys each stored generation of a webhook signing
// secret that no webhook names and no unexpired intent holds.
func (s *Server) reconcileWebhooks(ctx context.Context, dryRun bool, resp *connectionsv1.ReconcileResponse) error {
	return sweepOrphans(ctx, dryRun, "webhook secret",
		func(ctx context.Context, tok string) ([]*brokerv1.WebhookSecretEntry, string, error) {
			page, err := s.broker.ListWebhookSecrets(ctx, &brokerv1.ListWebhookSecretsRequest{PageSize: 500, PageToken: tok})
			return page.GetSecrets(), page.GetNextPageToken(), err
		},
		func(ctx context.Context, e *brokerv1.WebhookSecretEntry) (bool, error) {
			return s.store.WebhookSecretInUse(ctx, e.GetWebhookId(), e.GetSecretGeneration(), time.Now(), !dryRun)
		},
		func(e *brokerv1.WebhookSecretEntry) error {
			resp.OrphanedWebhookSecrets = append(resp.OrphanedWebhookSecrets, &connectionsv1.OrphanedWebhookSecret{
				WebhookId: e.GetWebhookId(), SecretGeneration: e.GetSecretGeneration()})
			if dryRun {
				return nil
			}
			_, err := s.broker.DeleteWebhookSecret(ctx, &brokerv1.DeleteWebhookSecretRequest{WebhookId: e.GetWebhookId(),
				SecretGeneration: e.GetSecretGeneration()})
			return err
		})
}

func webhookToProto(h *store.Webhook) *connectionsv1.Webhook {
	p := &connectionsv1.Webhook{Id: h.ID, WorkspaceId: h.WorkspaceID, Url: h.URL, CreateTime: timestamppb.New(h.CreateTime),
		CreatedBy: h.CreatedBy}
	for _, e := range h.Events {
		p.Events = append(p.Events, webhookEvents.of(e))
	}
	return p
}

func deliveryToProto(d *store.WebhookDelivery) *connectionsv1.WebhookDelivery {
	p := &connectionsv1.WebhookDelivery{Id: d.ID, WebhookId: d.WebhookID, EventType: webhookEvents.of(d.EventType),
		ConnectionId: d.ConnectionID, EventSequence: d.EventSeq, CreateTime: timestamppb.New(d.CreateTime),
		State: deliveryStates.of(d.State), Payload: d.Payload}
	if d.State == store.DeliveryPending {
		p.NextAttemptTime = timestamppb.New(d.NextAttempt)
	}
	for _, a := range d.Log {
		p.Attempts = append(p.Attempts, &connectionsv1.WebhookAttempt{Time: timestamppb.New(a.Time), HttpStatus: int32(a.HTTPStatus),
			Error: a.Error, Duration: durationpb.New(a.Duration)})
	}
	return p
}
