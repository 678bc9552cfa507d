{{/* shop.selectorLabels: the labels that select the shop's pods. */}}
{{- define "shop.selectorLabels" -}}
app.kubernetes.io/name: shop
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
