"""The console's pages and endpoints on the real platform: demo sessions, an order's trace, the ops summary,
and ``yiju trace`` against the same span store; plus the ops arithmetic on its own."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import submit, wait_settled
from yiju.cli import exitcodes
from yiju.cli.main import main
from yiju.common.settings import Settings
from yiju.common.topics import CONSUMER_GROUPS
from yiju.intent.console.ops import (
    LOCAL_ORDER,
    Sample,
    Scrape,
    histogram_quantile,
    metrics_targets,
    summarise,
)
from yiju.intent.console.settings import ConsoleSettings
from yiju_infra.local.platform import SERVICES, LocalPlatform

pytestmark = pytest.mark.integration
ALL_SERVICES = {"intent", "planning", "payment", "fulfilment", "model_gateway"}


@pytest.fixture(scope="module")
async def anonymous(platform: LocalPlatform) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends no credentials (the console's pages and demo sessions need none)."""
    async with httpx.AsyncClient(base_url=platform.api_url, timeout=10, trust_env=False) as client:
        yield client


def bearer(platform: LocalPlatform, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {platform.token(user)}"}


async def completed_order(api: httpx.AsyncClient) -> dict[str, Any]:
    order = await wait_settled(api, await submit(api, "two bubble teas and a taxi home"))
    assert order["status"] == "COMPLETED", order
    return order


def _complete(trace: dict[str, Any]) -> bool:
    ids = {s["span_id"] for s in trace["spans"]}
    names = {s["name"] for s in trace["spans"]}
    return (
        set(trace["services"]) >= ALL_SERVICES
        and any(n.startswith("process ") and n.endswith("yiju.payment.captured.v1") for n in names)
        and all(s["parent_id"] is None or s["parent_id"] in ids for s in trace["spans"])
    )


async def full_trace(api: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    """The order's trace once every service's spans are in: each process flushes its spans every 0.5 s, so
    wait until no parent is missing and nothing new arrived for a second."""
    trace: dict[str, Any] = {}
    seen = -1
    for _ in range(80):
        reply = await api.get(f"/v1/orders/{order_id}/trace")
        assert reply.status_code == 200, reply.text
        trace = reply.json()
        if _complete(trace) and len(trace["spans"]) == seen:
            return trace
        seen = len(trace["spans"]) if _complete(trace) else -1
        await asyncio.sleep(1.0 if seen >= 0 else 0.25)
    raise AssertionError(f"trace incomplete: {trace}")


# --- pages and demo sessions -----------------------------------------------------------------------------


async def test_pages_and_assets_are_served_without_credentials(anonymous: httpx.AsyncClient) -> None:
    for path, marker in [("/", 'id="intent-form"'), ("/ops", 'id="groups"')]:
        reply = await anonymous.get(path)
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
        assert marker in reply.text and "/console/app.js" in reply.text
    for asset, kind in [("/console/app.js", "javascript"), ("/console/style.css", "text/css")]:
        reply = await anonymous.get(asset)
        assert reply.status_code == 200 and kind in reply.headers["content-type"]
    for path in ("/", "/ops", "/console/app.js", "/console/style.css"):  # nothing is fetched from elsewhere
        text = (await anonymous.get(path)).text
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path


async def test_demo_users_and_sessions(anonymous: httpx.AsyncClient, platform: LocalPlatform) -> None:
    users = (await anonymous.get("/v1/console/users")).json()["users"]
    assert {u["id"] for u in users} >= {"u-1001", "u-1002", "u-1003", "u-1004"}
    session = (await anonymous.get("/v1/console/session", params={"user_id": "u-1002"})).json()
    assert session["user_id"] == "u-1002" and session["name"]
    unknown = await anonymous.get("/v1/console/session", params={"user_id": "u-nobody"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    if session["token"]:  # the token is the user's: it submits as them
        headers = {"Authorization": f"Bearer {session['token']}"}
        reply = await anonymous.post(
            "/v1/intents", json={"user_id": "u-1002", "text": "one latte"}, headers=headers
        )
        assert reply.status_code == 202, reply.text


# --- the trace endpoint ----------------------------------------------------------------------------------


async def test_an_orders_trace_is_a_waterfall_across_all_services(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, platform: LocalPlatform
) -> None:
    order = await completed_order(api)
    trace = await full_trace(api, order["order_id"])
    assert trace["trace_id"] == order["trace_id"] and trace["source"] == "local"
    spans = trace["spans"]
    assert spans[0]["name"] == "POST /v1/intents" and spans[0]["depth"] == 0 and spans[0]["offset_ms"] == 0
    assert spans[0]["start"] == trace["start"] and trace["start"] > 1.6e12  # epoch milliseconds
    seen: dict[str, int] = {}
    for span in spans:  # depth-first: every parent comes before its children, one level up
        if span["parent_id"] in seen:
            assert span["depth"] == seen[span["parent_id"]] + 1
        else:
            assert span["depth"] == 0
        seen[span["span_id"]] = span["depth"]
        assert 0 <= span["offset_ms"] <= trace["duration_ms"]

    # Someone else's order has no trace for you; no credentials, no trace.
    other = await anonymous.get(f"/v1/orders/{order['order_id']}/trace", headers=bearer(platform, "u-1001"))
    assert other.status_code == 404
    assert (await anonymous.get(f"/v1/orders/{order['order_id']}/trace")).status_code == 401


async def test_kafka_spans_follow_the_otel_messaging_conventions(
    api: httpx.AsyncClient, platform: LocalPlatform
) -> None:
    """Span names and attributes carry the names on the cluster (the platform's namespace prefixed)."""
    order = await completed_order(api)
    spans = (await full_trace(api, order["order_id"]))["spans"]
    by_id = {s["span_id"]: s for s in spans}
    # A publish inside a span (a process span, the request's) has no send span of its own: only a
    # publish that starts a trace does (yiju.common.broker).
    sends = [s for s in spans if s["kind"] == "PRODUCER"]
    processes = [s for s in spans if s["kind"] == "CONSUMER"]
    assert processes
    for span in sends:
        attrs = span["attributes"]
        topic = span["name"].removeprefix("send ")
        assert attrs["messaging.system"] == "kafka"
        assert attrs["messaging.operation.type"] == "send"
        assert attrs["messaging.destination.name"] == topic and topic.startswith(platform.topic("yiju."))
        assert attrs["messaging.kafka.message.key"] == order["order_id"]
    groups = {platform.namespace + g.name: g for g in CONSUMER_GROUPS}
    for span in processes:
        attrs = span["attributes"]
        topic = span["name"].removeprefix("process ")
        assert attrs["messaging.system"] == "kafka"
        assert attrs["messaging.operation.type"] == "process"
        assert attrs["messaging.destination.name"] == topic
        group = groups[attrs["messaging.consumer.group.name"]]
        assert topic in {platform.topic(t) for t in group.topics} and span["service"] == group.service
        assert isinstance(attrs["messaging.kafka.offset"], int) and attrs["messaging.kafka.offset"] >= 0
        assert attrs["messaging.destination.partition.id"].isdigit()
        parent = by_id[span["parent_id"]]  # consumed in the trace of the span that published it
        assert parent["kind"] in ("SERVER", "CONSUMER", "INTERNAL")
        assert parent["offset_ms"] <= span["offset_ms"]


async def test_yiju_trace_reads_the_same_spans(api: httpx.AsyncClient, platform: LocalPlatform) -> None:
    order = await completed_order(api)
    expected = await full_trace(api, order["order_id"])
    env = {**platform.env(), "YIJU_USER": "u-1004"}
    out: list[str] = []

    def run() -> int:
        import contextlib
        import io

        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = main(["trace", order["order_id"], "--json"], env=env)
        out.append(buffer.getvalue())
        return code

    assert await asyncio.to_thread(run) == exitcodes.OK
    doc = json.loads(out[0])
    assert doc["trace_id"] == order["trace_id"]
    assert doc["spans"][0]["span_id"] == expected["spans"][0]["span_id"]
    assert {s["span_id"] for s in doc["spans"]} >= {s["span_id"] for s in expected["spans"]}
    assert set(doc["spans"][0]) == {
        "trace_id", "span_id", "parent_id", "name", "service", "start", "duration_ms", "attributes"
    }  # fmt: skip


# --- the ops summary -------------------------------------------------------------------------------------


async def test_the_ops_summary_reads_every_service(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    await completed_order(api)
    first = (await api.get("/v1/ops/summary")).json()
    await asyncio.sleep(1.2)
    summary = (await api.get("/v1/ops/summary")).json()
    assert {s["name"]: s["up"] for s in summary["services"]} == dict.fromkeys(ALL_SERVICES, True), summary[
        "services"
    ]
    assert summary["window_s"] is not None and summary["window_s"] >= 1.0
    assert first["throughput"]["consumed_total"] > 0
    groups = {g["group"]: g for g in summary["consumer_groups"]}
    assert set(groups) == {g.name for g in CONSUMER_GROUPS}
    for name in ("yiju-intent-projection", "yiju-planning", "yiju-payment", "yiju-fulfilment"):
        assert groups[name]["handled_total"] > 0 and groups[name]["lag"] is not None
        assert groups[name]["p99_ms"] is not None
    assert summary["orders_by_status"].get("COMPLETED", 0) >= 1
    budget = summary["subsidy"]
    assert budget["campaign"] == "spring-festival" and budget["left_fen"] is not None
    assert 0 <= budget["left_fen"] <= budget["budget_fen"]
    gateway = summary["gateway"]
    assert gateway["up"] and gateway["requests_total"] >= 1 and gateway["cache_hit_ratio"] is not None
    assert summary["dead_letters"]["total"] >= 0
    assert (await anonymous.get("/v1/ops/summary")).status_code == 401


# --- ops arithmetic (no platform) ------------------------------------------------------------------------


def test_local_order_matches_the_platform() -> None:
    assert LOCAL_ORDER == SERVICES


def test_metrics_targets_follow_the_platform_layout() -> None:
    local = Settings(env="local", metrics_port=9201, planning_target="10.1.2.3:50053")
    targets = metrics_targets(local, ConsoleSettings())
    assert targets == {
        "intent": ["in-process"],
        "planning": ["http://10.1.2.3:9202/metrics"],
        "payment": ["http://127.0.0.1:9203/metrics"],
        "fulfilment": ["http://127.0.0.1:9204/metrics"],
        "model_gateway": ["http://127.0.0.1:9205/metrics"],
    }
    based = metrics_targets(local, ConsoleSettings(metrics_port_base=7000))
    assert based["model_gateway"] == ["http://127.0.0.1:7004/metrics"]
    cluster = Settings(env="prod", metrics_port=9100, gateway_target="yiju-model-gateway:50052")
    explicit = ConsoleSettings(metrics_targets="payment=pay.svc:9999, fulfilment=https://f/m, payment=p2:1")
    targets = metrics_targets(cluster, explicit)
    assert targets["model_gateway"] == ["http://yiju-model-gateway:9100/metrics"]
    assert targets["payment"] == ["http://pay.svc:9999/metrics", "http://p2:1/metrics"]
    assert targets["fulfilment"] == ["https://f/m"]


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    assert histogram_quantile(0.99, {}) is None
    assert histogram_quantile(0.5, {0.1: 0, 0.2: 10, float("inf"): 10}) == pytest.approx(0.15)
    assert histogram_quantile(0.99, {0.1: 5, float("inf"): 10}) == 0.1


def _scrape(service: str, samples: list[tuple[str, dict[str, str], float]]) -> Scrape:
    return Scrape(service, "test", [Sample(n, labels, v) for n, labels, v in samples])


def test_summarise_turns_counters_into_rates() -> None:
    def scrapes(consumed: float, hits: float) -> dict[str, Scrape]:
        return {
            "intent": _scrape(
                "intent",
                [
                    ("yiju_events_published_total", {"topic": "t1"}, consumed),
                    ("yiju_order_status_total", {"status": "COMPLETED"}, 3),
                ],
            ),
            "planning": _scrape(
                "planning",
                [
                    (
                        "yiju_events_consumed_total",
                        {"group": "yiju-planning", "topic": "t1", "outcome": "ok"},
                        consumed,
                    ),
                    (
                        "yiju_events_consumed_total",
                        {"group": "yiju-planning", "topic": "t1", "outcome": "duplicate"},
                        5,
                    ),
                    ("yiju_consumer_lag", {"group": "yiju-planning", "topic": "t1", "partition": "0"}, 2),
                    ("yiju_consumer_lag", {"group": "yiju-planning", "topic": "t1", "partition": "1"}, 1),
                    ("yiju_dead_letters_total", {"group": "yiju-planning", "reason": "malformed"}, 1),
                ],
            ),
            "model_gateway": _scrape(
                "model_gateway",
                [
                    ("yiju_gateway_cache_hits_total", {}, hits),
                    ("yiju_gateway_cache_misses_total", {}, 10),
                    ("yiju_gateway_batch_size_sum", {}, 12),
                    ("yiju_gateway_batch_size_count", {}, 4),
                ],
            ),
            "payment": Scrape("payment", "http://x/metrics", error="ConnectError: refused"),
        }

    now = time.time()
    first, totals = summarise(scrapes(10, 10), budget=None, previous=None, now=now)
    assert first["window_s"] is None and first["throughput"]["consumed_per_s"] is None
    second, _ = summarise(scrapes(30, 30), budget={"left_fen": 5}, previous=totals, now=now + 2)
    assert second["window_s"] == 2
    assert second["throughput"]["consumed_per_s"] == 10 and second["throughput"]["published_per_s"] == 10
    assert second["throughput"]["consumed_total"] == 30  # duplicates are not throughput
    planning = next(g for g in second["consumer_groups"] if g["group"] == "yiju-planning")
    assert planning["lag"] == 3 and planning["dead_letters_total"] == 1 and planning["handled_total"] == 35
    assert second["dead_letters"]["by_reason"] == {"malformed": 1}
    assert second["orders_by_status"] == {"COMPLETED": 3}
    assert second["gateway"]["cache_hit_ratio"] == 0.75 and second["gateway"]["window_cache_hit_ratio"] == 1.0
    assert second["gateway"]["batch_size_avg"] == 3
    assert {s["name"]: s["up"] for s in second["services"]}["payment"] is False
    assert second["subsidy"] == {"left_fen": 5}
