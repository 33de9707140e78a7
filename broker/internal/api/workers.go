package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"

	"github.com/integrationhub/connections/broker/internal/access"
	"github.com/integrationhub/connections/broker/internal/jobtoken"
	"github.com/integrationhub/connections/broker/internal/vault"
)

// Connections is what the broker knows of connections (conninfo.Cache).
type Connections interface {
	Connection(ctx context.Context, id string) (*connectionsv1.Connection, error)
	RuntimeUserConnection(ctx context.Context, parentID, user string) (*connectionsv1.Connection, error)
	// Forget drops what is held of a connection, to be read again on next use.
	Forget(id string)
}

// Workers is what the worker API needs to decide who gets a credential.
type Workers struct {
	Tokens      *jobtoken.Authority
	Connections Connections
	// Record notes every access, allowed or denied.
	Record func(access.Event)
	// off, when set, is why this broker refuses every worker call.
	off error
}

// workersOff is the worker API of a broker that cannot check job tokens.
var workersOff = &Workers{off: refuse(codes.FailedPrecondition,
	"this broker cannot check job tokens: start it with -connections-addr (and the transit key flags)")}

// accessError is a refusal the caller is told about as it is; the message
// names what to fix and never carries a secret.
type accessError struct {
	code codes.Code
	msg  string
	info *errdetails.ErrorInfo
}

func (e *accessError) Error() string { return e.msg }

// GRPCStatus makes the refusal a gRPC status wherever it travels, so that
// status.Code reads its code.
func (e *accessError) GRPCStatus() *status.Status {
	st := status.New(e.code, e.msg)
	if e.info != nil {
		if d, err := st.WithDetails(e.info); err == nil {
			return d
		}
	}
	return st
}

func refuse(code codes.Code, format string, args ...any) error {
	return &accessError{code: code, msg: fmt.Sprintf(format, args...)}
}

// grant is what an authorized worker call may use.
type grant struct {
	claims      *jobtoken.Claims
	requested   string
	resolved    string // the connection whose credential is used
	runtimeUser string // on whose behalf, when a runtime user's connection was swapped in
	generation  string // the resolved connection's live secret generation
	authorized  bool   // the job may make this call (it may still fail later)
}

// authorize checks the caller's job token for connection id and resolves
// the connection to use: a runtime user named in the token gets their own
// connection for the same app, or, without one, the recipe's connection if
// its policy allows falling back. The resolved connection must be active.
//
// A report (ReportCredentialFailure) must name exactly what GetCredential
// hands this job: the runtime user's connection when it was swapped in, not
// the recipe's, so that a runtime user's job can neither refresh nor
// invalidate a connection it was never given.
func (s *core) authorize(ctx context.Context, id string, report bool) (*grant, error) {
	reached(ctx)
	raw, err := auth.AuthFromMD(ctx, "bearer")
	if err != nil {
		raw = ""
	}
	return s.authorizeToken(ctx, raw, id, report)
}

// authorizeToken is authorize for the job token raw ("": none was sent).
func (s *core) authorizeToken(ctx context.Context, raw, id string, report bool) (*grant, error) {
	g := &grant{requested: id}
	if s.workers.off != nil {
		return g, s.workers.off
	}
	if raw == "" {
		return g, refuse(codes.Unauthenticated, "send the job token from MintJobToken as \"authorization: Bearer <token>\"")
	}
	var err error
	if g.claims, err = s.workers.Tokens.Verify(ctx, raw); err != nil {
		if errors.Is(err, jobtoken.ErrInvalid) {
			return g, refuse(codes.Unauthenticated, "%v", err)
		}
		s.logger.ErrorContext(ctx, "job-token keys unavailable", "err", err)
		return g, refuse(codes.Unavailable, "job-token keys cannot be read from the secret store; retry later")
	}
	c := g.claims
	parent := id
	if !slices.Contains(c.Connections, id) {
		notCovered := refuse(codes.PermissionDenied,
			"the job token for recipe %s does not cover connection %s: the recipe was not bound to it when the token was minted", c.Recipe, id)
		if !report || c.RuntimeUser == "" {
			return g, notCovered
		}
		// A report may name the runtime user's connection that
		// GetCredential handed out in place of one the token covers.
		conn, err := s.connection(ctx, id)
		if status.Code(err) == codes.NotFound {
			return g, notCovered
		}
		if err != nil {
			return g, err
		}
		if conn.GetRuntimeUser() != c.RuntimeUser || !slices.Contains(c.Connections, conn.GetParentConnectionId()) {
			return g, notCovered
		}
		parent = conn.GetParentConnectionId()
	}
	conn, err := s.connection(ctx, parent)
	if err != nil {
		return g, err
	}
	if conn.GetWorkspaceId() != c.Workspace {
		return g, refuse(codes.PermissionDenied, "connection %s is not in the job's workspace", parent)
	}
	g.resolved = parent
	if c.RuntimeUser != "" {
		mine, err := s.workers.Connections.RuntimeUserConnection(ctx, parent, c.RuntimeUser)
		if err != nil {
			return g, s.lookupError(ctx, err)
		}
		switch {
		case mine != nil:
			conn, g.resolved, g.runtimeUser = mine, mine.GetId(), c.RuntimeUser
		case !c.RuntimeUserFallback:
			return g, &accessError{code: codes.FailedPrecondition,
				msg: fmt.Sprintf("runtime user %q has no %s connection: ask them to connect (CreateRuntimeUserConnection under %s)",
					c.RuntimeUser, conn.GetConnector(), parent),
				info: &errdetails.ErrorInfo{Reason: "RUNTIME_USER_CONNECTION_MISSING", Domain: "integrationhub.broker",
					Metadata: map[string]string{"connector": conn.GetConnector(), "runtime_user": c.RuntimeUser, "connection_id": parent}}}
		}
		// Otherwise the recipe's policy falls back to its own connection.
	}
	if report && g.resolved != id {
		return g, refuse(codes.PermissionDenied,
			"this job is served connection %s, not %s: report failures of the connection GetCredential returned", g.resolved, id)
	}
	if conn.GetStatus() != connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE {
		msg := fmt.Sprintf("connection %s is %s", g.resolved, strings.TrimPrefix(conn.GetStatus().String(), "CONNECTION_STATUS_"))
		if r := conn.GetStatusReason(); r != connectionsv1.StatusReason_STATUS_REASON_UNSPECIFIED {
			msg += " (" + strings.TrimPrefix(r.String(), "STATUS_REASON_") + ")"
		}
		if conn.GetLastError() != "" {
			msg += ": " + conn.GetLastError()
		}
		return g, &accessError{code: codes.FailedPrecondition, msg: msg,
			info: &errdetails.ErrorInfo{Reason: "CONNECTION_NOT_ACTIVE", Domain: "integrationhub.broker",
				Metadata: map[string]string{"connection_id": g.resolved, "status": conn.GetStatus().String()}}}
	}
	g.generation = conn.GetSecretGeneration()
	g.authorized = true
	return g, nil
}

// key names the secret generation the resolved connection's metadata says
// is live: the only one this call may serve.
func (g *grant) key() string { return vault.Key(g.resolved, g.generation) }

// connection reads a connection's metadata.
func (s *core) connection(ctx context.Context, id string) (*connectionsv1.Connection, error) {
	conn, err := s.workers.Connections.Connection(ctx, id)
	if err != nil {
		return nil, s.lookupError(ctx, err)
	}
	return conn, nil
}

// lookupError says why the connection service could not answer. Anything
// but a missing connection or the caller giving up is logged: a broker whose
// service token lacks a privilege looks like an outage to its callers.
func (s *core) lookupError(ctx context.Context, err error) error {
	switch code := status.Code(err); {
	case code == codes.NotFound:
		return refuse(codes.NotFound, "connection not found (deleted?)")
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || code == codes.Canceled || code == codes.DeadlineExceeded:
		return refuse(codes.DeadlineExceeded, "the call ended before the connection service answered")
	}
	s.logger.ErrorContext(ctx, "connection service lookup failed", "err", err)
	return refuse(codes.Unavailable, "the connection service cannot be reached to check the connection; retry later")
}

type reachedKey struct{}

// reached marks a call as having reached its handler, which records it.
func reached(ctx context.Context) {
	if p, ok := ctx.Value(reachedKey{}).(*atomic.Bool); ok {
		p.Store(true)
	}
}

// RecordRefusals is an interceptor for the worker API (placed before
// validation) that records the calls refused before their handler ran: the
// request failed validation. As for callers whose token did not verify,
// nothing the caller sent is recorded, only the operation, code and reason.
func (s *WorkerServer) RecordRefusals() grpc.UnaryServerInterceptor {
	prefix := "/" + brokerv1.CredentialBroker_ServiceDesc.ServiceName + "/"
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		op, ok := strings.CutPrefix(info.FullMethod, prefix)
		if !ok {
			return h(ctx, req)
		}
		var handled atomic.Bool
		resp, err := h(context.WithValue(ctx, reachedKey{}, &handled), req)
		if err != nil && !handled.Load() {
			s.note(access.Event{Operation: op}, err)
		}
		return resp, err
	}
}

// record notes a worker call's outcome in the access log.
func (s *core) record(op string, g *grant, err error) { s.note(eventOf(op, g), err) }

// eventOf is the access event of a worker call: who asked for what.
func eventOf(op string, g *grant) access.Event {
	// Allowed is the authorization decision; Code is how the call ended (an
	// authorized report that invalidates a connection ends in
	// FailedPrecondition).
	e := access.Event{Operation: op, Allowed: g.authorized}
	if c := g.claims; c != nil {
		e.Workspace, e.Job, e.Recipe, e.RuntimeUser, e.Requested = c.Workspace, c.Job, c.Recipe, c.RuntimeUser, g.requested
	}
	// Without a verified token nothing the caller sent is recorded, so that
	// anyone who reaches the port cannot fill the record with made-up
	// entries: such refusals are counted by operation and reason.
	if g.authorized {
		e.Resolved = g.resolved
	}
	return e
}

// note completes an access event with how the call ended and records it.
func (s *core) note(e access.Event, err error) {
	st := status.Convert(err) // OK for a nil error
	e.Code, e.Reason = st.Code().String(), st.Message()
	s.workers.Record(e)
}
