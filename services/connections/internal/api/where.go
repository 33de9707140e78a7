package api

import (
	"context"
	"fmt"
	"strings"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
	"github.com/integrationhub/connections/internal/appinstance"

	"github.com/integrationhub/connections/services/connections/internal/catalog"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// A credential goes only where its connection points: these checks run at
// the top of the write handlers, before anything is stored.

// checkWhere refuses an instance outside the connector's allowed hosts (or a
// base_url on a connector that takes none), and a production connection
// pointing at a sandbox instance.
func checkWhere(conn *catalog.Connector, environment string, in *credentialv1.AppInstance) error {
	if field, why, ok := conn.CheckInstance(in); !ok {
		return invalid(field, why)
	}
	if in.GetSandbox() && environment == environments.stored(connectionsv1.Environment_ENVIRONMENT_PRODUCTION) {
		return invalid("instance.sandbox", "a production connection cannot point at a sandbox instance; create it in the sandbox environment")
	}
	return nil
}

// moves reports whether next (when set) points the connection elsewhere
// than old: another base URL, subdomain, org or sandbox flag.
func moves(old store.Instance, next *credentialv1.AppInstance) bool {
	return next != nil && appinstance.FromProto(next) != old
}

// checkMove refuses to move a secret-bearing connection without its secret:
// the stored credential was given for the old instance, and an editor must
// not be able to send it to another.
func checkMove(at credentialv1.AuthType, moved bool, sec *credentialv1.Secret) error {
	if moved && takesSecret(at) && sec == nil {
		return invalid("secret", "changing where the connection points (base_url, subdomain, org_id, sandbox) needs its secret again in the same update")
	}
	return nil
}

// needsAuthorization marks an OAuth connection that moved: its tokens were
// issued for the old instance, so it waits for a new authorization.
func needsAuthorization(c *store.Connection) {
	c.Status = store.StatusPending
	c.StatusReason = reasons.stored(connectionsv1.StatusReason_STATUS_REASON_AUTHORIZATION_REQUIRED)
	c.LastError = "the connection was pointed elsewhere; authorize it again"
	c.AuthorizedAs, c.GrantedScopes = "", nil
}

// dropTokens removes a moved OAuth connection's tokens (the generation that
// was live). The connection is already pending (workers are refused) and
// names no generation, so a failure here is logged, not returned: the
// reconciler destroys generations no connection names.
func (s *Server) dropTokens(ctx context.Context, id, generation string) {
	if _, err := s.broker.DeleteSecret(context.WithoutCancel(ctx), &brokerv1.DeleteSecretRequest{ConnectionId: id, SecretGeneration: generation}); err != nil {
		s.logger.WarnContext(ctx, "could not remove the tokens of a moved OAuth connection", "connection_id", id, "err", fmt.Sprint(err))
	}
}

// testRequest is the connector's test request for c pointed at inst, stored
// with the secret so that the broker can verify a worker's failure report
// before the connection turns invalid; nil when the connector has none.
func testRequest(conn *catalog.Connector, c *store.Connection, inst *credentialv1.AppInstance) *brokerv1.TestRequest {
	at := *c
	at.Instance = appinstance.FromProto(inst)
	u := testURL(conn, &at)
	if u == "" {
		return nil
	}
	return &brokerv1.TestRequest{Method: strings.ToUpper(conn.TestRequest.Method), Url: u}
}
