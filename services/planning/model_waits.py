"""Orders waiting for the model (planning's Redis keys), and the one outcome each wait ends with.

- `planning:model:{<order>}`: the request (user, text, locale, address labels) and its deadline, written
  once: a redelivered IntentAccepted, or a restarted planning, keeps the first deadline;
- `planning:model:deadlines`: a sorted set of waiting orders by deadline (the deadline watcher's list);
- `planning:model:{<order>}:outcome`: what ended the wait, set once (SET NX): the model's answer
  (`model|<ParseCompleted>`) or the deadline (`deadline`). An answer and the deadline that meet on one
  order both read the one that stood first, so the plan (and its subsidy) is made from one outcome only.

Round trips (issue 13: the model path pays them per sentence on top of the rules path's): opening a
wait is one (the script and the list entry in one pipeline); settling reads the wait and sets the
outcome in one script, which the caller sends together with its decision read; closing rides with the
decision's write (`queue_close`).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from redis.asyncio.client import Pipeline, Redis

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
# The wait (KEYS[1]) and, only for an order that waits, its outcome (KEYS[2], set once): nil when
# nothing waits, else {the outcome that stands, the wait's fields}. Both keys share the order's hash tag.
_SETTLE_LUA = """
local wait = redis.call('HGETALL', KEYS[1])
if #wait == 0 then
  return false
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return {ARGV[1], wait}
end
return {redis.call('GET', KEYS[2]), wait}
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
        self._settle = redis.register_script(_SETTLE_LUA)

    async def open(self, wait: Wait) -> int:
        """Records the wait unless it exists; returns the deadline that stands (the first one).

        One round trip: the script and the list entry leave in one non-transactional pipeline (the keys
        sit in different cluster slots, so not one script). Redis runs a connection's commands in the
        order sent, so the list entry never exists before its wait: a crash between them leaves a wait
        that is not listed yet, which the redelivered IntentAccepted (not committed) lists. Inside a
        pipeline the script goes as EVAL, never EVALSHA: a NOSCRIPT reload would run it after the ZADD.
        The entry is added with this call's deadline (the standing one is not known before the reply);
        when an earlier wait stands (a redelivery, a re-drive), the entry is moved to its deadline (XX:
        an order already off the list, decided meanwhile, is not listed again by that second write; a
        crash before it leaves a later deadline listed, which the next redelivery moves the same way)."""
        async with self.redis.pipeline(transaction=False) as pipe:
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
                client=pipe,
            )
            pipe.zadd(DEADLINES_KEY, {wait.order_id: wait.deadline_ms}, nx=True)
            standing, _ = await pipe.execute()
        deadline = int(standing)
        if deadline != wait.deadline_ms:
            await self.redis.zadd(DEADLINES_KEY, {wait.order_id: deadline}, xx=True)
        return deadline

    async def get(self, order_id: str) -> Wait | None:
        raw = await self.redis.hgetall(wait_key(order_id))
        return _wait_of(order_id, raw) if raw else None

    async def settle(self, order_id: str, candidate: Outcome) -> tuple[Wait, Outcome] | None:
        """For an order that waits: sets its outcome unless one stands, and returns the wait with the
        outcome that stands; None when nothing waits (no outcome is written then). One round trip.

        It settles whether or not the order has a decision already (the caller reads that in the same
        round trip): a decision is always made after its outcome stands, so a settle that comes later
        loses to that outcome, or, for an order cancelled while it waited, writes one nothing reads."""
        found = await self._settle(
            keys=[wait_key(order_id), outcome_key(order_id)], args=[candidate.encode(), self.ttl_s]
        )
        if not found:
            return None
        standing, fields = found
        raw = dict(zip(fields[::2], fields[1::2], strict=True))
        return _wait_of(order_id, raw), Outcome.decode(standing)

    async def due(self, now_ms: int, limit: int) -> list[str]:
        """Waiting orders whose deadline has passed, earliest first."""
        return list(await self.redis.zrangebyscore(DEADLINES_KEY, "-inf", now_ms, start=0, num=limit))

    async def waiting(self) -> int:
        return int(await self.redis.zcard(DEADLINES_KEY))

    async def close(self, order_id: str) -> None:
        """The order has its decision: off the deadline list (its keys expire with their TTL)."""
        await self.redis.zrem(DEADLINES_KEY, order_id)

    @staticmethod
    def queue_close(pipe: Pipeline, order_id: str) -> None:
        """close(), queued on a pipeline: after the decision's write, in that write's round trip."""
        pipe.zrem(DEADLINES_KEY, order_id)


def _wait_of(order_id: str, raw: dict[str, str]) -> Wait:
    return Wait(
        order_id=order_id,
        user_id=raw.get("user_id", ""),
        text=raw.get("text", ""),
        locale=raw.get("locale", ""),
        address_labels=tuple(json.loads(raw.get("labels") or "[]")),
        deadline_ms=int(raw.get("deadline_ms", 0)),
        requested_at_ms=int(raw.get("requested_at_ms", 0)),
    )
