"""Edge trust in the chart: no usable secret is committed in a values file, each service has its own
Kafka principal whose ACLs let it write only its own topics, and the Kafka intake gets public keys only."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
import yaml
from chart_harness import CONSUMER_GROUPS, ROOT, SERVICES, Chart, Rendered, render

from yiju.common.ed25519_tokens import generate_key_pair

# Keys whose values name a Secret or a key in one (not secrets themselves).
REFERENCE_KEYS = {
    "existingSecret",
    "existingSecretKey",
    "caSecret",
    "caSecretKey",
    "secretName",
    "secretPrefix",
}
SECRET_KEY = re.compile(r"(password|secret|token|apikey|api_key|privatekey)", re.I)
SECRET_TEXT = re.compile(r"PRIVATE KEY|dev-only|not-a-secret|changeme", re.I)
WRITE_OPS = {"Write", "All", "Create", "Delete", "Alter", "AlterConfigs"}


def leaves(node: Any, path: str = "") -> list[tuple[str, str, Any]]:
    """(path, key, value) of every scalar in a values tree."""
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in leaves(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [leaf for i, v in enumerate(node) for leaf in leaves(v, f"{path}[{i}]")]
    return [(path, path.rsplit(".", 1)[-1], node)]


@pytest.mark.parametrize("values_file", sorted(p.name for p in render.CHART.glob("values*.yaml")))
def test_no_usable_secret_is_committed_in_a_values_file(values_file: str) -> None:
    values = yaml.safe_load((render.CHART / values_file).read_text()) or {}
    for path, key, value in leaves(values):
        if key in REFERENCE_KEYS or not isinstance(value, str):
            continue
        if SECRET_KEY.search(key):
            assert value == "", f"{values_file}: {path} commits a secret"
        assert not SECRET_TEXT.search(value), f"{values_file}: {path} looks like a secret"


def secret_data(rendered: Rendered) -> dict[str, str]:
    out: dict[str, str] = {}
    for secret in rendered.of_kind("Secret"):
        out.update(secret.get("data", {}) | secret.get("stringData", {}))
    return out


def test_dev_generates_its_jwt_secret_at_install(chart: Chart) -> None:
    renders = [render.parse(render.template(chart.helm, "dev")) for _ in range(2)]
    first, second = (secret_data(Rendered("dev", docs)) for docs in renders)
    assert first["jwt-secret"] != second["jwt-secret"], "the same JWT secret in every install: committed"
    env = Rendered("dev", renders[0]).env(Rendered("dev", renders[0]).service_deployment("intent"))
    assert env["YIJU_JWT_SECRET"][0] == "secret"


def test_prod_renders_no_credential_of_its_own(prod: Rendered) -> None:
    assert not {"jwt-secret", "kafka-sasl-password", "openai-api-key"} & set(secret_data(prod))


# --- one Kafka principal per service ----------------------------------------------------------------------


def acl_rules(user: dict[str, Any]) -> list[tuple[str, str, str, set[str]]]:
    """(resource type, name, pattern type, operations) of a KafkaUser's ACLs."""
    return [
        (a["resource"]["type"], a["resource"]["name"], a["resource"]["patternType"], set(a["operations"]))
        for a in user["spec"].get("authorization", {}).get("acls", [])
    ]


def published_topics(service: str) -> set[str]:
    """What the service's code publishes (the docs generator's reading of it)."""
    sys.path.insert(0, str(ROOT / "infra" / "docs"))
    try:
        import build  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "infra" / "docs"))
    return set(build.published_topics(service.replace("-", "_")))


def chart_topics(rendered: Rendered) -> set[str]:
    return {t["spec"]["topicName"] for t in rendered.of_kind("KafkaTopic")}


def test_each_service_has_its_own_principal_writing_only_its_own_topics(prod: Rendered) -> None:
    users = {u["metadata"]["name"]: u for u in prod.of_kind("KafkaUser")}
    kafka_services = list(SERVICES)  # the gateway too: it consumes parse requests (the model path)
    assert set(users) == {prod.name(s) for s in kafka_services} | {"yiju"}
    writers: dict[str, set[str]] = {}
    for service in kafka_services:
        user = users[prod.name(service)]
        assert user["metadata"]["namespace"] == "kafka"
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "yiju-kafka"
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        rules = acl_rules(user)
        writes = {name for kind, name, pattern, ops in rules if kind == "topic" and ops & WRITE_OPS}
        assert all(p == "literal" for k, _, p, ops in rules if ops & WRITE_OPS), f"{service}: write by prefix"
        assert not any(ops & {"All", "Create", "Delete", "Alter"} for *_, ops in rules), service
        own_groups = {g for g, owner in CONSUMER_GROUPS.items() if owner == service}
        dead_letters = {f"yiju.dlq.{g}.v1" for g in own_groups}
        # exactly what its code publishes (within the chart's topics), and its groups' dead letters
        assert writes == published_topics(service) & chart_topics(prod), service
        assert dead_letters <= writes and "yiju.intent.submitted.v1" not in writes, service
        groups = {name for kind, name, _, ops in rules if kind == "group" and "Read" in ops}
        assert groups == own_groups, service
        reads = {name for kind, name, _, ops in rules if kind == "topic" and "Read" in ops}
        values = prod.values["services"][service]
        assert reads == {t for g in values["consumerGroups"] for t in g["topics"]}, service
        env = prod.env(prod.service_deployment(service))
        assert env["YIJU_KAFKA_SASL_USERNAME"] == prod.name(service)
        assert env["YIJU_KAFKA_SASL_PASSWORD"] == ("secret", prod.name(service), "password")
        writers[service] = writes
    # KEDA's shared login may only look.
    assert all(ops == {"Describe"} for *_, ops in acl_rules(users["yiju"]))
    # a service cannot write another's dead letters
    for service, writes in writers.items():
        others = {f"yiju.dlq.{g}.v1" for g, owner in CONSUMER_GROUPS.items() if owner != service}
        assert not writes & others, service


def test_principals_follow_the_prefixes(chart: Chart) -> None:
    rendered = chart.render("prod", "kafka.topicPrefix=t1.", "kafka.groupPrefix=t1-")
    rules = acl_rules(rendered.get("KafkaUser", "yiju-payment"))
    assert {name for kind, name, *_ in rules if kind == "group"} == {"t1-yiju-payment"}
    assert all(name.startswith("t1.yiju.") for kind, name, *_ in rules if kind == "topic")


def test_per_service_principals_need_sasl(chart: Chart) -> None:
    message = chart.render_error("default", "kafka.users.perService=true")
    assert "kafka.users.perService needs SASL" in message


# --- the Kafka intake's keys ------------------------------------------------------------------------------


def test_intake_gets_public_keys_only(chart: Chart) -> None:
    private_pem, public_pem = generate_key_pair()
    rendered = chart.render(
        "default",
        f"intakeTrust.intakePublicKeys={public_pem.decode()}",
        f"intakeTrust.replayPublicKeys={public_pem.decode()}",
    )
    config = rendered.get("ConfigMap", "yiju-intake-trust")["data"]
    assert "PRIVATE" not in config["intake-assertion.pub"] + config["dlq-replay.pub"]
    intent = rendered.service_deployment("intent")
    env = rendered.env(intent)
    assert env["YIJU_INTAKE_PUBLIC_KEYS_FILE"] == "/etc/yiju/intake-trust/intake-assertion.pub"
    assert env["YIJU_REPLAY_PUBLIC_KEYS_FILE"] == "/etc/yiju/intake-trust/dlq-replay.pub"
    volumes = {v["name"]: v for v in rendered.pod_spec(intent)["volumes"]}
    assert volumes["intake-trust"]["configMap"]["name"] == "yiju-intake-trust"
    for service in ("planning", "payment", "fulfilment", "model-gateway"):
        assert "YIJU_INTAKE_PUBLIC_KEYS_FILE" not in rendered.env(rendered.service_deployment(service))
    message = chart.render_error("default", f"intakeTrust.intakePublicKeys={private_pem.decode()}")
    assert "public keys only" in message


def test_prod_intake_keys_come_from_a_config_map(prod: Rendered) -> None:
    intent = prod.service_deployment("intent")
    volumes = {v["name"]: v for v in prod.pod_spec(intent)["volumes"]}
    assert volumes["intake-trust"]["configMap"]["name"] == "yiju-intake-trust"
