{{/* Chart name, or nameOverride. */}}
{{- define "samlcred.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: fullnameOverride, else the release name when it already contains
the chart name, else "<release>-<chart>". Truncated to 63 characters (the DNS label limit).
*/}}
{{- define "samlcred.fullname" -}}
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

{{- define "samlcred.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator's pods; never change them after a release exists. */}}
{{- define "samlcred.selectorLabels" -}}
app.kubernetes.io/name: {{ include "samlcred.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "samlcred.labels" -}}
helm.sh/chart: {{ include "samlcred.chart" . }}
{{ include "samlcred.selectorLabels" . }}
app.kubernetes.io/version: {{ include "samlcred.imageTag" . | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: samlcred
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "samlcred.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag | trunc 63 }}
{{- end }}

{{- define "samlcred.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "samlcred.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "samlcred.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "samlcred.clusterResourceNamespace" -}}
{{- default .Release.Namespace .Values.clusterResourceNamespace }}
{{- end }}

{{- define "samlcred.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{- define "samlcred.leaseName" -}}
{{- default (include "samlcred.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* "host:port" for a listen flag; IPv6 addresses get their brackets. Argument: (list address port). */}}
{{- define "samlcred.bindAddress" -}}
{{- $host := index . 0 }}
{{- if contains ":" $host }}[{{ $host }}]{{ else }}{{ $host }}{{ end }}:{{ index . 1 }}
{{- end }}

{{/* The ServiceAccount as an RBAC subject. */}}
{{- define "samlcred.subject" -}}
- kind: ServiceAccount
  name: {{ include "samlcred.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/*
Rules for the namespaced resources samlcred manages. Used by the cluster-wide ClusterRole and by the
per-namespace Roles of scoped mode, so both modes grant exactly the same verbs. README.md explains each.
*/}}
{{- define "samlcred.namespacedRules" -}}
- apiGroups: ["samlcred.io"]
  resources: ["samlappcredentials", "oktaorgs"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["samlcred.io"]
  resources: ["samlappcredentials/status", "oktaorgs/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.rbac.rolloutRestart }}
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "patch"]
{{- end }}
{{- end }}

{{/*
Rules for what is cluster-scoped by nature, needed in both modes. Namespaces are read one by one (get)
to match a ClusterOktaOrg's namespaceSelector; scoped mode limits that to the watched namespaces.
*/}}
{{- define "samlcred.clusterScopedRules" -}}
- apiGroups: ["samlcred.io"]
  resources: ["clusteroktaorgs"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["samlcred.io"]
  resources: ["clusteroktaorgs/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["namespaces"]
  {{- with .Values.watchNamespaces }}
  resourceNames: {{ toJson . }}
  verbs: ["get"]
  {{- else }}
  # Cluster-wide, the namespaces' labels (for ClusterOktaOrg selectors) are watched, not read per reconcile.
  verbs: ["get", "list", "watch"]
  {{- end }}
{{- end }}

{{/* "true" when a value is neither null nor the empty string (0 counts as set), else "". */}}
{{- define "samlcred.isSet" -}}
{{- if not (or (kindIs "invalid" .) (eq (toString .) "")) }}true{{ end }}
{{- end }}

{{/* Checks on the values that a schema cannot express. */}}
{{- define "samlcred.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: two active controllers would race on Okta" }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if $pdb.enabled }}
{{- $min := include "samlcred.isSet" $pdb.minAvailable }}
{{- $max := include "samlcred.isSet" $pdb.maxUnavailable }}
{{- if eq $min $max }}
{{- fail "podDisruptionBudget: set exactly one of minAvailable or maxUnavailable (the other to \"\")" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "samlcred.webhookSecretName" -}}
{{- default (printf "%s-webhook-tls" (include "samlcred.fullname" .)) .Values.webhook.secretName }}
{{- end }}
