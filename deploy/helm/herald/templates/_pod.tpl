{{/*
The pod template of both roles; pass (dict "root" $ "role" "ingest"|"dispatch").
*/}}
{{- define "herald.builtinPluginsDir" -}}/opt/herald/plugins{{- end -}}
{{/* Where init containers see the plugin volume (not a path a plugin image uses). */}}
{{- define "herald.pluginsVolumeMount" -}}/herald-plugin-volume{{- end -}}

{{/* Copies $SRC/*.wasm into the plugin volume ($DST) atomically (temp file +
rename, so a hot reload never reads half a file). MODE=ifMissing keeps
existing files. */}}
{{- define "herald.copyPluginsScript" -}}
set -eu
found=0
for f in "$SRC"/*.wasm; do
  [ -e "$f" ] || continue
  found=1
  b=$(basename "$f")
  if [ "$MODE" = ifMissing ] && [ -e "$DST/$b" ]; then
    echo "plugins: keeping $b"
    continue
  fi
  cp "$f" "$DST/.$b.$HOSTNAME.tmp"
  mv -f "$DST/.$b.$HOSTNAME.tmp" "$DST/$b"
  echo "plugins: copied $b from $SRC"
done
[ "$found" = 1 ] || { echo "plugins: no *.wasm in $SRC" >&2; exit 1; }
{{- end -}}

{{- define "herald.podTemplate" -}}
{{- $root := .root -}}
{{- $role := .role -}}
{{- $v := $root.Values -}}
{{- $r := index $v $role -}}
{{- $pluginsVolume := include "herald.pluginsVolume" $root -}}
metadata:
  labels:
    {{- include "herald.roleSelectorLabels" (dict "root" $root "role" $role) | nindent 4 }}
    {{- with $r.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- if not $v.secrets.existingSecret }}
    checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
    {{- end }}
    {{- with $r.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "herald.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $v.automountServiceAccountToken }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $r.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ include "herald.terminationGracePeriodSeconds" $root }}
  initContainers:
    # herald.toml = the ConfigMap's shared part + the role part + the Secret's
    # TOML, assembled in memory (the gateway reads one file).
    - name: config
      image: {{ include "herald.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command: ["/bin/sh", "-c"]
      args:
        - |
          set -eu
          umask 077
          for f in /etc/herald/src/herald.toml /etc/herald/src/role.toml /etc/herald/secret/secrets.toml; do
            [ -r "$f" ] || { echo "config: $f is missing (Secret {{ include "herald.secretName" $root }} needs the key {{ $v.secrets.key }})" >&2; exit 1; }
          done
          for f in /etc/herald/src/herald.toml /etc/herald/src/role.toml /etc/herald/secret/secrets.toml; do
            cat "$f"; echo
          done > /etc/herald/run/herald.toml
          echo "config: assembled /etc/herald/run/herald.toml for role {{ $role }}"
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      resources:
        requests: { cpu: 10m, memory: 16Mi }
        limits: { memory: 64Mi }
      volumeMounts:
        - { name: config-src, mountPath: /etc/herald/src, readOnly: true }
        - { name: secrets, mountPath: /etc/herald/secret, readOnly: true }
        - { name: config-run, mountPath: /etc/herald/run }
    {{- if $pluginsVolume }}
    {{- if or (not $v.plugins.persistence.enabled) (ne $v.plugins.persistence.seedBuiltin "never") }}
    # The image's first-party plugins into the plugin volume.
    - name: plugins-builtin
      image: {{ include "herald.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command: ["/bin/sh", "-c"]
      args:
        - |
          {{- include "herald.copyPluginsScript" $root | nindent 10 }}
      env:
        - { name: SRC, value: {{ include "herald.builtinPluginsDir" $root | quote }} }
        - { name: MODE, value: {{ ternary $v.plugins.persistence.seedBuiltin "always" $v.plugins.persistence.enabled | quote }} }
        - { name: DST, value: {{ include "herald.pluginsVolumeMount" $root }} }
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      resources:
        requests: { cpu: 10m, memory: 16Mi }
        limits: { memory: 64Mi }
      volumeMounts:
        - { name: plugins, mountPath: {{ include "herald.pluginsVolumeMount" $root }} }
    {{- end }}
    {{- range $i, $p := $v.plugins.extraImages }}
    # Vendor plugin image {{ $p.name }}.
    - name: {{ printf "plugin-%s" $p.name | trunc 63 | trimSuffix "-" }}
      image: {{ required "plugins.extraImages[].image is required" $p.image }}
      imagePullPolicy: {{ $p.pullPolicy | default "IfNotPresent" }}
      command: ["/bin/sh", "-c"]
      args:
        - |
          {{- include "herald.copyPluginsScript" $root | nindent 10 }}
      env:
        - { name: SRC, value: {{ $p.path | default "/plugins" | quote }} }
        - { name: MODE, value: "always" }
        - { name: DST, value: {{ include "herald.pluginsVolumeMount" $root }} }
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      resources:
        requests: { cpu: 10m, memory: 16Mi }
        limits: { memory: 64Mi }
      volumeMounts:
        - { name: plugins, mountPath: {{ include "herald.pluginsVolumeMount" $root }} }
    {{- end }}
    {{- end }}
  containers:
    - name: gateway
      image: {{ include "herald.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args: ["--config", "/etc/herald/run/herald.toml"]
      env:
        # The file already says the same; these keep an image default from
        # overriding it (environment variables win over the file).
        - { name: HERALD_LISTEN, value: {{ printf "0.0.0.0:%d" (int64 $v.port) | quote }} }
        - { name: HERALD_DATA_DIR, value: {{ $v.dataDir | quote }} }
        - { name: HERALD_PLUGINS__DIR, value: {{ $v.pluginsDir | quote }} }
        - { name: HERALD_DISPATCH__ENABLED, value: {{ ternary "true" "false" (eq $role "dispatch") | quote }} }
        - { name: HERALD_LOG, value: {{ $v.log.level | quote }} }
        {{- if eq $v.log.format "json" }}
        - { name: HERALD_LOG_FORMAT, value: "json" }
        {{- end }}
        {{- if $v.otlp.endpoint }}
        - { name: OTEL_EXPORTER_OTLP_ENDPOINT, value: {{ $v.otlp.endpoint | quote }} }
        - { name: OTEL_SERVICE_NAME, value: {{ printf "herald-%s" $role | quote }} }
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $r.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        - name: http
          containerPort: {{ int64 $v.port }}
          protocol: TCP
      startupProbe:
        httpGet: { path: {{ $v.probes.startup.path }}, port: http }
        periodSeconds: {{ $v.probes.startup.periodSeconds }}
        timeoutSeconds: {{ $v.probes.startup.timeoutSeconds }}
        failureThreshold: {{ $v.probes.startup.failureThreshold }}
      livenessProbe:
        httpGet: { path: {{ $v.probes.liveness.path }}, port: http }
        periodSeconds: {{ $v.probes.liveness.periodSeconds }}
        timeoutSeconds: {{ $v.probes.liveness.timeoutSeconds }}
        failureThreshold: {{ $v.probes.liveness.failureThreshold }}
      readinessProbe:
        httpGet: { path: {{ $v.probes.readiness.path }}, port: http }
        periodSeconds: {{ $v.probes.readiness.periodSeconds }}
        timeoutSeconds: {{ $v.probes.readiness.timeoutSeconds }}
        failureThreshold: {{ $v.probes.readiness.failureThreshold }}
      {{- if gt (int64 (default 0 $v.preStopSleepSeconds)) 0 }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", {{ int64 $v.preStopSleepSeconds | quote }}]
      {{- end }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      resources:
        {{- toYaml $r.resources | nindent 8 }}
      volumeMounts:
        - { name: config-run, mountPath: /etc/herald/run, readOnly: true }
        - { name: data, mountPath: {{ $v.dataDir | quote }} }
        - { name: tmp, mountPath: /tmp }
        {{- if $pluginsVolume }}
        - name: plugins
          mountPath: {{ $v.pluginsDir | quote }}
          readOnly: {{ and $v.plugins.persistence.enabled $v.plugins.persistence.readOnly }}
        {{- end }}
  volumes:
    - name: config-src
      configMap:
        name: {{ include "herald.fullname" $root }}
        items:
          - { key: herald.toml, path: herald.toml }
          - { key: {{ printf "%s.toml" $role }}, path: role.toml }
    - name: secrets
      secret:
        secretName: {{ include "herald.secretName" $root }}
        defaultMode: 0440
        items:
          - { key: {{ $v.secrets.key | quote }}, path: secrets.toml }
    - name: config-run
      emptyDir: { medium: Memory, sizeLimit: 8Mi }
    - name: data
      emptyDir: {}
    - name: tmp
      emptyDir: { sizeLimit: 64Mi }
    {{- if $pluginsVolume }}
    - name: plugins
      {{- if $v.plugins.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ $v.plugins.persistence.existingClaim }}
      {{- else }}
      emptyDir: { sizeLimit: 512Mi }
      {{- end }}
    {{- end }}
  {{- with $r.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $r.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $r.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $r.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
