{{/*
Environment variables: where metrics are served (metrics.serveOnMainPort or the
SERVE_PROMETHEUS_ENDPOINT entry), the env of the app and worker containers, and the sidecar's env
(what the chart owns: ports, paths, auth files, StatsD, merge targets, drain).
*/}}

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
