"""Per-tenant request and token limits: token buckets, kept in Redis (default) or in the process.

Why Redis: the gateway runs as several replicas behind one Service, and a tenant's limit is a
platform-wide promise, so the buckets are shared. One Lua script refills and takes atomically, with
Redis's own clock (no skew between replicas); it costs one round trip per call. If Redis does not
answer, the limiter fails open (counted, logged): a limit must not take the gateway down. The
in-process store (YIJU_GATEWAY_RATE_LIMIT_STORE=local) is for a single replica or tests; with N
replicas it allows up to N times the limit.

Two buckets per tenant:
- requests: `requests_per_s`, bucket `request_burst`; each sentence takes one (a batch of 8 takes 8);
- model tokens: `tokens_per_min`, bucket one minute's worth. The tokens a call uses are known only
  afterwards, so a call is admitted while the bucket is not empty and the tokens it used are
  charged after it (the bucket may go into debt, which delays the next calls).
Refused calls get RESOURCE_EXHAUSTED with the wait: `retry-after-ms` trailing metadata and a
google.rpc.RetryInfo detail.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio.client import Redis

from yiju.common.redis import INFRA_ERRORS
from yiju.model_gateway import metrics

log = logging.getLogger(__name__)

PREFIX = "yiju:gw:rl:"

# KEYS[1] bucket; ARGV: rate per second, capacity, cost, need (tokens that must be there), floor.
# Returns {allowed (0/1), retry_after_ms}.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local need = tonumber(ARGV[4])
local floor = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = capacity; ts = now end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate / 1000)
local allowed = 0
local wait = 0
if tokens >= need then
  allowed = 1
  tokens = math.max(floor, tokens - cost)
else
  wait = math.ceil((need - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - floor) * 1000 / rate) + 1000)
return {allowed, wait}
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after_ms: int = 0
    kind: str = ""  # which limit refused: requests | tokens


ALLOWED = Verdict(True)


class BucketStore(Protocol):
    async def take(
        self, key: str, rate: float, capacity: float, cost: float, need: float, floor: float
    ) -> Verdict: ...


class LocalBuckets:
    """Token buckets in this process (time.monotonic)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    async def take(
        self, key: str, rate: float, capacity: float, cost: float, need: float, floor: float
    ) -> Verdict:
        now = time.monotonic()
        tokens, ts = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - ts) * rate)
        if tokens >= need:
            self._buckets[key] = (max(floor, tokens - cost), now)
            return ALLOWED
        self._buckets[key] = (tokens, now)
        return Verdict(False, math.ceil((need - tokens) * 1000 / rate))


class RedisBuckets:
    """Token buckets in Redis, shared by every gateway replica; fails open when Redis is down."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(TOKEN_BUCKET_LUA)

    async def take(
        self, key: str, rate: float, capacity: float, cost: float, need: float, floor: float
    ) -> Verdict:
        try:
            allowed, wait = await self._script(keys=[key], args=[rate, capacity, cost, need, floor])
        except INFRA_ERRORS as exc:
            metrics.RATE_LIMITED.labels("store_error").inc()
            log.warning("rate limiter store failed; allowing", extra={"error": repr(exc)})
            return ALLOWED
        return Verdict(bool(int(allowed)), int(wait))


class TenantLimiter:
    def __init__(
        self,
        store: BucketStore,
        *,
        requests_per_s: float = 0.0,
        request_burst: int = 0,
        tokens_per_min: float = 0.0,
    ) -> None:
        self.store = store
        self.requests_per_s = requests_per_s
        self.request_burst = float(request_burst or max(1.0, requests_per_s))
        self.tokens_per_s = tokens_per_min / 60
        self.token_capacity = float(tokens_per_min)

    @property
    def enabled(self) -> bool:
        return self.requests_per_s > 0 or self.tokens_per_s > 0

    @staticmethod
    def _tenant(tenant_id: str) -> str:
        return tenant_id or "_anonymous"

    async def admit(self, tenant_id: str, sentences: int = 1) -> Verdict:
        """Takes `sentences` from the request bucket; checks the token bucket is not empty."""
        tenant = self._tenant(tenant_id)
        if self.requests_per_s > 0:
            verdict = await self.store.take(
                f"{PREFIX}{{{tenant}}}:req", self.requests_per_s, self.request_burst, sentences, sentences, 0
            )
            if not verdict.allowed:
                metrics.RATE_LIMITED.labels("requests").inc()
                return Verdict(False, verdict.retry_after_ms, "requests")
        if self.tokens_per_s > 0:
            verdict = await self.store.take(
                f"{PREFIX}{{{tenant}}}:tok",
                self.tokens_per_s,
                self.token_capacity,
                0,
                1,
                -self.token_capacity,
            )
            if not verdict.allowed:
                metrics.RATE_LIMITED.labels("tokens").inc()
                return Verdict(False, verdict.retry_after_ms, "tokens")
        return ALLOWED

    async def charge_tokens(self, tenant_id: str, tokens: int) -> None:
        """Charges the model tokens a call used (may leave the bucket in debt, down to -capacity)."""
        if self.tokens_per_s <= 0 or tokens <= 0:
            return
        await self.store.take(
            f"{PREFIX}{{{self._tenant(tenant_id)}}}:tok",
            self.tokens_per_s,
            self.token_capacity,
            tokens,
            -self.token_capacity,
            -self.token_capacity,
        )
