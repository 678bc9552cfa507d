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
metrics-sidecar.isTrue: "true" when the string is true as the sidecar reads booleans
(true, 1, yes, on; any case), else "".
*/}}
{{- define "metrics-sidecar.isTrue" -}}
{{- if has (lower (toString .)) (list "true" "1" "yes" "on") }}true{{ end }}
{{- end }}

{{/*
metrics-sidecar.serveOnMainPort: "true" when the web sidecar serves the metrics path on its main
port, else "". metrics.serveOnMainPort decides when it is set (true or false); left unset (null, the
default) it follows a SERVE_PROMETHEUS_ENDPOINT entry in common.env or sidecar.env (the seeds'
documented form; the last entry counts, sidecar.env after common.env, as the container sees them),
and is false without one. An entry the chart cannot read as true or false (valueFrom, or a value
the sidecar would refuse) needs an explicit metrics.serveOnMainPort; an explicit value that
disagrees with an entry fails the render. So the ServiceMonitor, the rules and the sidecar never
disagree about where metrics are.
*/}}
{{- define "metrics-sidecar.serveOnMainPort" -}}
{{- $explicit := .Values.metrics.serveOnMainPort }}
{{- $entry := dict }}
{{- range (concat .Values.common.env .Values.sidecar.env) }}
{{- if eq .name "SERVE_PROMETHEUS_ENDPOINT" }}
{{- $entry = . }}
{{- end }}
{{- end }}
{{- $fromEnv := "" }}
{{- if $entry }}
{{- $v := lower (trim (toString (get $entry "value"))) }}
{{- if and (hasKey $entry "value") (has $v (list "true" "1" "yes" "on")) }}
{{- $fromEnv = "true" }}
{{- else if and (hasKey $entry "value") (has $v (list "false" "0" "no" "off" "")) }}
{{- $fromEnv = "false" }}
{{- else if kindIs "invalid" $explicit }}
{{- fail (printf "SERVE_PROMETHEUS_ENDPOINT in common.env/sidecar.env is %s, which the chart cannot read as true or false: set metrics.serveOnMainPort (true or false) to say where metrics are served" (ternary (printf "%q" (toString (get $entry "value"))) "given by valueFrom" (hasKey $entry "value"))) }}
{{- end }}
{{- end }}
{{- if kindIs "invalid" $explicit }}
{{- if eq $fromEnv "true" }}true{{ end }}
{{- else }}
{{- $on := include "metrics-sidecar.isTrue" $explicit }}
{{- if and $fromEnv (ne $fromEnv (ternary "true" "false" (eq $on "true"))) }}
{{- fail (printf "SERVE_PROMETHEUS_ENDPOINT=%q in common.env/sidecar.env disagrees with metrics.serveOnMainPort=%v: remove one of the two, or make them agree (metrics.serveOnMainPort unset follows the variable)" (toString (get $entry "value")) $explicit) }}
{{- end }}
{{- $on }}
{{- end }}
{{- end }}

{{/*
metrics-sidecar.webMetricsPort: name of the web pods' port that serves metrics: "http" (main
port, metrics.serveOnMainPort) or "metrics" (PROMETHEUS_PORT).
*/}}
{{- define "metrics-sidecar.webMetricsPort" -}}
{{- if include "metrics-sidecar.serveOnMainPort" . }}http{{ else }}metrics{{ end }}
{{- end }}

{{/*
metrics-sidecar.metricsPortName: the port that serves metrics in a workload's pods.
Call with (dict "ctx" $ "role" "web"|"worker").
*/}}
{{- define "metrics-sidecar.metricsPortName" -}}
{{- if eq .role "web" }}{{ include "metrics-sidecar.webMetricsPort" .ctx }}{{ else }}metrics{{ end }}
{{- end }}

{{/*
metrics-sidecar.native: "true" when the sidecar runs as a native sidecar (an init container with
restartPolicy: Always: started before the app, stopped after it), else "". sidecar.native=auto
decides from the cluster's version (native sidecars are on by default from Kubernetes 1.29).
*/}}
{{- define "metrics-sidecar.native" -}}
{{- $n := toString .Values.sidecar.native }}
{{- if eq $n "true" }}true
{{- else if and (eq $n "auto") (semverCompare ">=1.29-0" .Capabilities.KubeVersion.Version) }}true
{{- end }}
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
metrics-sidecar.demoCommand: the command of the demo app (web) or demo worker, used only when the
workload's image.repository is empty. Call with (dict "role" "web"|"worker" "port" .Values.web.port).
*/}}
{{- define "metrics-sidecar.demoCommand" -}}
{{- if eq .role "web" }}
- python
- -c
- |
  import http.server as h, signal, sys
  class H(h.BaseHTTPRequestHandler):
      def do_GET(self):
          self.send_response(200); self.end_headers(); self.wfile.write(b"hello from the demo app\n")
  signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
  h.ThreadingHTTPServer(("127.0.0.1", {{ int .port }}), H).serve_forever()
{{- else }}
- python
- -c
- |
  import signal, sys, time
  signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
  while True: time.sleep(3600)
{{- end }}
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

{{/*
metrics-sidecar.mergeEnv: renders env lists as one list, each name once: a later entry replaces
an earlier one of the same name (so later lists win), keeping the order names first appeared.
Duplicate names would break server-side apply (env is keyed by name). Call with a list of lists.
*/}}
{{- define "metrics-sidecar.mergeEnv" -}}
{{- $names := list }}
{{- $byName := dict }}
{{- range $l := . }}
{{- range $e := $l }}
{{- if not (hasKey $byName $e.name) }}
{{- $names = append $names $e.name }}
{{- end }}
{{- $_ := set $byName $e.name $e }}
{{- end }}
{{- end }}
{{- $out := "" }}
{{- range $n := $names }}
{{- $out = printf "%s\n- %s" $out (toYaml (get $byName $n) | indent 2 | trim) }}
{{- end }}
{{- trim $out }}
{{- end }}

{{/*
metrics-sidecar.terminationGracePeriodSeconds: the pod's grace period: longer than the sidecar's
drain (delay + timeout), 5 s more by default. Call with (dict "ctx" $ "override" .Values.web.terminationGracePeriodSeconds).
*/}}
{{- define "metrics-sidecar.terminationGracePeriodSeconds" -}}
{{- $drain := add .ctx.Values.sidecar.drain.delaySeconds .ctx.Values.sidecar.drain.timeoutSeconds }}
{{- if kindIs "invalid" .override }}
{{- add $drain 5 }}
{{- else if le (int .override) (int $drain) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed sidecar.drain.delaySeconds + sidecar.drain.timeoutSeconds (%v)" .override $drain) }}
{{- else }}
{{- .override }}
{{- end }}
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
metrics-sidecar.appEnv: env of an app or worker container: the StatsD address, then common.env,
then the container's own env (later wins). Call with (dict "ctx" $ "env" .Values.web.env).
*/}}
{{- define "metrics-sidecar.appEnv" -}}
{{- $statsd := .ctx.Values.metrics.statsd }}
{{- $base := list }}
{{- if and $statsd.enabled $statsd.appEnv }}
{{- $base = list (dict "name" "STATSD_HOST" "value" "127.0.0.1") (dict "name" "STATSD_PORT" "value" (toString $statsd.port)) }}
{{- end }}
{{- include "metrics-sidecar.mergeEnv" (list $base .ctx.Values.common.env .env) }}
{{- end }}

{{/*
metrics-sidecar.sidecarEnv: env of a sidecar: APP_NAME, then common.env and sidecar.env, then what
the chart owns (ports, paths, the RED prefix, serving on the main port, the app's health path, auth
files, StatsD, merge targets, drain; the schema keeps these names out of sidecar.env). The
worker's sidecar has no main port, so it always gets SERVE_PROMETHEUS_ENDPOINT=false.
Call with (dict "ctx" $ "role" "web"|"worker").
*/}}
{{- define "metrics-sidecar.sidecarEnv" -}}
{{- $ := .ctx }}
{{- $m := $.Values.metrics }}
{{- $web := eq .role "web" }}
{{- $serveOnMain := include "metrics-sidecar.serveOnMainPort" $ }}
{{- $defaults := list (dict "name" "APP_NAME" "value" (include "metrics-sidecar.fullname" $)) }}
{{- $owned := list (dict "name" "SIDECAR_ROLE" "value" .role) }}
{{- if $web }}
{{- $owned = append $owned (dict "name" "LISTEN_PORT" "value" (toString $.Values.sidecar.listenPort)) }}
{{- $owned = append $owned (dict "name" "UPSTREAM_URL" "value" (printf "http://127.0.0.1:%v" $.Values.web.port)) }}
{{- $owned = append $owned (dict "name" "SERVE_PROMETHEUS_ENDPOINT" "value" (ternary "true" "false" (eq $serveOnMain "true"))) }}
{{- $owned = append $owned (dict "name" "PROMETHEUS_PORT" "value" (ternary "0" (toString $m.port) (eq $serveOnMain "true"))) }}
{{- with $.Values.web.healthCheck }}
{{- if .path }}
{{- $owned = append $owned (dict "name" "UPSTREAM_HEALTH_PATH" "value" .path) }}
{{- $owned = append $owned (dict "name" "UPSTREAM_HEALTH_INTERVAL_MS" "value" (toString (mul .intervalSeconds 1000))) }}
{{- $owned = append $owned (dict "name" "UPSTREAM_HEALTH_TIMEOUT_MS" "value" (toString (mul .timeoutSeconds 1000))) }}
{{- $owned = append $owned (dict "name" "UPSTREAM_HEALTH_FAILURE_THRESHOLD" "value" (toString .failureThreshold)) }}
{{- $owned = append $owned (dict "name" "UPSTREAM_HEALTH_SUCCESS_THRESHOLD" "value" (toString .successThreshold)) }}
{{- end }}
{{- end }}
{{- else }}
{{- $owned = append $owned (dict "name" "LISTEN_PORT" "value" "0") }}
{{- $owned = append $owned (dict "name" "SERVE_PROMETHEUS_ENDPOINT" "value" "false") }}
{{- $owned = append $owned (dict "name" "PROMETHEUS_PORT" "value" (toString $m.port)) }}
{{- end }}
{{- $owned = append $owned (dict "name" "METRICS_PATH" "value" $m.path) }}
{{- $owned = append $owned (dict "name" "HTTP_METRICS_PREFIX" "value" $m.httpPrefix) }}
{{- $owned = append $owned (dict "name" "STATSD_PORT" "value" (ternary (toString $m.statsd.port) "0" $m.statsd.enabled)) }}
{{- if and $m.statsd.enabled (include "metrics-sidecar.statsdConfigMapName" $) }}
{{- $owned = append $owned (dict "name" "STATSD_MAPPING_FILE" "value" "/etc/metrics-sidecar/statsd/mapping.yaml") }}
{{- end }}
{{- with (get $m.mergeTargets .role) }}
{{- $owned = append $owned (dict "name" "MERGE_TARGETS" "value" (join "," .)) }}
{{- end }}
{{- with $m.allowedCidrs }}
{{- $owned = append $owned (dict "name" "METRICS_ALLOWED_CIDRS" "value" (join "," .)) }}
{{- end }}
{{- with $m.trustedProxies }}
{{- $owned = append $owned (dict "name" "TRUSTED_PROXIES" "value" (join "," .)) }}
{{- end }}
{{- if $m.basicAuth.enabled }}
{{- $ref := dict "secretKeyRef" (dict "name" (include "metrics-sidecar.basicAuthSecretName" $) "key" $m.basicAuth.usernameKey) }}
{{- $owned = append $owned (dict "name" "METRICS_BASIC_AUTH_USERNAME" "valueFrom" $ref) }}
{{- $owned = append $owned (dict "name" "METRICS_BASIC_AUTH_PASSWORD_FILE" "value" "/etc/metrics-sidecar/basic-auth/password") }}
{{- end }}
{{- if $m.apiKeys.enabled }}
{{- $owned = append $owned (dict "name" "METRICS_API_KEYS_FILE" "value" "/etc/metrics-sidecar/api-keys/api-keys") }}
{{- end }}
{{- if $m.kubernetesAuth.enabled }}
{{- $owned = append $owned (dict "name" "METRICS_KUBERNETES_AUTH" "value" "true") }}
{{- with $m.kubernetesAuth.audiences }}
{{- $owned = append $owned (dict "name" "METRICS_KUBERNETES_AUDIENCES" "value" (join "," .)) }}
{{- end }}
{{- end }}
{{- $owned = append $owned (dict "name" "SHUTDOWN_DELAY_MS" "value" (toString (mul $.Values.sidecar.drain.delaySeconds 1000))) }}
{{- $owned = append $owned (dict "name" "SHUTDOWN_TIMEOUT_MS" "value" (toString (mul $.Values.sidecar.drain.timeoutSeconds 1000))) }}
{{- include "metrics-sidecar.mergeEnv" (list $defaults $.Values.common.env $.Values.sidecar.env $owned) }}
{{- end }}

{{/*
metrics-sidecar.probe: a full probe block from values; when it names no handler (httpGet,
tcpSocket, exec, grpc), the chart's httpGet is added. Call with (dict "probe" .Values.x "path" "/p" "port" "http").
*/}}
{{- define "metrics-sidecar.probe" -}}
{{- $p := deepCopy .probe }}
{{- if not (or (hasKey $p "httpGet") (hasKey $p "tcpSocket") (hasKey $p "exec") (hasKey $p "grpc")) }}
{{- $_ := set $p "httpGet" (dict "path" .path "port" .port) }}
{{- end }}
{{- toYaml $p }}
{{- end }}

{{/*
metrics-sidecar.container: the metrics-sidecar container of a workload, as one list item. Web: owns
the main port `http` (probes on /debug/healthz, /debug/readyz) and, unless metrics are served
there, the `metrics` port. Worker: the `metrics` port only (probes on /healthz, /readyz). In native
mode (see metrics-sidecar.native) it carries `restartPolicy: Always` and belongs in initContainers.
Public: a parent chart calls it with its subchart's context,
(dict "ctx" (index $.Subcharts "metrics-sidecar") "role" "web").
*/}}
{{- define "metrics-sidecar.container" -}}
{{- $ := .ctx }}
{{- $s := $.Values.sidecar }}
{{- $web := eq .role "web" }}
{{- $metricsPort := or (not $web) (not (include "metrics-sidecar.serveOnMainPort" $)) }}
{{- $probePort := ternary "http" "metrics" $web }}
{{- $probePrefix := ternary "/debug" "" $web }}
- name: metrics-sidecar
  image: {{ include "metrics-sidecar.sidecarImage" $ | quote }}
  imagePullPolicy: {{ $s.image.pullPolicy }}
  {{- if include "metrics-sidecar.native" $ }}
  restartPolicy: Always
  {{- end }}
  env:
    {{- include "metrics-sidecar.sidecarEnv" . | nindent 4 }}
  {{- with $s.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    {{- if $web }}
    - name: http
      containerPort: {{ $s.listenPort }}
      protocol: TCP
    {{- end }}
    {{- if $metricsPort }}
    - name: metrics
      containerPort: {{ $.Values.metrics.port }}
      protocol: TCP
    {{- end }}
  {{- with $s.startupProbe }}
  startupProbe:
    {{- include "metrics-sidecar.probe" (dict "probe" . "path" (printf "%s/healthz" $probePrefix) "port" $probePort) | nindent 4 }}
  {{- end }}
  livenessProbe:
    {{- include "metrics-sidecar.probe" (dict "probe" $s.livenessProbe "path" (printf "%s/healthz" $probePrefix) "port" $probePort) | nindent 4 }}
  readinessProbe:
    {{- include "metrics-sidecar.probe" (dict "probe" $s.readinessProbe "path" (printf "%s/readyz" $probePrefix) "port" $probePort) | nindent 4 }}
  {{- with $s.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $s.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- $mounts := include "metrics-sidecar.sidecarVolumeMounts" $ | trim }}
  {{- if $mounts }}
  volumeMounts:
    {{- $mounts | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
metrics-sidecar.volumes: the volumes the sidecar container mounts (Secrets, the StatsD mapping), as
list items; empty when it mounts none. Public: call with the chart's (or subchart's) context.
*/}}
{{- define "metrics-sidecar.volumes" -}}
{{- include "metrics-sidecar.sidecarVolumes" . }}
{{- end }}

{{/*
metrics-sidecar.servicePorts: the ports of a Service in front of the sidecar, as list items: `http`
(web: the main port) and `metrics` when metrics are served on the dedicated port. Public. Call with
(dict "ctx" $ "role" "web"|"worker" "port" <Service port of http>). targetPorts are the sidecar's
port numbers, not its port names: a native sidecar's named ports reach a Service's endpoints only
from Kubernetes 1.33 (kubernetes/kubernetes#128850), so on 1.29-1.32 a named targetPort had none.
*/}}
{{- define "metrics-sidecar.servicePorts" -}}
{{- $ := .ctx }}
{{- if eq .role "web" }}
- name: http
  port: {{ .port }}
  targetPort: {{ $.Values.sidecar.listenPort }}
  protocol: TCP
{{- end }}
{{- if or (ne .role "web") (not (include "metrics-sidecar.serveOnMainPort" $)) }}
- name: metrics
  port: {{ $.Values.metrics.port }}
  targetPort: {{ $.Values.metrics.port }}
  protocol: TCP
{{- end }}
{{- end }}

{{/*
metrics-sidecar.appProbes: liveness and readiness of the app container. An explicit probe from
values is used as given; otherwise, with healthCheck.path set, both point at the sidecar's
/debug/app-health on its main port, which relays the app's health path (the app listens on 127.0.0.1 only,
where the kubelet cannot reach it). Call with (dict "ctx" $ "values" .Values.web).
*/}}
{{- define "metrics-sidecar.appProbes" -}}
{{- $v := .values }}
{{- /* The number, not the name `http`: the kubelet resolves a probe's named port in the probed container only. */}}
{{- $relay := dict "httpGet" (dict "path" "/debug/app-health" "port" (int .ctx.Values.sidecar.listenPort)) }}
{{- $health := and (hasKey $v "healthCheck") $v.healthCheck.path }}
{{- if $v.livenessProbe }}
livenessProbe:
  {{- toYaml $v.livenessProbe | nindent 2 }}
{{- else if $health }}
livenessProbe:
  {{- toYaml (merge (deepCopy $relay) $v.healthCheck.livenessProbe) | nindent 2 }}
{{- end }}
{{- if $v.readinessProbe }}
readinessProbe:
  {{- toYaml $v.readinessProbe | nindent 2 }}
{{- else if $health }}
readinessProbe:
  {{- toYaml (merge (deepCopy $relay) $v.healthCheck.readinessProbe) | nindent 2 }}
{{- end }}
{{- end }}

{{/*
metrics-sidecar.sidecarVolumeMounts: the sidecar's Secret and ConfigMap mounts (directories, not
subPath, so that rotated Secrets reach the running sidecar), then sidecar.extraVolumeMounts.
*/}}
{{- define "metrics-sidecar.sidecarVolumeMounts" -}}
{{- $m := .Values.metrics }}
{{- if $m.basicAuth.enabled }}
- name: basic-auth
  mountPath: /etc/metrics-sidecar/basic-auth
  readOnly: true
{{- end }}
{{- if $m.apiKeys.enabled }}
- name: api-keys
  mountPath: /etc/metrics-sidecar/api-keys
  readOnly: true
{{- end }}
{{- if and $m.statsd.enabled (include "metrics-sidecar.statsdConfigMapName" .) }}
- name: statsd-mapping
  mountPath: /etc/metrics-sidecar/statsd
  readOnly: true
{{- end }}
{{- with .Values.sidecar.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
metrics-sidecar.sidecarVolumes: the volumes behind sidecarVolumeMounts. Only the items the sidecar
reads are projected (the plain API key Prometheus sends stays out of the pod).
*/}}
{{- define "metrics-sidecar.sidecarVolumes" -}}
{{- $m := .Values.metrics }}
{{- if $m.basicAuth.enabled }}
- name: basic-auth
  secret:
    secretName: {{ include "metrics-sidecar.basicAuthSecretName" . }}
    items:
      - key: {{ $m.basicAuth.passwordKey }}
        path: password
{{- end }}
{{- if $m.apiKeys.enabled }}
- name: api-keys
  secret:
    secretName: {{ include "metrics-sidecar.apiKeysSecretName" . }}
    items:
      - key: {{ $m.apiKeys.fileKey }}
        path: api-keys
{{- end }}
{{- with (and $m.statsd.enabled (include "metrics-sidecar.statsdConfigMapName" .)) }}
- name: statsd-mapping
  configMap:
    name: {{ . }}
    items:
      - key: mapping.yaml
        path: mapping.yaml
{{- end }}
{{- end }}

{{/*
metrics-sidecar.appLifecycle: lifecycle of the web app container. As a regular container the
sidecar gets SIGTERM at the same moment as the app, so the app sleeps in preStop while the
sidecar, serving with readiness 503 (SHUTDOWN_DELAY_MS), lets endpoints go: requests the sidecar
still accepts are not forwarded to an app that already quit. Uses the kubelet's `sleep` action (no
binary needed in the app image) from Kubernetes 1.30, an exec `sleep` before. As a native sidecar
it stops after the app, and no sleep is added unless web.preStopSleepSeconds asks for one.
Renders nothing when the sleep is 0. Public: call with the chart's (or subchart's) context.
*/}}
{{- define "metrics-sidecar.appLifecycle" -}}
{{- $seconds := .Values.web.preStopSleepSeconds }}
{{- if kindIs "invalid" $seconds }}
{{- $seconds = ternary 0 .Values.sidecar.drain.delaySeconds (eq (include "metrics-sidecar.native" .) "true") }}
{{- end }}
{{- if gt (int $seconds) 0 }}
lifecycle:
  preStop:
    {{- if semverCompare ">=1.30-0" .Capabilities.KubeVersion.Version }}
    sleep:
      seconds: {{ int $seconds }}
    {{- else }}
    exec:
      command: ["sleep", "{{ int $seconds }}"]
    {{- end }}
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

{{/*
metrics-sidecar.monitor: a ServiceMonitor or PodMonitor (Prometheus Operator) scraping the sidecar
of one workload: the port and path that serve metrics, the credentials Prometheus needs, and the
relabeling that keeps the app's own `endpoint` label. Settings come from serviceMonitor (both
kinds). Public. Call with (dict "ctx" $ "kind" "ServiceMonitor"|"PodMonitor" "name" "<object name>"
"role" "web"|"worker" "selector" (dict <labels of the Service, or of the pods>) "labels" (dict ...)).
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
  {{- with $sm.scrapeClass }}
  scrapeClass: {{ . }}
  {{- end }}
  {{- if $sm.sampleLimit }}
  sampleLimit: {{ $sm.sampleLimit }}
  {{- end }}
  {{- with $sm.scrapeProtocols }}
  scrapeProtocols:
    {{- toYaml . | nindent 4 }}
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
  namespaceSelector:
    matchNames: [{{ $.Release.Namespace | quote }}]
  selector:
    matchLabels:
      {{- toYaml .selector | nindent 6 }}
  {{ ternary "podMetricsEndpoints" "endpoints" $pod }}:
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
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with include "metrics-sidecar.endpointAuth" $ | trim }}
      {{- . | nindent 6 }}
      {{- end }}
      {{- with $sm.relabelings }}
      relabelings:
        {{- toYaml . | nindent 8 }}
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
        {{- toYaml . | nindent 8 }}
        {{- end }}
{{- end }}
