{{/*
The admin API's service token, shared by the connection service (which presents it) and the
shared broker (which checks it). Named templates are global, so the subcharts' values call these
through tpl with their own context; both read global.adminToken, which every chart sees.
*/}}

{{/* The Secret holding it: global.adminToken.existingSecret, or the one this chart generates. */}}
{{- define "integrationhub.adminTokenSecret" -}}
{{- $t := dig "adminToken" dict (.Values.global | default dict) -}}
{{- $t.existingSecret | default (printf "%s-admin-token" .Release.Name | trunc 63 | trimSuffix "-") -}}
{{- end }}

{{/* Its key in that Secret. */}}
{{- define "integrationhub.adminTokenKey" -}}
{{- $t := dig "adminToken" dict (.Values.global | default dict) -}}
{{- $t.key | default "token" -}}
{{- end }}
