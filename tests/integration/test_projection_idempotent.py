"""The order projection is idempotent by construction: a redelivered event changes nothing (no second
history entry, no update published), so its consumer group keeps no de-duplication keys; terminal
orders leave the sweeper's open set in the same round trip, and late events never put them back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from yiju.common.consumer import BatchProcessor
from yiju.common.envelope import build_headers, spec_for
from yiju.common.orders import OrderStatus
from yiju.common.settings import Settings
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.intent.projection import Projection
from yiju.intent.store import OPEN_ORDERS_KEY, OrderStore

pytestmark = pytest.mark.integration


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def record(
    message: ev.PaymentCaptured | ev.PlanCreated | ev.PaymentAuthorized, order_id: str, offset: int
) -> Record:
    spec = spec_for(message)
    headers = build_headers(spec, order_id, "test")
    return Record(
        spec.topic,
        0,
        offset,
        order_id.encode(),
        message.SerializeToString(),
        [(k, v.encode()) for k, v in headers.items()],
    )


async def test_a_redelivered_event_changes_nothing(redis: aioredis.Redis) -> None:
    store = OrderStore(redis)
    order_id = f"o-idem-{uuid.uuid4().hex[:8]}"
    await store.create(order_id, "u-1001", "two lattes", "en", "2026-11-29T00:00:00.000Z", "")
    assert await store.apply(order_id, OrderStatus.PLANNED, "2026-11-29T00:00:01.000Z")
    assert not await store.apply(order_id, OrderStatus.PLANNED, "2026-11-29T00:00:01.000Z")
    payment = {"payment": (2, {"status": "AUTHORIZED", "authorized_fen": 900, "captured_fen": 0})}
    assert await store.apply(order_id, OrderStatus.AUTHORIZED, "2026-11-29T00:00:02.000Z", "", payment)
    assert not await store.apply(order_id, OrderStatus.AUTHORIZED, "2026-11-29T00:00:02.000Z", "", payment)
    order = await store.get(order_id)
    assert order is not None
    assert [h["status"] for h in order["history"]] == ["ACCEPTED", "PLANNED", "AUTHORIZED"]
    assert order["payment"]["authorized_fen"] == 900
    assert await redis.zscore(OPEN_ORDERS_KEY, order_id) is not None

    captured = {"payment": (3, {"status": "CAPTURED", "authorized_fen": 900, "captured_fen": 900})}
    assert await store.apply(order_id, OrderStatus.COMPLETED, "2026-11-29T00:00:03.000Z", "", captured)
    assert await redis.zscore(OPEN_ORDERS_KEY, order_id) is None
    await store.apply(order_id, OrderStatus.FULFILLED, "2026-11-29T00:00:02.500Z")  # late, out of order
    order = await store.get(order_id)
    assert order is not None and order["status"] == "COMPLETED"
    assert await redis.zscore(OPEN_ORDERS_KEY, order_id) is None, "a late event re-opened the order"


async def test_the_projection_group_handles_redeliveries_without_dedup_keys(redis: aioredis.Redis) -> None:
    store = OrderStore(redis)
    processor = BatchProcessor(Projection(store).router(), None, redis, Settings())  # type: ignore[arg-type]
    order_id = f"o-idem-{uuid.uuid4().hex[:8]}"
    await store.create(order_id, "u-1001", "a latte", "en", "2026-11-29T00:00:00.000Z", "")
    plan = ev.PlanCreated(order_id=order_id)
    plan.plan.total_fen = 1500
    batch = [
        record(plan, order_id, 1),
        record(ev.PaymentAuthorized(order_id=order_id, amount_fen=1500), order_id, 2),
    ]
    await processor.handle(batch)
    await processor.handle(batch)  # redelivered after a rewind
    order = await store.get(order_id)
    assert order is not None and order["status"] == "AUTHORIZED" and order["total_fen"] == 1500
    assert [h["status"] for h in order["history"]] == ["ACCEPTED", "PLANNED", "AUTHORIZED"]
    assert not [k async for k in redis.scan_iter(match="dedup:yiju-intent-projection:*", count=1000)]
