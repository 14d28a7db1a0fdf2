{{/*
The chart's name, and the release's full name (the release name alone when
it already contains the chart's name).
*/}}
{{- define "gpuledger.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gpuledger.fullname" -}}
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
The name of one component's objects: (dict "ctx" $ "component" "exporter").
*/}}
{{- define "gpuledger.componentName" -}}
{{- printf "%s-%s" (include "gpuledger.fullname" .ctx | trunc 45 | trimSuffix "-") .component }}
{{- end }}

{{/*
Labels: every object's, and the selector labels of one component's pods.
*/}}
{{- define "gpuledger.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpuledger.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "gpuledger.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "gpuledger.selectorLabels" . }}
app.kubernetes.io/version: {{ default .ctx.Chart.AppVersion .ctx.Values.image.tag | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: gpuledger
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The image of every container.
*/}}
{{- define "gpuledger.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The database Secret and the DATABASE_URL variable read from it.
*/}}
{{- define "gpuledger.databaseSecret" -}}
{{- default (printf "%s-database" (include "gpuledger.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{- define "gpuledger.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "gpuledger.databaseSecret" . }}
      key: {{ .Values.database.secretKey }}
{{- end }}

{{/*
The API's DATABASE_URL: its own (read-only) Secret when given.
*/}}
{{- define "gpuledger.apiDatabaseEnv" -}}
{{- if .Values.api.database.existingSecret }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.api.database.existingSecret }}
      key: {{ .Values.api.database.secretKey }}
{{- else }}
{{- include "gpuledger.databaseEnv" . }}
{{- end }}
{{- end }}

{{/*
The attribution rules ConfigMap, when rules are given.
*/}}
{{- define "gpuledger.attributionConfigMap" -}}
{{- include "gpuledger.componentName" (dict "ctx" . "component" "attribution") }}
{{- end }}

{{/*
The exporters' Service, which the aggregator discovers them through.
*/}}
{{- define "gpuledger.exporterService" -}}
{{- include "gpuledger.componentName" (dict "ctx" . "component" "exporter") }}
{{- end }}

{{/*
The node affinity of the node exporter: any of the configured terms, each
also excluding InterLink virtual nodes.
*/}}
{{- define "gpuledger.nodeExporterAffinity" -}}
nodeAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    nodeSelectorTerms:
    {{- range .Values.exporter.node.nodeSelectorTerms }}
      - matchExpressions:
          {{- with .matchExpressions }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
          - key: virtual-node.interlink/type
            operator: NotIn
            values: ["virtual-kubelet"]
    {{- end }}
{{- end }}

{{/*
The default affinity of the cluster-mode exporter: the complement of the
node exporter's terms (In becomes NotIn, Exists DoesNotExist), and no
virtual node. The aggregator names each exporter endpoint by its node, so a
cluster-mode exporter beside a node exporter would share its name.
*/}}
{{- define "gpuledger.clusterExporterAffinity" -}}
nodeAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    nodeSelectorTerms:
      - matchExpressions:
          {{- if .Values.exporter.node.enabled }}
          {{- range $i, $term := .Values.exporter.node.nodeSelectorTerms }}
          {{- if ne (len (default list $term.matchExpressions)) 1 }}
          {{- fail (printf "exporter.node.nodeSelectorTerms[%d] has %d expressions: the cluster-mode exporter's default affinity needs one per term (In or Exists); set exporter.cluster.affinity instead" $i (len (default list $term.matchExpressions))) }}
          {{- end }}
          {{- $e := index $term.matchExpressions 0 }}
          {{- if eq $e.operator "In" }}
          - key: {{ $e.key }}
            operator: NotIn
            values: {{ toJson $e.values }}
          {{- else if eq $e.operator "Exists" }}
          - key: {{ $e.key }}
            operator: DoesNotExist
          {{- else }}
          {{- fail (printf "exporter.node.nodeSelectorTerms[%d] uses operator %s: the cluster-mode exporter's default affinity needs In or Exists; set exporter.cluster.affinity instead" $i $e.operator) }}
          {{- end }}
          {{- end }}
          {{- end }}
          - key: virtual-node.interlink/type
            operator: NotIn
            values: ["virtual-kubelet"]
{{- end }}

{{/*
Checks of values that depend on each other; rendered by validate.yaml.
*/}}
{{- define "gpuledger.validate" -}}
{{- if and .Values.aggregator.enabled (not .Values.clusterName) }}
{{- fail "clusterName is required: the name every ledger row carries (the aggregator's --cluster). Choose it once." }}
{{- end }}
{{- if .Values.api.enabled }}
{{- if .Values.api.noAuth }}
{{- if or .Values.api.oidc.issuer .Values.api.oidc.audience .Values.api.oidc.jwksConfigMap }}
{{- fail "api.noAuth disables authentication: it cannot be combined with api.oidc.issuer, api.oidc.audience or api.oidc.jwksConfigMap" }}
{{- end }}
{{- else if or (not .Values.api.oidc.issuer) (not .Values.api.oidc.audience) }}
{{- fail "api.oidc.issuer and api.oidc.audience are required (or api.enabled: false, or api.noAuth: true for development only)" }}
{{- end }}
{{- end }}
{{- if and .Values.aggregator.enabled (eq .Values.aggregator.source "prometheus") (not .Values.aggregator.prometheus.url) }}
{{- fail "aggregator.prometheus.url is required with aggregator.source: prometheus (the Prometheus, Thanos or Mimir that scrapes the exporters)" }}
{{- end }}
{{- if and .Values.exporter.node.enabled .Values.exporter.node.webConfigSecret .Values.aggregator.enabled (ne .Values.aggregator.source "prometheus") }}
{{- fail "exporter.node.webConfigSecret: the aggregator scrapes the exporters over plain HTTP without credentials and could not read them; it needs aggregator.source: prometheus (Prometheus scrapes them with the credentials) or aggregator.enabled: false" }}
{{- end }}
{{- end }}
