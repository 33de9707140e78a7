package api

import (
	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"

	"github.com/integrationhub/connections/services/connections/internal/store"
)

// The store keeps enums as short lower-case words ("production", "active",
// "basic"): the proto name without its prefix; unspecified is "". Each enum
// has one table here, the only place its stored spelling is written;
// enums_test.go checks every table against every value the protos define.

// storedEnum maps one proto enum to its stored words and back.
type storedEnum[E ~int32] struct {
	word  map[E]string
	value map[string]E
}

func newStoredEnum[E ~int32](words map[E]string) storedEnum[E] {
	m := storedEnum[E]{word: words, value: make(map[string]E, len(words))}
	for e, w := range words {
		m.value[w] = e
	}
	return m
}

// stored is e's stored word; "" for unspecified.
func (m storedEnum[E]) stored(e E) string { return m.word[e] }

// of is the value a stored word names; unspecified for "" (and for a word
// no table has, which only a hand-edited row can hold).
func (m storedEnum[E]) of(word string) E { return m.value[word] }

var (
	environments = newStoredEnum(map[connectionsv1.Environment]string{
		connectionsv1.Environment_ENVIRONMENT_PRODUCTION: "production",
		connectionsv1.Environment_ENVIRONMENT_SANDBOX:    "sandbox",
	})
	statuses = newStoredEnum(map[connectionsv1.ConnectionStatus]string{
		connectionsv1.ConnectionStatus_CONNECTION_STATUS_PENDING:      store.StatusPending,
		connectionsv1.ConnectionStatus_CONNECTION_STATUS_ACTIVE:       store.StatusActive,
		connectionsv1.ConnectionStatus_CONNECTION_STATUS_INVALID:      store.StatusInvalid,
		connectionsv1.ConnectionStatus_CONNECTION_STATUS_DISCONNECTED: store.StatusDisconnected,
	})
	reasons = newStoredEnum(map[connectionsv1.StatusReason]string{
		connectionsv1.StatusReason_STATUS_REASON_MODIFIED_CREDENTIALS:     "modified_credentials",
		connectionsv1.StatusReason_STATUS_REASON_INSUFFICIENT_PERMISSIONS: "insufficient_permissions",
		connectionsv1.StatusReason_STATUS_REASON_REVOKED:                  "revoked",
		connectionsv1.StatusReason_STATUS_REASON_PROVIDER_UNREACHABLE:     "provider_unreachable",
		connectionsv1.StatusReason_STATUS_REASON_AUTHORIZATION_REQUIRED:   "authorization_required",
	})
	authTypes = newStoredEnum(map[credentialv1.AuthType]string{
		credentialv1.AuthType_AUTH_TYPE_BASIC:                     "basic",
		credentialv1.AuthType_AUTH_TYPE_API_KEY:                   "api_key",
		credentialv1.AuthType_AUTH_TYPE_OAUTH2_AUTHORIZATION_CODE: "oauth2_authorization_code",
		credentialv1.AuthType_AUTH_TYPE_OAUTH2_CLIENT_CREDENTIALS: "oauth2_client_credentials",
		credentialv1.AuthType_AUTH_TYPE_OAUTH1:                    "oauth1",
		credentialv1.AuthType_AUTH_TYPE_CUSTOM_HEADER:             "custom_header",
	})
	// Webhook event types are stored, and sent as the payload's type, as
	// the dotted names of the Standard Webhooks convention.
	webhookEvents = newStoredEnum(map[connectionsv1.WebhookEventType]string{
		connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_INVALID:      eventInvalid,
		connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_REAUTHORIZED: eventReauthorized,
		connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_DELETED:      eventDeleted,
		connectionsv1.WebhookEventType_WEBHOOK_EVENT_TYPE_CONNECTION_CHECK_FAILED: eventCheckFailed,
	})
	deliveryStates = newStoredEnum(map[connectionsv1.WebhookDeliveryState]string{
		connectionsv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING:   store.DeliveryPending,
		connectionsv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_SUCCEEDED: store.DeliverySucceeded,
		connectionsv1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_FAILED:    store.DeliveryFailed,
	})
	decisions = newStoredEnum(map[connectionsv1.AccessDecision]string{
		connectionsv1.AccessDecision_ACCESS_DECISION_ALLOWED: store.AccessAllowed,
		connectionsv1.AccessDecision_ACCESS_DECISION_DENIED:  store.AccessDenied,
	})
)
