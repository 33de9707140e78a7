package worker

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ConnectionNotActiveError means the connection is not usable now (invalid,
// pending authorization, disconnected): a person has to act, retrying does
// not help.
type ConnectionNotActiveError struct {
	ConnectionID string
	Status       string // e.g. "CONNECTION_STATUS_INVALID"
	Detail       string // the broker's sentence, with the reason when known
}

func (e *ConnectionNotActiveError) Error() string { return "worker: " + e.Detail }

// RuntimeUserConnectionMissingError means the job runs for a runtime user
// who has not connected their own account to the app yet.
type RuntimeUserConnectionMissingError struct {
	Connector, RuntimeUser, ConnectionID string
	Detail                               string
}

func (e *RuntimeUserConnectionMissingError) Error() string { return "worker: " + e.Detail }

// NotCoveredError means the job token does not allow this call: the
// connection is not bound to the job's recipe.
type NotCoveredError struct {
	ConnectionID string
	Detail       string
}

func (e *NotCoveredError) Error() string { return "worker: " + e.Detail }

// HostNotAllowedError means a request's URL is not one the connection's
// credential may be sent to (its host is not among the connection's hosts,
// or it is not an http or https URL): the request was not sent. The SDK
// refuses such a request itself; the broker refuses it the same way when
// it signs a request (OAuth 1.0a) or sends one through its egress proxy.
type HostNotAllowedError struct {
	ConnectionID string
	Host         string // the request's host[:port], as the URL names it
	Detail       string
}

func (e *HostNotAllowedError) Error() string { return "worker: " + e.Detail }

// TokenError means the job token is missing, expired or not valid for this
// broker.
type TokenError struct{ Detail string }

func (e *TokenError) Error() string { return "worker: job token refused: " + e.Detail }

// UnavailableError means the broker (or what it depends on: Vault, the
// connection service, the app's token endpoint) cannot answer now; the call
// may be retried later.
type UnavailableError struct{ Detail string }

func (e *UnavailableError) Error() string { return "worker: broker unavailable: " + e.Detail }

// AppUnavailableError means the app itself failed, not the broker: it could
// not be reached or cut its answer off, or (Timeout) did not answer in time.
// The credential is fine; the request may be retried later. Through the
// egress proxy the broker says so; sent directly, Err is the transport's
// error.
type AppUnavailableError struct {
	ConnectionID string
	Timeout      bool
	Detail       string
	Err          error
}

func (e *AppUnavailableError) Error() string { return "worker: " + e.Detail }

func (e *AppUnavailableError) Unwrap() error { return e.Err }

// ErrNoToken means no job token was given (option, file or environment).
var ErrNoToken = errors.New("worker: no job token: set Options.Token, Options.TokenFile or " + EnvJobToken)

// fromStatus turns a broker answer into one of this package's errors.
func fromStatus(connectionID string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	switch {
	case info != nil && info.GetReason() == "CONNECTION_NOT_ACTIVE":
		return &ConnectionNotActiveError{ConnectionID: info.GetMetadata()["connection_id"], Status: info.GetMetadata()["status"], Detail: st.Message()}
	case info != nil && info.GetReason() == "SIGNED_REQUESTS_ONLY":
		return ErrSigned
	case info != nil && info.GetReason() == "HOST_NOT_ALLOWED":
		return &HostNotAllowedError{ConnectionID: connectionID, Host: info.GetMetadata()["host"], Detail: st.Message()}
	case info != nil && (info.GetReason() == "APP_UNAVAILABLE" || info.GetReason() == "APP_TIMEOUT"):
		return &AppUnavailableError{ConnectionID: connectionID, Timeout: info.GetReason() == "APP_TIMEOUT", Detail: st.Message()}
	case info != nil && info.GetReason() == "RUNTIME_USER_CONNECTION_MISSING":
		m := info.GetMetadata()
		return &RuntimeUserConnectionMissingError{Connector: m["connector"], RuntimeUser: m["runtime_user"], ConnectionID: m["connection_id"], Detail: st.Message()}
	}
	switch st.Code() {
	case codes.PermissionDenied:
		return &NotCoveredError{ConnectionID: connectionID, Detail: st.Message()}
	case codes.Unauthenticated:
		return &TokenError{Detail: st.Message()}
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return &UnavailableError{Detail: st.Message()}
	}
	return fmt.Errorf("worker: %s: %w", st.Message(), err)
}
