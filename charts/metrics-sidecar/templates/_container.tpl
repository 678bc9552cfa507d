{{/*
The sidecar container and what the pod around it needs: native or regular sidecar, ports, probes,
volume mounts and volumes, the app container's probes and preStop, the grace period, the Service
ports. metrics-sidecar.container, .volumes, .appLifecycle, .appProbes and .servicePorts are public:
a parent chart includes them with this chart's context (deploy/chart-dependency shows how).
*/}}

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
metrics-sidecar.volumes: the volumes the sidecar container mounts (Secrets, the StatsD mapping), as
list items; empty when it mounts none. Public: call with the chart's (or subchart's) context.
*/}}
{{- define "metrics-sidecar.volumes" -}}
{{- include "metrics-sidecar.sidecarVolumes" . }}
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
