"""A watcher's last view of a settled order is the whole order: the capture (COMPLETED) can be applied
before the fulfilment that preceded it, since the two events travel on different topics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from yiju.common.orders import OrderStatus as S
from yiju.intent.store import OrderStore

pytestmark = pytest.mark.integration
T0 = "2026-12-01T10:00:0{}.000Z"


async def test_a_completed_order_is_followed_until_its_fulfilment_arrives(
    scratch_redis: aioredis.Redis,
) -> None:
    store = OrderStore(scratch_redis)
    order_id = "ord_whole"
    await store.create(order_id, "u-1004", "two bubble teas", "en", T0.format(0), "")
    await store.apply(order_id, S.AUTHORIZED, T0.format(1))
    await store.apply(order_id, S.COMPLETED, T0.format(2))  # the capture overtook the fulfilment
    seen: list[dict[str, Any]] = []
    first_view = asyncio.Event()

    async def watch() -> None:
        async for order in store.watch(order_id, poll_s=0.05):
            if order is not None:
                seen.append(order)
                first_view.set()

    watching = asyncio.create_task(watch())
    await asyncio.wait_for(first_view.wait(), 10)
    assert seen[-1]["status"] == "COMPLETED" and not seen[-1]["fulfilment"]
    assert not watching.done()  # not the last view yet: the order is not whole
    records = [{"sku": "tea-brown-sugar-boba", "status": "DISPATCHED", "provider_ref": "p-1"}]
    await store.apply(order_id, S.FULFILLED, T0.format(1), sections={"fulfilment": (1, records)})
    await asyncio.wait_for(watching, 10)
    assert seen[-1]["status"] == "COMPLETED" and seen[-1]["fulfilment"] == records


async def test_a_settled_order_missing_a_section_ends_its_stream_after_a_bounded_wait(
    scratch_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("yiju.intent.store.WHOLE_WAIT_S", 0.3)
    store = OrderStore(scratch_redis)
    await store.create("ord_partial", "u-1004", "one latte", "en", T0.format(0), "")
    await store.apply("ord_partial", S.COMPLETED, T0.format(2))
    views = [o async for o in store.watch("ord_partial", poll_s=0.05) if o is not None]
    assert [v["status"] for v in views] == ["COMPLETED"]
