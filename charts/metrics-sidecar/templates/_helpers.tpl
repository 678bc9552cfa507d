{{/*
Names, labels and images: what every template of the chart uses to name and label its objects.
The sidecar container and its pod: _container.tpl; environment variables: _env.tpl; ServiceMonitor,
PodMonitor and alert pieces: _monitor.tpl.
*/}}

{{/*
metrics-sidecar.name: the chart name (or nameOverride), cut to 63 characters (DNS label limit).
*/}}
{{- define "metrics-sidecar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
metrics-sidecar.fullname: the base name of every object: fullnameOverride, else the release name
(when it already contains the chart name) or "<release>-<chart>", cut to 63 characters. Objects
append "-web", "-worker" and so on.
*/}}
{{- define "metrics-sidecar.fullname" -}}
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

{{/*
metrics-sidecar.chart: "<chart>-<version>" for the helm.sh/chart label.
*/}}
{{- define "metrics-sidecar.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
metrics-sidecar.labels: labels of every object. Never used as a selector: helm.sh/chart and the
version change on upgrade, and Deployment selectors are immutable.
*/}}
{{- define "metrics-sidecar.labels" -}}
helm.sh/chart: {{ include "metrics-sidecar.chart" . }}
{{ include "metrics-sidecar.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "metrics-sidecar.name" . }}
{{- with .Values.common.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
metrics-sidecar.selectorLabels: the stable labels that select this release's pods.
*/}}
{{- define "metrics-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "metrics-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
metrics-sidecar.componentSelectorLabels: selector labels of one workload.
Call with (dict "ctx" $ "component" "web"|"worker"|"test").
*/}}
{{- define "metrics-sidecar.componentSelectorLabels" -}}
{{ include "metrics-sidecar.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
metrics-sidecar.componentLabels: labels of one workload's objects.
Call with (dict "ctx" $ "component" "web"|"worker"|...).
*/}}
{{- define "metrics-sidecar.componentLabels" -}}
{{ include "metrics-sidecar.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
metrics-sidecar.podLabels: labels of a workload's pod template: the selector labels and the stable
identity labels, never helm.sh/chart or a version (a chart upgrade alone must not roll the pods).
Call with (dict "ctx" $ "component" "web"|"worker").
*/}}
{{- define "metrics-sidecar.podLabels" -}}
{{ include "metrics-sidecar.componentSelectorLabels" . }}
app.kubernetes.io/part-of: {{ include "metrics-sidecar.name" .ctx }}
{{- with merge (dict) (get .ctx.Values .component).podLabels .ctx.Values.common.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
metrics-sidecar.podAnnotations: common, workload and discovery annotations of a workload's pods.
Call with (dict "ctx" $ "role" "web"|"worker").
*/}}
{{- define "metrics-sidecar.podAnnotations" -}}
{{- $ := .ctx }}
{{- $a := merge (dict) (get $.Values .role).podAnnotations $.Values.common.podAnnotations }}
{{- $d := include "metrics-sidecar.discoveryAnnotations" . | fromYaml }}
{{- $a = merge $d $a }}
{{- with $a }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/*
metrics-sidecar.discoveryAnnotations: prometheus.io/* pod annotations for annotation-based
discovery. Call with (dict "ctx" $ "role" "web"|"worker").
*/}}
{{- define "metrics-sidecar.discoveryAnnotations" -}}
{{- $ := .ctx }}
{{- if $.Values.metrics.podAnnotations.enabled }}
{{- $port := $.Values.metrics.port }}
{{- if and (eq .role "web") (include "metrics-sidecar.serveOnMainPort" $) }}
{{- $port = $.Values.sidecar.listenPort }}
{{- end }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ $port | quote }}
prometheus.io/path: {{ $.Values.metrics.path | quote }}
prometheus.io/scheme: "http"
{{- end }}
{{- end }}

{{/*
metrics-sidecar.clusterScopedName: name of a cluster-scoped object (ClusterRole,
ClusterRoleBinding): qualified by the namespace so that two releases of the same name in two
namespaces do not collide. Call with (dict "ctx" $ "suffix" "metrics-reader").
*/}}
{{- define "metrics-sidecar.clusterScopedName" -}}
{{- printf "%s-%s" .ctx.Release.Namespace (include "metrics-sidecar.fullname" .ctx) | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" }}-{{ .suffix }}
{{- end }}

{{/*
metrics-sidecar.serviceAccountName: the workloads' ServiceAccount.
*/}}
{{- define "metrics-sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "metrics-sidecar.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
metrics-sidecar.automountToken: "true" or "false": mount the ServiceAccount token into the pods.
Only Kubernetes auth needs it (the sidecar calls TokenReview and SubjectAccessReview).
*/}}
{{- define "metrics-sidecar.automountToken" -}}
{{- if kindIs "bool" .Values.serviceAccount.automountServiceAccountToken }}
{{- .Values.serviceAccount.automountServiceAccountToken }}
{{- else }}
{{- .Values.metrics.kubernetesAuth.enabled }}
{{- end }}
{{- end }}

{{/*
metrics-sidecar.scraperName: the ServiceAccount whose token the ServiceMonitor presents when
Kubernetes auth is on.
*/}}
{{- define "metrics-sidecar.scraperName" -}}
{{- include "metrics-sidecar.fullname" . | trunc 55 | trimSuffix "-" }}-scraper
{{- end }}

{{/*
metrics-sidecar.basicAuthSecretName: the Secret with the basic auth username and password.
*/}}
{{- define "metrics-sidecar.basicAuthSecretName" -}}
{{- default (printf "%s-basic-auth" (include "metrics-sidecar.fullname" .)) .Values.metrics.basicAuth.existingSecret }}
{{- end }}

{{/*
metrics-sidecar.apiKeysSecretName: the Secret with the API keys file and Prometheus's key.
*/}}
{{- define "metrics-sidecar.apiKeysSecretName" -}}
{{- default (printf "%s-api-keys" (include "metrics-sidecar.fullname" .)) .Values.metrics.apiKeys.existingSecret }}
{{- end }}

{{/*
metrics-sidecar.statsdConfigMapName: the ConfigMap with StatsD mapping rules, or "" when none.
*/}}
{{- define "metrics-sidecar.statsdConfigMapName" -}}
{{- if .Values.metrics.statsd.existingConfigMap }}
{{- .Values.metrics.statsd.existingConfigMap }}
{{- else if .Values.metrics.statsd.mappings }}
{{- printf "%s-statsd-mapping" (include "metrics-sidecar.fullname" .) }}
{{- end }}
{{- end }}

{{/*
metrics-sidecar.image: "repository:tag". Call with (dict "image" .Values.x.image "default" "tag").
*/}}
{{- define "metrics-sidecar.image" -}}
{{- printf "%s:%s" .image.repository (default .default .image.tag | toString) }}
{{- end }}

{{/*
metrics-sidecar.sidecarImage: the sidecar image; the tag defaults to the chart's appVersion.
*/}}
{{- define "metrics-sidecar.sidecarImage" -}}
{{- include "metrics-sidecar.image" (dict "image" .Values.sidecar.image "default" .Chart.AppVersion) }}
{{- end }}

{{/*
metrics-sidecar.workloadImage: image of the app or worker container; an empty repository means the
demo (python:3.12-slim). Call with (dict "image" .Values.web.image).
*/}}
{{- define "metrics-sidecar.workloadImage" -}}
{{- if .image.repository }}
{{- include "metrics-sidecar.image" (dict "image" .image "default" "latest") }}
{{- else }}
{{- printf "python:%s" (default "3.12-slim" .image.tag) }}
{{- end }}
{{- end }}
