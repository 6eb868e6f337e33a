"""The saga's safety net: the timeout sweep expires, resumes or compensates orders that stop moving.

Runs its own platform with a fast sweep (orders idle 2 s are looked at) and 3 s confirmations, so it
cannot disturb the shared one; services are stopped and started to make orders stop moving.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka.errors import KafkaConnectionError

from tests.conftest import platform_on
from tests.integration.conftest import FAILING_SKU, owner_api, redis_of, started, submit, wait_settled
from yiju.common.decisions import DecisionStore
from yiju.common.envelope import now_iso
from yiju.common.orders import TERMINAL
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.intent.store import OPEN_ORDERS_KEY, OrderStore
from yiju.intent.sweeper import Sweeper, SweepSettings
from yiju.payment.wallet import payment_key, wallet_key
from yiju_infra.chaos.catalog import prepare_catalog
from yiju_infra.local.broker import BrokerServer
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration
SWEEP_ENV = {
    "YIJU_SWEEP_AFTER_S": "2",
    "YIJU_SWEEP_INTERVAL_S": "0.5",
    "YIJU_SWEEP_REDRIVES": "1",
    "YIJU_FULFILMENT_FAIL_SKUS": FAILING_SKU,
    "YIJU_EDGE_RATE_PER_USER_PER_S": "1000",
    "YIJU_EDGE_RATE_BURST": "1000",
}


@pytest.fixture(scope="module")
async def sweep_platform(
    tmp_path_factory: pytest.TempPathFactory, shared_kafka: BrokerServer
) -> AsyncIterator[LocalPlatform]:
    data_dir: Path = tmp_path_factory.mktemp("sweep")
    catalog = prepare_catalog(data_dir / "catalog", confirmation_ttl_s=3)
    env = {**SWEEP_ENV, "YIJU_CATALOG_DIR": str(catalog)}
    plat = platform_on(shared_kafka, data_dir, extra_env=env)
    async with started(plat):
        yield plat


@pytest.fixture(scope="module")
async def sredis(sweep_platform: LocalPlatform) -> AsyncIterator[aioredis.Redis]:
    async with redis_of(sweep_platform) as client:
        yield client


@pytest.fixture(scope="module")
async def sapi(sweep_platform: LocalPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with owner_api(sweep_platform) as client:
        yield client


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.1)


async def money(redis: aioredis.Redis, user: str) -> tuple[int, int, int]:
    wallet = await redis.hgetall(wallet_key(user))
    return int(wallet["balance"]), int(wallet["held"]), int(wallet["spent"])


async def test_an_unanswered_confirmation_expires_and_gives_the_subsidy_back(
    sapi: httpx.AsyncClient, sredis: aioredis.Redis
) -> None:
    order_id = await submit(sapi, "three pairs of earbuds", user="u-1001")
    assert (await wait_settled(sapi, order_id))["status"] == "AWAITING_CONFIRMATION"
    grant = f"subsidy:{{spring-festival}}:order:{order_id}"
    assert await sredis.get(grant) == "1000"
    order = await wait_settled(sapi, order_id, timeout=20, until=set(TERMINAL))
    assert (order["status"], order["reason"]) == ("CANCELLED", "confirmation expired")
    await eventually(lambda: _equals(sredis.get(grant), "released"), what="subsidy released")
    assert (await sapi.post(f"/v1/orders/{order_id}/confirm")).status_code == 409
    assert await sredis.zscore(OPEN_ORDERS_KEY, order_id) is None


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected


async def test_an_order_whose_acceptance_was_never_published_is_resumed(
    sapi: httpx.AsyncClient, sredis: aioredis.Redis
) -> None:
    # As if intent died between writing the order and publishing IntentAccepted.
    order_id = f"ord_{uuid.uuid4().hex[:20]}"
    await OrderStore(sredis).create(order_id, "u-1004", "one jasmine green tea", "en-AE", now_iso(), "")
    assert await sredis.zscore(OPEN_ORDERS_KEY, order_id) is not None
    order = await wait_settled(sapi, order_id, timeout=30)
    assert order["status"] == "COMPLETED"
    assert order["payment"]["captured_fen"] == 1200
    assert await sredis.zscore(OPEN_ORDERS_KEY, order_id) is None


async def test_a_payment_that_times_out_is_cancelled_and_a_late_authorization_is_voided(
    sweep_platform: LocalPlatform, sapi: httpx.AsyncClient, sredis: aioredis.Redis
) -> None:
    before = await money(sredis, "u-1004")
    await sweep_platform.stop("payment")
    try:
        order_id = await submit(sapi, "a bag of rice and a dozen eggs")
        order = await wait_settled(sapi, order_id, timeout=30, until=set(TERMINAL))
        assert (order["status"], order["reason"]) == ("CANCELLED", "payment timed out")
    finally:
        await sweep_platform.start_services(["payment"])
        await sweep_platform.wait_ready(["payment"], timeout=60)
    # Payment comes back and authorizes the plan it missed; fulfilment refuses it; payment voids.
    key = payment_key("u-1004", order_id)
    await eventually(lambda: _equals(sredis.hget(key, "status"), "VOIDED"), what="late authorization voided")
    assert await money(sredis, "u-1004") == before
    outcome = await DecisionStore(sredis, "fulfilment", 3600).get(order_id)
    assert isinstance(outcome, ev.FulfilmentFailed) and "payment timed out" in outcome.reason
    order = (await sapi.get(f"/v1/orders/{order_id}")).json()
    assert order["status"] == "CANCELLED" and order["payment"]["captured_fen"] == 0


async def test_a_fulfilment_that_times_out_fails_the_order_and_voids_the_payment(
    sweep_platform: LocalPlatform, sapi: httpx.AsyncClient, sredis: aioredis.Redis
) -> None:
    before = await money(sredis, "u-1004")
    await sweep_platform.stop("fulfilment")
    try:
        order_id = await submit(sapi, "two americanos to the office")
        order = await wait_settled(sapi, order_id, timeout=30, until=set(TERMINAL))
        assert (order["status"], order["reason"]) == ("FAILED", "fulfilment timed out")
        key = payment_key("u-1004", order_id)
        await eventually(lambda: _equals(sredis.hget(key, "status"), "VOIDED"), what="authorization voided")
        assert await money(sredis, "u-1004") == before
    finally:
        await sweep_platform.start_services(["fulfilment"])
        await sweep_platform.wait_ready(["fulfilment"], timeout=60)
    # Fulfilment catches up on the authorization (and its re-drive): it must not dispatch anything.
    await wait_settled(sapi, await submit(sapi, "one latte"), timeout=30)  # fulfilment is past them
    outcome = await DecisionStore(sredis, "fulfilment", 3600).get(order_id)
    assert isinstance(outcome, ev.FulfilmentFailed) and outcome.reason == "fulfilment timed out"
    order = (await sapi.get(f"/v1/orders/{order_id}")).json()
    assert order["status"] == "FAILED" and order["fulfilment"] == []
    assert await money(sredis, "u-1004") == (before[0] - 1600, before[1], before[2] + 1600)


async def test_one_failed_line_of_many_voids_the_payment_and_releases_the_subsidy(
    sapi: httpx.AsyncClient, sredis: aioredis.Redis
) -> None:
    before = await money(sredis, "u-1002")
    order_id = await submit(sapi, "two bubble teas, a latte and two red lanterns", user="u-1002")
    order = await wait_settled(sapi, order_id)
    assert order["status"] == "FAILED" and FAILING_SKU in order["reason"]
    assert order["subsidy_fen"] == 1000
    statuses = {f["sku"]: f["status"] for f in order["fulfilment"]}
    assert statuses == {
        "tea-brown-sugar-boba": "CANCELLED",
        "coffee-latte": "CANCELLED",
        FAILING_SKU: "FAILED",
    }
    key = payment_key("u-1002", order_id)
    await eventually(lambda: _equals(sredis.hget(key, "status"), "VOIDED"), what="authorization voided")
    grant = f"subsidy:{{spring-festival}}:order:{order_id}"
    await eventually(lambda: _equals(sredis.get(grant), "released"), what="subsidy released")
    assert await money(sredis, "u-1002") == before


class _Publisher:
    """Stands in for the sweeper's publisher: fails like a broker that is away, or records."""

    def __init__(self, *, broker_away: bool) -> None:
        self.broker_away = broker_away
        self.published: list[Any] = []

    async def publish(self, message: Any, key: str, **_: Any) -> None:
        if self.broker_away:
            raise KafkaConnectionError("broker away")
        self.published.append(message)


async def test_a_sweep_pauses_while_the_cluster_cannot_say_how_far_behind_the_pipeline_is(
    sweep_platform: LocalPlatform, sredis: aioredis.Redis
) -> None:
    away = sweep_platform.settings().model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})
    config = SweepSettings(after_s=2, settle_s=1)
    sweeper = Sweeper(OrderStore(sredis), _Publisher(broker_away=True), sredis, away, config)  # type: ignore[arg-type]
    try:
        done: Counter[str] = Counter()
        assert not await sweeper.pipeline_settled(done)
        assert done == {"skipped_unreachable": 1}
    finally:
        await sweeper.stop()
    # On the live cluster: caught up, then acting only after the settle time of a healthy pipeline.
    sweeper = Sweeper(
        OrderStore(sredis), _Publisher(broker_away=False), sredis, sweep_platform.settings(), config
    )  # type: ignore[arg-type]
    try:
        done = Counter()
        assert not await sweeper.pipeline_settled(done) and done == {"skipped_settling": 1}
        assert await eventually(lambda: sweeper.pipeline_settled(Counter()), what="settled after 1 s")
        assert 0 <= await sweeper.pipeline_lag() <= config.max_lag
    finally:
        await sweeper.stop()


async def test_a_redrive_that_could_not_be_published_does_not_use_up_the_orders_attempts(
    sweep_platform: LocalPlatform, sredis: aioredis.Redis
) -> None:
    # An accepted order nobody moves, kept off the open-orders index so that only this test sweeps it.
    store = OrderStore(sredis)
    order_id = f"ord_{uuid.uuid4().hex[:20]}"
    await store.create(order_id, "u-1004", "one jasmine green tea", "en-AE", now_iso(), "")
    await store.forget(order_id)
    config = SweepSettings(after_s=2, redrives=1, cluster_lag_guard=False)
    settings = sweep_platform.settings()
    away = _Publisher(broker_away=True)
    sweeper = Sweeper(store, away, sredis, settings, config)  # type: ignore[arg-type]
    for _ in range(3):  # the broker is away for three passes
        with pytest.raises(KafkaConnectionError):
            await sweeper.sweep_order(order_id, int(time.time() * 1000))
    assert await sredis.hgetall(f"sweep:{order_id}") == {}  # no attempt used
    back = _Publisher(broker_away=False)
    sweeper = Sweeper(store, back, sredis, settings, config)  # type: ignore[arg-type]
    assert (
        await sweeper.sweep_order(order_id, int(time.time() * 1000)) == "redriven"
    )  # resumed, not cancelled
    assert [type(m) for m in back.published] == [ev.IntentAccepted]
    assert await sredis.hgetall(f"sweep:{order_id}") == {"step": "ACCEPTED", "n": "1"}


async def test_a_refund_whose_request_was_never_published_is_re_driven_to_the_end(
    sapi: httpx.AsyncClient, sredis: aioredis.Redis
) -> None:
    order_id = await submit(sapi, "one jasmine green tea")
    assert (await wait_settled(sapi, order_id))["status"] == "COMPLETED"
    before = await money(sredis, "u-1004")
    # As if intent died between marking the order REFUND_PENDING and publishing OrderRefundRequested.
    mark = await OrderStore(sredis).request_refund(order_id, "user:u-1004", "changed my mind", now_iso())
    assert mark.outcome == "new" and await sredis.zscore(OPEN_ORDERS_KEY, order_id) is not None
    order = await wait_settled(sapi, order_id, timeout=60, until={"REFUNDED"})
    assert order["payment"]["refunded_fen"] == 1200
    balance, held, spent = await money(sredis, "u-1004")
    assert (balance, held, spent) == (before[0] + 1200, before[1], before[2] - 1200)
    assert await sredis.zscore(OPEN_ORDERS_KEY, order_id) is None  # off the sweeper's list once refunded
