{{/* Names */}}
{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "herald.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of a role's objects: <fullname>-ingest, <fullname>-dispatch (52 chars left for the release). */}}
{{- define "herald.roleName" -}}
{{- printf "%s-%s" (include "herald.fullname" .root | trunc 52 | trimSuffix "-") .role -}}
{{- end -}}

{{- define "herald.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "herald.labels" -}}
helm.sh/chart: {{ include "herald.chart" . }}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: herald
{{- end -}}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of a role: pass (dict "root" $ "role" "ingest") */}}
{{- define "herald.roleLabels" -}}
{{ include "herald.labels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "herald.roleSelectorLabels" -}}
{{ include "herald.selectorLabels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "herald.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "herald.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "herald.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "herald.secretName" -}}
{{- default (printf "%s-secrets" (include "herald.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Kafka partitions (the dispatch scale-out bound), as an int. */}}
{{- define "herald.partitions" -}}
{{- $q := .Values.config.queue | default dict -}}
{{- $k := $q.kafka | default dict -}}
{{- int64 (default 8 $k.partitions) -}}
{{- end -}}

{{/* ceil(dispatch.drain_timeout_ms / 1000), default 10 s. */}}
{{- define "herald.drainSeconds" -}}
{{- $d := .Values.config.dispatch | default dict -}}
{{- $ms := int64 (default 10000 $d.drain_timeout_ms) -}}
{{- div (add $ms 999) 1000 -}}
{{- end -}}

{{- define "herald.terminationGracePeriodSeconds" -}}
{{- $drain := int64 (include "herald.drainSeconds" .) -}}
{{- $pre := int64 (default 0 .Values.preStopSleepSeconds) -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $pre $drain 20 -}}
{{- else -}}
{{- $t := int64 .Values.terminationGracePeriodSeconds -}}
{{- if le $t (add $pre $drain) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + dispatch.drain_timeout_ms (%d s), or in-flight batches are killed on shutdown" $t (add $pre $drain)) -}}
{{- end -}}
{{- $t -}}
{{- end -}}
{{- end -}}

{{/*
TOML rendering. Helm reads numbers in values as float64 (24 -> 24.0), which
the gateway refuses for integer keys, so values are rendered here rather than
with toToml: whole numbers as integers, strings JSON-quoted (JSON escapes are
valid TOML basic-string escapes), maps as dotted keys, maps inside lists as
inline tables. Only dotted keys and no [table] headers, so that the Secret's
admin_token and [[tenants]] can be appended to the file.
*/}}
{{- define "herald.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{- define "herald.toml.value" -}}
{{- $v := . -}}
{{- if kindIs "string" $v -}}{{ toJson $v }}
{{- else if kindIs "bool" $v -}}{{ ternary "true" "false" $v }}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) -}}
{{- if eq (float64 (int64 $v)) (float64 $v) -}}{{ int64 $v }}{{- else -}}{{ $v }}{{- end -}}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "int32" $v) (kindIs "uint64" $v) -}}{{ $v }}
{{- else if kindIs "slice" $v -}}
[{{- range $i, $e := $v -}}{{- if $i }}, {{ end -}}{{- include "herald.toml.value" $e -}}{{- end -}}]
{{- else if kindIs "map" $v -}}
{ {{- range $i, $k := keys $v | sortAlpha -}}{{- if $i }},{{ end }} {{ include "herald.toml.key" $k }} = {{ include "herald.toml.value" (index $v $k) }}{{- end }} }
{{- else -}}
{{- fail (printf "herald.toml: cannot render a value of kind %s" (kindOf $v)) -}}
{{- end -}}
{{- end -}}

{{/* Lines `a.b.c = value` for a map; pass (dict "prefix" "" "map" $m). Nulls are skipped. */}}
{{- define "herald.toml.entries" -}}
{{- $prefix := .prefix -}}
{{- $m := .map -}}
{{- range $k := keys $m | sortAlpha -}}
{{- $v := index $m $k -}}
{{- $path := printf "%s%s" $prefix (include "herald.toml.key" $k) -}}
{{- if kindIs "invalid" $v -}}
{{- else if and (kindIs "map" $v) (gt (len $v) 0) -}}
{{ include "herald.toml.entries" (dict "prefix" (printf "%s." $path) "map" $v) }}
{{- else }}
{{ $path }} = {{ include "herald.toml.value" $v }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The shared herald.toml (no secrets, no role). */}}
{{- define "herald.config.toml" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- range $k := list "listen" "data_dir" "admin_token" "tenants" -}}
{{- if hasKey $cfg $k -}}
{{- fail (printf "config.%s is set by the chart (or belongs in secrets): remove it from config" $k) -}}
{{- end -}}
{{- end -}}
{{- $plugins := $cfg.plugins | default dict -}}
{{- if hasKey $plugins "dir" -}}{{- fail "config.plugins.dir is set by the chart: use pluginsDir" -}}{{- end -}}
{{- $dispatch := $cfg.dispatch | default dict -}}
{{- if hasKey $dispatch "enabled" -}}{{- fail "config.dispatch.enabled is set per role by the chart: remove it from config" -}}{{- end -}}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%d" (int64 .Values.port)) -}}
{{- $_ := set $cfg "data_dir" .Values.dataDir -}}
{{- $_ := set $plugins "dir" .Values.pluginsDir -}}
{{- $_ := set $cfg "plugins" $plugins -}}
# herald.toml (generated by the Helm chart from .Values.config; no secrets).
# The pod's init container appends the role file and the Secret's TOML.
{{- include "herald.toml.entries" (dict "prefix" "" "map" $cfg) }}
{{- end -}}

{{/* The Secret's TOML: admin_token, then the [[tenants]] blocks. */}}
{{- define "herald.secrets.toml" -}}
{{- $t := .Values.secrets.tenantsToml | default "" -}}
{{- range $line := regexFindAll "(?m)^\\s*\\[.*$" $t -1 -}}
{{- if not (regexMatch "^\\s*\\[\\[?\\s*tenants\\s*[.\\]]" $line) -}}
{{- fail (printf "secrets.tenantsToml may only hold [[tenants]] blocks; found the header %q (put other settings in config)" (trim $line)) -}}
{{- end -}}
{{- end -}}
# Herald secrets (generated by the Helm chart).
{{- if .Values.secrets.adminToken }}
admin_token = {{ toJson .Values.secrets.adminToken }}
{{- end }}
{{- if .Values.secrets.secretsKey }}
secrets_key = {{ toJson .Values.secrets.secretsKey }}
{{- end }}
{{ $t }}
{{- end -}}

{{/* Checks that fail the render. */}}
{{- define "herald.validate" -}}
{{- $partitions := int64 (include "herald.partitions" .) -}}
{{- if and (not .Values.dispatch.autoscaling.enabled) (gt (int64 .Values.dispatch.replicaCount) $partitions) -}}
{{- fail (printf "dispatch.replicaCount (%d) exceeds config.queue.kafka.partitions (%d): a partition has one owner, so the extra dispatch nodes would idle" (int64 .Values.dispatch.replicaCount) $partitions) -}}
{{- end -}}
{{- if and .Values.dispatch.autoscaling.enabled (gt (int64 .Values.dispatch.autoscaling.minReplicas) $partitions) -}}
{{- fail (printf "dispatch.autoscaling.minReplicas (%d) exceeds config.queue.kafka.partitions (%d)" (int64 .Values.dispatch.autoscaling.minReplicas) $partitions) -}}
{{- end -}}
{{- if and (not .Values.secrets.existingSecret) (not .Values.secrets.tenantsToml) -}}
{{- fail "no tenants: set secrets.tenantsToml (the [[tenants]] of herald.toml) or secrets.existingSecret" -}}
{{- end -}}
{{- $seed := .Values.plugins.persistence.seedBuiltin -}}
{{- if not (has $seed (list "ifMissing" "always" "never")) -}}
{{- fail (printf "plugins.persistence.seedBuiltin must be ifMissing, always or never (got %q)" $seed) -}}
{{- end -}}
{{- if and .Values.plugins.persistence.enabled (not .Values.plugins.persistence.existingClaim) -}}
{{- fail "plugins.persistence.enabled needs plugins.persistence.existingClaim" -}}
{{- end -}}
{{- if and .Values.admin.enabled (not .Values.secrets.existingSecret) (not .Values.secrets.secretsKey) -}}
{{- fail "admin.enabled needs secrets.secretsKey (32 random bytes, base64: head -c 32 /dev/urandom | base64): the gateways open the account secrets the admin seals with it" -}}
{{- end -}}
{{- if and .Values.admin.enabled .Values.secrets.operatorToken (lt (len .Values.secrets.operatorToken) 16) -}}
{{- fail "secrets.operatorToken: at least 16 characters" -}}
{{- end -}}
{{- if and .Values.plugins.persistence.enabled .Values.plugins.persistence.readOnly (ne $seed "never") -}}
{{- fail "plugins.persistence.readOnly needs seedBuiltin: never (the init container writes to the volume)" -}}
{{- end -}}
{{- end -}}

{{/* Whether pluginsDir is a volume (vendor plugins) rather than the image's directory. */}}
{{- define "herald.pluginsVolume" -}}
{{- if or .Values.plugins.persistence.enabled .Values.plugins.extraImages -}}true{{- end -}}
{{- end -}}


{{/* The admin service's admin.toml (no secrets): its listen address and
paths, the gateways' storage and queue, admin.* settings, admin.config. */}}
{{- define "herald.admin.toml" -}}
{{- $a := .Values.admin -}}
{{- $cfg := dict "listen" (printf "0.0.0.0:%d" (int64 $a.port)) "data_dir" .Values.dataDir "plugins_dir" .Values.pluginsDir -}}
{{- $_ := set $cfg "secure_cookies" $a.secureCookies -}}
{{- $_ := set $cfg "session_idle_minutes" $a.sessionIdleMinutes -}}
{{- $_ := set $cfg "allow_private" ($a.allowPrivate | default list) -}}
{{- with .Values.config.storage }}{{- $_ := set $cfg "storage" (deepCopy .) -}}{{- end -}}
{{- with .Values.config.queue }}{{- $_ := set $cfg "queue" (deepCopy .) -}}{{- end -}}
{{- range $k := list "listen" "data_dir" "plugins_dir" "storage" "queue" "secrets_key" "operator_token" -}}
{{- if hasKey ($a.config | default dict) $k -}}
{{- fail (printf "admin.config.%s is set by the chart (or belongs in secrets): remove it" $k) -}}
{{- end -}}
{{- end -}}
{{- $cfg = mergeOverwrite $cfg (deepCopy ($a.config | default dict)) -}}
# admin.toml (generated by the Helm chart; no secrets: the secrets key and the
# operator token come from the Secret as HERALD_ADMIN_* variables).
{{- include "herald.toml.entries" (dict "prefix" "" "map" $cfg) }}
{{- end -}}

{{- define "herald.adminName" -}}
{{- include "herald.roleName" (dict "root" . "role" "admin") -}}
{{- end -}}
