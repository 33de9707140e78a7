package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/failpoint"

	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// ReconcilerActor is the actor of the changes the reconciler makes.
const ReconcilerActor = "system:reconciler"

// errNotLeader means another replica is reconciling now.
var errNotLeader = errors.New("another replica is reconciling now; retry shortly")

// Reconcile runs one reconciliation pass for an operator: a dry run
// reports, otherwise the pass repairs too (as the background reconciler
// does, and only where this replica holds the reconciler lock).
func (s *Server) Reconcile(ctx context.Context, req *connectionsv1.ReconcileRequest) (*connectionsv1.ReconcileResponse, error) {
	if err := authz.CheckAllWorkspaces(ctx); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	var resp *connectionsv1.ReconcileResponse
	run := func(ctx context.Context) error {
		var err error
		resp, err = s.ReconcileOnce(ctx, req.GetDryRun())
		return err
	}
	if req.GetDryRun() {
		if err := run(ctx); err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("Reconcile: %w", err))
		}
		return resp, nil
	}
	ran, err := s.store.Leader(ctx, store.LockReconciler, run)
	if err == nil && !ran {
		err = errNotLeader
	}
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("Reconcile: %w", err))
	}
	return resp, nil
}

// RunReconciler reconciles every period while ctx lasts, on whichever
// replica holds the reconciler lock.
func (s *Server) RunReconciler(ctx context.Context, period time.Duration) {
	s.runAsLeader(ctx, "reconciler pass", period, store.LockReconciler, nil, func(ctx context.Context) error {
		r, err := s.ReconcileOnce(ctx, false)
		if err == nil && (len(r.GetOrphanedSecrets()) > 0 || len(r.GetUnfinishedDeleteConnectionIds()) > 0 ||
			len(r.GetMissingSecretConnectionIds()) > 0 || r.GetExpiredIntents() > 0 || len(r.GetOrphanedOauthClients()) > 0 || len(r.GetOrphanedWebhookSecrets()) > 0) {
			s.logger.InfoContext(ctx, "reconciled", "orphaned_secrets", len(r.GetOrphanedSecrets()),
				"unfinished_deletes", len(r.GetUnfinishedDeleteConnectionIds()),
				"missing_secrets", len(r.GetMissingSecretConnectionIds()), "expired_intents", r.GetExpiredIntents(),
				"orphaned_oauth_clients", len(r.GetOrphanedOauthClients()),
				"orphaned_webhook_secrets", len(r.GetOrphanedWebhookSecrets()))
		}
		return err
	})
}

// runAsLeader runs pass every period (and whenever wake fires; nil: never)
// until ctx ends, each time only if this replica holds lock. The first pass
// waits a period too: replicas starting together (or a deploy) need not all
// try at once. A failed pass is logged and tried again next period.
func (s *Server) runAsLeader(ctx context.Context, what string, period time.Duration, lock store.Lock, wake <-chan struct{}, pass func(context.Context) error) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		if _, err := s.store.Leader(ctx, lock, pass); err != nil && ctx.Err() == nil {
			s.logger.WarnContext(ctx, what+" failed; retrying next period", "err", err)
		}
	}
}

// ReconcileOnce runs one pass (see docs/write-protocol.md):
//  1. tombstones: destroy every secret generation of each, then purge it;
//  2. Vault: each generation that no live row names and no unexpired intent
//     holds is destroyed (an expired intent is deleted first, so that its
//     writer can no longer commit);
//  3. live rows that should have a secret but whose generation is not in
//     Vault are marked invalid;
//  4. expired intents are deleted; pending connections are reported.
func (s *Server) ReconcileOnce(ctx context.Context, dryRun bool) (*connectionsv1.ReconcileResponse, error) {
	resp := &connectionsv1.ReconcileResponse{Repaired: !dryRun}
	start := time.Now()

	// 2 first: the listing's start bounds which rows step 3 may judge.
	present := map[store.SecretKey]bool{}
	for tok := ""; ; {
		page, err := s.broker.ListSecrets(ctx, &brokerv1.ListSecretsRequest{PageSize: 500, PageToken: tok})
		if err != nil {
			return nil, brokerErr("list secrets", err)
		}
		for _, e := range page.GetSecrets() {
			present[store.SecretKey{ConnectionID: e.GetConnectionId(), Generation: e.GetSecretGeneration()}] = true
		}
		if tok = page.GetNextPageToken(); tok == "" {
			break
		}
	}
	for k := range present {
		inUse, err := s.store.SecretInUse(ctx, k, time.Now(), !dryRun)
		if err != nil {
			return nil, err
		}
		if inUse {
			continue
		}
		resp.OrphanedSecrets = append(resp.OrphanedSecrets, &connectionsv1.OrphanedSecret{ConnectionId: k.ConnectionID, SecretGeneration: k.Generation})
		if dryRun {
			continue
		}
		if err := failpoint.Inject(ctx, FPReconcileStep); err != nil {
			return nil, err
		}
		if _, err := s.broker.DeleteSecret(ctx, &brokerv1.DeleteSecretRequest{ConnectionId: k.ConnectionID, SecretGeneration: k.Generation}); err != nil {
			return nil, brokerErr("destroy orphaned secret", err)
		}
	}

	// 2 for OAuth client registrations and webhook signing secrets.
	if err := s.reconcileClients(ctx, dryRun, resp); err != nil {
		return nil, err
	}
	if err := s.reconcileWebhooks(ctx, dryRun, resp); err != nil {
		return nil, err
	}

	// 1 and 3, over every row.
	for after := ""; ; {
		rows, err := s.store.Scan(ctx, after, 500)
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 {
			break
		}
		after = rows[len(rows)-1].ID
		for _, c := range rows {
			switch {
			case c.State == store.StateDeleting:
				resp.UnfinishedDeleteConnectionIds = append(resp.UnfinishedDeleteConnectionIds, c.ID)
				if dryRun {
					continue
				}
				if _, err := s.broker.DeleteSecret(ctx, &brokerv1.DeleteSecretRequest{ConnectionId: c.ID, AllGenerations: true}); err != nil {
					return nil, brokerErr("finish delete", err)
				}
				if err := s.store.Purge(ctx, c.ID); err != nil {
					return nil, err
				}
			case c.Status == store.StatusPending:
				resp.PendingConnections = append(resp.PendingConnections, &connectionsv1.PendingConnection{
					ConnectionId: c.ID, WorkspaceId: c.WorkspaceID, Age: durationpb.New(time.Since(c.UpdateTime))})
			case (c.SecretGeneration != "" || c.Status == store.StatusActive) && c.UpdateTime.Before(start) &&
				!present[store.SecretKey{ConnectionID: c.ID, Generation: c.SecretGeneration}]:
				// Committed before the listing began, so its generation
				// was written before the listing: it is gone, unless the
				// listing was wrong (a Vault node in transition can answer
				// a LIST with nothing). A second look at this connection
				// alone confirms it before anything is marked.
				if gone, err := s.secretGone(ctx, c.ID, c.SecretGeneration); err != nil {
					return nil, err
				} else if !gone {
					continue
				}
				resp.MissingSecretConnectionIds = append(resp.MissingSecretConnectionIds, c.ID)
				if dryRun || c.Status == store.StatusInvalid {
					continue
				}
				_, err := s.store.Update(ctx, ReconcilerActor, c.ID, c.Version, func(c *store.Connection) error {
					c.Status = store.StatusInvalid
					c.StatusReason = reasons.stored(connectionsv1.StatusReason_STATUS_REASON_MODIFIED_CREDENTIALS)
					c.LastError = "the stored credentials are missing from the secret store; enter them again"
					return nil
				})
				if err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
					return nil, err
				}
			}
		}
	}

	n, err := s.store.ReapIntents(ctx, time.Now(), dryRun)
	if err != nil {
		return nil, err
	}
	resp.ExpiredIntents = int32(n)
	if n, err = s.store.PendingIntents(ctx, time.Now()); err != nil {
		return nil, err
	}
	resp.WritesInProgress = int32(n)
	return resp, nil
}

// reconcileClients destroys each stored generation of an OAuth client
// secret that no registration names and no unexpired intent holds (step 2
// for clients).
func (s *Server) reconcileClients(ctx context.Context, dryRun bool, resp *connectionsv1.ReconcileResponse) error {
	return sweepOrphans(ctx, dryRun, "OAuth client secret",
		func(ctx context.Context, tok string) ([]store.ClientKey, string, error) {
			page, err := s.broker.ListOAuthClients(ctx, &brokerv1.ListOAuthClientsRequest{PageSize: 500, PageToken: tok})
			var keys []store.ClientKey
			for _, e := range page.GetClients() {
				keys = append(keys, store.ClientKey{Connector: e.GetConnector(), WorkspaceID: e.GetClient().GetWorkspaceId(),
					Generation: e.GetClient().GetSecretGeneration()})
			}
			return keys, page.GetNextPageToken(), err
		},
		func(ctx context.Context, k store.ClientKey) (bool, error) {
			return s.store.ClientSecretInUse(ctx, k, time.Now(), !dryRun)
		},
		func(k store.ClientKey) error {
			resp.OrphanedOauthClients = append(resp.OrphanedOauthClients, &connectionsv1.OrphanedOAuthClient{
				Connector: k.Connector, WorkspaceId: k.WorkspaceID, SecretGeneration: k.Generation})
			if dryRun {
				return nil
			}
			_, err := s.broker.DeleteOAuthClient(ctx, &brokerv1.DeleteOAuthClientRequest{Connector: k.Connector,
				Client: &brokerv1.OAuthClientRef{WorkspaceId: k.WorkspaceID, SecretGeneration: k.Generation}})
			return err
		})
}

// sweepOrphans lists every stored secret of one kind in the broker (list,
// page by page), asks the store whether a live record names each (inUse;
// outside a dry run that also deletes the expired intent that held it, so
// its writer can no longer commit), and reports each that none names to
// orphan, which destroys it unless this is a dry run.
func sweepOrphans[K any](ctx context.Context, dryRun bool, kind string,
	list func(context.Context, string) ([]K, string, error),
	inUse func(context.Context, K) (bool, error),
	orphan func(K) error) error {
	var stored []K
	for tok := ""; ; {
		page, next, err := list(ctx, tok)
		if err != nil {
			return brokerErr("list each "+kind, err)
		}
		stored = append(stored, page...)
		if tok = next; tok == "" {
			break
		}
	}
	for _, k := range stored {
		used, err := inUse(ctx, k)
		if err != nil {
			return err
		}
		if used {
			continue
		}
		if !dryRun {
			if err := failpoint.Inject(ctx, FPReconcileStep); err != nil {
				return err
			}
		}
		if err := orphan(k); err != nil {
			return brokerErr("destroy an orphaned "+kind, err)
		}
	}
	return nil
}

// secretGone reports whether Vault holds no generation gen of connection id,
// asked for that connection alone.
func (s *Server) secretGone(ctx context.Context, id, gen string) (bool, error) {
	resp, err := s.broker.ListSecrets(ctx, &brokerv1.ListSecretsRequest{ConnectionId: id})
	if err != nil {
		return false, brokerErr("list a connection's secrets", err)
	}
	for _, e := range resp.GetSecrets() {
		if e.GetSecretGeneration() == gen {
			return false, nil
		}
	}
	return true, nil
}
