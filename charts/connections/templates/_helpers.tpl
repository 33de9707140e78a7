{{/*
Names, labels and the pieces shared by the Deployment and the migration Job.
*/}}

{{- define "connections.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-connections, or the release name when it already contains the chart name. */}}
{{- define "connections.fullname" -}}
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

{{- define "connections.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "connections.selectorLabels" -}}
app.kubernetes.io/name: {{ include "connections.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "connections.labels" -}}
helm.sh/chart: {{ include "connections.chart" . }}
{{ include "connections.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: integrationhub
{{- end }}

{{- define "connections.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "connections.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "connections.image" -}}
{{- $img := .Values.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{/*
The broker's admin address. By default the shared broker of the same release, named as the
broker chart names it: <release>-broker, or <release> when that already contains "broker".
*/}}
{{- define "connections.brokerAdminAddress" -}}
{{- if .Values.broker.adminAddress }}
{{- tpl .Values.broker.adminAddress . }}
{{- else }}
{{- $broker := ternary .Release.Name (printf "%s-broker" .Release.Name) (contains "broker" .Release.Name) | trunc 63 | trimSuffix "-" }}
{{- printf "%s:%d" $broker (int .Values.broker.adminPort) }}
{{- end }}
{{- end }}

{{/* The Secret holding the DSN: the operator's, or the chart's. */}}
{{- define "connections.databaseSecretName" -}}
{{- default (printf "%s-database" (include "connections.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{- define "connections.scrapeAnnotations" -}}
{{- if and .Values.metrics.enabled (not .Values.metrics.serviceMonitor.enabled) }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
prometheus.io/path: {{ .Values.metrics.path | quote }}
{{- end }}
{{- end }}

{{/* The DSN as an env var from a Secret. Call with (dict "root" $ "secret" name [ "key" key ]). */}}
{{- define "connections.databaseEnv" -}}
- name: CONNECTIONS_DATABASE
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key | default .root.Values.database.secretKey }}
{{- end }}

{{/* Every environment variable of the server container but the DSN. */}}
{{- define "connections.env" -}}
- name: CONNECTIONS_LISTEN
  value: {{ printf ":%d" (int .Values.ports.grpc) | quote }}
- name: CONNECTIONS_HTTP_LISTEN
  value: {{ printf ":%d" (int .Values.ports.http) | quote }}
- name: CONNECTIONS_JWT_ISSUER
  value: {{ .Values.auth.issuer | quote }}
- name: CONNECTIONS_JWT_AUDIENCE
  value: {{ .Values.auth.audience | quote }}
- name: CONNECTIONS_JWKS
  value: {{ .Values.auth.jwksURL | default "/etc/integrationhub/auth/jwks.json" | quote }}
- name: CONNECTIONS_WATCH_POLL
  value: {{ .Values.watchPoll | quote }}
- name: CONNECTIONS_ACCESS_RETENTION
  value: {{ .Values.accessRetention | quote }}
{{- if .Values.migrations.enabled }}
{{- /* The migration Job changes the schema; the pods only check it is current. */}}
- name: CONNECTIONS_SKIP_MIGRATIONS
  value: "true"
{{- end }}
- name: CONNECTIONS_RECONCILE_PERIOD
  value: {{ .Values.reconcilePeriod | quote }}
- name: CONNECTIONS_CHECK_PERIOD
  value: {{ .Values.scheduledChecks.period | quote }}
- name: CONNECTIONS_CHECK_INTERVAL
  value: {{ .Values.scheduledChecks.interval | quote }}
- name: CONNECTIONS_CHECK_RATE
  value: {{ .Values.scheduledChecks.rate | quote }}
- name: CONNECTIONS_WEBHOOK_PERIOD
  value: {{ .Values.webhooks.period | quote }}
- name: CONNECTIONS_WEBHOOK_RETRY_SCHEDULE
  value: {{ .Values.webhooks.retrySchedule | quote }}
- name: CONNECTIONS_WEBHOOK_TIMEOUT
  value: {{ .Values.webhooks.timeout | quote }}
- name: CONNECTIONS_WEBHOOK_ALLOW_PRIVATE
  value: {{ .Values.webhooks.allowPrivate | quote }}
- name: CONNECTIONS_SECRET_WRITE_TIMEOUT
  value: {{ .Values.secretWriteTimeout | quote }}
- name: CONNECTIONS_REPLACED_SECRET_GRACE
  value: {{ .Values.replacedSecretGrace | quote }}
- name: CONNECTIONS_BROKER_ADMIN_ADDR
  value: {{ include "connections.brokerAdminAddress" . | quote }}
{{- /* Templates: the umbrella chart points them at the token it shares with the broker. */}}
{{- with .Values.broker.adminTokenSecret }}
- name: CONNECTIONS_BROKER_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ tpl . $ }}
      key: {{ tpl $.Values.broker.adminTokenKey $ }}
{{- end }}
- name: CONNECTIONS_OAUTH_STATE_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "connections.oauthStateSecretName" . }}
      key: state-key
- name: CONNECTIONS_OAUTH_STATE_TTL
  value: {{ .Values.oauth.stateTTL | quote }}
{{- with (include "connections.oauthRedirectURL" .) }}
- name: CONNECTIONS_OAUTH_REDIRECT_URL
  value: {{ . | quote }}
{{- end }}
{{- if .Values.catalog.connectors }}
- name: CONNECTIONS_CATALOG_FILE
  value: /etc/integrationhub/catalog/connectors.yaml
{{- end }}
- name: CONNECTIONS_SHUTDOWN_GRACE
  value: {{ .Values.shutdownGrace | quote }}
{{- /* The Go runtime collects harder as it nears the container's memory limit, instead of being killed at it. */}}
- name: GOMEMLIMIT
  valueFrom:
    resourceFieldRef:
      resource: limits.memory
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- if .Values.metrics.enabled }}
- name: METRICS_LISTEN
  value: {{ printf ":%d" (int .Values.metrics.port) | quote }}
{{- end }}
{{- if .Values.tls.enabled }}
- name: CONNECTIONS_HEALTH_LISTEN
  value: {{ printf ":%d" (int .Values.ports.health) | quote }}
- name: CONNECTIONS_TLS_CERT_FILE
  value: /etc/integrationhub/tls/tls.crt
- name: CONNECTIONS_TLS_KEY_FILE
  value: /etc/integrationhub/tls/tls.key
- name: CONNECTIONS_TLS_CA_FILE
  value: /etc/integrationhub/tls/ca.crt
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Probes on grpc.health.v1.Health: the gRPC port, or the plain-text health port with TLS. */}}
{{- define "connections.probes" -}}
{{- $port := ternary .Values.ports.health .Values.ports.grpc .Values.tls.enabled }}
{{- $p := .Values.probes -}}
livenessProbe:
  grpc:
    port: {{ $port }}
  initialDelaySeconds: {{ $p.liveness.initialDelaySeconds }}
  periodSeconds: {{ $p.liveness.periodSeconds }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
readinessProbe:
  grpc:
    port: {{ $port }}
  initialDelaySeconds: {{ $p.readiness.initialDelaySeconds }}
  periodSeconds: {{ $p.readiness.periodSeconds }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
{{- end }}

{{/* Checks the schema cannot express across keys. */}}
{{- define "connections.validate" -}}
{{- include "connections.strict" . }}
{{- if and (not .Values.database.existingSecret) (not .Values.database.dsn) }}
{{- fail "set database.dsn (a postgres:// DSN) or database.existingSecret (a Secret holding one)" }}
{{- end }}
{{- if and (not .Values.auth.jwksURL) (not .Values.auth.jwks) }}
{{- fail "set auth.jwksURL (the token issuer's JWKS URL) or auth.jwks (the key set itself)" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled is true: set tls.secretName to a kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt" }}
{{- end }}
{{- $ports := list (int .Values.ports.grpc) (int .Values.ports.http) (int .Values.ports.health) }}
{{- if .Values.metrics.enabled }}{{ $ports = append $ports (int .Values.metrics.port) }}{{ end }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- fail (printf "ports.grpc, ports.http, ports.health and metrics.port must all differ (got %v)" $ports) }}
{{- end }}
{{- end }}

{{/*
Strict mode (strict or global.strict): refuse to install while a placeholder remains, listing
every one. Without it these install silently and fail at run time.
*/}}
{{- define "connections.strict" -}}
{{- if or .Values.strict (and .Values.global .Values.global.strict) }}
{{- $problems := list }}
{{- if not .Values.database.existingSecret }}
{{- $u := urlParse .Values.database.dsn }}
{{- if not (contains ":" $u.userinfo) }}
{{- $problems = append $problems "database.dsn names no password (the default is a placeholder): set database.existingSecret to a Secret holding the real DSN" }}
{{- end }}
{{- end }}
{{- if or (contains "integrationhub.example" .Values.auth.issuer) (contains "integrationhub.example" .Values.auth.jwksURL) }}
{{- $problems = append $problems "auth.issuer / auth.jwksURL are the placeholders (auth.integrationhub.example): set your platform's token issuer" }}
{{- end }}
{{- $redirect := include "connections.oauthRedirectURL" . }}
{{- if not $redirect }}
{{- $problems = append $problems "no OAuth redirect URL (the binary would use http://:8080/oauth2/callback): set oauth.redirectURL, or ingress.enabled with ingress.host" }}
{{- else if contains "integrationhub.example" $redirect }}
{{- $problems = append $problems (printf "the OAuth redirect URL %s is a placeholder: set ingress.host or oauth.redirectURL" $redirect) }}
{{- end }}
{{- with $problems }}
{{- fail (printf "strict mode: placeholders remain:\n- %s" (join "\n- " .)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret holding the OAuth state key. */}}
{{- define "connections.oauthStateSecretName" -}}
{{- .Values.oauth.stateKeySecret | default (printf "%s-oauth-state" (include "connections.fullname" .)) -}}
{{- end }}

{{/* The callback's public URL: explicit, or derived from the ingress. */}}
{{- define "connections.oauthRedirectURL" -}}
{{- if .Values.oauth.redirectURL -}}
{{- .Values.oauth.redirectURL -}}
{{- else if .Values.ingress.enabled -}}
{{- printf "https://%s/oauth2/callback" .Values.ingress.host -}}
{{- end -}}
{{- end }}

{{/* A fixed image (hook, test and example pods): repository@digest when a digest is set, else repository:tag. */}}
{{- define "connections.fixedImage" -}}
{{- if .digest }}{{ printf "%s@%s" .repository .digest }}{{ else }}{{ printf "%s:%s" .repository .tag }}{{ end }}
{{- end }}
