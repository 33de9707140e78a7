package worker

import (
	"errors"
	"strings"
	"testing"
)

// The proxy's JSON refusals become the errors a gRPC call would give.
func TestProxyRefusal(t *testing.T) {
	for _, tc := range []struct {
		code, body string
		check      func(error) bool
	}{
		{"Unauthenticated", `{"code":"Unauthenticated","error":"bad token"}`,
			func(err error) bool { var e *TokenError; return errors.As(err, &e) }},
		{"PermissionDenied", `{"code":"PermissionDenied","error":"not covered"}`,
			func(err error) bool { var e *NotCoveredError; return errors.As(err, &e) && e.ConnectionID == "c1" }},
		{"FailedPrecondition", `{"code":"FailedPrecondition","error":"invalid","reason":"CONNECTION_NOT_ACTIVE","metadata":{"connection_id":"c1","status":"invalid"}}`,
			func(err error) bool {
				var e *ConnectionNotActiveError
				return errors.As(err, &e) && e.Status == "invalid"
			}},
		{"FailedPrecondition", `{"code":"FailedPrecondition","error":"no","reason":"RUNTIME_USER_CONNECTION_MISSING","metadata":{"runtime_user":"alice"}}`,
			func(err error) bool {
				var e *RuntimeUserConnectionMissingError
				return errors.As(err, &e) && e.RuntimeUser == "alice"
			}},
		{"Unavailable", `{"code":"Unavailable","error":"the app could not be reached"}`,
			func(err error) bool { var e *UnavailableError; return errors.As(err, &e) }},
		{"DeadlineExceeded", `not json`,
			func(err error) bool { var e *UnavailableError; return errors.As(err, &e) }},
	} {
		if err := refusal("c1", tc.code, strings.NewReader(tc.body)); !tc.check(err) {
			t.Errorf("%s %s: got %T %v", tc.code, tc.body, err, err)
		}
	}
}
