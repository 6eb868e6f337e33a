"""Edge guards shared by HTTP and gRPC: authentication, per-user rate limits, ownership of orders."""

from __future__ import annotations

import time
from pathlib import Path

from redis.asyncio.client import Redis

from yiju.common.auth import AuthError, Principal, authenticate
from yiju.common.redis import load_script
from yiju.common.settings import Settings


class RateLimited(Exception):
    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(f"rate limit exceeded; retry after {retry_after_ms} ms")
        self.retry_after_ms = retry_after_ms


class Edge:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.settings = settings
        self._bucket = load_script(redis, Path(__file__).parent / "lua" / "token_bucket.lua")

    def authenticate(self, authorization: str | None, api_key: str | None) -> Principal:
        return authenticate(authorization, api_key, self.settings)

    async def admit(self, principal: Principal) -> None:
        """Spends one request from the user's bucket or raises RateLimited."""
        allowed, wait_ms = await self._bucket(
            keys=[f"ratelimit:{{{principal.user_id}}}"],
            args=[
                self.settings.edge_rate_per_user_per_s,
                self.settings.edge_rate_burst,
                int(time.time() * 1000),
            ],
        )
        if not allowed:
            raise RateLimited(int(wait_ms))


__all__ = ["AuthError", "Edge", "Principal", "RateLimited"]
