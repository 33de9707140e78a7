// Package invalidate applies the connection service's change stream to
// everything the broker keeps in memory: cached credentials, connection
// metadata and which OAuth client registration is live. It owns the one
// rule for what each kind of change drops, so that the stream consumer
// (connsvc.Watch) only delivers.
package invalidate

import (
	"context"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"

	"github.com/integrationhub/connections/broker/internal/cache"
	"github.com/integrationhub/connections/broker/internal/conninfo"
	"github.com/integrationhub/connections/broker/internal/oauthclient"
)

// Invalidator holds what the change stream keeps current. Its fields are
// the same values the API serves from, fixed when the broker is wired.
type Invalidator struct {
	Credentials *cache.Cache
	Connections *conninfo.Cache
	Clients     *oauthclient.Registry
}

// Changed applies one change.
func (i *Invalidator) Changed(ev *connectionsv1.WatchConnectionsResponse) {
	switch ev.GetType() {
	case connectionsv1.ChangeType_CHANGE_TYPE_OAUTH_CLIENT_CHANGED:
		oc := ev.GetOauthClient()
		i.Clients.Changed(oc.GetConnector(), oc.GetWorkspaceId(), oc.GetSecretGeneration())
		return
	case connectionsv1.ChangeType_CHANGE_TYPE_DELETED:
		i.Credentials.Drop(ev.GetConnection().GetId())
	default:
		// Still servable while Vault is down: a change to a connection's
		// metadata does not change the generation its secret is in, and a
		// new generation drops the old one's credential.
		c := ev.GetConnection()
		i.Credentials.Keep(c.GetId(), c.GetSecretGeneration())
	}
	i.Connections.Changed(ev.GetConnection(), ev.GetType() == connectionsv1.ChangeType_CHANGE_TYPE_DELETED)
}

// Resync replaces what is cached after a gap in the stream (or when it
// first comes up): connection metadata is read again, credentials of
// connections that changed are dropped, and live OAuth client generations
// are asked for again when next needed.
func (i *Invalidator) Resync(ctx context.Context) error {
	i.Clients.Resync()
	changed, err := i.Connections.Resync(ctx)
	for _, id := range changed {
		i.Credentials.Drop(id)
	}
	return err
}
