{{/*
The broker as a sidecar beside a recipe worker.

Every template here takes the broker chart's context: "." inside this chart, and
".Subcharts.broker" in a chart that lists this one as a dependency. The worker reaches the
broker on a unix socket in a shared emptyDir; the admin API listens on a second socket in a
volume only the broker mounts, so the worker cannot reach it.

  spec:
    initContainers:                      # sidecar.native: true (Kubernetes >= 1.29)
      {{- include "broker.sidecar.container" .Subcharts.broker | nindent 6 }}
    containers:
      - name: worker
        env:
          {{- include "broker.sidecar.workerEnv" .Subcharts.broker | nindent 10 }}
        volumeMounts:
          {{- include "broker.sidecar.workerVolumeMount" .Subcharts.broker | nindent 10 }}
    volumes:
      {{- include "broker.sidecar.volumes" .Subcharts.broker | nindent 6 }}
  and, in the pod template's metadata, the label that admits the sidecar through the connection
  service's NetworkPolicy, and the annotations for Prometheus:
    labels:
      {{- include "broker.sidecar.podLabels" .Subcharts.broker | nindent 6 }}
    annotations:
      {{- include "broker.sidecar.podAnnotations" .Subcharts.broker | nindent 6 }}

With sidecar.native: false, put "broker.sidecar.container" under containers instead.
The pod's service account must be listed in sidecar.serviceAccounts, which binds it to the
sidecar's Vault role.
*/}}

{{- define "broker.sidecar.socketPath" -}}
{{- printf "%s/%s" (trimSuffix "/" .Values.sidecar.socketDir) .Values.sidecar.socketName }}
{{- end }}

{{/* Non-empty when the sidecar serves the egress proxy (it needs the connection service). */}}
{{- define "broker.sidecar.proxyOn" -}}
{{- if and .Values.sidecar.proxy.enabled .Values.connectionService.address }}on{{ end }}
{{- end }}

{{- define "broker.sidecar.proxyPath" -}}
{{- printf "%s/%s" (trimSuffix "/" .Values.sidecar.socketDir) .Values.sidecar.proxy.socketName }}
{{- end }}

{{/* The broker container (one list item). */}}
{{- define "broker.sidecar.container" -}}
{{- $ctx := dict "root" . "sidecar" true -}}
- name: broker
  image: {{ include "broker.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if .Values.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  env:
    - name: BROKER_LISTEN
      value: {{ printf "unix:%s" (include "broker.sidecar.socketPath" .) | quote }}
    - name: BROKER_ADMIN_LISTEN
      value: unix:/var/run/integrationhub-admin/admin.sock
    {{- if include "broker.sidecar.proxyOn" . }}
    - name: BROKER_PROXY_LISTEN
      value: {{ printf "unix:%s" (include "broker.sidecar.proxyPath" .) | quote }}
    - name: BROKER_PROXY_TIMEOUT
      value: {{ .Values.sidecar.proxy.timeout | quote }}
    {{- end }}
    {{- include "broker.env" $ctx | nindent 4 }}
  ports:
    - name: broker-health
      containerPort: {{ .Values.ports.health }}
      protocol: TCP
    {{- if .Values.metrics.enabled }}
    - name: broker-metrics
      containerPort: {{ .Values.metrics.port }}
      protocol: TCP
    {{- end }}
  {{- include "broker.probes" $ctx | nindent 2 }}
  resources:
    {{- toYaml .Values.sidecar.resources | nindent 4 }}
  {{- /* The worker's pod security context is not ours: pin the user and seccomp here. */}}
  {{- $pod := .Values.podSecurityContext }}
  {{- $own := dict "runAsNonRoot" true "runAsUser" $pod.runAsUser "runAsGroup" $pod.runAsGroup "seccompProfile" (dict "type" "RuntimeDefault") }}
  securityContext:
    {{- toYaml (merge (deepCopy .Values.securityContext) $own) | nindent 4 }}
  volumeMounts:
    - name: broker-socket
      mountPath: {{ .Values.sidecar.socketDir }}
    - name: broker-admin-socket
      mountPath: /var/run/integrationhub-admin
    {{- include "broker.volumeMounts" $ctx | nindent 4 }}
{{- end }}

{{/* The pod volumes the sidecar needs (list items). */}}
{{- define "broker.sidecar.volumes" -}}
- name: broker-socket
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
- name: broker-admin-socket
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{ include "broker.volumes" (dict "root" . "sidecar" true) }}
{{- end }}

{{/*
Scrape annotations for the worker's pod template, so that Prometheus finds the sidecar's metrics
(there is no Service in front of a sidecar for a ServiceMonitor). Empty when metrics are off.
*/}}
{{- define "broker.sidecar.podAnnotations" -}}
{{- if .Values.metrics.enabled }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
prometheus.io/path: {{ .Values.metrics.path | quote }}
{{- end }}
{{- end }}

{{/*
Labels for the worker's pod template: integrationhub.io/broker-sidecar (the sidecars' PodMonitor
selects it) and, with connectionService.address, integrationhub.io/connections-client (the
connection service's NetworkPolicy admits it).
*/}}
{{- define "broker.sidecar.podLabels" -}}
integrationhub.io/broker-sidecar: "true"
{{- if .Values.connectionService.address }}
integrationhub.io/connections-client: "true"
{{- end }}
{{- end }}

{{/* The worker container's mount of the socket directory (one list item). */}}
{{- define "broker.sidecar.workerVolumeMount" -}}
- name: broker-socket
  mountPath: {{ .Values.sidecar.socketDir }}
  readOnly: true
{{- end }}

{{/* The worker's environment: where the broker (and its egress proxy) listen (list items). */}}
{{- define "broker.sidecar.workerEnv" -}}
- name: INTEGRATIONHUB_BROKER_ADDR
  value: {{ printf "unix://%s" (include "broker.sidecar.socketPath" .) | quote }}
{{- if include "broker.sidecar.proxyOn" . }}
- name: INTEGRATIONHUB_PROXY_ADDR
  value: {{ printf "unix://%s" (include "broker.sidecar.proxyPath" .) | quote }}
{{- end }}
{{- end }}
