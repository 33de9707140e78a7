package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	"github.com/integrationhub/connections/internal/appanswer"
	"github.com/integrationhub/connections/internal/validtext"

	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/catalog"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// TestConnection has the broker run the connector's test request and records
// what it found.
func (s *Server) TestConnection(ctx context.Context, req *connectionsv1.TestConnectionRequest) (*connectionsv1.TestConnectionResponse, error) {
	c, err := s.get(ctx, req.GetConnectionId())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("TestConnection: %w", err))
	}
	c, ok, err := s.verify(ctx, authz.Actor(ctx), c)
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("TestConnection: %w", err))
	}
	return &connectionsv1.TestConnectionResponse{Connection: toProto(c), Ok: ok}, nil
}

// verify sends c's test request through the broker and records the outcome
// as actor: TestConnection's and the scheduled checks' one rule.
func (s *Server) verify(ctx context.Context, actor string, c *store.Connection) (*store.Connection, bool, error) {
	conn, ok := s.catalog.Get(c.Connector)
	if !ok {
		return nil, false, errConnectorGone
	}
	url := testURL(conn, c)
	if url == "" {
		return nil, false, rule("NO_TEST_REQUEST", c.Connector,
			c.Connector+" defines no test request, or the connection has no base URL to send it to")
	}
	res, err := s.broker.TestCredential(ctx, &brokerv1.TestCredentialRequest{
		ConnectionId: c.ID, Method: strings.ToUpper(conn.TestRequest.Method), Url: url, SecretGeneration: c.SecretGeneration,
		// A scheduled check keeps an idle refresh token alive.
		Refresh: actor == checkActor && conn.RefreshTokenIdleTTL != nil,
	})
	if status.Code(err) == codes.NotFound {
		return nil, false, rule("NO_CREDENTIALS", c.ID, "the connection has no credentials yet; authorize it first")
	}
	if err != nil {
		return nil, false, brokerErr("TestConnection", err)
	}
	ok = res.GetOutcome() == brokerv1.TestOutcome_TEST_OUTCOME_OK
	tested := c.SecretGeneration
	c, err = s.store.Update(ctx, actor, c.ID, 0, func(c *store.Connection) error {
		// The verdict is about the credentials that were sent: if an
		// editor replaced them meanwhile, it says nothing about the new
		// ones and is not recorded.
		if c.SecretGeneration != tested {
			return errStaleMaterial
		}
		now := time.Now().UTC()
		switch res.GetOutcome() {
		case brokerv1.TestOutcome_TEST_OUTCOME_OK:
			c.Status, c.StatusReason, c.LastError, c.LastVerifyTime = store.StatusActive, "", "", now
			if who := res.GetAuthorizedAs(); who != "" {
				c.AuthorizedAs = validtext.Clean(who)
			}
		case brokerv1.TestOutcome_TEST_OUTCOME_PROVIDER_UNREACHABLE:
			// Not the credentials' fault: an active connection stays active.
			c.StatusReason, c.LastError = reasons.stored(connectionsv1.StatusReason_STATUS_REASON_PROVIDER_UNREACHABLE), validtext.Clean(res.GetDetail())
		default:
			c.Status, c.StatusReason, c.LastError = store.StatusInvalid, reasonOf(res.GetOutcome()), validtext.Clean(res.GetDetail())
			c.LastVerifyTime = now
		}
		return nil
	})
	if errors.Is(err, errStaleMaterial) {
		return nil, false, errChangedDuringCheck
	}
	if err != nil {
		return nil, false, err
	}
	return c, ok, nil
}

// verifyNew checks generation gen of new connection c (not stored yet)
// with the connector's test request; on success it notes the verification
// in c. Without a test request there is nothing to check.
func (s *Server) verifyNew(ctx context.Context, conn *catalog.Connector, c *store.Connection, gen string) error {
	url := testURL(conn, c)
	if url == "" {
		return nil
	}
	res, err := s.broker.TestCredential(ctx, &brokerv1.TestCredentialRequest{ConnectionId: c.ID,
		Method: strings.ToUpper(conn.TestRequest.Method), Url: url, SecretGeneration: gen})
	if err != nil {
		return brokerErr("verify the credentials", err)
	}
	switch res.GetOutcome() {
	case brokerv1.TestOutcome_TEST_OUTCOME_OK:
		c.LastVerifyTime = time.Now().UTC()
		if who := res.GetAuthorizedAs(); who != "" {
			c.AuthorizedAs = validtext.Clean(who)
		}
		return nil
	case brokerv1.TestOutcome_TEST_OUTCOME_PROVIDER_UNREACHABLE:
		return errVerifyUnreachable
	case brokerv1.TestOutcome_TEST_OUTCOME_INSUFFICIENT_PERMISSIONS:
		return rule("INSUFFICIENT_PERMISSIONS", c.Connector,
			"the app accepted these credentials but refused the test request (HTTP 403): the account lacks a permission this connection needs; nothing was stored")
	}
	return rule("CREDENTIALS_REFUSED", c.Connector,
		"the app refused these credentials (HTTP 401): check the key or password and try again; nothing was stored")
}

// errVerifyUnreachable: a create with verify could not reach the app.
var errVerifyUnreachable = errors.New("the app could not be reached to verify the credentials; nothing was stored; try again later")

// errChangedDuringCheck: the credentials were replaced while the test
// request was out, so its verdict was not recorded.
var errChangedDuringCheck = errors.New("the connection's credentials changed while they were being checked; check again")

// errReportOfReplacedCredentials: a status report about a secret generation
// the connection no longer serves.
var errReportOfReplacedCredentials = errors.New("the report is about credentials the connection no longer uses; nothing was changed")

// reasonOf is the stored reason for a failed check (appanswer's rule).
func reasonOf(o brokerv1.TestOutcome) string {
	return reasons.stored(appanswer.Reason(o))
}

// ReportConnectionStatus records a status the broker observed. Repeating the
// same report changes nothing, so retries and several brokers reporting the
// same failure do not flap the connection or flood the change stream.
func (s *Server) ReportConnectionStatus(ctx context.Context, req *connectionsv1.ReportConnectionStatusRequest) (*connectionsv1.ReportConnectionStatusResponse, error) {
	c, err := s.get(ctx, req.GetConnectionId())
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ReportConnectionStatus: %w", err))
	}
	st := statuses.stored(req.GetStatus())
	reason := reasons.stored(req.GetReason())
	if c.Status == st && c.StatusReason == reason && c.LastError == req.GetLastError() {
		return &connectionsv1.ReportConnectionStatusResponse{Connection: toProto(c)}, nil
	}
	stale := func(c *store.Connection) bool {
		return req.SecretGeneration != nil && c.SecretGeneration != req.GetSecretGeneration()
	}
	if stale(c) {
		return nil, s.toStatus(ctx, fmt.Errorf("ReportConnectionStatus: %w", errReportOfReplacedCredentials))
	}
	c, err = s.store.Update(ctx, authz.Actor(ctx), c.ID, 0, func(c *store.Connection) error {
		if stale(c) {
			return errReportOfReplacedCredentials
		}
		c.Status, c.StatusReason, c.LastError = st, reason, req.GetLastError()
		return nil
	})
	if err != nil {
		return nil, s.toStatus(ctx, fmt.Errorf("ReportConnectionStatus: %w", err))
	}
	return &connectionsv1.ReportConnectionStatusResponse{Connection: toProto(c)}, nil
}
