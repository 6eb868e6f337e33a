"""Idempotency at the edge and state that survives kill -9 of Redis, on the shared platform."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from tests.integration.conftest import FAILING_SKU, wait_settled
from yiju.common.catalog import load_catalog
from yiju.common.orders import TERMINAL
from yiju.common.reconcile import reconcile
from yiju.common.redis import load_script
from yiju.intent import ingest
from yiju.payment.wallet import ledger_key
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration


async def _claim_as_if_in_flight(redis: aioredis.Redis, user: str, text: str, key: str) -> str:
    """What a first request leaves behind when it dies after claiming its key, before publishing."""
    claim = load_script(redis, Path(ingest.__file__).parent / "lua" / "claim_key.lua")
    fingerprint = hashlib.sha256(f"{user}\x00{text}\x00".encode()).hexdigest()
    order_id = ingest.new_order_id()
    outcome, claimed = await claim(
        keys=[f"idem:{{{user}}}:{key}"], args=[fingerprint, order_id, int(time.time() * 1000), 3600, 15_000]
    )
    assert (outcome, claimed) == ("new", order_id)
    return order_id


async def test_a_key_in_flight_is_409_and_a_stale_claim_is_taken_over(
    api: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    key, text = f"k-{uuid.uuid4()}", "one coconut latte"
    order_id = await _claim_as_if_in_flight(redis, "u-1004", text, key)
    body = {"user_id": "u-1004", "text": text, "idempotency_key": key}
    busy = await api.post("/v1/intents", json=body)
    assert busy.status_code == 409, busy.text
    assert busy.json()["error"]["code"] == "request_in_flight"
    assert busy.json()["error"]["order_id"] == order_id
    other = await api.post("/v1/intents", json={**body, "text": "one latte"})
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_conflict"
    # The first request is long gone: after the stale-claim time a retry finishes the same order.
    await redis.hset(f"idem:{{u-1004}}:{key}", "at", int(time.time() * 1000) - ingest.STALE_CLAIM_MS - 1)
    retried = await api.post("/v1/intents", json=body)
    assert retried.status_code == 202 and retried.json()["order_id"] == order_id
    assert (await wait_settled(api, order_id))["status"] == "COMPLETED"
    again = await api.post("/v1/intents", json=body)
    assert again.json()["order_id"] == order_id and again.headers["idempotent-replayed"] == "true"


async def test_concurrent_submissions_with_one_key_make_one_order(
    api: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    body = {"user_id": "u-1004", "text": "one americano", "idempotency_key": f"k-{uuid.uuid4()}"}
    replies = await asyncio.gather(*(api.post("/v1/intents", json=body) for _ in range(12)))
    codes = Counter(r.status_code for r in replies)
    assert set(codes) <= {202, 409}, codes
    order_ids = {r.json().get("order_id") or r.json()["error"]["order_id"] for r in replies}
    assert len(order_ids) == 1
    assert (await wait_settled(api, order_ids.pop()))["status"] == "COMPLETED"


async def _submit_until_accepted(api: httpx.AsyncClient, body: dict, deadline: float) -> str:
    """A client that keeps its idempotency key across retries: 503, 409, 429 (after the wait it is told)
    and lost connections. A dependency outage is a 503 with Retry-After, never a 500."""
    while True:
        assert time.monotonic() < deadline, f"{body} not accepted in time"
        try:
            reply = await api.post("/v1/intents", json=body)
            if reply.status_code == 202:
                return reply.json()["order_id"]
            if reply.status_code == 429:  # the per-user edge rate limit: back off as a client must
                await asyncio.sleep(max(reply.json()["error"]["retry_after_ms"], 50) / 1000)
                continue
            assert reply.status_code in (409, 503), reply.text
            if reply.status_code == 503:
                assert reply.headers["Retry-After"] and reply.json()["error"]["code"] == "unavailable"
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.3)


async def test_kill_9_of_redis_mid_flow_loses_nothing(
    platform: LocalPlatform, api: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    menu = [
        "one latte",
        "a jasmine green tea",
        "two americanos to the office",
        "a latte and two red lanterns",
    ]
    bodies = [
        {"user_id": "u-1004", "text": menu[i % len(menu)], "idempotency_key": f"redis-kill-{uuid.uuid4()}"}
        for i in range(40)
    ]
    deadline = time.monotonic() + 90
    restarts = platform.restarts.get("redis", 0)

    async def kill_soon() -> None:
        await asyncio.sleep(0.4)
        platform.kill("redis")

    killer = asyncio.create_task(kill_soon())
    order_ids = []
    for chunk in range(0, len(bodies), 8):
        order_ids += await asyncio.gather(
            *(_submit_until_accepted(api, b, deadline) for b in bodies[chunk : chunk + 8])
        )
        await asyncio.sleep(0.1)
    await killer
    assert platform.restarts.get("redis", 0) == restarts + 1, "Redis was not killed and restarted"
    await platform.wait_ready(timeout=60)
    settled = [await wait_settled(api, o, timeout=60, until=set(TERMINAL)) for o in order_ids]
    assert len(set(order_ids)) == len(bodies)
    for body, order in zip(bodies, settled, strict=True):
        expected = "FAILED" if "lanterns" in body["text"] else "COMPLETED"
        assert order["status"] == expected, order
        if expected == "COMPLETED":
            assert order["payment"]["captured_fen"] == order["total_fen"] > 0
        else:
            assert FAILING_SKU in order["reason"]
    captures = Counter(
        e[1]["order"] for e in await redis.xrange(ledger_key("u-1004")) if e[1]["type"] == "capture"
    )
    assert all(captures[o] <= 1 for o in order_ids)
    campaign = load_catalog(platform.settings().catalog_dir).campaign
    for _ in range(50):  # the last voids and releases land just after the orders settle
        report = await reconcile(platform.settings(), redis, campaign)
        if report.ok:
            break
        await asyncio.sleep(0.2)
    assert report.ok, [str(d) for d in report.differences]
