package api

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/integrationhub/connections/broker/internal/vault"
)

// toStatus maps an error from inside the broker to the gRPC status a caller
// sees. It is the only place that does so. Internal errors are logged here and
// hidden from the caller; no error text in this service carries a secret.
func (s *Server) toStatus(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, vault.ErrNotFound):
		return status.Error(codes.NotFound, "no credential is stored for this connection")
	case errors.Is(err, vault.ErrUnavailable):
		s.logger.WarnContext(ctx, "vault unavailable", "err", err)
		return status.Error(codes.Unavailable, "the secret store is unavailable; retry later")
	case errors.Is(err, errMismatch):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	s.logger.ErrorContext(ctx, "internal error", "err", err)
	return status.Error(codes.Internal, "internal error")
}
