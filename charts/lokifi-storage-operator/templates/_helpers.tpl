{{/* Names and labels shared by every template. */}}

{{- define "lokifi.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the chart name alone when the release is named after it. */}}
{{- define "lokifi.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lokifi.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lokifi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lokifi.labels" -}}
{{ include "lokifi.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: lokifi-storage
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "lokifi.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lokifi.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "lokifi.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
What the operator does in a namespace it serves: read LokifiStorage and patch its status and
Kopf's annotations/finalizer; read the credential Secrets and write the connection Secret
(never list or watch Secrets; delete only the connection Secret of a name the spec renamed away
from, which status.connectionSecret records; garbage collection removes the rest);
own CronJobs; post Events. Nothing else: no Pods, no Jobs, no CRDs, no Namespaces.
Server-side apply of an object that does not exist yet needs `create` besides `patch`.
*/}}
{{- define "lokifi.namespacedRules" -}}
- apiGroups: ["storage.lokifi.ai"]
  resources: ["lokifistorages"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["storage.lokifi.ai"]
  resources: ["lokifistorages/status"]
  verbs: ["get", "patch"]
# Owned objects carry blockOwnerDeletion; OwnerReferencesPermissionEnforcement wants this.
- apiGroups: ["storage.lokifi.ai"]
  resources: ["lokifistorages/finalizers"]
  verbs: ["update"]
# delete: only the connection Secret of a name the spec no longer uses (checked by uid).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}
