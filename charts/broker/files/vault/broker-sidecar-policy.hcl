# Vault policy "{{ include "broker.sidecarPolicyName" . }}": credential brokers running as sidecars
# beside recipe workers (Helm release "{{ .Release.Name }}"). They serve GetCredential only: they
# read entries and write back refreshed OAuth tokens, but never create or delete an entry and
# never sign a job token.

path "{{ .Values.vault.kvMount }}/data/{{ include "broker.kvPath" . }}/*" {
  capabilities = ["read", "update"]
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
