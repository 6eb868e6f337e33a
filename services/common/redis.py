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


def create_redis(
    settings: Settings | None = None, url: str | None = None, max_connections: int = 64
) -> Redis:
    """A client whose pool waits for a free connection instead of failing when many handlers run at once."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url or (settings.redis_url if settings else "redis://127.0.0.1:6379/0"),
        decode_responses=True,
        health_check_interval=10,
        socket_timeout=5,
        socket_connect_timeout=5,
        retry_on_timeout=True,
        max_connections=max_connections,
        timeout=10,
    )
    return Redis(connection_pool=pool)


def load_script(redis: Redis, path: Path) -> AsyncScript:
    """Registers a Lua script file; redis-py loads it on first use and retries on NOSCRIPT."""
    return redis.register_script(path.read_text())
