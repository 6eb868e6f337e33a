"""Redis connections and the Lua scripts that make state transitions atomic."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.client import Redis
from redis.commands.core import AsyncScript

from yiju.common.settings import Settings

INFRA_ERRORS: tuple[type[BaseException], ...] = (
    aioredis.ConnectionError,
    aioredis.TimeoutError,
    aioredis.BusyLoadingError,
    OSError,
)


def create_redis(settings: Settings) -> Redis:
    return aioredis.from_url(
        settings.redis_url,
        decode_responses=True,
        health_check_interval=10,
        socket_timeout=5,
        socket_connect_timeout=5,
        retry_on_timeout=True,
        max_connections=64,
    )


def load_script(redis: Redis, path: Path) -> AsyncScript:
    """Registers a Lua script file; redis-py loads it on first use and retries on NOSCRIPT."""
    return redis.register_script(path.read_text())
