"""After a run: does what users see (the order projection) and what was charged (the wallets) agree
with what the watcher saw on the topics? Both read Redis in pipelined batches, never per order."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio.client import Redis

from yiju.loadgen.watcher import COMPLETED, Track

CHUNK = 1000


async def projection_statuses(redis: Redis, order_ids: Sequence[str]) -> list[str | None]:
    """The projection's status of each order (HGET order:{id} status, pipelined in chunks)."""
    out: list[str | None] = []
    for i in range(0, len(order_ids), CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for order_id in order_ids[i : i + CHUNK]:
                pipe.hget(f"order:{{{order_id}}}", "status")
            out.extend(await pipe.execute())
    return out


async def verify_projection(redis: Redis, tracks: Iterable[Track], wait_s: float = 15.0) -> dict[str, Any]:
    """Every order the watcher saw COMPLETED must read COMPLETED in the projection (it may lag a
    little behind the captured event: orders that do not are re-read for up to `wait_s`)."""
    wanted = [t.order_id for t in tracks if t.status == COMPLETED and t.order_id]
    pending = list(wanted)
    seen: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while pending:
        statuses = await projection_statuses(redis, pending)
        behind = [(oid, s) for oid, s in zip(pending, statuses, strict=True) if s != COMPLETED]
        pending = [oid for oid, _ in behind]
        if not pending or loop.time() > deadline:
            seen.update(s or "missing" for _, s in behind)
            break
        await asyncio.sleep(0.5)
    return {
        "checked": len(wanted),
        "completed": len(wanted) - len(pending),
        "mismatched": len(pending),
        "mismatched_statuses": dict(seen),
        "examples": pending[:5],
    }


async def wallet_spent(redis: Redis, user_ids: Sequence[str]) -> dict[str, int]:
    """`spent` of each user's wallet (HGET wallet:{user} spent, pipelined in chunks)."""
    out: dict[str, int] = {}
    for i in range(0, len(user_ids), CHUNK):
        chunk = user_ids[i : i + CHUNK]
        async with redis.pipeline(transaction=False) as pipe:
            for user_id in chunk:
                pipe.hget(f"wallet:{{{user_id}}}", "spent")
            values = await pipe.execute()
        out.update({u: int(v or 0) for u, v in zip(chunk, values, strict=True)})
    return out


def money_check(before: dict[str, int], after: dict[str, int], tracks: Iterable[Track]) -> dict[str, Any]:
    """What the wallets were charged must equal the captured amounts the watcher saw, user by user
    (valid when nothing else spends from these users meanwhile)."""
    captured: Counter[str] = Counter()
    for t in tracks:
        if t.status == COMPLETED:
            captured[t.user_id] += t.amount_fen
    charged = {u: after.get(u, 0) - before.get(u, 0) for u in after}
    wrong = [u for u in set(charged) | set(captured) if charged.get(u, 0) != captured.get(u, 0)]
    return {
        "users": len(after),
        "captured_fen": sum(captured.values()),
        "charged_fen": sum(charged.values()),
        "users_mismatched": len(wrong),
        "ok": not wrong,
        "examples": sorted(wrong)[:5],
    }
