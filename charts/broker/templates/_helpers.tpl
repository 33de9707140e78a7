{{/*
Names, labels and the pieces shared by the shared broker and the sidecar.
*/}}

{{- define "broker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-broker, or the release name when it already contains the chart name.
The connection service chart derives the broker's admin address with the same rule.
*/}}
{{- define "broker.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "broker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "broker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "broker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "broker.labels" -}}
helm.sh/chart: {{ include "broker.chart" . }}
{{ include "broker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: integrationhub
{{- end }}

{{- define "broker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "broker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "broker.image" -}}
{{- $img := .Values.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{- define "broker.vaultRole" -}}
{{- default (include "broker.fullname" .) .Values.vault.kubernetes.role }}
{{- end }}

{{- define "broker.vaultSidecarRole" -}}
{{- default (printf "%s-sidecar" (include "broker.fullname" .)) .Values.vault.kubernetes.sidecarRole }}
{{- end }}

{{- define "broker.policyName" -}}
{{- default (include "broker.fullname" .) .Values.vault.policyName }}
{{- end }}

{{- define "broker.sidecarPolicyName" -}}
{{- default (printf "%s-sidecar" (include "broker.fullname" .)) .Values.vault.sidecarPolicyName }}
{{- end }}

{{/* KV v2 path of the connection entries below the mount, without slashes at either end. */}}
{{- define "broker.kvPath" -}}
{{- $prefix := trimAll "/" .Values.vault.pathPrefix }}
{{- if $prefix }}{{ printf "%s/connections" $prefix }}{{ else }}connections{{ end }}
{{- end }}

{{/* KV v2 path of the OAuth client registrations below the mount (<connector>/<workspace>). */}}
{{- define "broker.oauthClientsPath" -}}
{{- $prefix := trimAll "/" .Values.vault.pathPrefix }}
{{- if $prefix }}{{ printf "%s/oauth-clients" $prefix }}{{ else }}oauth-clients{{ end }}
{{- end }}

{{/* KV v2 path of the webhook signing secrets below the mount (<webhook id>/<generation>). */}}
{{- define "broker.webhooksPath" -}}
{{- $prefix := trimAll "/" .Values.vault.pathPrefix }}
{{- if $prefix }}{{ printf "%s/webhooks" $prefix }}{{ else }}webhooks{{ end }}
{{- end }}

{{/* Service accounts (namespace/name) whose sidecars log in with the sidecar role. */}}
{{- define "broker.sidecarServiceAccounts" -}}
{{- $out := list }}
{{- range .Values.sidecar.serviceAccounts }}
{{- $out = append $out (dict "name" .name "namespace" (default $.Release.Namespace .namespace)) }}
{{- end }}
{{- if .Values.sidecarExample.enabled }}
{{- $out = append $out (dict "name" (include "broker.exampleName" .) "namespace" .Release.Namespace) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{- define "broker.exampleName" -}}
{{- printf "%s-%s" (include "broker.fullname" .) .Values.sidecarExample.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Whether the kubelet probes a dedicated plain-text health port: TLS on (the kubelet's gRPC probe
speaks plain text only) or sidecar mode (the API ports are unix sockets).
Call with (dict "root" $ "sidecar" bool).
*/}}
{{- define "broker.dedicatedHealth" -}}
{{- if or .sidecar .root.Values.tls.enabled }}true{{ end }}
{{- end }}

{{/*
Environment shared by the shared broker and the sidecar: Vault, auth method, TLS, metrics.
Call with (dict "root" $ "sidecar" bool).
*/}}
{{- define "broker.env" -}}
{{- $root := .root }}
{{- $v := $root.Values.vault -}}
- name: VAULT_ADDR
  value: {{ $v.address | quote }}
- name: BROKER_VAULT_KV_MOUNT
  value: {{ $v.kvMount | quote }}
- name: BROKER_VAULT_PATH_PREFIX
  value: {{ $v.pathPrefix | quote }}
- name: BROKER_VAULT_TIMEOUT
  value: {{ $v.timeout | quote }}
- name: BROKER_VAULT_TRANSIT_MOUNT
  value: {{ $v.transit.mount | quote }}
- name: BROKER_VAULT_JOB_TOKEN_KEY
  value: {{ $v.transit.jobTokenKey | quote }}
- name: BROKER_VAULT_AUTH_METHOD
  value: {{ $v.authMethod | quote }}
{{- if eq $v.authMethod "kubernetes" }}
- name: BROKER_VAULT_K8S_MOUNT
  value: {{ $v.kubernetes.mount | quote }}
- name: BROKER_VAULT_K8S_ROLE
  value: {{ ternary (include "broker.vaultSidecarRole" $root) (include "broker.vaultRole" $root) (.sidecar | default false) | quote }}
- name: BROKER_VAULT_K8S_TOKEN_PATH
  value: /var/run/secrets/integrationhub/vault/token
{{- else if eq $v.authMethod "approle" }}
- name: BROKER_VAULT_APPROLE_MOUNT
  value: {{ $v.approle.mount | quote }}
- name: BROKER_VAULT_APPROLE_ROLE_ID
  valueFrom:
    secretKeyRef:
      name: {{ $v.approle.existingSecret }}
      key: {{ $v.approle.roleIdKey }}
- name: BROKER_VAULT_APPROLE_SECRET_ID
  valueFrom:
    secretKeyRef:
      name: {{ $v.approle.existingSecret }}
      key: {{ $v.approle.secretIdKey }}
{{- else }}
- name: VAULT_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $v.token.existingSecret }}
      key: {{ $v.token.key }}
{{- end }}
{{- if $v.tls.caSecret }}
- name: VAULT_CACERT
  value: /etc/integrationhub/vault-ca/ca.crt
{{- end }}
{{- if $v.tls.serverName }}
- name: VAULT_TLS_SERVER_NAME
  value: {{ $v.tls.serverName | quote }}
{{- end }}
- name: BROKER_SHUTDOWN_GRACE
  value: {{ $root.Values.shutdownGrace | quote }}
- name: BROKER_MAX_CONNECTION_AGE
  value: {{ $root.Values.maxConnectionAge | quote }}
{{- /* The Go runtime collects harder as it nears the container's memory limit, instead of being killed at it. */}}
- name: GOMEMLIMIT
  valueFrom:
    resourceFieldRef:
      resource: limits.memory
- name: LOG_LEVEL
  value: {{ $root.Values.logLevel | quote }}
{{- if include "broker.dedicatedHealth" . }}
- name: BROKER_HEALTH_LISTEN
  value: {{ printf ":%d" (int $root.Values.ports.health) | quote }}
{{- end }}
{{- if $root.Values.metrics.enabled }}
- name: METRICS_LISTEN
  value: {{ printf ":%d" (int $root.Values.metrics.port) | quote }}
{{- end }}
{{- if and $root.Values.tls.enabled (not .sidecar) }}
- name: BROKER_TLS_CERT_FILE
  value: /etc/integrationhub/tls/tls.crt
- name: BROKER_TLS_KEY_FILE
  value: /etc/integrationhub/tls/tls.key
- name: BROKER_TLS_CA_FILE
  value: /etc/integrationhub/tls/ca.crt
{{- /* tls.adminClientNames and adminAuth.clientNames are one list: the binary has one flag. */}}
{{- with concat $root.Values.tls.adminClientNames $root.Values.adminAuth.clientNames | uniq }}
- name: BROKER_ADMIN_CLIENT_NAMES
  value: {{ join "," . | quote }}
{{- end }}
{{- end }}
{{- /* A sidecar's admin API (a socket only it mounts) stays closed: it serves workers only. */}}
{{- if not .sidecar }}
{{- with include "broker.adminTokenSecret" $root }}
- name: BROKER_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ tpl $root.Values.adminAuth.tokenKey $root }}
{{- end }}
{{- end }}
{{- with $root.Values.connectionService.address }}
- name: BROKER_CONNECTIONS_ADDR
  value: {{ . | quote }}
- name: BROKER_CONNECTIONS_TOKEN_FILE
  value: /etc/integrationhub/connections-token/token
- name: BROKER_CACHE_TTL
  value: {{ $root.Values.cacheTTL | quote }}
{{- if include "broker.connectionsCASecret" $ }}
{{- /* A sidecar has no certificate of its own: it verifies the connection service's with the CA. */}}
- name: BROKER_CONNECTIONS_CA_FILE
  value: /etc/integrationhub/connections-ca/ca.crt
{{- end }}
{{- end }}
- name: BROKER_JWT_AUDIENCE
  value: {{ $root.Values.jobTokens.audience | quote }}
{{- if include "broker.mintsJobTokens" . }}
- name: BROKER_JWKS
  value: {{ $root.Values.jobTokens.jwksURL | default "/etc/integrationhub/scheduler/jwks.json" | quote }}
- name: BROKER_JWT_ISSUER
  value: {{ $root.Values.jobTokens.issuer | quote }}
- name: BROKER_JOB_TOKEN_MAX_TTL
  value: {{ $root.Values.jobTokens.maxTTL | quote }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The Secret holding the admin API's service token: adminAuth.tokenSecret, a template (the
umbrella chart points it at the token it shares with the connection service). Empty: none.
*/}}
{{- define "broker.adminTokenSecret" -}}
{{- with .Values.adminAuth.tokenSecret }}{{ tpl . $ }}{{ end }}
{{- end }}

{{/* Whether this broker mints job tokens: the shared one, with the scheduler's keys. Call with (dict "root" $ "sidecar" bool). */}}
{{- define "broker.mintsJobTokens" -}}
{{- $j := .root.Values.jobTokens }}
{{- if and (not .sidecar) (or $j.jwksURL $j.jwks) }}true{{ end }}
{{- end }}

{{/*
Probes on grpc.health.v1.Health. Call with (dict "root" $ "sidecar" bool).
*/}}
{{- define "broker.probes" -}}
{{- $root := .root }}
{{- $port := ternary $root.Values.ports.health $root.Values.ports.grpc (eq (include "broker.dedicatedHealth" .) "true") }}
{{- $p := $root.Values.probes -}}
livenessProbe:
  grpc:
    port: {{ $port }}
  initialDelaySeconds: {{ $p.liveness.initialDelaySeconds }}
  periodSeconds: {{ $p.liveness.periodSeconds }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
{{- /* Ready while the worker API can serve (the broker holds a valid Vault token); the overall
status, which liveness asks, stays SERVING while the process runs. */}}
readinessProbe:
  grpc:
    port: {{ $port }}
    service: integrationhub.broker.v1.CredentialBroker
  initialDelaySeconds: {{ $p.readiness.initialDelaySeconds }}
  periodSeconds: {{ $p.readiness.periodSeconds }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
{{- /* Started once the worker API serves: a native sidecar starts the worker only then. */}}
startupProbe:
  grpc:
    port: {{ $port }}
    service: integrationhub.broker.v1.CredentialBroker
  periodSeconds: {{ $p.startup.periodSeconds }}
  timeoutSeconds: {{ $p.startup.timeoutSeconds }}
  failureThreshold: {{ $p.startup.failureThreshold }}
{{- end }}

{{/*
Volumes every broker pod needs: a writable /tmp, the projected token Vault's Kubernetes auth
checks, Vault's CA, the TLS Secret. Call with (dict "root" $ "sidecar" bool).
*/}}
{{- define "broker.volumes" -}}
{{- $root := .root -}}
- name: broker-tmp
  emptyDir:
    sizeLimit: 16Mi
{{- if eq $root.Values.vault.authMethod "kubernetes" }}
- name: broker-vault-token
  projected:
    sources:
      - serviceAccountToken:
          path: token
          audience: {{ $root.Values.vault.kubernetes.audience | quote }}
          expirationSeconds: {{ $root.Values.vault.kubernetes.tokenExpirationSeconds }}
{{- end }}
{{- with $root.Values.vault.tls.caSecret }}
- name: broker-vault-ca
  secret:
    secretName: {{ . }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- if and $root.Values.tls.enabled (not .sidecar) }}
- name: broker-tls
  secret:
    secretName: {{ $root.Values.tls.secretName }}
{{- end }}
{{- if and (include "broker.mintsJobTokens" .) (not $root.Values.jobTokens.jwksURL) }}
- name: broker-scheduler-jwks
  configMap:
    name: {{ include "broker.fullname" $root }}-scheduler
{{- end }}
{{- with include "broker.connectionsCASecret" . }}
- name: broker-connections-ca
  secret:
    secretName: {{ . }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- if $root.Values.connectionService.address }}
- name: broker-connections-token
  secret:
    secretName: {{ required "connectionService.tokenSecret is required when connectionService.address is set" $root.Values.connectionService.tokenSecret }}
    items:
      - key: {{ $root.Values.connectionService.tokenKey }}
        path: token
{{- end }}
{{- end }}

{{- define "broker.volumeMounts" -}}
{{- $root := .root -}}
- name: broker-tmp
  mountPath: /tmp
{{- if eq $root.Values.vault.authMethod "kubernetes" }}
- name: broker-vault-token
  mountPath: /var/run/secrets/integrationhub/vault
  readOnly: true
{{- end }}
{{- if $root.Values.vault.tls.caSecret }}
- name: broker-vault-ca
  mountPath: /etc/integrationhub/vault-ca
  readOnly: true
{{- end }}
{{- if and $root.Values.tls.enabled (not .sidecar) }}
- name: broker-tls
  mountPath: /etc/integrationhub/tls
  readOnly: true
{{- end }}
{{- if $root.Values.connectionService.address }}
- name: broker-connections-token
  mountPath: /etc/integrationhub/connections-token
  readOnly: true
{{- end }}
{{- if include "broker.connectionsCASecret" . }}
- name: broker-connections-ca
  mountPath: /etc/integrationhub/connections-ca
  readOnly: true
{{- end }}
{{- if and (include "broker.mintsJobTokens" .) (not $root.Values.jobTokens.jwksURL) }}
- name: broker-scheduler-jwks
  mountPath: /etc/integrationhub/scheduler
  readOnly: true
{{- end }}
{{- end }}

{{/*
The Secret whose ca.crt verifies the connection service, for a sidecar with TLS on (the shared
broker uses its own TLS Secret): connectionService.caSecret, else tls.secretName. Empty otherwise.
Call with (dict "root" $ "sidecar" bool).
*/}}
{{- define "broker.connectionsCASecret" -}}
{{- $v := .root.Values }}
{{- if and .sidecar $v.tls.enabled $v.connectionService.address }}
{{- default $v.tls.secretName $v.connectionService.caSecret }}
{{- end }}
{{- end }}

{{/* Prometheus scrape annotations, when metrics are on and no ServiceMonitor scrapes them. */}}
{{- define "broker.scrapeAnnotations" -}}
{{- if and .Values.metrics.enabled (not .Values.metrics.serviceMonitor.enabled) }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
prometheus.io/path: {{ .Values.metrics.path | quote }}
{{- end }}
{{- end }}

{{/*
Checks the schema cannot express across keys; each fails the install with a message that says
what to set.
*/}}
{{- define "broker.validate" -}}
{{- $v := .Values.vault }}
{{- if and (or .Values.strict (and .Values.global .Values.global.strict)) (not .Values.connectionService.address) }}
{{- fail "strict mode: connectionService.address is empty, so the worker API would refuse every call: set connectionService.address and connectionService.tokenSecret (the broker's token for the connection service)" }}
{{- end }}
{{- $j := .Values.jobTokens }}
{{- if and (or $j.jwksURL $j.jwks) (or (not $j.issuer) (not .Values.connectionService.address)) }}
{{- fail "jobTokens.jwksURL/jwks turn MintJobToken on: set jobTokens.issuer (the scheduler's token issuer) and connectionService.address (recipes are read from it)" }}
{{- end }}
{{- if and (eq $v.authMethod "kubernetes") (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "serviceAccount.create is false: set serviceAccount.name, or the Vault role would bind every pod running as \"default\"" }}
{{- end }}
{{- if and (eq $v.authMethod "token") (not $v.token.existingSecret) }}
{{- fail "vault.authMethod is token: set vault.token.existingSecret to a Secret holding the Vault token" }}
{{- end }}
{{- if and (eq $v.authMethod "approle") (not $v.approle.existingSecret) }}
{{- fail "vault.authMethod is approle: set vault.approle.existingSecret to a Secret holding role-id and secret-id" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled is true: set tls.secretName to a kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt" }}
{{- end }}
{{- if and $v.configure.enabled (not $v.configure.tokenSecret.name) }}
{{- fail "vault.configure.enabled is true: set vault.configure.tokenSecret.name to a Secret holding a Vault token that may write policies and auth roles" }}
{{- end }}
{{- if and $v.configure.enabled (ne $v.authMethod "kubernetes") }}
{{- fail "vault.configure.enabled writes Kubernetes auth roles: it needs vault.authMethod=kubernetes" }}
{{- end }}
{{- $ports := list (int .Values.ports.grpc) (int .Values.ports.admin) (int .Values.ports.health) }}
{{- if .Values.metrics.enabled }}{{ $ports = append $ports (int .Values.metrics.port) }}{{ end }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- fail (printf "ports.grpc, ports.admin, ports.health and metrics.port must all differ (got %v)" $ports) }}
{{- end }}
{{- end }}

{{/* The data of the Vault ConfigMaps: the policy and role files, rendered for this release. */}}
{{- define "broker.vaultFiles" -}}
{{- if .Values.shared.enabled }}
broker-policy.hcl: |
  {{- tpl (.Files.Get "files/vault/broker-policy.hcl") . | trim | nindent 2 }}
broker-role.json: |
  {{- tpl (.Files.Get "files/vault/broker-role.json") . | trim | nindent 2 }}
{{- end }}
{{- if ne (include "broker.sidecarServiceAccounts" .) "[]" }}
broker-sidecar-policy.hcl: |
  {{- tpl (.Files.Get "files/vault/broker-sidecar-policy.hcl") . | trim | nindent 2 }}
broker-sidecar-role.json: |
  {{- tpl (.Files.Get "files/vault/broker-sidecar-role.json") . | trim | nindent 2 }}
{{- end }}
configure.sh: |
  {{- .Files.Get "files/vault/configure.sh" | trim | nindent 2 }}
{{- end }}

{{/* A fixed image (hook, test and example pods): repository@digest when a digest is set, else repository:tag. */}}
{{- define "broker.fixedImage" -}}
{{- if .digest }}{{ printf "%s@%s" .repository .digest }}{{ else }}{{ printf "%s:%s" .repository .tag }}{{ end }}
{{- end }}
