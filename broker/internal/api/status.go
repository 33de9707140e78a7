package api

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/integrationhub/connections/internal/grpcserver"

	"github.com/integrationhub/connections/broker/internal/conninfo"
	"github.com/integrationhub/connections/broker/internal/oauth"
	"github.com/integrationhub/connections/broker/internal/oauth1"
	"github.com/integrationhub/connections/broker/internal/oauthclient"
	"github.com/integrationhub/connections/broker/internal/vault"
)

// toStatus maps an error from inside the broker to the gRPC status a caller
// sees. It is the only place that does so. Internal errors are logged here and
// hidden from the caller; no error text in this service carries a secret.
func (s *core) toStatus(ctx context.Context, err error) error {
	var ae *accessError
	var he *hostError
	switch {
	case errors.As(err, &ae):
		return ae.GRPCStatus().Err()
	case errors.As(err, &he):
		return he.GRPCStatus().Err()
	case errors.Is(err, vault.ErrNotFound):
		return status.Error(codes.NotFound, "no credential is stored for this connection")
	case errors.Is(err, vault.ErrUnavailable):
		s.logger.WarnContext(ctx, "vault unavailable", "err", err)
		return status.Error(codes.Unavailable, "the secret store is unavailable; retry later")
	case errors.Is(err, errGenerationExists):
		return status.Error(codes.AlreadyExists, errGenerationExists.Error())
	case errors.Is(err, errMismatch):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, oauth.ErrRevoked):
		return withInfo(codes.FailedPrecondition, oauth.ErrRevoked.Error(), "CONNECTION_REVOKED")
	case errors.Is(err, oauth.ErrProviderUnavailable):
		s.logger.WarnContext(ctx, "token endpoint unavailable", "err", err)
		return status.Error(codes.Unavailable, "the app's token endpoint is unavailable; the connection stays valid, retry later")
	case errors.Is(err, errCredentialWorks):
		return withInfo(codes.FailedPrecondition, errCredentialWorks.Error(), "CREDENTIAL_VERIFIED")
	case errors.Is(err, errReportNoted):
		return withInfo(codes.FailedPrecondition, errReportNoted.Error(), "FAILURE_REPORT_NOTED")
	case errors.Is(err, errCannotVerify):
		return status.Error(codes.Unavailable, errCannotVerify.Error())
	case errors.Is(err, errRebind):
		return status.Error(codes.FailedPrecondition, errRebind.Error())
	case errors.Is(err, errCredentialRefused):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, errUseSignRequest):
		return withInfo(codes.FailedPrecondition, errUseSignRequest.Error(), "SIGNED_REQUESTS_ONLY")
	case errors.Is(err, oauth1.ErrClientChanged):
		return status.Error(codes.FailedPrecondition, oauth1.ErrClientChanged.Error())
	case errors.Is(err, oauth1.ErrNoPending):
		return status.Error(codes.FailedPrecondition, oauth1.ErrNoPending.Error())
	case oauth1.ErrRefused(err):
		return status.Error(codes.FailedPrecondition, "the app refused the authorization (request token or verifier)")
	case errors.Is(err, oauth.ErrTokenHostNotAllowed):
		return status.Error(codes.PermissionDenied, oauth.ErrTokenHostNotAllowed.Error())
	case errors.Is(err, oauthclient.ErrNoSource):
		return status.Error(codes.FailedPrecondition, oauthclient.ErrNoSource.Error())
	case errors.Is(err, oauth.ErrNoClient):
		return status.Error(codes.FailedPrecondition, "no OAuth client is registered for this app; register one with RegisterOAuthClient")
	case grpcserver.ContextStatus(err) != nil:
		return grpcserver.ContextStatus(err)
	case conninfo.Unreachable(err):
		s.logger.WarnContext(ctx, "connection service unavailable", "err", err)
		return status.Error(codes.Unavailable, "the connection service is unavailable; retry later")
	}
	s.logger.ErrorContext(ctx, "internal error", "err", err)
	return status.Error(codes.Internal, "internal error")
}

// withInfo is a status with an ErrorInfo reason (domain
// integrationhub.broker) that callers can branch on.
func withInfo(code codes.Code, msg, reason string) error {
	st := status.New(code, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "integrationhub.broker"}); err == nil {
		return d.Err()
	}
	return st.Err()
}
