"""Real traces in a real Jaeger: one sentence's spans from all five services reach Jaeger v2 over
OTLP/HTTP as one trace, and GET /v1/orders/{id}/trace reads them back from Jaeger's query API.

Needs the Jaeger binary (`make jaeger` builds it into .tools/bin/jaeger). Without it the module skips
locally, and fails under CI=true, where `make test` is meant to have built it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import platform_on
from tests.integration.conftest import ActAsOwner, submit, wait_settled
from yiju_infra.local.binaries import BinaryNotFoundError
from yiju_infra.local.broker import BrokerServer
from yiju_infra.local.jaeger import Jaeger, JaegerPorts, jaeger_bin
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration
SERVICES = {"intent", "planning", "payment", "fulfilment", "model_gateway"}
SPANS_DEADLINE_S = 30.0
"""Span processors flush every 0.5 s and Jaeger's batch every 0.2 s: seconds, not tens of them."""

JaegerSpans = list[dict[str, Any]]


@pytest.fixture(scope="session")
def jaeger_binary() -> Path:
    """The binary, looked for before the session's Kafka starts (a skip then starts nothing)."""
    try:
        return jaeger_bin()
    except BinaryNotFoundError as exc:
        if os.environ.get("CI", "").strip().lower() in ("true", "1"):
            pytest.fail(f"{exc} (under CI `make test` builds it first)", pytrace=False)
        pytest.skip(f"{exc}")


@pytest.fixture(scope="module")
async def traced(
    jaeger_binary: Path, shared_kafka: BrokerServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Jaeger, LocalPlatform]]:
    """Jaeger on free non-ephemeral ports and a platform (on the session's Kafka) exporting to it."""
    data_dir = tmp_path_factory.mktemp("jaeger-platform")
    jaeger = Jaeger(data_dir, JaegerPorts.free(), binary=jaeger_binary)
    plat = platform_on(shared_kafka, data_dir, extra_env=jaeger.service_env())
    try:
        await jaeger.start()
        await plat.start(ready_timeout=90)
        yield jaeger, plat
    finally:
        await plat.stop_all()
        await jaeger.stop()


@pytest.fixture(scope="module")
async def traced_order(traced: tuple[Jaeger, LocalPlatform]) -> AsyncIterator[tuple[httpx.AsyncClient, dict]]:
    """An API client of that platform and one completed order."""
    _, plat = traced
    async with httpx.AsyncClient(
        base_url=plat.api_url, timeout=10, trust_env=False, auth=ActAsOwner(plat)
    ) as api:
        order = await wait_settled(api, await submit(api, "two bubble teas and a taxi home"))
        assert order["status"] == "COMPLETED", order
        assert len(order["trace_id"]) == 32, order
        yield api, order


def _service(doc: dict, span: dict) -> str:
    return str(doc["processes"][span["processID"]]["serviceName"])


def _dangling(spans: JaegerSpans) -> list[dict]:
    """Spans whose CHILD_OF/FOLLOWS_FROM reference names a span not in the trace."""
    ids = {s["spanID"] for s in spans}
    return [s for s in spans if any(r["spanID"] not in ids for r in s.get("references", []))]


def _complete(doc: dict) -> bool:
    spans = doc["spans"]
    roots = [s for s in spans if not s.get("references")]
    return {_service(doc, s) for s in spans} >= SERVICES and len(roots) == 1 and not _dangling(spans)


async def poll_jaeger(query_url: str, trace_id: str, done: Callable[[dict], bool]) -> dict:
    """GET /api/traces/{trace_id} until `done(trace)` or the deadline; returns the last trace seen."""
    deadline = time.monotonic() + SPANS_DEADLINE_S
    doc: dict = {"spans": [], "processes": {}}
    async with httpx.AsyncClient(base_url=query_url, timeout=5, trust_env=False) as client:
        while True:
            reply = await client.get(f"/api/traces/{trace_id}")
            if reply.status_code == 200:
                data = reply.json()["data"]
                assert len(data) == 1, f"Jaeger split trace {trace_id} into {len(data)}"
                doc = data[0]
                if done(doc):
                    return doc
            else:
                assert reply.status_code == 404, reply.text  # not there yet
            if time.monotonic() > deadline:
                return doc
            await asyncio.sleep(0.25)


async def test_one_sentence_is_one_trace_in_jaeger(
    traced: tuple[Jaeger, LocalPlatform], traced_order: tuple[httpx.AsyncClient, dict]
) -> None:
    jaeger, plat = traced
    _, order = traced_order
    trace_id = order["trace_id"]
    doc = await poll_jaeger(jaeger.query_url, trace_id, _complete)
    spans = doc["spans"]
    services = {_service(doc, s) for s in spans}
    assert services >= SERVICES, f"after {SPANS_DEADLINE_S}s Jaeger has {sorted(services)} for {trace_id}"
    assert {s["traceID"].zfill(32) for s in spans} == {trace_id}
    for span in spans:
        assert all(r["traceID"].zfill(32) == trace_id for r in span.get("references", [])), span
    assert not _dangling(spans), "parent references that resolve to no span of the trace"
    roots = [s for s in spans if not s.get("references")]
    assert [r["operationName"] for r in roots] == ["POST /v1/intents"]
    assert any(s["operationName"].startswith("process ") for s in spans), "no Kafka consume spans"
    # Exported over OTLP, not to the local span store.
    assert not list((plat.data_dir / "spans").glob("*.jsonl"))
    async with httpx.AsyncClient(base_url=jaeger.query_url, timeout=5, trust_env=False) as client:
        listed = set((await client.get("/api/services")).json()["data"] or [])
    assert listed >= SERVICES


async def test_order_trace_endpoint_reads_from_jaeger(
    traced: tuple[Jaeger, LocalPlatform], traced_order: tuple[httpx.AsyncClient, dict]
) -> None:
    jaeger, _ = traced
    api, order = traced_order
    doc = await poll_jaeger(jaeger.query_url, order["trace_id"], _complete)
    reply = await api.get(f"/v1/orders/{order['order_id']}/trace")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["source"] == "remote" and body["trace_id"] == order["trace_id"]
    assert set(body["services"]) >= SERVICES
    got = {s["span_id"] for s in body["spans"]}
    assert {s["spanID"].zfill(16) for s in doc["spans"]} <= got
    assert body["spans"][0]["name"] == "POST /v1/intents" and body["spans"][0]["depth"] == 0
    assert all(s["depth"] > 0 for s in body["spans"][1:]), "more than one root: a parent did not resolve"
