"""Orders waiting for the model (planning's Redis keys), and the one outcome each wait ends with.

- `planning:model:{<order>}`: the request (user, text, locale, address labels) and its deadline, written
  once: a redelivered IntentAccepted, or a restarted planning, keeps the first deadline;
- `planning:model:deadlines`: a sorted set of waiting orders by deadline (the deadline watcher's list);
- `planning:model:{<order>}:outcome`: what ended the wait, set once (SET NX): the model's answer
  (`model|<ParseCompleted>`) or the deadline (`deadline`). An answer and the deadline that meet on one
  order both read the one that stood first, so the plan (and its subsidy) is made from one outcome only.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from redis.asyncio.client import Redis

from yiju.gen.events.v1 import order_events_pb2 as ev

DEADLINES_KEY = "planning:model:deadlines"
DEADLINE = "deadline"
_OPEN_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return tonumber(redis.call('HGET', KEYS[1], 'deadline_ms'))
end
redis.call('HSET', KEYS[1], 'user_id', ARGV[1], 'text', ARGV[2], 'locale', ARGV[3], 'labels', ARGV[4],
  'deadline_ms', ARGV[5], 'requested_at_ms', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[7])
return tonumber(ARGV[5])
"""


def wait_key(order_id: str) -> str:
    return f"planning:model:{{{order_id}}}"


def outcome_key(order_id: str) -> str:
    return f"planning:model:{{{order_id}}}:outcome"


@dataclass(frozen=True, slots=True)
class Wait:
    order_id: str
    user_id: str
    text: str
    locale: str
    address_labels: tuple[str, ...]
    deadline_ms: int
    requested_at_ms: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What ended a wait: the model's answer, or (answer None) the deadline."""

    answer: ev.ParseCompleted | None

    @property
    def by_deadline(self) -> bool:
        return self.answer is None

    def encode(self) -> str:
        if self.answer is None:
            return DEADLINE
        return "model|" + base64.b64encode(self.answer.SerializeToString()).decode()

    @classmethod
    def decode(cls, raw: str) -> Outcome:
        if raw == DEADLINE:
            return cls(None)
        return cls(ev.ParseCompleted.FromString(base64.b64decode(raw.partition("|")[2])))


class ModelWaits:
    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._open = redis.register_script(_OPEN_LUA)

    async def open(self, wait: Wait) -> int:
        """Records the wait unless it exists; returns the deadline that stands (the first one)."""
        deadline = int(
            await self._open(
                keys=[wait_key(wait.order_id)],
                args=[
                    wait.user_id,
                    wait.text,
                    wait.locale,
                    json.dumps(list(wait.address_labels)),
                    wait.deadline_ms,
                    wait.requested_at_ms,
                    self.ttl_s,
                ],
            )
        )
        await self.redis.zadd(DEADLINES_KEY, {wait.order_id: deadline}, nx=True)
        return deadline

    async def get(self, order_id: str) -> Wait | None:
        raw = await self.redis.hgetall(wait_key(order_id))
        if not raw:
            return None
        return Wait(
            order_id=order_id,
            user_id=raw.get("user_id", ""),
            text=raw.get("text", ""),
            locale=raw.get("locale", ""),
            address_labels=tuple(json.loads(raw.get("labels") or "[]")),
            deadline_ms=int(raw.get("deadline_ms", 0)),
            requested_at_ms=int(raw.get("requested_at_ms", 0)),
        )

    async def settle(self, order_id: str, outcome: Outcome) -> Outcome:
        """Sets the wait's outcome unless one stands; returns the one that stands."""
        if await self.redis.set(outcome_key(order_id), outcome.encode(), nx=True, ex=self.ttl_s):
            return outcome
        raw = await self.redis.get(outcome_key(order_id))
        return Outcome.decode(raw) if raw is not None else outcome

    async def due(self, now_ms: int, limit: int) -> list[str]:
        """Waiting orders whose deadline has passed, earliest first."""
        return list(await self.redis.zrangebyscore(DEADLINES_KEY, "-inf", now_ms, start=0, num=limit))

    async def waiting(self) -> int:
        return int(await self.redis.zcard(DEADLINES_KEY))

    async def close(self, order_id: str) -> None:
        """The order has its decision: off the deadline list (its keys expire with their TTL)."""
        await self.redis.zrem(DEADLINES_KEY, order_id)
