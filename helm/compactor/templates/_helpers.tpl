{{/*
Chart name, truncated to the 63 characters a label value may hold.
*/}}
{{- define "compactor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every resource name: <release>-<chart>, or just the release name when it
already contains the chart name. Kept to 52 characters so that suffixes such as
"-backfill" and the CronJob's own 11-character job suffix still fit in 63.
*/}}
{{- define "compactor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of the nightly CronJob: at most 52 characters, since the Jobs it creates append 11.
*/}}
{{- define "compactor.sweepName" -}}
{{- printf "%s-sweep" (include "compactor.fullname" . | trunc 46 | trimSuffix "-") }}
{{- end }}

{{/*
Name of the backfill Job.
*/}}
{{- define "compactor.backfillName" -}}
{{- printf "%s-backfill" (include "compactor.fullname" .) }}
{{- end }}

{{/*
chart label value: name-version.
*/}}
{{- define "compactor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select this release's objects.
*/}}
{{- define "compactor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "compactor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "compactor.labels" -}}
helm.sh/chart: {{ include "compactor.chart" . }}
{{ include "compactor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: compactor
{{- end }}

{{/*
The ServiceAccount the runner runs as (it drives the DaskCluster through the Kubernetes API).
*/}}
{{- define "compactor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "compactor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The ServiceAccount the Dask scheduler and workers run as: their own, without API access.
*/}}
{{- define "compactor.daskServiceAccountName" -}}
{{- if .Values.daskServiceAccount.create }}
{{- default (printf "%s-dask" (include "compactor.fullname" .)) .Values.daskServiceAccount.name }}
{{- else }}
{{- required "daskServiceAccount.name is required when daskServiceAccount.create is false" .Values.daskServiceAccount.name }}
{{- end }}
{{- end }}

{{/*
Labels of this release's Dask scheduler and worker pods (set through the config's
cluster.labels on the DaskCluster and its pod templates); the NetworkPolicies select on them.
*/}}
{{- define "compactor.daskLabels" -}}
{{ include "compactor.selectorLabels" . }}
app.kubernetes.io/component: dask-cluster
{{- end }}

{{/*
The runner pods of this release (sweep or backfill), as a NetworkPolicy peer's podSelector.
*/}}
{{- define "compactor.runnerSelector" -}}
matchLabels:
  {{- include "compactor.selectorLabels" . | nindent 2 }}
matchExpressions:
  - key: app.kubernetes.io/component
    operator: In
    values:
      - sweep
      - backfill
{{- end }}

{{/*
secretEnv ({NAME: "<secret>/<key>"}) as container env entries reading Kubernetes Secrets.
*/}}
{{- define "compactor.secretEnv" -}}
{{- range $name, $ref := .Values.secretEnv }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[-._a-zA-Z0-9]+$" (toString $ref)) }}
{{- fail (printf "secretEnv.%s must be \"<secret name>/<key>\"" $name) }}
{{- end }}
{{- $parts := splitn "/" 2 (toString $ref) }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $parts._0 }}
      key: {{ $parts._1 }}
{{- end }}
{{- end }}

{{/*
The image reference shared by the runner and the DaskCluster: repository:tag, the tag
defaulting to the chart's appVersion. With image.digest: repository@digest, or
repository:tag@digest when a tag is given (the digest decides what runs; the tag is for
people reading the spec), so every pod of a run runs exactly the image that was tested.
*/}}
{{- define "compactor.image" -}}
{{- $repo := required "image.repository is required" .Values.image.repository }}
{{- $digest := toString (.Values.image.digest | default "") }}
{{- if $digest }}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" $digest) }}
{{- fail (printf "image.digest must be sha256:<64 hex digits>, not %q" $digest) }}
{{- end }}
{{- if .Values.image.tag }}
{{- printf "%s:%s@%s" $repo (toString .Values.image.tag) $digest }}
{{- else }}
{{- printf "%s@%s" $repo $digest }}
{{- end }}
{{- else }}
{{- printf "%s:%s" $repo (toString (default .Chart.AppVersion .Values.image.tag)) }}
{{- end }}
{{- end }}

{{/*
The environment of the runner and of the DaskCluster, without empty values, as a map;
AWS_REGION is copied to AWS_DEFAULT_REGION unless that is set.
*/}}
{{- define "compactor.envMap" -}}
{{- $env := dict }}
{{- range $name, $value := .Values.env }}
{{- if not (or (kindIs "invalid" $value) (eq (toString $value) "")) }}
{{- $_ := set $env $name (toString $value) }}
{{- end }}
{{- end }}
{{- /* boto3's default session reads only AWS_DEFAULT_REGION (not AWS_REGION): set both. */}}
{{- if and (hasKey $env "AWS_REGION") (not (hasKey $env "AWS_DEFAULT_REGION")) }}
{{- $_ := set $env "AWS_DEFAULT_REGION" (get $env "AWS_REGION") }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/*
compactor's config file: .Values.config without null values, merged over the cluster
block built from workers, scheduler, env and the release (a `cluster` mapping under
.Values.config wins key by key).
*/}}
{{- define "compactor.configFile" -}}
{{- $config := dict }}
{{- range $key, $value := .Values.config }}
{{- if not (kindIs "invalid" $value) }}
{{- $_ := set $config $key $value }}
{{- end }}
{{- end }}
{{- $w := .Values.workers }}
{{- $workers := dict "min" (int $w.min) "max" (int $w.max) }}
{{- if not (kindIs "invalid" $w.count) }}
{{- $workers = int $w.count }}
{{- end }}
{{- $cluster := dict
  "kind" "kubernetes"
  "image" (include "compactor.image" .)
  "namespace" .Release.Namespace
  "service_account" (include "compactor.daskServiceAccountName" .)
  "labels" (include "compactor.daskLabels" . | fromYaml)
  "secret_env" (.Values.secretEnv | default dict)
  "workers" $workers
  "worker_cpu" (toString $w.cpu)
  "worker_memory" (toString $w.memory)
  "node_selector" ($w.nodeSelector | default dict)
  "tolerations" ($w.tolerations | default list)
  "scheduler_node_selector" (.Values.scheduler.nodeSelector | default dict)
  "env" (include "compactor.envMap" . | fromYaml)
}}
{{- /* null or "": no size limit on the workers' scratch volume. */}}
{{- $_ := set $cluster "worker_scratch" (ternary nil (toString $w.scratchSizeLimit) (or (kindIs "invalid" $w.scratchSizeLimit) (eq (toString $w.scratchSizeLimit) ""))) }}
{{- if kindIs "map" (get $config "cluster") }}
{{- $cluster = mergeOverwrite $cluster (get $config "cluster") }}
{{- end }}
{{- $_ := set $config "cluster" $cluster }}
{{- toYaml $config }}
{{- end }}

{{/*
The runner pod's spec, shared by the nightly CronJob and the backfill Job.
*/}}
{{- define "compactor.podSpec" -}}
serviceAccountName: {{ include "compactor.serviceAccountName" . }}
automountServiceAccountToken: true
restartPolicy: Never
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.runner.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.runner.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: compactor
    image: {{ include "compactor.image" . | quote }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    command:
      - compactor
    args:
      - --config
      - /etc/compactor/config.yaml
      - run
    env:
      # A writable home and scratch space under the read-only root filesystem.
      - name: HOME
        value: /tmp
      - name: TMPDIR
        value: /tmp
      {{- range $name, $value := (include "compactor.envMap" . | fromYaml) }}
      {{- if not (hasKey $.Values.secretEnv $name) }}
      - name: {{ $name }}
        value: {{ $value | quote }}
      {{- end }}
      {{- end }}
      {{- with (include "compactor.secretEnv" .) }}
      {{- . | nindent 6 }}
      {{- end }}
    securityContext:
      {{- toYaml .Values.containerSecurityContext | nindent 6 }}
    {{- with .Values.runner.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    volumeMounts:
      - name: config
        mountPath: /etc/compactor
        readOnly: true
      - name: tmp
        mountPath: /tmp
volumes:
  - name: config
    configMap:
      name: {{ include "compactor.fullname" . }}
      items:
        - key: config.yaml
          path: config.yaml
  - name: tmp
    emptyDir:
      sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{/*
ipBlock peers for the CIDRs in .cidrs. A CIDR of all addresses (/0) excepts the CIDRs of
.except of its own address family (IPv6 ones hold ":"); Kubernetes takes an except only
inside its CIDR, and templates cannot tell, so any other CIDR that could hold the instance
metadata address (169.254.169.254, fd00:ec2::254) is refused.
*/}}
{{- define "compactor.ipBlocks" -}}
{{- $except := .except | default list }}
{{- range .cidrs }}
{{- $v6 := contains ":" . }}
{{- $bits := int (last (splitList "/" .)) }}
{{- $mine := list }}
{{- if eq $bits 0 }}
{{- range $except }}
{{- if eq (contains ":" .) $v6 }}
{{- $mine = append $mine . }}
{{- end }}
{{- end }}
{{- else if or (lt $bits 8) (hasPrefix "169." .) (hasPrefix "fc" (lower .)) (hasPrefix "fd" (lower .)) }}
{{- fail (printf "networkPolicy.egress: %s could hold the instance metadata address; give narrower CIDRs, or 0.0.0.0/0 or ::/0 (which except it)" .) }}
{{- end }}
- ipBlock:
    cidr: {{ . | quote }}
    {{- if $mine }}
    except:
      {{- range $mine }}
      - {{ . | quote }}
      {{- end }}
    {{- end }}
{{- end }}
{{- end }}

{{/*
Egress rules of every pod of this release: DNS, S3 and the STAC hosts (never the instance
metadata service), the extra CIDRs of the values.
*/}}
{{- define "compactor.egressCommon" -}}
{{- $e := .Values.networkPolicy.egress }}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ $e.dns.namespace | quote }}
      podSelector:
        matchLabels:
          {{- toYaml $e.dns.podLabels | nindent 10 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
- to:
    {{- include "compactor.ipBlocks" (dict "cidrs" $e.s3Cidrs "except" (concat $e.metadataCidrs $e.s3Except)) | nindent 4 }}
  ports:
    {{- range $e.s3Ports }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
{{- if $e.extraCidrs }}
- to:
    {{- include "compactor.ipBlocks" (dict "cidrs" $e.extraCidrs "except" $e.metadataCidrs) | nindent 4 }}
  ports:
    {{- range $e.extraPorts }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
{{- end }}
{{- end }}
