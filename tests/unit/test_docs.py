"""`make docs` (infra/docs/build.py): the AsyncAPI documents cover every topic the services consume and
publish, with the protobuf payloads; the proto reference documents every RPC and message."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import yiju.gen
from yiju.common.envelope import BY_TOPIC
from yiju.common.topics import ALL_TOPICS, CONSUMER_GROUPS, INTENT_SUBMITTED
from yiju_infra.docs.build import build, published_topics


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    build(out)
    return out


@pytest.fixture(scope="module")
def specs(generated: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((generated / "asyncapi").glob("*.json"))}


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def operations(specs: dict[str, dict[str, Any]], action: str) -> dict[str, set[str]]:
    """topic -> the services with an operation of this action on it."""
    out: dict[str, set[str]] = {}
    for service, doc in specs.items():
        for op in doc["operations"].values():
            if op["action"] == action:
                out.setdefault(resolve(doc, op["channel"]["$ref"])["address"], set()).add(service)
    return out


def test_one_asyncapi_document_per_kafka_service(specs: dict[str, dict[str, Any]]) -> None:
    # the gateway too: it answers planning's model requests over Kafka (the model path)
    assert set(specs) == {"intent", "planning", "payment", "fulfilment", "model_gateway"}
    for doc in specs.values():
        assert doc["asyncapi"] == "3.0.0" and doc["info"]["title"].startswith("yiju ")
        assert all(server["protocol"] == "kafka" for server in doc["servers"].values())


def test_every_consumed_topic_is_received_by_its_consumer_groups(specs: dict[str, dict[str, Any]]) -> None:
    received = operations(specs, "receive")
    consumed = {topic for group in CONSUMER_GROUPS for topic in group.topics}
    assert consumed <= set(ALL_TOPICS)
    for group in CONSUMER_GROUPS:
        for topic in group.topics:
            assert group.service in received.get(topic, set()), f"{group.name} does not receive {topic}"
    assert set(received) == consumed


def test_every_other_topic_has_a_publisher(specs: dict[str, dict[str, Any]]) -> None:
    sent = operations(specs, "send")
    for topic in ALL_TOPICS:
        if topic != INTENT_SUBMITTED:  # clients publish the intake topic
            assert topic in sent, f"nobody publishes {topic}"
    for group in CONSUMER_GROUPS:
        assert sent[group.dead_letter_topic] == {group.service}
    assert set(published_topics("model_gateway")) == {
        "yiju.parse.completed.v1",
        "yiju.dlq.yiju-model-gateway.v1",
    }


def test_payloads_and_headers_are_the_event_contract(specs: dict[str, dict[str, Any]]) -> None:
    for doc in specs.values():
        for channel in doc["channels"].values():
            spec = BY_TOPIC.get(channel["address"])
            for ref in channel["messages"].values():
                message = resolve(doc, ref["$ref"])
                headers = resolve(doc, message["headers"]["$ref"])
                payload = resolve(doc, message["payload"]["$ref"]) if "$ref" in message["payload"] else None
                if spec is None:  # a dead-letter topic
                    assert "x-dlq-reason" in headers["properties"]
                    continue
                descriptor = spec.message.DESCRIPTOR
                assert message["contentType"] == "application/protobuf" and message["name"] == spec.type
                assert "ce_id" in headers["required"] and "traceparent" in headers["properties"]
                assert payload["x-protobuf-message"] == descriptor.full_name
                assert list(payload["properties"]) == [f.name for f in descriptor.fields]


def test_every_reference_resolves(specs: dict[str, dict[str, Any]]) -> None:
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for doc in specs.values():
        for ref in refs(doc):
            assert resolve(doc, ref) is not None


def _generated_modules() -> list[Any]:
    names = [m.name for m in pkgutil.walk_packages(yiju.gen.__path__, "yiju.gen.") if m.name.endswith("_pb2")]
    return [importlib.import_module(name) for name in sorted(names)]


def test_the_proto_reference_documents_every_rpc_and_message(generated: Path) -> None:
    text = (generated / "protos.md").read_text()
    modules = _generated_modules()
    assert modules, "no generated protobuf modules (make proto)"
    rpcs = 0
    for module in modules:
        for service in module.DESCRIPTOR.services_by_name.values():
            assert f"### Service `{service.full_name}`" in text
            for method in service.methods:
                assert f"`/{service.full_name}/{method.name}`" in text
                rpcs += 1
        for message in module.DESCRIPTOR.message_types_by_name.values():
            assert f"### Message `{message.full_name}`" in text
    assert rpcs >= 7  # IntentService (5) and ModelGatewayService (2)
    assert "Streams the order each time it changes" in text  # comments come along


def test_the_http_api_is_described(generated: Path) -> None:
    api = json.loads((generated / "openapi.json").read_text())
    assert api["openapi"].startswith("3.") and api["info"]["title"] == "yiju intent API"
    for path in ("/v1/intents", "/v1/orders/{order_id}", "/v1/orders/{order_id}/events"):
        assert path in api["paths"]
    assert "/v1/orders/{order_id}/trace" in api["paths"] and "/v1/ops/summary" in api["paths"]


def test_events_table_and_git_ignore(generated: Path) -> None:
    table = (generated / "events.md").read_text()
    for topic in ALL_TOPICS:
        assert f"| `{topic}` |" in table
    assert (generated / ".gitignore").read_text().splitlines()[-1] == "*"


def test_the_build_is_reproducible(generated: Path, tmp_path: Path) -> None:
    """Another process (another hash seed: set orders differ) writes the same bytes."""
    script = Path(__file__).resolve().parents[2] / "infra" / "docs" / "build.py"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path)], env=env, check=True, capture_output=True
    )
    for path in generated.rglob("*"):
        if path.is_file():
            assert (tmp_path / path.relative_to(generated)).read_bytes() == path.read_bytes(), path.name
