{{/* ---------------------------------------------------------------- names and labels */}}

{{- define "yiju.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "yiju.fullname" -}}
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

{{- define "yiju.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of a component's objects: (dict "root" $ "component" "planning") */}}
{{- define "yiju.componentName" -}}
{{- printf "%s-%s" (include "yiju.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "yiju.selectorLabels" -}}
app.kubernetes.io/name: {{ include "yiju.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "yiju.labels" -}}
helm.sh/chart: {{ include "yiju.chart" . }}
{{ include "yiju.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: yiju
{{- end }}

{{/* Labels of one component: (dict "root" $ "component" "planning") */}}
{{- define "yiju.componentLabels" -}}
{{ include "yiju.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "yiju.componentSelectorLabels" -}}
{{ include "yiju.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "yiju.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "yiju.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "yiju.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- Kafka, secrets, endpoints */}}

{{/* The fixed event topics of the service contract, one per line. */}}
{{- define "yiju.eventTopics" -}}
yiju.intent.submitted.v1
yiju.intent.accepted.v1
yiju.plan.created.v1
yiju.plan.rejected.v1
yiju.plan.needs_clarification.v1
yiju.plan.awaiting_confirmation.v1
yiju.order.confirmed.v1
yiju.order.cancelled.v1
yiju.payment.authorized.v1
yiju.payment.declined.v1
yiju.payment.captured.v1
yiju.payment.voided.v1
yiju.fulfilment.completed.v1
yiju.fulfilment.failed.v1
yiju.order.refund_requested.v1
yiju.payment.refunded.v1
yiju.fulfilment.cancelled.v1
yiju.parse.requested.v1
yiju.parse.completed.v1
{{- end }}

{{/* Every topic: the event topics and one dead-letter topic per consumer group, one per line. */}}
{{- define "yiju.allTopics" -}}
{{ include "yiju.eventTopics" . }}
{{- range $key := keys .Values.services | sortAlpha }}
{{- $svc := get $.Values.services $key }}
{{- range $svc.consumerGroups }}
{{ printf "yiju.dlq.%s.v1" .name }}
{{- end }}
{{- end }}
{{- end }}

{{- define "yiju.kafkaSasl" -}}
{{- hasPrefix "SASL" .Values.kafka.securityProtocol }}
{{- end }}

{{- define "yiju.kafkaTls" -}}
{{- contains "SSL" .Values.kafka.securityProtocol }}
{{- end }}

{{- define "yiju.secretName" -}}
{{- printf "%s-secrets" (include "yiju.fullname" .) }}
{{- end }}

{{/* A secretKeyRef for one secret item: (dict "root" $ "item" .Values.redis "key" "redis-url") */}}
{{- define "yiju.secretKeyRef" -}}
{{- if .item.existingSecret -}}
name: {{ .item.existingSecret }}
key: {{ .item.existingSecretKey }}
{{- else -}}
name: {{ include "yiju.secretName" .root }}
key: {{ .key }}
{{- end }}
{{- end }}

{{- define "yiju.otelCollectorName" -}}
{{- include "yiju.componentName" (dict "root" . "component" "otel-collector") }}
{{- end }}

{{- define "yiju.otelTailSamplerName" -}}
{{- include "yiju.componentName" (dict "root" . "component" "otel-tail-sampler") }}
{{- end }}

{{- define "yiju.vllmName" -}}
{{- include "yiju.componentName" (dict "root" . "component" "vllm") }}
{{- end }}

{{/* OTEL_EXPORTER_OTLP_ENDPOINT: the collector when it is on (OTLP/HTTP, 4318), else otel.endpoint. */}}
{{- define "yiju.otlpEndpoint" -}}
{{- if .Values.otel.collector.enabled }}
{{- printf "http://%s:4318" (include "yiju.otelCollectorName" .) }}
{{- else }}
{{- .Values.otel.endpoint }}
{{- end }}
{{- end }}

{{- define "yiju.vllmModelPath" -}}
{{- if .Values.vllm.weights.path }}
{{- .Values.vllm.weights.path }}
{{- else if eq .Values.vllm.weights.source "image" }}
{{- fail "vllm.weights.path is required when vllm.weights.source is image" }}
{{- else }}
{{- printf "%s/%s" (trimSuffix "/" .Values.vllm.weights.mountPath) .Values.vllm.model }}
{{- end }}
{{- end }}

{{- define "yiju.vllmServedName" -}}
{{- default .Values.vllm.model .Values.vllm.servedModelName }}
{{- end }}

{{/* KEDA's name for a SASL mechanism. */}}
{{- define "yiju.kedaSasl" -}}
{{- $m := .Values.kafka.sasl.mechanism }}
{{- if eq $m "PLAIN" }}plaintext
{{- else if eq $m "SCRAM-SHA-256" }}scram_sha256
{{- else if eq $m "SCRAM-SHA-512" }}scram_sha512
{{- else }}{{ fail (printf "kafka.sasl.mechanism %s has no KEDA equivalent" $m) }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- pod pieces */}}

{{- define "yiju.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsGroup }}
fsGroup: {{ .fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "yiju.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Topology spread for one component: (dict "root" $ "component" "planning") */}}
{{- define "yiju.topologySpread" -}}
{{- $ts := .root.Values.topologySpread }}
{{- if $ts.enabled -}}
topologySpreadConstraints:
  - maxSkew: {{ $ts.maxSkew }}
    topologyKey: {{ $ts.topologyKey }}
    whenUnsatisfiable: {{ $ts.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "yiju.componentSelectorLabels" . | nindent 8 }}
{{- end }}
{{- end }}

{{/* Environment shared by every yiju container that talks to Kafka (services and the topics Job). */}}
{{- define "yiju.kafkaEnv" -}}
- name: YIJU_KAFKA_BOOTSTRAP
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: YIJU_KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
- name: YIJU_KAFKA_PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: YIJU_KAFKA_REPLICATION_FACTOR
  value: {{ .Values.kafka.replicationFactor | quote }}
{{- if eq (include "yiju.kafkaSasl" .) "true" }}
- name: YIJU_KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: YIJU_KAFKA_SASL_USERNAME
  value: {{ .Values.kafka.sasl.username | quote }}
{{- end }}
{{- if and (eq (include "yiju.kafkaTls" .) "true") .Values.kafka.tls.caSecret }}
- name: YIJU_KAFKA_SSL_CAFILE
  value: /etc/yiju/kafka-ca/{{ .Values.kafka.tls.caSecretKey }}
{{- end }}
{{- end }}

{{- define "yiju.kafkaCaVolume" -}}
{{- if and (eq (include "yiju.kafkaTls" .) "true") .Values.kafka.tls.caSecret -}}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
    items:
      - key: {{ .Values.kafka.tls.caSecretKey }}
        path: {{ .Values.kafka.tls.caSecretKey }}
{{- end }}
{{- end }}

{{- define "yiju.kafkaCaMount" -}}
{{- if and (eq (include "yiju.kafkaTls" .) "true") .Values.kafka.tls.caSecret -}}
- name: kafka-ca
  mountPath: /etc/yiju/kafka-ca
  readOnly: true
{{- end }}
{{- end }}

{{/* Kafka client settings as a YAML map NAME: "value" (the ConfigMap, and the topics Job's env). */}}
{{- define "yiju.kafkaConfig" -}}
YIJU_KAFKA_BOOTSTRAP: {{ .Values.kafka.bootstrapServers | quote }}
YIJU_KAFKA_SECURITY_PROTOCOL: {{ .Values.kafka.securityProtocol | quote }}
YIJU_KAFKA_PARTITIONS: {{ .Values.kafka.partitions | quote }}
YIJU_KAFKA_REPLICATION_FACTOR: {{ .Values.kafka.replicationFactor | quote }}
YIJU_KAFKA_MIN_INSYNC_REPLICAS: {{ .Values.kafka.minInsyncReplicas | quote }}
YIJU_KAFKA_RETENTION_MS: {{ .Values.kafka.retentionMs | int64 | quote }}
YIJU_KAFKA_DLQ_RETENTION_MS: {{ .Values.kafka.deadLetterRetentionMs | int64 | quote }}
YIJU_KAFKA_ENABLE_IDEMPOTENCE: {{ .Values.kafka.idempotentProducers | quote }}
YIJU_KAFKA_FETCH_MAX_WAIT_MS: {{ .Values.kafka.fetchMaxWaitMs | int64 | quote }}
YIJU_KAFKA_FETCH_MIN_BYTES: {{ .Values.kafka.fetchMinBytes | int64 | quote }}
YIJU_KAFKA_COMMIT_INTERVAL_MS: {{ .Values.kafka.commitIntervalMs | int64 | quote }}
YIJU_KAFKA_TOPIC_PREFIX: {{ .Values.kafka.topicPrefix | quote }}
YIJU_KAFKA_GROUP_PREFIX: {{ .Values.kafka.groupPrefix | quote }}
{{- if eq (include "yiju.kafkaSasl" .) "true" }}
YIJU_KAFKA_SASL_MECHANISM: {{ .Values.kafka.sasl.mechanism | quote }}
YIJU_KAFKA_SASL_USERNAME: {{ .Values.kafka.sasl.username | quote }}
{{- end }}
{{- if and (eq (include "yiju.kafkaTls" .) "true") .Values.kafka.tls.caSecret }}
YIJU_KAFKA_SSL_CAFILE: {{ printf "/etc/yiju/kafka-ca/%s" .Values.kafka.tls.caSecretKey | quote }}
{{- end }}
{{- end }}

{{/* Checks that fail the render with a clear message instead of a broken install. */}}
{{- define "yiju.validate" -}}
{{- $v := .Values }}
{{- if and (eq (include "yiju.kafkaSasl" .) "true") (not $v.kafka.sasl.username) }}
{{- fail "kafka.sasl.username is required when kafka.securityProtocol is SASL_PLAINTEXT or SASL_SSL" }}
{{- end }}
{{- if and (eq (include "yiju.kafkaSasl" .) "true") (not $v.kafka.sasl.existingSecret) (not $v.kafka.sasl.password) }}
{{- fail "set kafka.sasl.existingSecret (or kafka.sasl.password) when SASL is on" }}
{{- end }}
{{- if and $v.grpcTls.enabled (not $v.grpcTls.secretName) }}
{{- fail "grpcTls.secretName is required when grpcTls.enabled" }}
{{- end }}
{{- if and $v.vllm.enabled (eq $v.vllm.weights.source "pvc") (not $v.vllm.weights.pvc.existingClaim) (not $v.vllm.weights.pvc.create) }}
{{- fail "vllm.weights.pvc: set existingClaim or create: true" }}
{{- end }}
{{- if and $v.vllm.enabled (not (get $v.services "model-gateway").enabled) }}
{{- fail "vllm.enabled needs services.model-gateway.enabled" }}
{{- end }}
{{- if or (contains "PRIVATE KEY" $v.intakeTrust.intakePublicKeys) (contains "PRIVATE KEY" $v.intakeTrust.replayPublicKeys) }}
{{- fail "intakeTrust takes public keys only: the signing keys stay with the publishers and the replay tool" }}
{{- end }}
{{- if and $v.kafka.users.perService (ne (include "yiju.kafkaSasl" .) "true") }}
{{- fail "kafka.users.perService needs SASL: set kafka.securityProtocol to SASL_SSL (or SASL_PLAINTEXT)" }}
{{- end }}
{{- if and $v.kafka.users.perService $v.kafka.strimzi.enabled (eq $v.kafka.sasl.mechanism "PLAIN") }}
{{- fail "kafka.users.perService with Strimzi needs kafka.sasl.mechanism SCRAM-SHA-512 (KafkaUser authentication)" }}
{{- end }}
{{- range $name, $svc := $v.services }}
{{- range $svc.calls }}
{{- if not (hasKey $v.services .) }}
{{- fail (printf "services.%s.calls: no service named %s" $name .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* What scales one service: "keda" (lag ScaledObject), "hpa" (CPU) or "" (fixed replicas).
     (dict "root" $ "svc" $svc) */}}
{{- define "yiju.scaler" -}}
{{- if and .root.Values.keda.enabled .svc.consumerGroups }}keda
{{- else if .root.Values.autoscaling.enabled }}hpa
{{- end }}
{{- end }}

{{/* gRPC probe handler, or a TCP one while internal mTLS is on (kubelet's gRPC probe has no TLS). */}}
{{- define "yiju.grpcProbeHandler" -}}
{{- if .root.Values.grpcTls.enabled -}}
tcpSocket:
  port: grpc
{{- else -}}
grpc:
  port: {{ .port }}
  {{- with .service }}
  service: {{ . | quote }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Egress every yiju pod needs: DNS, Kafka (and Redis when .redis). (dict "root" $ "redis" true) */}}
{{- define "yiju.baseEgress" -}}
{{- $np := .root.Values.networkPolicy -}}
- ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
  {{- with $np.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- ports:
    {{- range $np.kafka.ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
  {{- with $np.kafka.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- if .redis }}
- ports:
    {{- range $np.redis.ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
  {{- with $np.redis.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- Kafka principals */}}

{{/* Kafka principal of one service with kafka.users.perService: (dict "root" $ "service" "payment") */}}
{{- define "yiju.kafkaPrincipal" -}}
{{- $users := .root.Values.kafka.users }}
{{- printf "%s%s" (default (printf "%s-" (include "yiju.fullname" .root)) $users.namePrefix) .service | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret holding that principal's password (the User Operator's, copied into this namespace). */}}
{{- define "yiju.kafkaPrincipalSecret" -}}
{{- $users := .root.Values.kafka.users }}
{{- if $users.secretPrefix }}
{{- printf "%s%s" $users.secretPrefix .service | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- include "yiju.kafkaPrincipal" . }}
{{- end }}
{{- end }}

{{/* "true" when a service talks to Kafka (it consumes or publishes): (dict "svc" $svc) */}}
{{- define "yiju.usesKafka" -}}
{{- or (gt (len (default list .svc.consumerGroups)) 0) (gt (len (default list .svc.produces)) 0) }}
{{- end }}

{{/* The ConfigMap with the Kafka intake's public keys, or "" when there is none (intake then admits
     no Kafka intent: every one is dead-lettered as unauthenticated). */}}
{{- define "yiju.intakeKeysConfigMap" -}}
{{- $t := .Values.intakeTrust }}
{{- if $t.existingConfigMap }}
{{- $t.existingConfigMap }}
{{- else if $t.intakePublicKeys }}
{{- printf "%s-intake-trust" (include "yiju.fullname" .) }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- the ops summary's replicas */}}

{{/* The headless metrics Service of one component: (dict "root" $ "component" "planning") */}}
{{- define "yiju.metricsHeadlessName" -}}
{{- printf "%s-metrics" (include "yiju.componentName" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* YIJU_METRICS_DISCOVERY: name=<headless service>:<metrics port> for every enabled service. */}}
{{- define "yiju.metricsDiscovery" -}}
{{- $root := . }}
{{- $items := list }}
{{- range $name := keys .Values.services | sortAlpha }}
{{- if (get $root.Values.services $name).enabled }}
{{- $headless := include "yiju.metricsHeadlessName" (dict "root" $root "component" $name) }}
{{- $items = append $items (printf "%s=%s:%v" $name $headless $root.Values.metrics.port) }}
{{- end }}
{{- end }}
{{- join "," $items }}
{{- end }}
