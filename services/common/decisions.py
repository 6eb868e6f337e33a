"""Remembered decisions: the first outcome of a non-deterministic step (a model call, a random
provider failure) is stored by order id, so a redelivered event re-emits exactly the same events."""

from __future__ import annotations

import base64
from collections.abc import Callable

from google.protobuf.message import Message
from redis.asyncio.client import Pipeline, Redis

from yiju.common.envelope import BY_TOPIC, spec_for


class DecisionStore:
    def __init__(self, redis: Redis, namespace: str, ttl_s: int) -> None:
        self.redis = redis
        self.namespace = namespace
        self.ttl_s = ttl_s

    def _key(self, order_id: str) -> str:
        return f"decision:{self.namespace}:{order_id}"

    async def get(self, order_id: str) -> Message | None:
        raw = await self.redis.get(self._key(order_id))
        if raw is None:
            return None
        topic, _, body = raw.partition("|")
        message = BY_TOPIC[topic].message()
        message.ParseFromString(base64.b64decode(body))
        return message

    async def remember(
        self, order_id: str, message: Message, then: Callable[[Pipeline], None] | None = None
    ) -> Message:
        """Stores message unless a decision exists already; returns the one that stands. `then` queues
        commands that go in the same round trip, after the SET (run whether or not it stored)."""
        value = f"{spec_for(message).topic}|{base64.b64encode(message.SerializeToString()).decode()}"
        if then is None:
            stored = await self.redis.set(self._key(order_id), value, nx=True, ex=self.ttl_s)
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self._key(order_id), value, nx=True, ex=self.ttl_s)
                then(pipe)
                stored = (await pipe.execute())[0]
        if stored:
            return message
        existing = await self.get(order_id)
        return existing if existing is not None else message
