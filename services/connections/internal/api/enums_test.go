package api

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"
)

// Every value of every stored enum has exactly one stored word: the proto
// name, lower case, without its prefix (the spelling rows already hold), and
// the word reads back as the same value. A value added to a proto without a
// word here fails this test instead of being stored as "".
func TestStoredEnumsAreExhaustive(t *testing.T) {
	check := func(t *testing.T, d protoreflect.EnumDescriptor, prefix string, stored func(int32) string, of func(string) int32) {
		t.Helper()
		checkSpelled(t, d, prefix, strings.ToLower, stored, of)
	}
	t.Run("webhook event type", func(t *testing.T) {
		// "CONNECTION_CHECK_FAILED" is "connection.check_failed".
		dotted := func(s string) string { return strings.Replace(strings.ToLower(s), "_", ".", 1) }
		checkSpelled(t, connectionsv1.WebhookEventType(0).Descriptor(), "WEBHOOK_EVENT_TYPE_", dotted,
			func(n int32) string { return webhookEvents.stored(connectionsv1.WebhookEventType(n)) },
			func(w string) int32 { return int32(webhookEvents.of(w)) })
	})
	t.Run("webhook delivery state", func(t *testing.T) {
		check(t, connectionsv1.WebhookDeliveryState(0).Descriptor(), "WEBHOOK_DELIVERY_STATE_",
			func(n int32) string { return deliveryStates.stored(connectionsv1.WebhookDeliveryState(n)) },
			func(w string) int32 { return int32(deliveryStates.of(w)) })
	})
	t.Run("environment", func(t *testing.T) {
		check(t, connectionsv1.Environment(0).Descriptor(), "ENVIRONMENT_",
			func(n int32) string { return environments.stored(connectionsv1.Environment(n)) },
			func(w string) int32 { return int32(environments.of(w)) })
	})
	t.Run("status", func(t *testing.T) {
		check(t, connectionsv1.ConnectionStatus(0).Descriptor(), "CONNECTION_STATUS_",
			func(n int32) string { return statuses.stored(connectionsv1.ConnectionStatus(n)) },
			func(w string) int32 { return int32(statuses.of(w)) })
	})
	t.Run("reason", func(t *testing.T) {
		check(t, connectionsv1.StatusReason(0).Descriptor(), "STATUS_REASON_",
			func(n int32) string { return reasons.stored(connectionsv1.StatusReason(n)) },
			func(w string) int32 { return int32(reasons.of(w)) })
	})
	t.Run("auth type", func(t *testing.T) {
		check(t, credentialv1.AuthType(0).Descriptor(), "AUTH_TYPE_",
			func(n int32) string { return authTypes.stored(credentialv1.AuthType(n)) },
			func(w string) int32 { return int32(authTypes.of(w)) })
	})
	t.Run("access decision", func(t *testing.T) {
		check(t, connectionsv1.AccessDecision(0).Descriptor(), "ACCESS_DECISION_",
			func(n int32) string { return decisions.stored(connectionsv1.AccessDecision(n)) },
			func(w string) int32 { return int32(decisions.of(w)) })
	})
}

// checkSpelled checks one enum's table: each value's word is spell of its
// name without prefix, and reads back.
func checkSpelled(t *testing.T, d protoreflect.EnumDescriptor, prefix string, spell func(string) string, stored func(int32) string, of func(string) int32) {
	t.Helper()
	seen := map[string]bool{}
	for i := range d.Values().Len() {
		v := d.Values().Get(i)
		word := stored(int32(v.Number()))
		if v.Number() == 0 {
			if word != "" || of("") != 0 {
				t.Errorf("%s: unspecified is stored as %q, want \"\"", v.Name(), word)
			}
			continue
		}
		if want := spell(strings.TrimPrefix(string(v.Name()), prefix)); word != want {
			t.Errorf("%s is stored as %q, want %q", v.Name(), word, want)
		}
		if seen[word] {
			t.Errorf("%s: word %q is taken twice", v.Name(), word)
		}
		seen[word] = true
		if got := of(word); got != int32(v.Number()) {
			t.Errorf("%q reads back as %d, want %s", word, got, v.Name())
		}
	}
	if of("no_such_word") != 0 {
		t.Error("an unknown word reads as a value")
	}
}
