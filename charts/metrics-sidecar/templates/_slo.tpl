{{/*
SLOs from values (slo.*): the rule groups that prometheusrule.yaml adds when slo.enabled. Names,
labels and group names follow what Sloth (github.com/slok/sloth) generates, so dashboards made for
Sloth read them: per SLO a group of SLI recordings (`slo:sli_error:ratio_rate<window>`), a group of
meta recordings (objective, budget, burn rates, budget remaining, `sloth_slo_info`) and a group of
two multi-window multi-burn-rate alerts (`sloth_severity` page and ticket), all labelled
`sloth_id`, `sloth_service`, `sloth_slo`. Departures from Sloth, both about traffic that is zero:
the ratio is recorded only while the denominator is above zero (no NaN sample that would poison the
period average, never an alert on no requests), and an availability SLI whose numerator has no
series (no 5xx yet) is 0, not absent.
*/}}

{{/*
metrics-sidecar.httpBuckets: the RED duration histogram's classic bucket bounds, comma-separated:
HTTP_DURATION_BUCKETS from common.env or sidecar.env (the later entry wins, as in the container),
else the sidecar's default (prometheus-flask-exporter's buckets; test/chart/slo.test.ts holds this
list to src/config's DEFAULT_HTTP_BUCKETS).
*/}}
{{- define "metrics-sidecar.httpBuckets" -}}
{{- $b := "0.005,0.01,0.025,0.05,0.075,0.1,0.25,0.5,0.75,1,2.5,5,7.5,10" }}
{{- range concat (.Values.common.env | default list) (.Values.sidecar.env | default list) }}
{{- if eq .name "HTTP_DURATION_BUCKETS" }}
{{- if not (hasKey . "value") }}
{{- fail "slo.latency: HTTP_DURATION_BUCKETS is given by valueFrom, which the chart cannot read to pick the latency SLO's bucket: give it as a value" }}
{{- end }}
{{- $b = .value }}
{{- end }}
{{- end }}
{{- $b }}
{{- end }}

{{/*
metrics-sidecar.sloLe: the `le` matcher value (a regex) of the classic bucket at or just above a
latency threshold. Call with (dict "ctx" $ "threshold" <seconds> "slo" <name>). Integer bounds
match both spellings, `1` (text format, Prometheus 2) and `1.0` (OpenMetrics, Prometheus 3's
normalised `le`).
*/}}
{{- define "metrics-sidecar.sloLe" -}}
{{- $t := float64 .threshold }}
{{- $best := -1.0 }}
{{- range splitList "," (include "metrics-sidecar.httpBuckets" .ctx) }}
{{- $b := float64 (trim .) }}
{{- if and (ge $b $t) (or (lt $best 0.0) (lt $b $best)) }}
{{- $best = $b }}
{{- end }}
{{- end }}
{{- if lt $best 0.0 }}
{{- fail (printf "slo: the latency threshold %vs of SLO %s is above the largest bucket of the RED histogram (%s): lower it, or add a bucket with HTTP_DURATION_BUCKETS" $t .slo (include "metrics-sidecar.httpBuckets" .ctx)) }}
{{- end }}
{{- if eq (floor $best) $best }}
{{- printf "%v|%v[.]0" $best $best }}
{{- else }}
{{- printf "%v" $best }}
{{- end }}
{{- end }}

{{/*
metrics-sidecar.sloList: the SLOs to render, as a YAML list: the service-wide availability and
latency SLOs over every path except slo.excludePaths and the paths of slo.routes, then each route's
own (its values over the service-wide ones).
*/}}
{{- define "metrics-sidecar.sloList" -}}
{{- $s := .Values.slo }}
{{- $sel := include "metrics-sidecar.ruleSelector" . }}
{{- $service := default (include "metrics-sidecar.fullname" .) $s.service }}
{{- $out := list }}
{{- $left := list }}
{{- range $s.excludePaths }}
{{- $left = append $left (regexQuoteMeta .) }}
{{- end }}
{{- range $s.routes }}
{{- $left = append $left (regexQuoteMeta .path) }}
{{- end }}
{{- $scopes := list (dict "prefix" "requests" "selector" (ternary (printf "%s, path!~%q" $sel (join "|" $left)) $sel (gt (len $left) 0)) "over" dict) }}
{{- $names := list "requests" }}
{{- range $s.routes }}
{{- if has .name $names }}
{{- fail (printf "slo.routes: the name %q is given twice, or is the service-wide SLOs' own (requests): each route's SLOs need rule groups of their own" .name) }}
{{- end }}
{{- $names = append $names .name }}
{{- $scopes = append $scopes (dict "prefix" .name "selector" (printf "%s, path=%q" $sel .path) "over" .) }}
{{- end }}
{{- range $scope := $scopes }}
{{- range $kind := list "availability" "latency" }}
{{- $v := mergeOverwrite (deepCopy (get $s $kind)) (deepCopy (get $scope.over $kind | default dict)) }}
{{- if $v.enabled }}
{{- $name := printf "%s-%s" $scope.prefix $kind }}
{{- $slo := dict "name" $name "id" (printf "%s-%s" $service $name) "service" $service "kind" $kind "objective" $v.objective "selector" $scope.selector "runbookUrl" $v.runbookUrl }}
{{- if eq $kind "latency" }}
{{- $_ := set $slo "threshold" $v.thresholdSeconds }}
{{- if not $s.nativeHistograms }}
{{- $le := include "metrics-sidecar.sloLe" (dict "ctx" $ "threshold" $v.thresholdSeconds "slo" $name) }}
{{- $_ := set $slo "le" $le }}
{{- /* The bucket read, which the alert's text names: the first spelling of its bound. */}}
{{- $_ := set $slo "bucket" (first (splitList "|" $le)) }}
{{- end }}
{{- end }}
{{- $out = append $out $slo }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
metrics-sidecar.sloErrorRatio: the SLI error ratio of one SLO over one window (PromQL). Call with
(dict "ctx" $ "slo" <an entry of sloList> "w" <window>).
*/}}
{{- define "metrics-sidecar.sloErrorRatio" -}}
{{- $p := .ctx.Values.metrics.httpPrefix }}
{{- $sel := .slo.selector }}
{{- $native := .ctx.Values.slo.nativeHistograms }}
{{- if eq .slo.kind "availability" }}
{{- if $native }}
(histogram_count(sum(rate({{ $p }}_duration_seconds{ {{- $sel }}, status=~"5.."}[{{ .w }}]))) or vector(0))
/
(histogram_count(sum(rate({{ $p }}_duration_seconds{ {{- $sel }}}[{{ .w }}]))) > 0)
{{- else }}
(sum(rate({{ $p }}_duration_seconds_count{ {{- $sel }}, status=~"5.."}[{{ .w }}])) or vector(0))
/
(sum(rate({{ $p }}_duration_seconds_count{ {{- $sel }}}[{{ .w }}])) > 0)
{{- end }}
{{- else }}
{{- if $native }}
(histogram_count(sum(rate({{ $p }}_duration_seconds{ {{- $sel }}}[{{ .w }}]))) * histogram_fraction({{ .slo.threshold }}, +Inf, sum(rate({{ $p }}_duration_seconds{ {{- $sel }}}[{{ .w }}]))))
/
(histogram_count(sum(rate({{ $p }}_duration_seconds{ {{- $sel }}}[{{ .w }}]))) > 0)
{{- else }}
(sum(rate({{ $p }}_duration_seconds_count{ {{- $sel }}}[{{ .w }}])) - sum(rate({{ $p }}_duration_seconds_bucket{ {{- $sel }}, le=~{{ .slo.le | quote }}}[{{ .w }}])))
/
(sum(rate({{ $p }}_duration_seconds_count{ {{- $sel }}}[{{ .w }}])) > 0)
{{- end }}
{{- end }}
{{- end }}

{{/*
metrics-sidecar.sloGroups: the rule groups of every SLO (items of spec.groups, indented by the caller).
*/}}
{{- define "metrics-sidecar.sloGroups" -}}
{{- $s := .Values.slo }}
{{- $days := int (trimSuffix "d" $s.window) }}
{{- $extra := .Values.prometheusRule.additionalRuleLabels }}
{{- $common := merge (dict "namespace" .Release.Namespace) (deepCopy ($s.labels | default dict)) }}
{{- /* Multi-window multi-burn-rate pairs of the Google SRE workbook, for the period: the factor
spends the share of the budget over the long window (2 % in 1 h and 5 % in 6 h page, 10 % in 1 d
and in 3 d open a ticket), as Sloth's alert windows do. */}}
{{- $pairs := list
  (dict "severity" "page" "short" "5m" "long" "1h" "factor" (divf (mul $days 48) 100))
  (dict "severity" "page" "short" "30m" "long" "6h" "factor" (divf (mul $days 20) 100))
  (dict "severity" "ticket" "short" "2h" "long" "1d" "factor" (divf (mul $days 10) 100))
  (dict "severity" "ticket" "short" "6h" "long" "3d" "factor" (divf (mul $days 10) 300)) }}
{{- range $slo := include "metrics-sidecar.sloList" . | fromYamlArray }}
{{- $ids := merge (dict "sloth_id" $slo.id "sloth_service" $slo.service "sloth_slo" $slo.name) $common }}
{{- $match := printf "namespace=%q, sloth_id=%q, sloth_service=%q, sloth_slo=%q" $.Release.Namespace $slo.id $slo.service $slo.name }}
{{- $objective := round (divf $slo.objective 100) 10 }}
{{- $budget := round (divf (subf 100 $slo.objective) 100) 10 }}
{{- $alert := ternary "MetricsSidecarAvailabilityBudgetBurn" "MetricsSidecarLatencyBudgetBurn" (eq $slo.kind "availability") }}
{{- $runbook := default (printf "%s#%s" $.Values.prometheusRule.runbookUrl ($alert | lower)) $slo.runbookUrl }}
- name: sloth-slo-sli-recordings-{{ $slo.id }}
  rules:
    {{- range $w := list "5m" "30m" "1h" "2h" "6h" "1d" "3d" }}
    - record: slo:sli_error:ratio_rate{{ $w }}
      expr: |-
        {{- include "metrics-sidecar.sloErrorRatio" (dict "ctx" $ "slo" $slo "w" $w) | trim | nindent 8 }}
      labels:
        {{- merge (dict "sloth_window" $w) $ids | toYaml | nindent 8 }}
    {{- end }}
    - record: slo:sli_error:ratio_rate{{ $s.window }}
      expr: |-
        sum_over_time(slo:sli_error:ratio_rate5m{ {{- $match }}}[{{ $s.window }}])
        / ignoring (sloth_window)
        count_over_time(slo:sli_error:ratio_rate5m{ {{- $match }}}[{{ $s.window }}])
      labels:
        {{- merge (dict "sloth_window" $s.window) $ids | toYaml | nindent 8 }}
- name: sloth-slo-meta-recordings-{{ $slo.id }}
  rules:
    - record: slo:objective:ratio
      expr: vector({{ $objective }})
      labels:
        {{- toYaml $ids | nindent 8 }}
    - record: slo:error_budget:ratio
      expr: vector({{ $budget }})
      labels:
        {{- toYaml $ids | nindent 8 }}
    - record: slo:time_period:days
      expr: vector({{ $days }})
      labels:
        {{- toYaml $ids | nindent 8 }}
    - record: slo:current_burn_rate:ratio
      expr: |-
        slo:sli_error:ratio_rate5m{ {{- $match }}}
        / on(namespace, sloth_id, sloth_slo, sloth_service) group_left
        slo:error_budget:ratio{ {{- $match }}}
      labels:
        {{- toYaml $ids | nindent 8 }}
    - record: slo:period_burn_rate:ratio
      expr: |-
        slo:sli_error:ratio_rate{{ $s.window }}{ {{- $match }}}
        / on(namespace, sloth_id, sloth_slo, sloth_service) group_left
        slo:error_budget:ratio{ {{- $match }}}
      labels:
        {{- toYaml $ids | nindent 8 }}
    - record: slo:period_error_budget_remaining:ratio
      expr: 1 - slo:period_burn_rate:ratio{ {{- $match }}}
      labels:
        {{- toYaml $ids | nindent 8 }}
    - record: sloth_slo_info
      expr: vector(1)
      labels:
        {{- merge (dict "sloth_mode" "metrics-sidecar-chart" "sloth_objective" (toString $slo.objective) "sloth_spec" "prometheus/v1" "sloth_version" (printf "metrics-sidecar-chart-%s" $.Chart.Version)) $ids | toYaml | nindent 8 }}
- name: sloth-slo-alerts-{{ $slo.id }}
  rules:
    {{- range $sev := list "page" "ticket" }}
    - alert: {{ $alert }}
      expr: |-
        {{- $first := true }}
        {{- range $pairs }}
        {{- if eq .severity $sev }}
        {{- if not $first }}
        or
        {{- end }}
        {{- $first = false }}
        (
            max(slo:sli_error:ratio_rate{{ .short }}{ {{- $match }}} > ({{ printf "%g" .factor }} * {{ $budget }})) without (sloth_window)
            and
            max(slo:sli_error:ratio_rate{{ .long }}{ {{- $match }}} > ({{ printf "%g" .factor }} * {{ $budget }})) without (sloth_window)
        )
        {{- end }}
        {{- end }}
      labels:
        {{- /* The series carry these already; on the rule they tell two SLOs' alerts apart (promtool's duplicate-rule check). */}}
        sloth_id: {{ $slo.id | quote }}
        sloth_service: {{ $slo.service | quote }}
        sloth_slo: {{ $slo.name | quote }}
        sloth_severity: {{ $sev }}
        severity: {{ (get $s.alerts $sev).severity | quote }}
        {{- with $extra }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        runbook_url: {{ $runbook | quote }}
        {{- $burn := list }}
        {{- range $pairs }}{{ if eq .severity $sev }}{{ $burn = append $burn (printf "%gx over %s and %s" .factor .long .short) }}{{ end }}{{ end }}
        {{- $slower := printf "requests slower than %vs" $slo.threshold }}
        {{- if and $slo.bucket (ne (toString $slo.bucket) (toString $slo.threshold)) }}
        {{- $slower = printf "requests slower than %vs (the histogram's bucket at or above the %vs threshold)" $slo.bucket $slo.threshold }}
        {{- end }}
        {{- $what := ternary "5xx answers" $slower (eq $slo.kind "availability") }}
        summary: {{ printf "(%s) %s %s: %s spend the SLO's error budget too fast." $sev $slo.service $slo.name $what | quote }}
        description: {{ printf "%s, SLO %s (objective %v %% over %s): %s burn its error budget at %s." $slo.service $slo.name $slo.objective $s.window $what (join ", or " $burn) | quote }}
    {{- end }}
{{- end }}
{{- end }}
