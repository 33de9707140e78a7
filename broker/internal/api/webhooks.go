package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	"github.com/integrationhub/connections/internal/failpoint"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// WebhookSecrets stores webhooks' signing secrets, one immutable generation
// each (vault.Client). The key never leaves the broker once stored.
type WebhookSecrets interface {
	WriteWebhookSecret(ctx context.Context, webhookID, gen string, key []byte) error
	ReadWebhookSecret(ctx context.Context, webhookID, gen string) ([]byte, error)
	// DeleteWebhookSecret destroys generation gen, or every generation
	// when gen is "".
	DeleteWebhookSecret(ctx context.Context, webhookID, gen string) error
	ListWebhookSecrets(ctx context.Context, afterID string, limit int) ([]vault.WebhookSecretKey, string, error)
}

// errNoWebhookSecret is NotFound for a webhook secret generation that is not
// stored (toStatus's NotFound speaks of connections).
var errNoWebhookSecret = status.Error(codes.NotFound, "no signing secret of that generation is stored for this webhook")

// webhookStatus is toStatus for the webhook handlers.
func (s *core) webhookStatus(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, vault.ErrNotFound):
		return errNoWebhookSecret
	case errors.Is(err, errWebhooksOff):
		return errWebhooksOff
	}
	return s.toStatus(ctx, err)
}

// webhooksOff refuses every call: Deps left Webhooks nil.
type webhooksOff struct{}

var errWebhooksOff = status.Error(codes.Unimplemented, "webhook signing secrets are not kept by this broker")

func (webhooksOff) WriteWebhookSecret(context.Context, string, string, []byte) error {
	return errWebhooksOff
}
func (webhooksOff) ReadWebhookSecret(context.Context, string, string) ([]byte, error) {
	return nil, errWebhooksOff
}
func (webhooksOff) DeleteWebhookSecret(context.Context, string, string) error { return errWebhooksOff }
func (webhooksOff) ListWebhookSecrets(context.Context, string, int) ([]vault.WebhookSecretKey, string, error) {
	return nil, "", errWebhooksOff
}

// PutWebhookSecret stores a webhook's signing secret as a new generation
// (never over an existing one).
func (s *AdminServer) PutWebhookSecret(ctx context.Context, req *brokerv1.PutWebhookSecretRequest) (*brokerv1.PutWebhookSecretResponse, error) {
	err := s.webhooks.WriteWebhookSecret(ctx, req.GetWebhookId(), req.GetSecretGeneration(), req.GetSecret())
	if errors.Is(err, vault.ErrVersionMismatch) {
		err = errGenerationExists
	}
	if err == nil {
		// Test builds only: the broker dies after Vault took the write.
		err = failpoint.Inject(ctx, FPAfterVaultWrite)
	}
	if err != nil {
		return nil, s.webhookStatus(ctx, fmt.Errorf("PutWebhookSecret: %w", err))
	}
	return &brokerv1.PutWebhookSecretResponse{}, nil
}

// SignWebhook signs a message the Standard Webhooks way: base64 of
// HMAC-SHA256(key, "<message id>.<timestamp>.<payload>"), answered as
// "v1,<signature>". Keys are kept in memory once read.
func (s *AdminServer) SignWebhook(ctx context.Context, req *brokerv1.SignWebhookRequest) (*brokerv1.SignWebhookResponse, error) {
	id, gen := req.GetWebhookId(), req.GetSecretGeneration()
	key, ok, epoch := s.webhookKeys.get(id, gen)
	if !ok {
		var err error
		if key, err = s.webhooks.ReadWebhookSecret(ctx, id, gen); err != nil {
			return nil, s.webhookStatus(ctx, fmt.Errorf("SignWebhook: %w", err))
		}
		s.webhookKeys.put(id, gen, key, epoch)
	}
	return &brokerv1.SignWebhookResponse{Signature: "v1," + signWebhook(key, req.GetMessageId(), req.GetTimestamp(), req.GetPayload())}, nil
}

// signWebhook is the Standard Webhooks v1 signature, base64.
func signWebhook(key []byte, msgID string, timestamp int64, payload []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msgID + "." + strconv.FormatInt(timestamp, 10) + "."))
	m.Write(payload)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// DeleteWebhookSecret destroys one generation of a webhook's signing secret,
// or all of them.
func (s *AdminServer) DeleteWebhookSecret(ctx context.Context, req *brokerv1.DeleteWebhookSecretRequest) (*brokerv1.DeleteWebhookSecretResponse, error) {
	gen := req.GetSecretGeneration()
	if req.GetAllGenerations() {
		gen = ""
	} else if gen == "" {
		return nil, status.Error(codes.InvalidArgument, "secret_generation or all_generations is required")
	}
	err := s.webhooks.DeleteWebhookSecret(ctx, req.GetWebhookId(), gen)
	// Dropped after Vault answered, whatever it answered: a key read
	// before the delete is not kept past it.
	s.webhookKeys.drop(req.GetWebhookId())
	if err != nil {
		return nil, s.webhookStatus(ctx, fmt.Errorf("DeleteWebhookSecret: %w", err))
	}
	return &brokerv1.DeleteWebhookSecretResponse{}, nil
}

// ListWebhookSecrets pages through the stored signing secrets by webhook id.
func (s *AdminServer) ListWebhookSecrets(ctx context.Context, req *brokerv1.ListWebhookSecretsRequest) (*brokerv1.ListWebhookSecretsResponse, error) {
	limit := int(req.GetPageSize())
	if limit == 0 {
		limit = 500
	}
	keys, next, err := s.webhooks.ListWebhookSecrets(ctx, req.GetPageToken(), limit)
	if err != nil {
		return nil, s.webhookStatus(ctx, fmt.Errorf("ListWebhookSecrets: %w", err))
	}
	resp := &brokerv1.ListWebhookSecretsResponse{NextPageToken: next}
	for _, k := range keys {
		resp.Secrets = append(resp.Secrets, &brokerv1.WebhookSecretEntry{WebhookId: k.WebhookID, SecretGeneration: k.Generation})
	}
	return resp, nil
}

// maxWebhookKeys bounds the signing keys kept in memory.
const maxWebhookKeys = 10_000

// webhookKeys keeps signing keys by webhook id and generation. Generations
// are immutable, so a kept key is right until its generation is destroyed:
// a delete through this broker drops the webhook's keys.
type webhookKeys struct {
	mu   sync.Mutex
	byID map[string]map[string][]byte
	n    int
	// epoch counts deletes; a key read from Vault is kept only if no
	// delete ended since the read began, so a read racing a delete never
	// outlives it.
	epoch uint64
}

func newWebhookKeys() *webhookKeys {
	return &webhookKeys{byID: map[string]map[string][]byte{}}
}

// get returns the kept key, whether there is one, and the epoch to pass to
// put after reading it from Vault.
func (c *webhookKeys) get(id, gen string) ([]byte, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.byID[id][gen]
	return k, ok, c.epoch
}

// put keeps a key read at epoch, evicting an arbitrary one when full.
func (c *webhookKeys) put(id, gen string, key []byte, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch {
		return
	}
	if _, ok := c.byID[id][gen]; ok {
		return
	}
	for c.n >= maxWebhookKeys {
		c.evictOne()
	}
	if c.byID[id] == nil {
		c.byID[id] = map[string][]byte{}
	}
	c.byID[id][gen] = key
	c.n++
}

func (c *webhookKeys) evictOne() {
	for id, gens := range c.byID {
		for g := range gens {
			delete(gens, g)
			c.n--
			break
		}
		if len(gens) == 0 {
			delete(c.byID, id)
		}
		return
	}
}

// drop forgets every key of a webhook and ends the epoch.
func (c *webhookKeys) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n -= len(c.byID[id])
	delete(c.byID, id)
	c.epoch++
}
