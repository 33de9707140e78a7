// Package appanswer says what an app's HTTP answer to a request carrying a
// credential means for the connection: one rule for the broker's test
// requests, its verification of worker reports, and the connection
// service's TestConnection.
package appanswer

import (
	"net/http"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
)

// Outcome classifies the HTTP status an app answered: 2xx accepted, 401
// the credentials are no longer valid, 403 they lack a permission; anything
// else says nothing about the credentials (the app is unreachable or
// failing).
func Outcome(status int) brokerv1.TestOutcome {
	switch {
	case status >= 200 && status < 300:
		return brokerv1.TestOutcome_TEST_OUTCOME_OK
	case status == http.StatusUnauthorized:
		return brokerv1.TestOutcome_TEST_OUTCOME_INVALID_CREDENTIALS
	case status == http.StatusForbidden:
		return brokerv1.TestOutcome_TEST_OUTCOME_INSUFFICIENT_PERMISSIONS
	}
	return brokerv1.TestOutcome_TEST_OUTCOME_PROVIDER_UNREACHABLE
}

// Reason is the status reason of a connection whose check ended in o
// (UNSPECIFIED for OK).
func Reason(o brokerv1.TestOutcome) connectionsv1.StatusReason {
	switch o {
	case brokerv1.TestOutcome_TEST_OUTCOME_OK:
		return connectionsv1.StatusReason_STATUS_REASON_UNSPECIFIED
	case brokerv1.TestOutcome_TEST_OUTCOME_INVALID_CREDENTIALS:
		return connectionsv1.StatusReason_STATUS_REASON_MODIFIED_CREDENTIALS
	case brokerv1.TestOutcome_TEST_OUTCOME_INSUFFICIENT_PERMISSIONS:
		return connectionsv1.StatusReason_STATUS_REASON_INSUFFICIENT_PERMISSIONS
	case brokerv1.TestOutcome_TEST_OUTCOME_REVOKED:
		return connectionsv1.StatusReason_STATUS_REASON_REVOKED
	}
	return connectionsv1.StatusReason_STATUS_REASON_PROVIDER_UNREACHABLE
}

// Meaning says, for people, what a refusal means ("" for other outcomes).
func Meaning(o brokerv1.TestOutcome) string {
	switch o {
	case brokerv1.TestOutcome_TEST_OUTCOME_INVALID_CREDENTIALS:
		return "the credentials were changed or revoked"
	case brokerv1.TestOutcome_TEST_OUTCOME_INSUFFICIENT_PERMISSIONS:
		return "the account lacks a permission or scope"
	}
	return ""
}
