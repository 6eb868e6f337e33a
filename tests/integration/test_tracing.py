"""One sentence is one trace: spans from all five services share the order's trace id."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.integration.conftest import submit, wait_settled
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration
SERVICES = {"intent", "planning", "payment", "fulfilment", "model_gateway"}


def _spans(platform: LocalPlatform, trace_id: str) -> list[dict]:
    spans = []
    for path in (platform.data_dir / "spans").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            span = json.loads(line)
            if span["trace_id"] == trace_id:
                spans.append(span)
    return spans


async def test_one_sentence_is_one_trace_across_all_services(
    platform: LocalPlatform, api: httpx.AsyncClient
) -> None:
    order = await wait_settled(api, await submit(api, "two bubble teas and a taxi home"))
    assert order["status"] == "COMPLETED"
    spans: list[dict] = []
    for _ in range(100):  # each process's span processor flushes every 0.5 s, on its own
        spans = _spans(platform, order["trace_id"])
        ids = {s["span_id"] for s in spans}
        if (
            {s["service"] for s in spans} >= SERVICES
            and any(s["name"] == f"process {platform.topic('yiju.payment.captured.v1')}" for s in spans)
            and sum(s["parent_id"] not in ids for s in spans) == 1  # every process has flushed
        ):
            break
        await asyncio.sleep(0.2)
    assert {s["service"] for s in spans} >= SERVICES
    by_id = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if s["parent_id"] not in by_id]
    assert len(roots) == 1 and roots[0]["name"] == "POST /v1/intents"
    consume = [s for s in spans if s["attributes"].get("messaging.operation.type") == "process"]
    assert consume, "no Kafka consume spans"
    for span in consume:
        attrs = span["attributes"]
        assert attrs["messaging.system"] == "kafka"
        assert attrs["messaging.consumer.group.name"].startswith(platform.namespace + "yiju-")
        assert attrs["messaging.destination.name"].startswith(platform.topic("yiju."))
        assert isinstance(attrs["messaging.kafka.offset"], int)
    assert any(s["kind"] == "CLIENT" and "ParseIntent" in s["name"] for s in spans)
    assert any(s["kind"] == "SERVER" and s["service"] == "model_gateway" for s in spans)
