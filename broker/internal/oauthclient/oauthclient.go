// Package oauthclient resolves OAuth client registrations to the stored
// generation the connection service names live (docs/write-protocol.md): a
// client secret written by a registration that was then refused or failed is
// never used, and a replaced one is not used once the change reaches this
// broker.
//
// The registry remembers each registration's live generation, fed by the
// change stream (Changed) and dropped on a resync; it asks the connection
// service only for registrations it has not seen yet.
package oauthclient

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/singleflight"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// ErrNoSource means the broker runs without a connection service, so it
// cannot know which registration is live.
var ErrNoSource = errors.New("oauthclient: no connection service (-connections-addr) to say which OAuth client registration is live")

// Vault is the part of the Vault client the registry needs.
type Vault interface {
	ReadClient(ctx context.Context, k vault.ClientKey) (vault.OAuthClient, error)
}

// Source returns the live generation of exactly one registration, or an
// error wrapping vault.ErrNotFound when none is registered there.
type Source func(ctx context.Context, connector, workspace string) (generation string, err error)

type slot struct{ connector, workspace string }

// Registry reads the live generation of OAuth client registrations.
type Registry struct {
	vault  Vault
	source Source
	sf     singleflight.Group

	mu   sync.Mutex
	live map[slot]string
	// epoch counts changes: a lookup that began before one does not store
	// what it read.
	epoch uint64
}

// New returns a registry reading secrets from v and live generations from
// src (nil: every live lookup fails with ErrNoSource).
func New(v Vault, src Source) *Registry {
	return &Registry{vault: v, source: src, live: map[slot]string{}}
}

// GetClientAt reads one stored generation, as named by the caller (the
// connection service names the live one in the OAuth flows it drives).
func (r *Registry) GetClientAt(ctx context.Context, k vault.ClientKey) (vault.OAuthClient, error) {
	return r.vault.ReadClient(ctx, k)
}

// GetClient reads the live registration of exactly connector and workspace
// ("" = the platform's). A generation that is gone from Vault (replaced and
// destroyed after this broker last learned of it) makes it ask once more.
func (r *Registry) GetClient(ctx context.Context, connector, workspace string) (vault.OAuthClient, error) {
	gen, err := r.generation(ctx, connector, workspace)
	if err != nil {
		return vault.OAuthClient{}, err
	}
	c, err := r.vault.ReadClient(ctx, vault.ClientKey{Connector: connector, Workspace: workspace, Generation: gen})
	if !errors.Is(err, vault.ErrNotFound) {
		return c, err
	}
	r.forget(connector, workspace)
	again, gerr := r.generation(ctx, connector, workspace)
	if gerr != nil {
		return vault.OAuthClient{}, gerr
	}
	if again == gen {
		return vault.OAuthClient{}, err
	}
	return r.vault.ReadClient(ctx, vault.ClientKey{Connector: connector, Workspace: workspace, Generation: again})
}

// Changed records a registration's new live generation, as the change
// stream reports it.
func (r *Registry) Changed(connector, workspace, generation string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.epoch++
	r.live[slot{connector, workspace}] = generation
}

// Resync forgets every live generation: the change stream had a gap.
func (r *Registry) Resync() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.epoch++
	clear(r.live)
}

func (r *Registry) forget(connector, workspace string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.epoch++
	delete(r.live, slot{connector, workspace})
}

// generation returns the live generation, asking the connection service
// (one call per registration at a time) when it is not known.
func (r *Registry) generation(ctx context.Context, connector, workspace string) (string, error) {
	s := slot{connector, workspace}
	r.mu.Lock()
	gen, ok := r.live[s]
	epoch := r.epoch
	r.mu.Unlock()
	if ok {
		return gen, nil
	}
	if r.source == nil {
		return "", ErrNoSource
	}
	// The shared lookup is keyed by the epoch too: a caller that arrives
	// after a change never gets an answer read before it.
	v, err, _ := r.sf.Do(fmt.Sprintf("%d\x00%s\x00%s", epoch, connector, workspace), func() (any, error) {
		return r.source(context.WithoutCancel(ctx), connector, workspace)
	})
	if err != nil {
		return "", err
	}
	gen = v.(string)
	r.mu.Lock()
	if r.epoch == epoch {
		r.live[s] = gen
	}
	r.mu.Unlock()
	return gen, nil
}

// Store joins the Vault client (secrets, and storing registrations) with a
// registry (which registration is live): what the OAuth managers and the
// admin API take.
type Store struct {
	*vault.Client
	*Registry
}
