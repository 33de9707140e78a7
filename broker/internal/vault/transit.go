package vault

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TransitKeys is an Ed25519 transit key's public side: one public key per
// version still accepted, and the version new signatures use.
type TransitKeys struct {
	Public map[int]ed25519.PublicKey
	Latest int
	// MinVersion is the oldest version Vault still accepts
	// (min_decryption_version); older signatures must be refused.
	MinVersion int
}

// EnsureTransitKey creates an Ed25519 key if none exists (local stack and
// tests; production keys come from the Vault operator, see the charts).
func (c *Client) EnsureTransitKey(ctx context.Context, mount, name string) error {
	_, err := c.api.Logical().WriteWithContext(ctx, mount+"/keys/"+name, map[string]any{"type": "ed25519"})
	if err != nil {
		return fmt.Errorf("vault.EnsureTransitKey %s: %w", name, classify(err))
	}
	return nil
}

// TransitSign signs input with a given version of an Ed25519 transit key.
// The private key never leaves Vault.
func (c *Client) TransitSign(ctx context.Context, mount, name string, version int, input []byte) ([]byte, error) {
	s, err := c.api.Logical().WriteWithContext(ctx, mount+"/sign/"+name, map[string]any{
		"input":       base64.StdEncoding.EncodeToString(input),
		"key_version": version,
	})
	if err != nil {
		return nil, fmt.Errorf("vault.TransitSign %s: %w", name, classify(err))
	}
	sig, _ := s.Data["signature"].(string)
	// "vault:v<N>:<base64 signature>"
	parts := strings.SplitN(sig, ":", 3)
	if len(parts) != 3 || parts[1] != "v"+strconv.Itoa(version) {
		return nil, fmt.Errorf("vault.TransitSign %s: unexpected signature format", name)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("vault.TransitSign %s: %w", name, err)
	}
	return raw, nil
}

// TransitPublicKeys reads an Ed25519 transit key's public keys.
func (c *Client) TransitPublicKeys(ctx context.Context, mount, name string) (TransitKeys, error) {
	s, err := c.api.Logical().ReadWithContext(ctx, mount+"/keys/"+name)
	if err != nil {
		return TransitKeys{}, fmt.Errorf("vault.TransitPublicKeys %s: %w", name, classify(err))
	}
	if s == nil {
		return TransitKeys{}, fmt.Errorf("vault.TransitPublicKeys %s: %w", name, ErrNotFound)
	}
	var d struct {
		Type       string `json:"type"`
		Latest     int    `json:"latest_version"`
		MinVersion int    `json:"min_decryption_version"`
		Keys       map[string]struct {
			PublicKey string `json:"public_key"`
		} `json:"keys"`
	}
	b, _ := json.Marshal(s.Data)
	if err := json.Unmarshal(b, &d); err != nil {
		return TransitKeys{}, fmt.Errorf("vault.TransitPublicKeys %s: %w", name, err)
	}
	if d.Type != "ed25519" {
		return TransitKeys{}, fmt.Errorf("vault.TransitPublicKeys %s: key type %q, want ed25519", name, d.Type)
	}
	k := TransitKeys{Public: map[int]ed25519.PublicKey{}, Latest: d.Latest, MinVersion: d.MinVersion}
	for v, pk := range d.Keys {
		n, err := strconv.Atoi(v)
		if err != nil {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(pk.PublicKey)
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return TransitKeys{}, fmt.Errorf("vault.TransitPublicKeys %s: version %d: bad public key", name, n)
		}
		k.Public[n] = ed25519.PublicKey(raw)
	}
	if len(k.Public) == 0 {
		return TransitKeys{}, errors.New("vault.TransitPublicKeys: no versions")
	}
	return k, nil
}
