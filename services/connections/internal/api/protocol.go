package api

// The write protocol between the metadata and Vault (docs/write-protocol.md):
// a secret is written as a new, immutable generation under a write intent;
// the transaction that checks the etag consumes the intent and names the
// generation; anything else is garbage for the reconciler.

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"time"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	"github.com/integrationhub/connections/internal/ctxsleep"
	"github.com/integrationhub/connections/internal/failpoint"

	"github.com/integrationhub/connections/services/connections/internal/store"
)

// Failpoints on the write paths, in the order they run (see
// docs/write-protocol.md for what each crash leaves behind).
const (
	FPAfterIntent   = "connections/after-intent"    // intent stored, broker not called
	FPAfterBroker   = "connections/after-broker"    // generation in Vault, not committed
	FPAfterCommit   = "connections/after-commit"    // committed, old generation not destroyed
	FPAfterTomb     = "connections/after-tombstone" // delete committed, secrets not destroyed
	FPAfterDestroy  = "connections/after-destroy"   // secrets destroyed, tombstone not purged
	FPReconcileStep = "connections/reconcile-step"  // between two reconciler repairs
)

// DefaultWriteTimeout bounds one secret write at the broker; its intent
// lasts this long plus intentSlack (as long again), after which the reconciler may destroy
// the generation and the write can no longer commit.
const DefaultWriteTimeout = 15 * time.Second

// intentSlack is how long an intent outlives its write's deadline: time for the commit.
// The OAuth 1.0a flow's intents last as long as its state, plus the same.
func intentSlack(writeTimeout time.Duration) time.Duration { return writeTimeout }

// newGeneration returns a fresh, unguessable secret generation name.
func newGeneration() string { return rand.Text()[:20] }

// write is one secret write in progress.
type write struct {
	// key is the intent's key: for a connection, the generation written.
	key store.SecretKey
	// client is set for an OAuth client registration's secret.
	client *store.ClientKey
	// webhook is set (the webhook's id) for a webhook signing secret.
	webhook string
}

// beginWrite stores the intent for a new generation of connection id; the
// intent expires after ttl (plus slack).
func (s *Server) beginWrite(ctx context.Context, id string, ttl time.Duration) (*write, error) {
	w := &write{key: store.SecretKey{ConnectionID: id, Generation: newGeneration()}}
	if err := s.store.BeginSecretWrite(ctx, w.key, time.Now().Add(ttl+intentSlack(s.writeTimeout))); err != nil {
		return nil, err
	}
	if err := failpoint.Inject(ctx, FPAfterIntent); err != nil {
		s.abort(ctx, w, true)
		return nil, brokerErr("store secret", err)
	}
	return w, nil
}

// beginClientWrite stores the intent for a new generation of an OAuth
// client registration's secret (k.Generation is set here).
func (s *Server) beginClientWrite(ctx context.Context, k store.ClientKey) (*write, error) {
	k.Generation = newGeneration()
	return s.beginOtherWrite(ctx, &write{key: k.Intent(), client: &k})
}

// beginWebhookWrite stores the intent for a new generation of webhook id's
// signing secret.
func (s *Server) beginWebhookWrite(ctx context.Context, id string) (*write, error) {
	return s.beginOtherWrite(ctx, &write{key: store.WebhookIntent(id, newGeneration()), webhook: id})
}

// beginOtherWrite stores w's intent for a secret that is not a
// connection's, bounded by the secret write timeout.
func (s *Server) beginOtherWrite(ctx context.Context, w *write) (*write, error) {
	if err := s.store.BeginSecretWrite(ctx, w.key, time.Now().Add(s.writeTimeout+intentSlack(s.writeTimeout))); err != nil {
		return nil, err
	}
	if err := failpoint.Inject(ctx, FPAfterIntent); err != nil {
		s.abort(ctx, w, true)
		return nil, brokerErr("store secret", err)
	}
	return w, nil
}

// brokerCtx bounds a broker write so that it ends well before its intent.
func (s *Server) brokerCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.writeTimeout)
}

// afterBroker runs the failpoint between the broker write and the commit.
func (s *Server) afterBroker(ctx context.Context, w *write) error {
	if err := failpoint.Inject(ctx, FPAfterBroker); err != nil {
		s.abort(ctx, w, true)
		return brokerErr("store secret", err)
	}
	return nil
}

// abort gives up a write that did not commit. With destroy (the commit
// surely did not happen) the generation is destroyed now; otherwise (the
// commit's outcome is unknown) only the intent is dropped, and the
// reconciler destroys the generation unless a row names it. Failures are
// left to the reconciler.
func (s *Server) abort(ctx context.Context, w *write, destroy bool) {
	if w == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if destroy {
		// The intent goes first: from then on the generation can never
		// become live, whatever the broker write still does.
		if err := s.store.EndSecretWrite(ctx, w.key); err != nil {
			s.logger.WarnContext(ctx, "could not drop a write intent; the reconciler will", "connection_id", w.key.ConnectionID, "err", err)
			return
		}
		switch {
		case w.client != nil:
			s.destroyClient(ctx, *w.client)
		case w.webhook != "":
			s.destroyWebhookSecret(ctx, w.webhook, w.key.Generation)
		default:
			s.destroy(ctx, w.key)
		}
		return
	}
	if err := s.store.EndSecretWrite(ctx, w.key); err != nil {
		s.logger.WarnContext(ctx, "could not drop a write intent; it expires", "connection_id", w.key.ConnectionID, "err", err)
	}
}

// abortAfter gives up a write whose commit failed with err.
func (s *Server) abortAfter(ctx context.Context, w *write, err error) {
	var inUse *store.InUseError
	sure := errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrIntentGone) ||
		errors.Is(err, store.ErrAlreadyExists) || errors.Is(err, store.ErrParentGone) || errors.As(err, &inUse) ||
		errors.Is(err, errStaleMaterial)
	s.abort(ctx, w, sure)
}

// destroy removes one generation from Vault, best effort.
func (s *Server) destroy(ctx context.Context, k store.SecretKey) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.broker.DeleteSecret(ctx, &brokerv1.DeleteSecretRequest{ConnectionId: k.ConnectionID, SecretGeneration: k.Generation}); err != nil {
		s.logger.WarnContext(ctx, "could not destroy a secret generation; the reconciler will", "connection_id", k.ConnectionID, "err", err)
	}
}

// destroyAll removes generations from Vault in one broker call, best
// effort: what fails is left to the reconciler.
func (s *Server) destroyAll(ctx context.Context, keys []store.SecretKey) {
	if len(keys) == 1 {
		s.destroy(ctx, keys[0])
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req := &brokerv1.DeleteSecretsRequest{}
	for _, k := range keys {
		req.Secrets = append(req.Secrets, &brokerv1.SecretGenerationRef{ConnectionId: k.ConnectionID, SecretGeneration: k.Generation})
	}
	if _, err := s.broker.DeleteSecrets(ctx, req); err != nil {
		s.logger.WarnContext(ctx, "could not destroy replaced secret generations; the reconciler will", "generations", len(keys), "err", err)
	}
}

// destroyClient removes one generation of an OAuth client secret from
// Vault, best effort.
func (s *Server) destroyClient(ctx context.Context, k store.ClientKey) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.broker.DeleteOAuthClient(ctx, &brokerv1.DeleteOAuthClientRequest{Connector: k.Connector,
		Client: &brokerv1.OAuthClientRef{WorkspaceId: k.WorkspaceID, SecretGeneration: k.Generation}}); err != nil {
		s.logger.WarnContext(ctx, "could not destroy an OAuth client secret generation; the reconciler will", "connector", k.Connector, "err", err)
	}
}

// committed finishes a write after its commit: the generation it replaced
// is destroyed once the replacement grace has passed (see Deps.Destroyer).
// With RunDestroyer running this happens off the request path; without it
// (tests of the API alone) at once; a full queue, or a crash, leaves it to
// the reconciler.
func (s *Server) committed(ctx context.Context, id, previous string) {
	if err := failpoint.Inject(ctx, FPAfterCommit); err != nil {
		return
	}
	s.destroyLater(ctx, replaced{generation: &store.SecretKey{ConnectionID: id, Generation: previous}})
}

// clientCommitted is committed for an OAuth client registration: k is the
// generation the commit replaced. The legacy entry ("") is left to the
// reconciler, as "" also means that nothing was replaced.
func (s *Server) clientCommitted(ctx context.Context, k store.ClientKey) {
	if err := failpoint.Inject(ctx, FPAfterCommit); err != nil || k.Generation == "" {
		return
	}
	s.destroyLater(ctx, replaced{destroy: func(ctx context.Context) { s.destroyClient(ctx, k) }})
}

// destroyLater queues r to be destroyed after the replacement grace (at
// once without a destroyer); a full queue leaves it to the reconciler.
func (s *Server) destroyLater(ctx context.Context, r replaced) {
	if s.destroyQ == nil {
		s.destroyOne(ctx, r)
		return
	}
	r.due = time.Now().Add(s.destroyGrace)
	select {
	case s.destroyQ <- r:
	default:
		s.logger.WarnContext(ctx, "destroy queue full; the reconciler destroys the replaced secret generation")
	}
}

// replaced is a secret generation a commit stopped naming, to be destroyed
// at due: a connection's (generation), or another kind (destroy).
type replaced struct {
	generation *store.SecretKey
	destroy    func(context.Context)
	due        time.Time
}

// destroyOne destroys r on its own.
func (s *Server) destroyOne(ctx context.Context, r replaced) {
	if r.generation != nil {
		s.destroy(ctx, *r.generation)
		return
	}
	r.destroy(ctx)
}

// maxDestroyBatch is the most generations one DeleteSecrets call names;
// destroyLinger is how long a destroyer gathers generations that come due
// before it sends them (a replaced generation is destroyed between the
// grace and the grace plus this).
const (
	maxDestroyBatch = 100
	destroyLinger   = 250 * time.Millisecond
)

// RunDestroyer destroys replaced secret generations in the background
// until ctx ends (with Deps.Destroyer); call before serving. What is queued
// when ctx ends is left to the reconciler. Every item waits the same grace,
// so the queue is in due order. A worker takes the next item and every
// connection generation that comes due within destroyLinger after it (up
// to maxDestroyBatch) into one broker call, so that a sustained write rate
// costs one call per batch rather than one per write.
func (s *Server) RunDestroyer(ctx context.Context) {
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			var held *replaced
			for {
				r := held
				if r == nil {
					select {
					case <-ctx.Done():
						return
					case next := <-s.destroyQ:
						r = &next
					}
				}
				if !ctxsleep.Sleep(ctx, time.Until(r.due)) {
					return
				}
				if r.generation == nil {
					r.destroy(ctx)
					held = nil
					continue
				}
				var batch []store.SecretKey
				var last time.Time
				var ok bool
				batch, last, held, ok = s.gather(ctx, *r)
				if !ok || !ctxsleep.Sleep(ctx, time.Until(last)) { // never before its grace
					return
				}
				s.destroyAll(ctx, batch)
			}
		})
	}
	wg.Wait()
}

// gather takes first (a connection generation that is due) and the
// connection generations queued behind it that come due within
// destroyLinger, up to maxDestroyBatch, and returns them with the latest
// due time. It destroys other kinds it meets on its own, and returns the
// first item due later as held. ok is false when ctx ended.
func (s *Server) gather(ctx context.Context, first replaced) (batch []store.SecretKey, last time.Time, held *replaced, ok bool) {
	batch, last = []store.SecretKey{*first.generation}, first.due
	until := time.Now().Add(destroyLinger)
	linger := time.NewTimer(destroyLinger)
	defer linger.Stop()
	for len(batch) < maxDestroyBatch {
		select {
		case <-ctx.Done():
			return nil, time.Time{}, nil, false
		case <-linger.C:
			return batch, last, nil, true
		case next := <-s.destroyQ:
			switch {
			case next.due.After(until):
				return batch, last, &next, true
			case next.generation == nil: // an OAuth client's, rare
				if !ctxsleep.Sleep(ctx, time.Until(next.due)) {
					return nil, time.Time{}, nil, false
				}
				next.destroy(ctx)
			default:
				batch, last = append(batch, *next.generation), next.due
			}
		}
	}
	return batch, last, nil, true
}

// errStaleMaterial refuses to copy secret material from a generation that
// stopped being live while the copy was made.
var errStaleMaterial = errors.New("the connection's credentials changed meanwhile")

// finishDelete destroys the secrets of tombstoned connections and purges
// them. A failure leaves the tombstones for the reconciler: the delete is
// already final (hidden, unservable).
func (s *Server) finishDelete(ctx context.Context, gone []*store.Connection) error {
	if err := failpoint.Inject(ctx, FPAfterTomb); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, c := range gone {
		if _, err := s.broker.DeleteSecret(ctx, &brokerv1.DeleteSecretRequest{ConnectionId: c.ID, AllGenerations: true}); err != nil {
			return brokerErr("destroy secrets", err)
		}
	}
	if err := failpoint.Inject(ctx, FPAfterDestroy); err != nil {
		return err
	}
	for _, c := range gone {
		if err := s.store.Purge(ctx, c.ID); err != nil {
			return err
		}
	}
	return nil
}
