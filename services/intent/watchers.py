"""Order watchers (``GET /v1/orders/{id}/events`` and gRPC ``WatchOrder``) on a Redis pool of their own.

A watcher holds a pub/sub connection for as long as it watches, and reads the order after every change.
On the consumers' pool, a flood of watchers (clients reconnecting during a Redis hiccup, a page left
open by thousands) would take every connection and leave the consumers waiting for one. So watchers
read through their own bounded pool (:func:`yiju.common.redis.create_watcher_redis`), and at most
``YIJU_WATCHERS_MAX`` of them watch at once in one process: one more is refused at once with
:class:`WatchersFull` (HTTP 503 with ``Retry-After``, gRPC ``RESOURCE_EXHAUSTED`` with ``retry-after-ms``);
the SDK then polls the order instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio.client import Redis

from yiju.common.redis import create_watcher_redis
from yiju.common.settings import Settings
from yiju.intent.store import OrderStore

READ_CONNECTIONS = 8
"""Connections of the watchers' pool beyond one per watcher: for the order reads between changes."""


class WatcherSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YIJU_", extra="ignore")

    watchers_max: int = 256
    """Concurrent order watchers per intent process (SSE and gRPC together); one more gets 503."""
    watchers_retry_after_s: int = 2
    """The ``Retry-After`` a refused watcher is given."""
    watchers_pool_wait_s: float = 2.0
    """How long a watcher waits for a connection of the watchers' pool before its stream fails."""


class WatchersFull(Exception):
    """As many watchers as allowed are watching; try again after ``retry_after_s``."""

    def __init__(self, limit: int, retry_after_s: int) -> None:
        super().__init__(f"{limit} order watchers are already open on this server; retry or poll the order")
        self.limit = limit
        self.retry_after_s = retry_after_s


class WatchLease:
    """One admitted watcher's slot, given back when its stream ends (or when it never starts)."""

    def __init__(self, owner: OrderWatchers) -> None:
        self._owner = owner
        self._held = True

    def release(self) -> None:
        """Gives the slot back; safe to call more than once."""
        if self._held:
            self._held = False
            self._owner._release()

    async def stream(
        self, order_id: str, *, poll_s: float = 1.0, keepalive_s: float = 0.0
    ) -> AsyncIterator[dict[str, Any] | None]:
        """:meth:`OrderStore.watch` over the watchers' pool; the slot is given back when it ends."""
        try:
            async for order in self._owner.store.watch(order_id, poll_s=poll_s, keepalive_s=keepalive_s):
                yield order
        finally:
            self.release()


class OrderWatchers:
    """Admits at most ``limit`` concurrent watchers and serves them from their own Redis pool."""

    def __init__(self, redis: Redis, limit: int, retry_after_s: int = 2) -> None:
        if limit < 1:
            raise ValueError("YIJU_WATCHERS_MAX must be at least 1")
        self.redis = redis
        self.store = OrderStore(redis)
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.active = 0

    @classmethod
    def from_settings(cls, settings: Settings, watchers: WatcherSettings | None = None) -> OrderWatchers:
        """The watchers of a service: a pool of ``watchers_max`` + :data:`READ_CONNECTIONS` connections."""
        config = watchers or WatcherSettings()
        redis = create_watcher_redis(
            settings,
            max_connections=config.watchers_max + READ_CONNECTIONS,
            wait_s=config.watchers_pool_wait_s,
        )
        return cls(redis, config.watchers_max, config.watchers_retry_after_s)

    def admit(self) -> WatchLease:
        """A slot for one more watcher, or :class:`WatchersFull` (never waits)."""
        if self.active >= self.limit:
            raise WatchersFull(self.limit, self.retry_after_s)
        self.active += 1
        return WatchLease(self)

    def _release(self) -> None:
        self.active -= 1

    async def close(self) -> None:
        await self.redis.aclose()
