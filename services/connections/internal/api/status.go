package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/integrationhub/connections/internal/grpcserver"
	"github.com/integrationhub/connections/internal/validtext"
	"google.golang.org/protobuf/protoadapt"

	"github.com/integrationhub/connections/services/connections/internal/authz"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// fieldError is bad input the handler found beyond the proto constraints
// (e.g. an app the catalog does not have).
type fieldError struct{ field, desc string }

func (e *fieldError) Error() string { return e.field + ": " + e.desc }

func invalid(field, desc string) error { return &fieldError{field: field, desc: desc} }

// deniedError is a refusal whose reason the caller should read.
type deniedError struct {
	desc string
	err  error
}

func (e *deniedError) Error() string { return e.desc + ": " + e.err.Error() }
func (e *deniedError) Unwrap() error { return e.err }

func denied(desc string, err error) error { return &deniedError{desc: desc, err: err} }

// errNoOAuth means the service runs without an OAuth callback configured.
var errNoOAuth = errors.New("OAuth authorization is not configured on this service (-http-listen / -oauth-redirect-url)")

// missingClient explains a connector without a registered OAuth client.
func missingClient(connector string, err error) error {
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return rule("OAUTH_CLIENT_MISSING", connector, "no OAuth client is registered for "+connector+"; register one with RegisterOAuthClient")
}

// errConnectorGone means a stored connection's connector is no longer in the
// catalog (an operator removed it).
var errConnectorGone = errors.New("connector not in catalog")

// brokerError is a failed call to the broker's admin API.
type brokerError struct {
	op  string
	err error
}

func (e *brokerError) Error() string { return e.op + ": " + e.err.Error() }
func (e *brokerError) Unwrap() error { return e.err }

func brokerErr(op string, err error) error { return &brokerError{op: op, err: err} }

// ruleError is a binding refused by one of the binding rules.
type ruleError struct{ kind, subject, desc string }

func (e *ruleError) Error() string { return e.kind + ": " + e.desc }

func rule(kind, subject, desc string) error {
	return &ruleError{kind: kind, subject: subject, desc: desc}
}

// toStatus maps an error from inside the service to the status the caller
// sees. It is the only place that does so; internal errors are logged here and
// hidden. No error in this service carries a secret.
func (s *Server) toStatus(ctx context.Context, err error) error {
	var fe *fieldError
	var be *brokerError
	var re *ruleError
	var inUse *store.InUseError
	var me *missingError
	var nf *store.NotFoundError
	var de *deniedError
	var te *validtext.Error
	var ce *store.CrossEnvironmentError
	switch {
	case errors.As(err, &fe):
		return withDetails(status.New(codes.InvalidArgument, fe.Error()), &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: fe.field, Description: fe.desc}},
		})
	case errors.As(err, &re):
		return withDetails(status.New(codes.FailedPrecondition, re.desc), &errdetails.PreconditionFailure{
			Violations: []*errdetails.PreconditionFailure_Violation{{Type: re.kind, Subject: re.subject, Description: re.desc}},
		})
	case errors.As(err, &inUse):
		pf := &errdetails.PreconditionFailure{}
		var recipes []string
		for _, b := range inUse.Bindings {
			pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{
				Type: "CONNECTION_IN_USE", Subject: "recipes/" + b.RecipeID + "/steps/" + b.Step,
				Description: "recipe " + b.RecipeID + " step " + b.Step + " uses this connection",
			})
			recipes = append(recipes, b.RecipeID)
		}
		return withDetails(status.New(codes.FailedPrecondition, fmt.Sprintf(
			"the connection is used by %d recipe step(s) (recipes %s); unbind them or delete with force", len(inUse.Bindings), strings.Join(slices.Compact(recipes), ", "))), pf)
	case errors.As(err, &ce):
		pf := &errdetails.PreconditionFailure{}
		for _, b := range ce.Bindings {
			pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{
				Type: "CROSS_ENVIRONMENT_BINDING", Subject: "recipes/" + b.RecipeID + "/steps/" + b.Step,
				Description: "recipe " + b.RecipeID + " step " + b.Step + " uses connection " + b.ConnectionID + " of the other environment",
			})
		}
		return withDetails(status.New(codes.FailedPrecondition, fmt.Sprintf(
			"%d recipe step(s) use a connection of the other environment; unbind them before turning cross-environment bindings off", len(ce.Bindings))), pf)
	case errors.As(err, &de):
		return status.Error(codes.PermissionDenied, de.desc)
	case errors.Is(err, authz.ErrWorkspace):
		return status.Error(codes.PermissionDenied, "not permitted in this workspace")
	case errors.Is(err, authz.ErrPrivilege):
		return status.Error(codes.PermissionDenied, err.Error()[len("authz: "):])
	case errors.Is(err, store.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, "already exists (a runtime user has one connection per parent)")
	case errors.As(err, &me) && errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, me.what)
	case errors.As(err, &nf):
		msg := nf.Kind + " not found"
		if nf.ID != "" {
			msg = nf.Kind + " " + nf.ID + " not found"
		}
		return withDetails(status.New(codes.NotFound, msg), &errdetails.ResourceInfo{ResourceType: nf.Kind, ResourceName: nf.ID})
	case errors.Is(err, store.ErrNotFound):
		// Every store method names what it did not find; this is a
		// safety net.
		s.logger.WarnContext(ctx, "a not-found error that names nothing", "err", err)
		return status.Error(codes.NotFound, "not found")
	case errors.Is(err, store.ErrIntentGone):
		return status.Error(codes.Unavailable, "the secret write took too long and was abandoned; nothing was changed; retry")
	case errors.Is(err, store.ErrParentGone):
		return status.Error(codes.NotFound, "parent connection not found (deleted?)")
	case errors.Is(err, errVerifyUnreachable):
		return status.Error(codes.Unavailable, errVerifyUnreachable.Error())
	case errors.Is(err, errChangedDuringCheck):
		return status.Error(codes.Aborted, errChangedDuringCheck.Error())
	case errors.Is(err, errReportOfReplacedCredentials):
		return status.Error(codes.Aborted, errReportOfReplacedCredentials.Error())
	case errors.Is(err, store.ErrConflict):
		return status.Error(codes.Aborted, "the connection changed since this etag was read; read it again and retry")
	case errors.As(err, &te):
		return withDetails(status.New(codes.InvalidArgument, te.Error()), &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: te.Field, Description: validtext.Problem}},
		})
	case errors.Is(err, store.ErrInvalidPageToken):
		return status.Error(codes.InvalidArgument, "page_token: not a token from a previous response of this call")
	case errors.Is(err, errNoOAuth):
		return status.Error(codes.FailedPrecondition, errNoOAuth.Error())
	case errors.Is(err, errConnectorGone):
		s.logger.WarnContext(ctx, "connector missing from catalog", "err", err)
		return status.Error(codes.FailedPrecondition, "this connection's app is no longer in the connector catalog")
	case errors.As(err, &be):
		return s.brokerStatus(ctx, be)
	case grpcserver.ContextStatus(err) != nil:
		return grpcserver.ContextStatus(err)
	}
	s.logger.ErrorContext(ctx, "internal error", "err", err)
	return status.Error(codes.Internal, "internal error")
}

func withDetails(st *status.Status, d protoadapt.MessageV1) error {
	if ds, err := st.WithDetails(d); err == nil {
		return ds.Err()
	}
	return st.Err()
}

// missingError marks a NotFound that is not about the connection itself.
type missingError struct {
	what string // e.g. "recipe not found; register it with RegisterRecipe"
	err  error
}

func (e *missingError) Error() string { return e.what + ": " + e.err.Error() }
func (e *missingError) Unwrap() error { return e.err }

func missing(what string, err error) error { return &missingError{what: what, err: err} }

// brokerStatus passes on the broker failures a caller can act on (retry
// later, fix input) and hides the rest.
func (s *Server) brokerStatus(ctx context.Context, be *brokerError) error {
	st, _ := status.FromError(be.err)
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded:
		s.logger.WarnContext(ctx, "credential broker unavailable", "err", be)
		return status.Error(codes.Unavailable, "the credential broker is unavailable; nothing was changed, retry later")
	case codes.InvalidArgument:
		return status.Error(codes.InvalidArgument, fmt.Sprintf("credential broker refused the secret: %s", st.Message()))
	case codes.Canceled:
		return status.Error(codes.Canceled, "request canceled")
	}
	s.logger.ErrorContext(ctx, "credential broker error", "err", be)
	return status.Error(codes.Internal, "internal error")
}
