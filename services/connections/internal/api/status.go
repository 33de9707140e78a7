package api

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/integrationhub/connections/services/connections/internal/store"
)

// fieldError is bad input the handler found beyond the proto constraints
// (e.g. an app the catalog does not have).
type fieldError struct{ field, desc string }

func (e *fieldError) Error() string { return e.field + ": " + e.desc }

func invalid(field, desc string) error { return &fieldError{field: field, desc: desc} }

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

// toStatus maps an error from inside the service to the status the caller
// sees. It is the only place that does so; internal errors are logged here and
// hidden. No error in this service carries a secret.
func (s *Server) toStatus(ctx context.Context, err error) error {
	var fe *fieldError
	var be *brokerError
	switch {
	case errors.As(err, &fe):
		st, derr := status.New(codes.InvalidArgument, fe.Error()).WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: fe.field, Description: fe.desc}},
		})
		if derr != nil {
			return status.Error(codes.InvalidArgument, fe.Error())
		}
		return st.Err()
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, "connection not found")
	case errors.Is(err, store.ErrConflict):
		return status.Error(codes.Aborted, "the connection changed since this etag was read; read it again and retry")
	case errors.Is(err, store.ErrInvalidPageToken):
		return status.Error(codes.InvalidArgument, "page_token: not a token from a previous response of this call")
	case errors.Is(err, errConnectorGone):
		s.logger.WarnContext(ctx, "connector missing from catalog", "err", err)
		return status.Error(codes.FailedPrecondition, "this connection's app is no longer in the connector catalog")
	case errors.As(err, &be):
		return s.brokerStatus(ctx, be)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	s.logger.ErrorContext(ctx, "internal error", "err", err)
	return status.Error(codes.Internal, "internal error")
}

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
