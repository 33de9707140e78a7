# Vault policy "{{ include "broker.sidecarPolicyName" . }}": credential brokers running as sidecars
# beside recipe workers (Helm release "{{ .Release.Name }}"). They serve GetCredential only: they
# read entries and write back refreshed OAuth tokens (a refresh may write the entry of a new
# generation: create), but never delete an entry, never register an OAuth client and never sign
# a job token.

path "{{ .Values.vault.kvMount }}/data/{{ include "broker.kvPath" . }}/*" {
  capabilities = ["create", "read", "update"]
}

# OAuth client registrations: every token refresh reads the client secret.
path "{{ .Values.vault.kvMount }}/data/{{ include "broker.oauthClientsPath" . }}/*" {
  capabilities = ["read"]
}

path "{{ .Values.vault.transit.mount }}/keys/{{ .Values.vault.transit.jobTokenKey }}" {
  capabilities = ["read"]
}

path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "auth/token/revoke-self" {
  capabilities = ["update"]
}
