"""The edge while a dependency is down: clients get 503 with Retry-After (gRPC UNAVAILABLE), never a
500 or a request held for the outage, and a retry with the same idempotency key continues the same
order once the dependency is back. A platform with a broker of its own, since the broker is stopped."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.conftest import ActAsOwner, wait_settled
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def outage_platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalPlatform]:
    env = {"YIJU_EDGE_PUBLISH_TIMEOUT_S": "2"}
    plat = LocalPlatform.on_free_ports(tmp_path_factory.mktemp("outage"), broker="kafka", extra_env=env)
    try:
        await plat.start(ready_timeout=120)
        yield plat
    finally:
        await plat.stop_all()


@pytest.fixture(scope="module")
async def outage_api(outage_platform: LocalPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=outage_platform.api_url, timeout=30, trust_env=False, auth=ActAsOwner(outage_platform)
    ) as client:
        yield client


def assert_unavailable(reply: httpx.Response) -> None:
    assert reply.status_code == 503, reply.text
    assert reply.headers["Retry-After"] == "1"
    assert reply.json()["error"]["code"] == "unavailable"


async def test_redis_down_is_a_503_and_the_retry_goes_through(
    outage_platform: LocalPlatform, outage_api: httpx.AsyncClient
) -> None:
    body = {"user_id": "u-1004", "text": "one latte", "idempotency_key": f"redis-down-{uuid.uuid4()}"}
    await outage_platform.stop("redis")
    try:
        assert_unavailable(await outage_api.post("/v1/intents", json=body))
    finally:
        await outage_platform.restart("redis")
    await outage_platform.wait_ready(timeout=60)
    reply = await outage_api.post("/v1/intents", json=body)
    assert reply.status_code == 202, reply.text
    assert (await wait_settled(outage_api, reply.json()["order_id"], timeout=60))["status"] == "COMPLETED"


async def test_broker_down_is_a_503_in_bounded_time_and_the_retry_continues_the_same_order(
    outage_platform: LocalPlatform, outage_api: httpx.AsyncClient
) -> None:
    body = {"user_id": "u-1004", "text": "one americano", "idempotency_key": f"broker-down-{uuid.uuid4()}"}
    await outage_platform.stop("broker")
    try:
        reply = await outage_api.post("/v1/intents", json=body)  # waits YIJU_EDGE_PUBLISH_TIMEOUT_S at most
        assert_unavailable(reply)
        first_order = reply.json()["error"]["order_id"]
    finally:
        await outage_platform.restart("broker")
    await outage_platform.wait_ready(timeout=120)
    order_id = ""
    for _ in range(100):
        reply = await outage_api.post("/v1/intents", json=body)
        if reply.status_code == 202:
            order_id = reply.json()["order_id"]
            break
        assert reply.status_code == 409, reply.text  # the first attempt's claim is still fresh
        await asyncio.sleep(0.5)
    assert order_id == first_order  # the retry continued the first attempt's order, not a new one
    assert (await wait_settled(outage_api, order_id, timeout=90))["status"] == "COMPLETED"
