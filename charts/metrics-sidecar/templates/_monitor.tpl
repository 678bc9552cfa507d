{{/*
How Prometheus scrapes the sidecars and alerts on them: the auth method and credentials of a
scrape, the parts ServiceMonitor (servicemonitor.yaml) and PodMonitor (podmonitor.yaml) share,
the public metrics-sidecar.monitor for a parent chart's own Service or pods, and the selector of
the alerts (prometheusrule.yaml).
*/}}

{{/*
metrics-sidecar.prometheusAuth: how Prometheus authenticates to the sidecars: "basicAuth",
"apiKey", "kubernetes" or "none". serviceMonitor.auth=auto picks the first method enabled in
that order; an explicit method must be enabled.
*/}}
{{- define "metrics-sidecar.prometheusAuth" -}}
{{- $m := .Values.metrics }}
{{- $want := .Values.serviceMonitor.auth }}
{{- $enabled := dict "basicAuth" $m.basicAuth.enabled "apiKey" $m.apiKeys.enabled "kubernetes" $m.kubernetesAuth.enabled "none" true }}
{{- if eq $want "auto" }}
{{- if $m.basicAuth.enabled }}basicAuth{{ else if $m.apiKeys.enabled }}apiKey{{ else if $m.kubernetesAuth.enabled }}kubernetes{{ else }}none{{ end }}
{{- else if get $enabled $want }}
{{- $want }}
{{- else }}
{{- fail (printf "serviceMonitor.auth=%s but that method is not enabled under metrics" $want) }}
{{- end }}
{{- end }}

{{/*
metrics-sidecar.tokenSecret: (dict "name" "key") of the Secret holding the ServiceAccount token the
ServiceMonitor presents with Kubernetes auth: existingTokenSecret, else the scraper's. Fails when
there is none.
*/}}
{{- define "metrics-sidecar.tokenSecret" -}}
{{- $k := .Values.metrics.kubernetesAuth }}
{{- if $k.existingTokenSecret.name }}
{{- toYaml (dict "name" $k.existingTokenSecret.name "key" $k.existingTokenSecret.key) }}
{{- else if $k.scraper.create }}
{{- toYaml (dict "name" (printf "%s-token" (include "metrics-sidecar.scraperName" .)) "key" "token") }}
{{- else }}
{{- fail "serviceMonitor with Kubernetes auth needs metrics.kubernetesAuth.scraper.create=true or metrics.kubernetesAuth.existingTokenSecret.name" }}
{{- end }}
{{- end }}

{{/*
metrics-sidecar.endpointAuth: the auth fields of a ServiceMonitor endpoint, from Secrets in the
release namespace: basicAuth, or `authorization` (Bearer) with an API key or a ServiceAccount
token. Never the deprecated bearerTokenFile.
*/}}
{{- define "metrics-sidecar.endpointAuth" -}}
{{- $auth := include "metrics-sidecar.prometheusAuth" . }}
{{- if eq $auth "basicAuth" }}
basicAuth:
  username:
    name: {{ include "metrics-sidecar.basicAuthSecretName" . }}
    key: {{ .Values.metrics.basicAuth.usernameKey }}
  password:
    name: {{ include "metrics-sidecar.basicAuthSecretName" . }}
    key: {{ .Values.metrics.basicAuth.passwordKey }}
{{- else if eq $auth "apiKey" }}
authorization:
  type: Bearer
  credentials:
    name: {{ include "metrics-sidecar.apiKeysSecretName" . }}
    key: {{ .Values.metrics.apiKeys.clientKey }}
{{- else if eq $auth "kubernetes" }}
authorization:
  type: Bearer
  credentials:
    {{- include "metrics-sidecar.tokenSecret" . | nindent 4 }}
{{- end }}
{{- end }}

{{/*
metrics-sidecar.monitorScrapeSettings: the spec fields of a ServiceMonitor or PodMonitor that tune
the scrape, from serviceMonitor.* (both kinds): scrapeClass, sampleLimit, scrapeProtocols, native
and classic histograms, the native bucket limit. Empty when none is set. Call with the chart's
context.
*/}}
{{- define "metrics-sidecar.monitorScrapeSettings" -}}
{{- $sm := .Values.serviceMonitor }}
{{- with $sm.scrapeClass }}
scrapeClass: {{ . }}
{{- end }}
{{- if $sm.sampleLimit }}
sampleLimit: {{ $sm.sampleLimit }}
{{- end }}
{{- with $sm.scrapeProtocols }}
scrapeProtocols:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if not (kindIs "invalid" $sm.scrapeNativeHistograms) }}
scrapeNativeHistograms: {{ $sm.scrapeNativeHistograms }}
{{- end }}
{{- if not (kindIs "invalid" $sm.scrapeClassicHistograms) }}
scrapeClassicHistograms: {{ $sm.scrapeClassicHistograms }}
{{- end }}
{{- if $sm.nativeHistogramBucketLimit }}
nativeHistogramBucketLimit: {{ $sm.nativeHistogramBucketLimit }}
{{- end }}
{{- end }}

{{/*
metrics-sidecar.monitorEndpoint: the one scrape endpoint of a ServiceMonitor (`endpoints`) or
PodMonitor (`podMetricsEndpoints`), as a list item: the port and path that serve metrics, the
credentials Prometheus needs, and the relabeling that keeps the app's own `endpoint` label.
Call with (dict "ctx" $ "role" "web"|"worker").
*/}}
{{- define "metrics-sidecar.monitorEndpoint" -}}
{{- $ := .ctx }}
{{- $sm := $.Values.serviceMonitor }}
- port: {{ include "metrics-sidecar.metricsPortName" . }}
  path: {{ $.Values.metrics.path }}
  scheme: {{ $sm.scheme }}
  {{- with $sm.interval }}
  interval: {{ . }}
  {{- end }}
  {{- with $sm.scrapeTimeout }}
  scrapeTimeout: {{ . }}
  {{- end }}
  honorLabels: {{ $sm.honorLabels }}
  {{- with $sm.tlsConfig }}
  tlsConfig:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with include "metrics-sidecar.endpointAuth" $ | trim }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- with $sm.relabelings }}
  relabelings:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- /* Prometheus Operator gives every target an `endpoint` label (the port name), so the
  github_api_call_latency family's own `endpoint` label arrives as `exported_endpoint`; these
  two put it back where the metric contract, the dashboard and the alerts expect it. */}}
  metricRelabelings:
    - sourceLabels: [exported_endpoint]
      regex: "(.+)"
      targetLabel: endpoint
      replacement: "$1"
      action: replace
    - regex: exported_endpoint
      action: labeldrop
    {{- with $sm.metricRelabelings }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
metrics-sidecar.monitor: a whole ServiceMonitor or PodMonitor (Prometheus Operator) scraping the
sidecar of one workload, for a parent chart's own Service or pods (this chart's own are
servicemonitor.yaml and podmonitor.yaml, built from the same parts). Settings come from
serviceMonitor (both kinds). Public. Call with (dict "ctx" <this chart's context> "kind"
"ServiceMonitor"|"PodMonitor" "name" "<object name>" "role" "web"|"worker" "selector" (dict <labels
of the Service, or of the pods>) "labels" (dict ...)).
*/}}
{{- define "metrics-sidecar.monitor" -}}
{{- $ := .ctx }}
{{- $sm := $.Values.serviceMonitor }}
{{- $pod := eq .kind "PodMonitor" }}
apiVersion: monitoring.coreos.com/v1
kind: {{ .kind }}
metadata:
  name: {{ .name }}
  namespace: {{ default $.Release.Namespace $sm.namespace }}
  {{- with merge (dict) $sm.labels .labels }}
  labels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $sm.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with $sm.jobLabel }}
  jobLabel: {{ . }}
  {{- end }}
  {{- with $sm.targetLabels }}
  {{ ternary "podTargetLabels" "targetLabels" $pod }}:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with include "metrics-sidecar.monitorScrapeSettings" $ | trim }}
  {{- . | nindent 2 }}
  {{- end }}
  namespaceSelector:
    matchNames: [{{ $.Release.Namespace | quote }}]
  selector:
    matchLabels:
      {{- toYaml .selector | nindent 6 }}
  {{ ternary "podMetricsEndpoints" "endpoints" $pod }}:
    {{- include "metrics-sidecar.monitorEndpoint" (dict "ctx" $ "role" .role) | trim | nindent 4 }}
{{- end }}

{{/*
metrics-sidecar.ruleSelector: PromQL label matchers selecting this release's sidecar targets in
alerts: prometheusRule.selector, else the release namespace and the Services' names (the `job`
label ServiceMonitors give).
*/}}
{{- define "metrics-sidecar.ruleSelector" -}}
{{- if .Values.prometheusRule.selector }}
{{- .Values.prometheusRule.selector }}
{{- else }}
{{- $f := include "metrics-sidecar.fullname" . }}
{{- printf "namespace=%q, job=~%q" .Release.Namespace (printf "%s-web|%s-worker" $f $f) }}
{{- end }}
{{- end }}
