"""What each profile promises: lag scalers per consumer group, vLLM wiring, topics, network paths,
monitoring, and a values schema that rejects typos."""

from __future__ import annotations

from typing import Any

import pytest
from chart_harness import CONSUMER_GROUPS, SERVICES, Chart, Rendered

from yiju.common import topics as topic_contract

EVENT_TOPICS = {
    "yiju.intent.submitted.v1", "yiju.intent.accepted.v1", "yiju.plan.created.v1", "yiju.plan.rejected.v1",
    "yiju.plan.needs_clarification.v1", "yiju.plan.awaiting_confirmation.v1", "yiju.order.confirmed.v1",
    "yiju.order.cancelled.v1", "yiju.payment.authorized.v1", "yiju.payment.declined.v1",
    "yiju.payment.captured.v1", "yiju.payment.voided.v1", "yiju.fulfilment.completed.v1",
    "yiju.fulfilment.failed.v1", "yiju.order.refund_requested.v1", "yiju.payment.refunded.v1",
    "yiju.fulfilment.cancelled.v1", "yiju.parse.requested.v1", "yiju.parse.completed.v1",
}  # fmt: skip
DLQ_TOPICS = {f"yiju.dlq.{group}.v1" for group in CONSUMER_GROUPS}
SINGLE_TOPIC_GROUPS = {
    "yiju-intent-intake": "yiju.intent.submitted.v1",
    "yiju-model-gateway": "yiju.parse.requested.v1",
}
GRPC_PORTS = {
    "intent": 50051,
    "model-gateway": 50052,
    "planning": 50053,
    "payment": 50054,
    "fulfilment": 50055,
}


def kafka_triggers(rendered: Rendered) -> list[tuple[str, dict[str, Any]]]:
    return [
        (so["spec"]["scaleTargetRef"]["name"], trigger)
        for so in rendered.of_kind("ScaledObject")
        for trigger in so["spec"]["triggers"]
        if trigger["type"] == "kafka"
    ]


# ------------------------------------------------------------------------------------------ scaling


def test_prod_has_exactly_one_lag_scaler_per_consumer_group(prod: Rendered) -> None:
    triggers = kafka_triggers(prod)
    groups = [t["metadata"]["consumerGroup"] for _, t in triggers]
    assert sorted(groups) == sorted(CONSUMER_GROUPS), "one kafka trigger per consumer group, no more"
    for target, trigger in triggers:
        meta = trigger["metadata"]
        group = meta["consumerGroup"]
        assert target == prod.name(CONSUMER_GROUPS[group]), f"{group} scales the wrong Deployment"
        prod.get("Deployment", target)
        assert (
            meta["bootstrapServers"] == prod.get("ConfigMap", "yiju-config")["data"]["YIJU_KAFKA_BOOTSTRAP"]
        )
        assert int(meta["lagThreshold"]) > 0
        if group in SINGLE_TOPIC_GROUPS:
            assert meta["topic"] == SINGLE_TOPIC_GROUPS[group]
        else:  # multi-topic: no topic, KEDA sums the lag of every topic the group consumes
            assert "topic" not in meta, group
        # SASL/TLS for KEDA's own Kafka client.
        assert trigger["authenticationRef"]["name"] == "yiju-kafka"


def test_prod_pre_scales_for_the_midnight_peak(prod: Rendered) -> None:
    for so in prod.of_kind("ScaledObject"):
        (cron,) = [t for t in so["spec"]["triggers"] if t["type"] == "cron"]
        assert cron["metadata"]["timezone"] == "Asia/Shanghai"
        assert all(isinstance(v, str) for v in cron["metadata"].values())
        assert int(cron["metadata"]["desiredReplicas"]) <= so["spec"]["maxReplicaCount"]


def test_prod_keda_authenticates_like_the_services(prod: Rendered) -> None:
    auth = prod.get("TriggerAuthentication", "yiju-kafka")
    params = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
    assert set(params) == {"sasl", "username", "password", "tls", "ca"}
    keda_secret = prod.get("Secret", params["sasl"]["name"])["stringData"]
    assert keda_secret[params["sasl"]["key"]] == "scram_sha512"
    assert keda_secret[params["tls"]["key"]] == "enable"
    assert keda_secret[params["username"]["key"]] == "yiju"
    assert (params["password"]["name"], params["password"]["key"]) == ("yiju-kafka-user", "password")
    assert (params["ca"]["name"], params["ca"]["key"]) == ("yiju-kafka-cluster-ca-cert", "ca.crt")
    env = prod.env(prod.service_deployment("payment"))  # the services log in as themselves
    assert env["YIJU_KAFKA_SASL_USERNAME"] == "yiju-payment"
    assert env["YIJU_KAFKA_SASL_PASSWORD"] == ("secret", "yiju-payment", "password")


def test_prod_model_gateway_scales_on_its_model_backlog(prod: Rendered) -> None:
    assert not prod.of_kind("HorizontalPodAutoscaler")  # every service, the gateway too, is on KEDA
    so = prod.get("ScaledObject", prod.name("model-gateway"))
    (lag,) = [t for t in so["spec"]["triggers"] if t["type"] == "kafka"]
    assert lag["metadata"]["consumerGroup"] == "yiju-model-gateway"
    assert lag["metadata"]["topic"] == "yiju.parse.requested.v1"
    assert lag["metadata"]["lagThreshold"] == "256"  # YIJU_GATEWAY_MAX_INFLIGHT: one replica's window


def test_prod_pdbs_and_replicas(prod: Rendered) -> None:
    for name in SERVICES:
        prod.get("PodDisruptionBudget", prod.name(name))
    for so in prod.of_kind("ScaledObject"):
        assert so["spec"]["minReplicaCount"] >= 2
    prod.get("PodDisruptionBudget", prod.name("vllm"))


def test_keda_off_means_cpu_hpas(default: Rendered) -> None:
    assert not default.of_kind("ScaledObject")
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in default.of_kind("HorizontalPodAutoscaler")}
    assert targets == {default.name(s) for s in SERVICES}


def test_dev_is_one_replica_of_everything(dev: Rendered) -> None:
    assert not dev.of_kind("ScaledObject") and not dev.of_kind("HorizontalPodAutoscaler")
    assert not dev.of_kind("PodDisruptionBudget")
    deployments = dev.of_kind("Deployment")
    assert {d["metadata"]["name"] for d in deployments} == {dev.name(s) for s in SERVICES}  # no vLLM
    for deployment in deployments:
        assert deployment["spec"]["replicas"] == 1


# ------------------------------------------------------------------------------------------ vLLM


def gateway_env(rendered: Rendered) -> dict[str, Any]:
    return rendered.env(rendered.service_deployment("model-gateway"))


@pytest.mark.parametrize("case", ["prod", "default+vllm"])
def test_gateway_aims_at_the_vllm_service(chart: Chart, case: str) -> None:
    rendered = chart.render("prod") if case == "prod" else chart.render("default", "vllm.enabled=true")
    env = gateway_env(rendered)
    service = rendered.get("Service", rendered.name("vllm"))
    (port,) = service["spec"]["ports"]
    assert env["YIJU_GATEWAY_BACKENDS"] == "openai,rules"
    assert env["YIJU_OPENAI_BASE_URL"] == f"http://{service['metadata']['name']}:{port['port']}/v1"
    assert port["port"] == 8000
    vllm = rendered.get("Deployment", rendered.name("vllm"))
    assert service["spec"]["selector"] == vllm["spec"]["selector"]["matchLabels"]
    args = rendered.containers(vllm)[0]["args"]
    assert f"--served-model-name={env['YIJU_OPENAI_MODEL']}" in args


def test_gateway_without_vllm_uses_its_own_backends(default: Rendered) -> None:
    env = gateway_env(default)
    assert env["YIJU_GATEWAY_BACKENDS"] == "rules"
    assert default.find("Deployment", default.name("vllm")) is None


def test_prod_vllm_serves_qwen_on_gpu_nodes(prod: Rendered) -> None:
    vllm = prod.get("Deployment", prod.name("vllm"))
    pod = prod.pod_spec(vllm)
    (ctr,) = pod["containers"]
    assert ctr["image"].startswith("vllm/vllm-openai:")
    args = ctr["args"]
    assert "--model=/models/Qwen/Qwen3.5-397B-A17B" in args
    assert "--tensor-parallel-size=8" in args
    assert "--enable-auto-tool-choice" in args
    assert "--tool-call-parser=qwen3_coder" in args  # Qwen3.5 (test_chart_vllm_models.py has the table)
    assert any(a.startswith("--max-model-len=") for a in args)
    for part in ("requests", "limits"):
        assert ctr["resources"][part]["nvidia.com/gpu"] == 8
    assert pod["nodeSelector"]["nvidia.com/gpu.product"]
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    startup = ctr["startupProbe"]
    assert startup["httpGet"]["path"] == "/health"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1800, "large models load slowly"
    assert ctr["readinessProbe"]["httpGet"]["path"] == ctr["livenessProbe"]["httpGet"]["path"] == "/health"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["weights"]["persistentVolumeClaim"]["claimName"] == "qwen35-397b-weights"
    assert volumes["shm"]["emptyDir"]["medium"] == "Memory"
    assert vllm["spec"]["strategy"]["type"] == "Recreate"


def test_tool_call_parser_is_a_value(chart: Chart) -> None:
    rendered = chart.render("prod", "vllm.toolCallParser=qwen3_xml")
    args = rendered.containers(rendered.get("Deployment", rendered.name("vllm")))[0]["args"]
    assert "--tool-call-parser=qwen3_xml" in args


def test_vllm_weights_baked_into_an_image(chart: Chart) -> None:
    rendered = chart.render("default", "vllm.enabled=true", "vllm.weights.source=image",
                            "vllm.weights.path=/weights/qwen")  # fmt: skip
    vllm = rendered.get("Deployment", rendered.name("vllm"))
    assert "--model=/weights/qwen" in rendered.containers(vllm)[0]["args"]
    assert "weights" not in {v["name"] for v in rendered.pod_spec(vllm)["volumes"]}
    assert not rendered.of_kind("PersistentVolumeClaim")
    assert "vllm.weights.path is required" in chart.render_error(
        "default", "vllm.enabled=true", "vllm.weights.source=image"
    )


# ------------------------------------------------------------------------------------------ topics


def test_topics_by_hook_job(default: Rendered) -> None:
    (job,) = default.of_kind("Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert default.containers(job)[0]["command"] == ["yiju", "topics", "create"]
    env = default.env(job)
    assert env["YIJU_KAFKA_PARTITIONS"] == "12" and env["YIJU_KAFKA_REPLICATION_FACTOR"] == "3"
    assert not default.of_kind("KafkaTopic")


def test_topics_by_strimzi_in_prod(prod: Rendered) -> None:
    assert not prod.of_kind("Job")
    topics = {t["spec"]["topicName"]: t for t in prod.of_kind("KafkaTopic")}
    assert set(topics) == EVENT_TOPICS | DLQ_TOPICS
    for topic in topics.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "yiju-kafka"
        assert topic["metadata"]["namespace"] == "kafka"
        assert topic["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert (topic["spec"]["partitions"], topic["spec"]["replicas"]) == (48, 3)
        config = topic["spec"]["config"]
        dead_letters = topic["spec"]["topicName"] in DLQ_TOPICS
        assert config["retention.ms"] == ("2592000000" if dead_letters else "1209600000")
        assert config["cleanup.policy"] == "delete" and config["min.insync.replicas"] == "2"
        assert config["compression.type"] == "zstd"  # the profile's extra config on every topic
    env = prod.get("ConfigMap", "yiju-config")["data"]
    assert (
        env["YIJU_KAFKA_RETENTION_MS"] == "1209600000" and env["YIJU_KAFKA_DLQ_RETENTION_MS"] == "2592000000"
    )
    assert env["YIJU_KAFKA_MIN_INSYNC_REPLICAS"] == "2" and env["YIJU_KAFKA_ENABLE_IDEMPOTENCE"] == "true"
    # the consumers' linger and commit interval reach every service as the chart's values say
    assert (env["YIJU_KAFKA_FETCH_MAX_WAIT_MS"], env["YIJU_KAFKA_FETCH_MIN_BYTES"]) == ("50", "1048576")
    assert env["YIJU_KAFKA_COMMIT_INTERVAL_MS"] == "200"


def test_a_prefix_moves_every_topic_group_and_scaler_of_a_release(chart: Chart) -> None:
    rendered = chart.render("prod", "kafka.topicPrefix=tenant-a.", "kafka.groupPrefix=tenant-a-")
    names = {t["spec"]["topicName"] for t in rendered.of_kind("KafkaTopic")}
    assert names == {f"tenant-a.{t}" for t in EVENT_TOPICS | DLQ_TOPICS}
    env = rendered.get("ConfigMap", "yiju-config")["data"]
    assert env["YIJU_KAFKA_TOPIC_PREFIX"] == "tenant-a." and env["YIJU_KAFKA_GROUP_PREFIX"] == "tenant-a-"
    triggers = [t["metadata"] for _, t in kafka_triggers(rendered)]
    assert sorted(m["consumerGroup"] for m in triggers) == sorted(f"tenant-a-{g}" for g in CONSUMER_GROUPS)
    assert {m["topic"] for m in triggers if "topic" in m} == {
        f"tenant-a.{t}" for t in SINGLE_TOPIC_GROUPS.values()
    }


def test_hook_job_gets_sasl_password_before_release_secrets_exist(chart: Chart) -> None:
    rendered = chart.render("default", "kafka.securityProtocol=SASL_SSL", "kafka.sasl.username=u",
                            "kafka.sasl.password=p", "kafka.tls.caSecret=kafka-ca")  # fmt: skip
    job = rendered.get("Job", rendered.name("topics"))
    env = rendered.env(job)
    _, secret_name, key = env["YIJU_KAFKA_SASL_PASSWORD"]
    secret = rendered.get("Secret", secret_name)
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == job["metadata"]["annotations"]["helm.sh/hook"]
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0
    assert key in secret["data"]
    assert env["YIJU_KAFKA_SSL_CAFILE"] == "/etc/yiju/kafka-ca/ca.crt"


# ------------------------------------------------------------------------------------------ network


def policy(rendered: Rendered, component: str) -> dict[str, Any]:
    return rendered.get("NetworkPolicy", rendered.name(component))["spec"]


def peer_components(rule: dict[str, Any], key: str) -> set[str]:
    return {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for peer in rule.get(key, [])
        if "podSelector" in peer and "app.kubernetes.io/component" in peer["podSelector"]["matchLabels"]
    }


def ports(rule: dict[str, Any]) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for p in rule["ports"]}


def test_network_policies_allow_only_the_architecture(prod: Rendered) -> None:
    callers = {"planning": {"intent"}, "payment": {"intent"}, "fulfilment": {"intent"},
               "model-gateway": {"intent", "planning"}}  # fmt: skip
    for name in SERVICES:
        spec = policy(prod, name)
        assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
        ingress = spec["ingress"]
        # Prometheus from the monitoring namespace on the metrics port, on every service.
        (metrics,) = [r for r in ingress if ports(r) == {("TCP", 9100)}]
        assert metrics["from"][0]["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": "monitoring"
        }
        grpc_rules = [r for r in ingress if r is not metrics]
        if name == "intent":
            (public,) = grpc_rules
            assert ports(public) == {("TCP", 8080), ("TCP", 50051)} and "from" not in public
        else:
            (rule,) = grpc_rules
            assert ports(rule) == {("TCP", GRPC_PORTS[name])}
            assert peer_components(rule, "from") == callers[name]
        egress = spec["egress"]
        assert any(ports(r) == {("UDP", 53), ("TCP", 53)} for r in egress), "DNS"
        assert any(ports(r) == {("TCP", 9093)} for r in egress), "Kafka"
        assert any(ports(r) == {("TCP", 6379)} for r in egress), "Redis"
        grpc_out = {c for r in egress for c in peer_components(r, "to")} - {"otel-collector", "vllm"}
        expected = {
            "intent": {"planning", "payment", "fulfilment", "model-gateway"},
            "planning": {"model-gateway"},
        }
        assert grpc_out == expected.get(name, set()), name
        otel = [r for r in egress if peer_components(r, "to") == {"otel-collector"}]
        assert otel and ports(otel[0]) == {("TCP", 4317), ("TCP", 4318)}
    vllm_out = [r for r in policy(prod, "model-gateway")["egress"] if peer_components(r, "to") == {"vllm"}]
    assert vllm_out and ports(vllm_out[0]) == {("TCP", 8000)}
    vllm_in = policy(prod, "vllm")["ingress"]
    assert any(peer_components(r, "from") == {"model-gateway"} for r in vllm_in)


def test_default_policies_allow_any_kafka_and_redis_destination(default: Rendered) -> None:
    egress = policy(default, "payment")["egress"]
    kafka = next(r for r in egress if ports(r) == {("TCP", 9092), ("TCP", 9093)})
    redis = next(r for r in egress if ports(r) == {("TCP", 6379)})
    assert "to" not in kafka and "to" not in redis
    assert not any(peer_components(r, "to") == {"vllm"} for r in policy(default, "model-gateway")["egress"])


# ------------------------------------------------------------------------------------------ observability


def test_prod_service_monitors_and_collector(prod: Rendered) -> None:
    for name in SERVICES:
        monitor = prod.get("ServiceMonitor", prod.name(name))
        service = prod.get("Service", prod.name(name))
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        (endpoint,) = monitor["spec"]["endpoints"]
        assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    collector = prod.get("Service", prod.name("otel-collector"))
    env = prod.env(prod.service_deployment("planning"))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{collector['metadata']['name']}:4318"
    assert env["OTEL_SERVICE_NAME"] == "yiju-planning"


def test_intent_is_the_only_ingress(prod: Rendered) -> None:
    (ingress,) = prod.of_kind("Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": prod.name("intent"), "port": {"number": 8080}}


# ------------------------------------------------------------------------------------------ schema


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("kafak.partitions=3", "additional properties 'kafak' not allowed"),
        ("vllm.tensorParalelSize=8", "'tensorParalelSize' not allowed"),
        ("services.model_gateway.enabled=false", "invalid propertyName 'model_gateway'"),
        ("kafka.securityProtocol=SASL_TLS", "securityProtocol"),
        ("services.intent.resources.limits=null", "limits"),
    ],
)
def test_values_schema_rejects_typos(chart: Chart, setting: str, message: str) -> None:
    assert message in chart.render_error("default", setting)


def test_misconfiguration_fails_with_a_message(chart: Chart) -> None:
    assert "kafka.sasl.username is required" in chart.render_error(
        "default", "kafka.securityProtocol=SASL_SSL"
    )
    assert "grpcTls.secretName is required" in chart.render_error("default", "grpcTls.enabled=true")


def test_grpc_mtls_mounts_certs_and_probes_by_tcp(chart: Chart) -> None:
    rendered = chart.render("default", "grpcTls.enabled=true", "grpcTls.secretName=yiju-grpc-tls")
    deployment = rendered.service_deployment("planning")
    ctr = rendered.containers(deployment)[0]
    env = rendered.env(deployment)
    assert env["YIJU_GRPC_TLS_CERT"] == "/etc/yiju/grpc-tls/tls.crt"
    assert env["YIJU_GRPC_TLS_CA"] == "/etc/yiju/grpc-tls/ca.crt"
    assert ctr["readinessProbe"]["tcpSocket"]["port"] == "grpc"


# ------------------------------------------------------------------------------------------ contract


def test_chart_agrees_with_the_services_topic_contract(prod: Rendered, default: Rendered) -> None:
    """The chart's consumer groups, their topics and the topics it creates are the code's."""
    code_groups = {g.name: (g.service, set(g.topics)) for g in topic_contract.CONSUMER_GROUPS}
    assert {name: owner for name, (owner, _) in code_groups.items()} == {
        group: service.replace("-", "_") for group, service in CONSUMER_GROUPS.items()
    }
    for rendered in (default, prod):
        for name, svc in rendered.values["services"].items():
            for group in svc["consumerGroups"]:
                owner, group_topics = code_groups[group["name"]]
                where = f"{rendered.profile}: {group['name']}"
                assert owner == name.replace("-", "_"), where
                assert set(group["topics"]) == group_topics, where
    assert {t["spec"]["topicName"] for t in prod.of_kind("KafkaTopic")} == set(topic_contract.ALL_TOPICS)


# ------------------------------------------------------------------------------------------ probes, tracing


def test_liveness_can_ask_a_dependency_free_health_service(chart: Chart) -> None:
    rendered = chart.render("default", "probes.livenessGrpcService=yiju.liveness")
    ctr = rendered.containers(rendered.service_deployment("payment"))[0]
    assert ctr["livenessProbe"]["grpc"] == {"port": 50054, "service": "yiju.liveness"}
    assert "service" not in ctr["readinessProbe"]["grpc"]


def test_tracing_off_without_an_otlp_endpoint(dev: Rendered, prod: Rendered) -> None:
    # Without an endpoint the services would write span files into the size-limited /tmp emptyDir.
    env = dev.env(dev.service_deployment("planning"))
    assert env["OTEL_SDK_DISABLED"] == "true" and "OTEL_EXPORTER_OTLP_ENDPOINT" not in env
    assert "OTEL_SDK_DISABLED" not in prod.env(prod.service_deployment("planning"))


def test_the_consumers_linger_is_a_value(chart: Chart) -> None:
    rendered = chart.render("prod", "kafka.fetchMaxWaitMs=10", "kafka.commitIntervalMs=0")
    env = rendered.get("ConfigMap", "yiju-config")["data"]
    assert (env["YIJU_KAFKA_FETCH_MAX_WAIT_MS"], env["YIJU_KAFKA_COMMIT_INTERVAL_MS"]) == ("10", "0")
