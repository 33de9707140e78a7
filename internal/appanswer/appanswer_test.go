package appanswer

import (
	"testing"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
)

func TestRule(t *testing.T) {
	tests := []struct {
		status  int
		outcome brokerv1.TestOutcome
		reason  connectionsv1.StatusReason
		meaning bool
	}{
		{200, brokerv1.TestOutcome_TEST_OUTCOME_OK, connectionsv1.StatusReason_STATUS_REASON_UNSPECIFIED, false},
		{204, brokerv1.TestOutcome_TEST_OUTCOME_OK, connectionsv1.StatusReason_STATUS_REASON_UNSPECIFIED, false},
		{401, brokerv1.TestOutcome_TEST_OUTCOME_INVALID_CREDENTIALS, connectionsv1.StatusReason_STATUS_REASON_MODIFIED_CREDENTIALS, true},
		{403, brokerv1.TestOutcome_TEST_OUTCOME_INSUFFICIENT_PERMISSIONS, connectionsv1.StatusReason_STATUS_REASON_INSUFFICIENT_PERMISSIONS, true},
		{404, brokerv1.TestOutcome_TEST_OUTCOME_PROVIDER_UNREACHABLE, connectionsv1.StatusReason_STATUS_REASON_PROVIDER_UNREACHABLE, false},
		{500, brokerv1.TestOutcome_TEST_OUTCOME_PROVIDER_UNREACHABLE, connectionsv1.StatusReason_STATUS_REASON_PROVIDER_UNREACHABLE, false},
		{302, brokerv1.TestOutcome_TEST_OUTCOME_PROVIDER_UNREACHABLE, connectionsv1.StatusReason_STATUS_REASON_PROVIDER_UNREACHABLE, false},
	}
	for _, tt := range tests {
		o := Outcome(tt.status)
		if o != tt.outcome || Reason(o) != tt.reason || (Meaning(o) != "") != tt.meaning {
			t.Errorf("%d: %v, %v, %q; want %v, %v, meaning=%v", tt.status, o, Reason(o), Meaning(o), tt.outcome, tt.reason, tt.meaning)
		}
	}
	if Reason(brokerv1.TestOutcome_TEST_OUTCOME_REVOKED) != connectionsv1.StatusReason_STATUS_REASON_REVOKED {
		t.Error("a revoked grant is not reason REVOKED")
	}
	// Every outcome has a reason that is its own (none left to the default
	// by accident).
	for v := range brokerv1.TestOutcome_name {
		o := brokerv1.TestOutcome(v)
		if o == brokerv1.TestOutcome_TEST_OUTCOME_UNSPECIFIED || o == brokerv1.TestOutcome_TEST_OUTCOME_OK {
			continue
		}
		if Reason(o) == connectionsv1.StatusReason_STATUS_REASON_UNSPECIFIED {
			t.Errorf("outcome %v has no status reason", o)
		}
	}
}
