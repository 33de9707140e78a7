# Vault policy "{{ include "broker.policyName" . }}": the shared credential broker of Helm release
# "{{ .Release.Name }}" in namespace "{{ .Release.Namespace }}". Nothing outside these paths.

# Connection entries (KV v2), <id> and below (per-generation entries <id>/<generation>):
# PutSecret creates and updates them, GetCredential reads them, an OAuth token refresh (and its
# lease) writes a new version.
path "{{ .Values.vault.kvMount }}/data/{{ include "broker.kvPath" . }}/*" {
  capabilities = ["create", "read", "update"]
}

# DeleteSecret removes an entry with every version (a metadata delete); the reconciler lists
# the entries and reads their versions to find orphans.
path "{{ .Values.vault.kvMount }}/metadata/{{ include "broker.kvPath" . }}/*" {
  capabilities = ["read", "list", "delete"]
}

# OAuth client registrations (KV v2, <connector>/<workspace>/<generation>): RegisterOAuthClient
# writes a new generation, the code exchange and every token refresh read the client secret ...
path "{{ .Values.vault.kvMount }}/data/{{ include "broker.oauthClientsPath" . }}/*" {
  capabilities = ["create", "read", "update"]
}

# ... and a replaced generation is destroyed (a metadata delete); the reconciler lists them.
path "{{ .Values.vault.kvMount }}/metadata/{{ include "broker.oauthClientsPath" . }}/*" {
  capabilities = ["read", "list", "delete"]
}

# Webhook signing secrets (KV v2, <webhook id>/<generation>): PutWebhookSecret writes a new
# generation, SignWebhook reads it (the key never leaves the broker; sidecars have no access) ...
path "{{ .Values.vault.kvMount }}/data/{{ include "broker.webhooksPath" . }}/*" {
  capabilities = ["create", "read", "update"]
}

# ... and DeleteWebhookSecret destroys a generation (a metadata delete); the reconciler lists them.
path "{{ .Values.vault.kvMount }}/metadata/{{ include "broker.webhooksPath" . }}/*" {
  capabilities = ["read", "list", "delete"]
}

# Job tokens: signed with the transit key, which never leaves Vault ...
path "{{ .Values.vault.transit.mount }}/sign/{{ .Values.vault.transit.jobTokenKey }}" {
  capabilities = ["update"]
}

# ... and verified against its public keys (every version, so that a rotation does not cut off
# tokens already handed out).
path "{{ .Values.vault.transit.mount }}/keys/{{ .Values.vault.transit.jobTokenKey }}" {
  capabilities = ["read"]
}

# The broker's own Vault token (the roles set token_no_default_policy): renewed by the broker
# while Vault allows (periodic tokens, Kubernetes and AppRole logins).
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "auth/token/revoke-self" {
  capabilities = ["update"]
}
