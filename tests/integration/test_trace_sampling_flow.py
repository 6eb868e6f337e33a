"""Head sampling on a real platform: the edge decides once per sentence, from the trace id, and a
sampled sentence is one whole trace across the five services while an unsampled one leaves no span."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import platform_on
from tests.integration.conftest import ActAsOwner, submit, wait_settled
from yiju_infra.local.broker import BrokerServer
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration
# The model gateway is asked once per distinct sentence (planning remembers its answers), so the same
# sentence's later traces have spans from the other four.
SERVICES = {"intent", "planning", "payment", "fulfilment"}
RATIO = 0.5
USERS = ("u-1004", "u-1002")


@pytest.fixture(scope="module")
async def sampled_platform(
    tmp_path_factory: pytest.TempPathFactory, shared_kafka: BrokerServer
) -> AsyncIterator[LocalPlatform]:
    data_dir: Path = tmp_path_factory.mktemp("sampled-platform")
    env = {"YIJU_TRACE_SAMPLER": "parentbased_traceidratio", "YIJU_TRACE_SAMPLE_RATIO": str(RATIO)}
    plat = platform_on(shared_kafka, data_dir, extra_env=env)
    try:
        await plat.start(ready_timeout=90)
        yield plat
    finally:
        await plat.stop_all()


def _spans_by_trace(platform: LocalPlatform) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for path in (platform.data_dir / "spans").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            span = json.loads(line)
            out.setdefault(span["trace_id"], []).append(span)
    return out


def _sampled_by_ratio(trace_id: str) -> bool:
    """OpenTelemetry's TraceIdRatioBased rule: the low 64 bits of the trace id under ratio x 2^64."""
    return int(trace_id, 16) & (2**64 - 1) < round(RATIO * 2**64)


def _describe(spans: list[dict]) -> str:
    ids = {s["span_id"] for s in spans}
    roots = [s["name"] for s in spans if s["parent_id"] not in ids]
    return f"services {sorted({s['service'] for s in spans})}, roots {roots}"


def _whole(spans: list[dict]) -> bool:
    ids = {s["span_id"] for s in spans}
    return {s["service"] for s in spans} >= SERVICES and sum(s["parent_id"] not in ids for s in spans) == 1


async def test_each_sentence_is_a_whole_trace_or_none_as_the_edge_decided(
    sampled_platform: LocalPlatform,
) -> None:
    async with httpx.AsyncClient(
        base_url=sampled_platform.api_url, timeout=10, trust_env=False, auth=ActAsOwner(sampled_platform)
    ) as api:
        order_ids = [await submit(api, "two bubble teas", user=USERS[i % 2]) for i in range(8)]
        orders = [await wait_settled(api, order_id) for order_id in order_ids]
    assert all(order["status"] == "COMPLETED" for order in orders)
    wanted = {order["trace_id"] for order in orders if _sampled_by_ratio(order["trace_id"])}
    unsampled = {order["trace_id"] for order in orders} - wanted
    traces: dict[str, list[dict]] = {}
    for _ in range(150):  # each process's span processor flushes every 0.5 s, on its own
        traces = _spans_by_trace(sampled_platform)
        if all(_whole(traces.get(trace_id, [])) for trace_id in wanted):
            break
        await asyncio.sleep(0.2)
    for trace_id in wanted:
        spans = traces.get(trace_id, [])
        assert _whole(spans), f"sampled sentence {trace_id} is not one whole trace: {_describe(spans)}"
    for trace_id in unsampled:
        assert trace_id not in traces, f"unsampled sentence {trace_id} left {len(traces[trace_id])} spans"
    # Every Kafka hop recorded belongs to a sentence the edge sampled.
    kafka_traces = {
        trace_id
        for trace_id, spans in traces.items()
        if any(span["attributes"].get("messaging.system") == "kafka" for span in spans)
    }
    assert kafka_traces == wanted
