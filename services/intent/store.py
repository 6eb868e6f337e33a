"""The order-status projection in Redis: created at ingest, advanced by every order event."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio.client import PubSub, Redis

from yiju.common.orders import RANK, TERMINAL, OrderStatus, is_settled
from yiju.common.redis import load_script

_LUA = Path(__file__).parent / "lua"
ORDER_TTL_S = 30 * 24 * 3600
# Open (not terminal) orders scored by the time of their last change, in ms: the sweeper's work list.
# Kept next to the Lua calls in the same pipeline (not inside the scripts, so every script still touches
# one hash slot only); the order hash stays the truth and the sweeper re-checks it before acting.
OPEN_ORDERS_KEY = "orders:open"


@dataclass(frozen=True, slots=True)
class RefundMark:
    """What request_refund.lua answered: outcome new | exists | not_refundable | missing."""

    outcome: str
    status: str
    requested_at: str
    requested_by: str
    reason: str


def now_ms() -> int:
    return int(time.time() * 1000)


def order_key(order_id: str) -> str:
    return f"order:{{{order_id}}}"


def history_key(order_id: str) -> str:
    return f"order:{{{order_id}}}:history"


def updates_channel(order_id: str) -> str:
    return f"order-updates:{order_id}"


class OrderStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._create = load_script(redis, _LUA / "create_order.lua")
        self._apply = load_script(redis, _LUA / "apply_event.lua")
        self._decide = load_script(redis, _LUA / "decide.lua")
        self._request_refund = load_script(redis, _LUA / "request_refund.lua")

    async def create(
        self, order_id: str, user_id: str, text: str, locale: str, at: str, trace_id: str
    ) -> bool:
        keys = [order_key(order_id), history_key(order_id)]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(OPEN_ORDERS_KEY, {order_id: now_ms()}, nx=True)
            await self._create(
                keys=keys, args=[user_id, text, locale, at, trace_id, ORDER_TTL_S], client=pipe
            )
            _, created = await pipe.execute()
        return bool(created)

    async def apply(
        self,
        order_id: str,
        status: OrderStatus | None,
        at: str,
        reason: str = "",
        sections: dict[str, tuple[int, Any]] | None = None,
    ) -> bool:
        args: list[Any] = [status or "", RANK[status] if status else 0, at, reason, updates_channel(order_id)]
        for name, (rank, value) in (sections or {}).items():
            args += [name, rank, orjson.dumps(value).decode()]
        # Whatever it ended as, a terminal order is off the sweeper's list; REFUND_PENDING (ranked past
        # the terminal statuses) stays on it until the money is back.
        terminal = status is not None and status in TERMINAL
        async with self.redis.pipeline(transaction=False) as pipe:
            await self._apply(keys=[order_key(order_id), history_key(order_id)], args=args, client=pipe)
            if terminal:
                pipe.zrem(OPEN_ORDERS_KEY, order_id)
            else:  # only an order still on the list moves (XX): a late event never re-opens one
                pipe.zadd(OPEN_ORDERS_KEY, {order_id: now_ms()}, xx=True, gt=True)
            changed, _ = await pipe.execute()
        return bool(changed)

    async def open_orders(self, idle_since_ms: int, limit: int = 200) -> list[tuple[str, int]]:
        """Open orders whose last change is at or before `idle_since_ms`, oldest first, with that time."""
        rows = await self.redis.zrangebyscore(
            OPEN_ORDERS_KEY, "-inf", idle_since_ms, start=0, num=limit, withscores=True
        )
        return [(order_id, int(score)) for order_id, score in rows]

    async def touch(self, order_id: str, at_ms: int) -> None:
        """Moves an open order's next look to `at_ms` (only if it is still in the open set)."""
        await self.redis.zadd(OPEN_ORDERS_KEY, {order_id: at_ms}, xx=True)

    async def forget(self, order_id: str) -> None:
        """Takes an order off the open set (it is terminal, or its document is gone)."""
        await self.redis.zrem(OPEN_ORDERS_KEY, order_id)

    async def raw(self, order_id: str) -> tuple[dict[str, str], list[str]]:
        """The order hash and its history entries ("STATUS|at"), as stored."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(order_key(order_id))
            pipe.lrange(history_key(order_id), 0, -1)
            doc, history = await pipe.execute()
        return doc, history

    async def decide(self, order_id: str, decision: str) -> tuple[bool, str]:
        ok, detail = await self._decide(keys=[order_key(order_id)], args=[decision])
        return bool(ok), detail

    async def request_refund(self, order_id: str, requested_by: str, reason: str, at: str) -> RefundMark:
        """Marks a COMPLETED order REFUND_PENDING once (request_refund.lua); a second request, or two at
        once, get the first one's mark back (outcome "exists")."""
        outcome, status, marked_at, by, why = await self._request_refund(
            keys=[order_key(order_id), history_key(order_id)],
            args=[requested_by, reason, at, updates_channel(order_id), RANK[OrderStatus.REFUND_PENDING]],
        )
        if status == OrderStatus.REFUND_PENDING:  # on the sweeper's list until REFUNDED (NX: a repeat
            # request keeps the time of the first): a lost refund event is re-driven
            await self.redis.zadd(OPEN_ORDERS_KEY, {order_id: now_ms()}, nx=True)
        return RefundMark(outcome, status, marked_at, by, why)

    async def get(self, order_id: str) -> dict[str, Any] | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(order_key(order_id))
            pipe.lrange(history_key(order_id), 0, -1)
            doc, history = await pipe.execute()
        if not doc:
            return None
        return render(order_id, doc, history)

    async def watch(
        self, order_id: str, poll_s: float = 1.0, keepalive_s: float = 0.0
    ) -> AsyncIterator[dict[str, Any] | None]:
        """Yields the order now and after every change, until it is terminal or waiting for the user.
        With keepalive_s, also yields None after that long without a change (for stream keepalives).

        Events of one order travel on several topics, so the projection can apply the capture (COMPLETED)
        before the fulfilment that preceded it: a COMPLETED order whose fulfilment has not been applied
        yet is followed a little longer (WHOLE_WAIT_S), so a watcher's last view is the whole order."""
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(updates_channel(order_id))
        try:
            last = None
            quiet_since = time.monotonic()
            settled_at: float | None = None
            while True:
                order = await self.get(order_id)
                if order is None:
                    return
                if order != last:
                    yield order
                    last = order
                    quiet_since = time.monotonic()
                elif keepalive_s and time.monotonic() - quiet_since >= keepalive_s:
                    yield None
                    quiet_since = time.monotonic()
                if is_settled(order["status"]):
                    settled_at = settled_at or time.monotonic()
                    if _whole(order) or time.monotonic() - settled_at >= WHOLE_WAIT_S:
                        return
                await _next_change(pubsub, poll_s)
        finally:
            # Bounded: a stalled Redis must not keep a leaving watcher (its connection is dropped).
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await pubsub.unsubscribe()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await pubsub.aclose()


WHOLE_WAIT_S = 5.0
"""How long a watcher follows a settled order whose earlier sections are still on their way."""


def _whole(order: dict[str, Any]) -> bool:
    """Every section the status implies is there (a COMPLETED order was fulfilled, with records)."""
    return order["status"] != OrderStatus.COMPLETED or bool(order.get("fulfilment"))


async def _next_change(pubsub: PubSub, wait_s: float) -> None:
    """Waits up to `wait_s` for a change message, and ends at once when the watcher is cancelled.

    The wait is ours (a blocking read under asyncio.timeout), not redis-py's read timeout: on Python
    3.11 a cancellation that lands inside redis-py's own timeout is turned into a TimeoutError that its
    retry swallows, and the task, still marked as cancelling, then ignores every later timeout: a watcher
    whose client left during a Redis stall never ended, and kept its slot and connection."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():  # a cancellation swallowed below: honour it now
        raise asyncio.CancelledError
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait_s):
            await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)


def render(order_id: str, doc: dict[str, str], history: list[str]) -> dict[str, Any]:
    plan = orjson.loads(doc["plan"]) if doc.get("plan") else {}
    payment = (
        orjson.loads(doc["payment"])
        if doc.get("payment")
        else {"status": "NONE", "authorized_fen": 0, "captured_fen": 0}
    )
    entries = [h.split("|", 1) for h in history]
    refund = (
        {
            "requested_by": doc.get("refund_requested_by", ""),
            "requested_at": doc["refund_requested_at"],
            "reason": doc.get("refund_reason", ""),
        }
        if doc.get("refund_requested_at")
        else None
    )
    return {
        "order_id": order_id,
        "user_id": doc.get("user_id", ""),
        "text": doc.get("text", ""),
        "status": doc.get("status", ""),
        "reason": doc.get("reason", ""),
        "lines": plan.get("lines", []),
        "subtotal_fen": plan.get("subtotal_fen", 0),
        "subsidy_fen": plan.get("subsidy_fen", 0),
        "total_fen": plan.get("total_fen", 0),
        "payment": payment,
        "fulfilment": orjson.loads(doc["fulfilment"]) if doc.get("fulfilment") else [],
        "history": [{"status": s, "at": at} for s, at in sorted(entries, key=lambda e: e[1])],
        "trace_id": doc.get("trace_id", ""),
        "created_at": doc.get("created_at", ""),
        **({"refund": refund} if refund else {}),
    }
