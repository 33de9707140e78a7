package vault

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"
)

// Webhook signing secrets live like OAuth client registrations: one
// immutable KV entry per generation at <prefix>/webhooks/<webhook id>/<generation>,
// written with check-and-set 0, holding the key (base64, field "key") and
// nothing else. The connection service's metadata names the live generation.

// WebhookSecretKey names one stored generation of a webhook's signing secret.
type WebhookSecretKey struct {
	WebhookID  string
	Generation string
}

// errBadWebhookName refuses an id or generation that is not one path
// segment.
var errBadWebhookName = errors.New("a webhook secret needs a webhook id and a generation, each one path segment")

// WriteWebhookSecret stores key as generation gen of a webhook's signing
// secret (check-and-set 0: ErrVersionMismatch when that generation exists).
func (c *Client) WriteWebhookSecret(ctx context.Context, webhookID, gen string, key []byte) error {
	if !segment(webhookID) || !segment(gen) {
		return fmt.Errorf("vault.WriteWebhookSecret: %w", errBadWebhookName)
	}
	data := map[string]any{"key": base64.StdEncoding.EncodeToString(key)}
	if _, err := c.kv.Put(ctx, c.webhookPath(webhookID, gen), data, vaultapi.WithCheckAndSet(0)); err != nil {
		return fmt.Errorf("vault.WriteWebhookSecret %s/%s: %w", webhookID, gen, classifyWrite(err))
	}
	return nil
}

// ReadWebhookSecret returns the key of generation gen of a webhook's
// signing secret (ErrNotFound when it is not stored).
func (c *Client) ReadWebhookSecret(ctx context.Context, webhookID, gen string) ([]byte, error) {
	if !segment(webhookID) || !segment(gen) {
		return nil, fmt.Errorf("vault.ReadWebhookSecret: %w", errBadWebhookName)
	}
	s, err := c.kv.Get(ctx, c.webhookPath(webhookID, gen))
	if err != nil {
		return nil, fmt.Errorf("vault.ReadWebhookSecret %s/%s: %w", webhookID, gen, classify(err))
	}
	enc, _ := s.Data["key"].(string)
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(key) == 0 {
		// Neither the decoder's error nor the value: they could show the data.
		return nil, fmt.Errorf("vault.ReadWebhookSecret %s/%s: the entry holds no valid key", webhookID, gen)
	}
	return key, nil
}

// DeleteWebhookSecret destroys every version of generation gen of a
// webhook's signing secret, or of every generation when gen is "".
// Deleting what does not exist succeeds.
func (c *Client) DeleteWebhookSecret(ctx context.Context, webhookID, gen string) error {
	if !segment(webhookID) || (gen != "" && !segment(gen)) {
		return fmt.Errorf("vault.DeleteWebhookSecret: %w", errBadWebhookName)
	}
	gens := []string{gen}
	if gen == "" {
		entries, err := c.list(ctx, c.webhookPath(webhookID, ""))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("vault.DeleteWebhookSecret %s: %w", webhookID, err)
		}
		gens = gens[:0]
		for _, e := range entries {
			if !strings.HasSuffix(e, "/") {
				gens = append(gens, e)
			}
		}
	}
	for _, g := range gens {
		if err := c.kv.DeleteMetadata(ctx, c.webhookPath(webhookID, g)); err != nil {
			return fmt.Errorf("vault.DeleteWebhookSecret %s/%s: %w", webhookID, g, classify(err))
		}
	}
	return nil
}

// ListWebhookSecrets returns every stored generation of the signing secrets
// of up to limit webhooks whose ids sort after afterID, in order, and the id
// to pass as afterID for the next page ("" at the end).
func (c *Client) ListWebhookSecrets(ctx context.Context, afterID string, limit int) ([]WebhookSecretKey, string, error) {
	ids, err := c.list(ctx, c.webhooksRoot())
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, "", fmt.Errorf("vault.ListWebhookSecrets: %w", err)
	}
	var out []WebhookSecretKey
	last, n := "", 0
	for _, f := range ids {
		id, folder := strings.CutSuffix(f, "/")
		if !folder || id <= afterID {
			continue
		}
		if n == limit {
			return out, last, nil
		}
		gens, err := c.list(ctx, c.webhookPath(id, ""))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, "", fmt.Errorf("vault.ListWebhookSecrets: %w", err)
		}
		for _, g := range gens {
			if !strings.HasSuffix(g, "/") {
				out = append(out, WebhookSecretKey{WebhookID: id, Generation: g})
			}
		}
		last, n = id, n+1
	}
	return out, "", nil
}

func (c *Client) webhooksRoot() string {
	if c.prefix != "" {
		return c.prefix + "/webhooks"
	}
	return "webhooks"
}

// webhookPath is <prefix>/webhooks/<webhook id>[/<generation>].
func (c *Client) webhookPath(webhookID, gen string) string {
	p := c.webhooksRoot() + "/" + webhookID
	if gen != "" {
		p += "/" + gen
	}
	return p
}

// segment reports whether s is one non-empty path segment.
func segment(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\")
}
