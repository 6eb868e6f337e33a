"""Puts the gateway together from settings: backends, breakers, chain, cache, batcher, limiter.

Used by the service (app.py), the integration tests and the benchmark, so all three run the same
wiring.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio.client import Redis

from yiju.common.catalog import Catalog
from yiju.model_gateway.backends.base import Backend
from yiju.model_gateway.backends.registry import build_backend
from yiju.model_gateway.breaker import CircuitBreaker
from yiju.model_gateway.cache import ResultCache
from yiju.model_gateway.config import GatewaySettings
from yiju.model_gateway.gateway import Gateway
from yiju.model_gateway.pipeline import GatewayPipeline
from yiju.model_gateway.ratelimit import LocalBuckets, RedisBuckets, TenantLimiter
from yiju.model_gateway.servicer import ModelGatewayServicer
from yiju.model_gateway.tools import ParseRequest, ParseResult

# Backends whose batch is one in-process forward pass: micro-batching is what makes their GPU batch.
# Every other model backend serves concurrent requests itself (continuous batching on the server).
IN_PROCESS_BATCHING = frozenset({"transformers"})


def worker_micro_batches(mode: str, chain: Sequence[Backend]) -> bool:
    """Whether the Kafka worker's sentences go through the micro-batcher (YIJU_GATEWAY_WORKER_MICRO_BATCH)."""
    if mode in ("on", "off"):
        return mode == "on"
    return any(b.name in IN_PROCESS_BATCHING for b in chain)


@dataclass
class Assembly:
    backends: list[Backend]
    gateway: Gateway
    pipeline: GatewayPipeline
    limiter: TenantLimiter
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    worker_batches: bool = False  # the Kafka worker's calls go through the micro-batcher

    def servicer(self) -> ModelGatewayServicer:
        return ModelGatewayServicer(self.pipeline, self.limiter)

    async def worker_parse(self, request: ParseRequest) -> ParseResult:
        """One sentence of the Kafka worker: its own in-flight window gives the concurrency, so it is
        micro-batched only for an in-process backend (see worker_micro_batches)."""
        return await self.pipeline.parse_one(request, batch=self.worker_batches)

    async def aclose(self) -> None:
        await self.pipeline.aclose()
        for backend in self.backends:
            close = getattr(backend, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()


def assemble(
    settings: GatewaySettings,
    catalog: Catalog,
    redis: Redis,
    *,
    backends: Sequence[Backend] | None = None,
    single_flight: bool | None = None,
) -> Assembly:
    """`backends` replaces YIJU_GATEWAY_BACKENDS (tests pass fakes or pre-built backends);
    `single_flight` replaces YIJU_GATEWAY_SINGLE_FLIGHT."""
    chain = (
        list(backends)
        if backends is not None
        else [build_backend(name, catalog, settings) for name in settings.backend_names]
    )
    breakers = {
        b.name: CircuitBreaker(
            b.name, failures=settings.breaker_failures, cooldown_s=settings.breaker_cooldown_s
        )
        for b in chain
        if b.name != "rules"
    }
    gateway = Gateway(
        chain,
        timeouts={b.name: settings.timeout_for(b.name) for b in chain},
        breakers=breakers,
        invalid_retries=settings.invalid_retries,
    )
    cache = ResultCache(
        redis,
        ttl_s=settings.cache_ttl_s,
        fallback_ttl_s=settings.cache_fallback_ttl_s,
        primary=gateway.primary,
    )
    pipeline = GatewayPipeline(
        gateway,
        catalog_version=catalog.version,
        cache=cache,
        max_batch=settings.max_batch,
        max_wait_ms=settings.max_wait_ms,
        single_flight=settings.single_flight if single_flight is None else single_flight,
    )
    store = RedisBuckets(redis) if settings.rate_limit_store == "redis" else LocalBuckets()
    limiter = TenantLimiter(
        store,
        requests_per_s=settings.tenant_requests_per_s,
        request_burst=settings.tenant_request_burst,
        tokens_per_min=settings.tenant_tokens_per_min,
    )
    return Assembly(
        chain,
        gateway,
        pipeline,
        limiter,
        breakers,
        worker_batches=worker_micro_batches(settings.worker_micro_batch, chain),
    )
