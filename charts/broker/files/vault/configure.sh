#!/bin/sh
# Writes the broker's Vault policies and Kubernetes auth roles, and creates the job-token transit
# key when asked. Run by the chart's optional hook Job (vault.configure.enabled) with the files of
# the ConfigMap <full name>-vault in $FILES; a Vault operator can run the same commands by hand.
#
# Environment: VAULT_ADDR, VAULT_TOKEN (allowed to write sys/policy, auth/<mount>/role and, with
# CREATE_TRANSIT_KEY=true, sys/mounts and transit/keys), FILES, POLICY, SIDECAR_POLICY, K8S_MOUNT,
# ROLE, SIDECAR_ROLE, TRANSIT_MOUNT, JOB_TOKEN_KEY, CREATE_TRANSIT_KEY.
set -eu

# The shared broker's policy and role (absent when shared.enabled=false).
if [ -f "${FILES}/broker-role.json" ]; then
  echo "vault: writing policy ${POLICY}"
  vault policy write "${POLICY}" "${FILES}/broker-policy.hcl"
  echo "vault: writing role auth/${K8S_MOUNT}/role/${ROLE}"
  vault write "auth/${K8S_MOUNT}/role/${ROLE}" "@${FILES}/broker-role.json"
fi

# The sidecars' policy and role (absent when no worker service account runs a sidecar).

if [ -f "${FILES}/broker-sidecar-role.json" ]; then
  echo "vault: writing policy ${SIDECAR_POLICY}"
  vault policy write "${SIDECAR_POLICY}" "${FILES}/broker-sidecar-policy.hcl"
  echo "vault: writing role auth/${K8S_MOUNT}/role/${SIDECAR_ROLE}"
  vault write "auth/${K8S_MOUNT}/role/${SIDECAR_ROLE}" "@${FILES}/broker-sidecar-role.json"
fi

if [ "${CREATE_TRANSIT_KEY}" = "true" ]; then
  if ! vault secrets list -format=json | grep -q "\"${TRANSIT_MOUNT}/\""; then
    echo "vault: enabling transit at ${TRANSIT_MOUNT}/"
    vault secrets enable -path="${TRANSIT_MOUNT}" transit
  fi
  if vault read -format=json "${TRANSIT_MOUNT}/keys/${JOB_TOKEN_KEY}" >/dev/null 2>&1; then
    echo "vault: transit key ${TRANSIT_MOUNT}/keys/${JOB_TOKEN_KEY} exists; not touched"
  else
    echo "vault: creating transit key ${TRANSIT_MOUNT}/keys/${JOB_TOKEN_KEY} (ed25519)"
    vault write -f "${TRANSIT_MOUNT}/keys/${JOB_TOKEN_KEY}" type=ed25519 exportable=false
  fi
fi
echo "vault: done"
