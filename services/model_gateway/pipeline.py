"""What one sentence goes through: cache, single-flight, micro-batcher, then the backend chain.

    sentence -> key -> single-flight(key) -> cache get -> [miss] batcher -> Gateway chain -> cache put

Single-flight wraps the cache look-up too, so N identical sentences arriving together cost one
Redis read and at most one backend call. Every caller gets its own copy of the answer.

`parse_one(request, batch=False)` skips the micro-batcher: the sentence goes to the chain on its
own, so it never waits for the slowest sentence of a batch. The Kafka worker calls it that way for
backends that serve concurrent requests themselves (an OpenAI-compatible server batches
continuously); the in-process transformers backend keeps micro-batching (one generate() call per
batch). Cache and single-flight apply either way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from yiju.model_gateway.batcher import MicroBatcher
from yiju.model_gateway.cache import ResultCache, cache_key
from yiju.model_gateway.gateway import Gateway
from yiju.model_gateway.singleflight import SingleFlight
from yiju.model_gateway.tools import ParseRequest, ParseResult


@dataclass(slots=True)
class PipelineStats:
    sentences: int = 0
    cache_hits: int = 0
    shared: int = 0  # answered by joining an identical sentence in flight


def copy_result(result: ParseResult) -> ParseResult:
    """A copy a caller may change without touching another caller's answer (cheaper than deepcopy)."""
    return replace(result, actions=[replace(action) for action in result.actions])


class GatewayPipeline:
    def __init__(
        self,
        gateway: Gateway,
        *,
        catalog_version: str,
        cache: ResultCache | None = None,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        single_flight: bool = True,
    ) -> None:
        self.gateway = gateway
        self.catalog_version = catalog_version
        self.cache = cache if cache is not None and cache.enabled else None
        self.batcher = MicroBatcher(gateway.parse, max_batch=max_batch, max_wait_ms=max_wait_ms)
        self.flights: SingleFlight[ParseResult] | None = SingleFlight() if single_flight else None
        self.stats = PipelineStats()

    def key(self, request: ParseRequest) -> str:
        return cache_key(request, self.catalog_version, self.gateway.chain)

    async def _resolve(self, request: ParseRequest, key: str, batch: bool) -> ParseResult:
        if self.cache is not None:
            hit = await self.cache.get(key)
            if hit is not None:
                self.stats.cache_hits += 1
                return hit
        if batch:
            result = await self.batcher.submit(request)
        else:
            (result,) = await self.gateway.parse([request])
        if self.cache is not None:
            await self.cache.put(key, result)
        return result

    async def parse_one(self, request: ParseRequest, *, batch: bool = True) -> ParseResult:
        """One sentence's answer; `batch=False`: straight to the chain, not through the micro-batcher."""
        self.stats.sentences += 1
        key = self.key(request)
        if self.flights is None:
            return await self._resolve(request, key, batch)
        result, joined = await self.flights.do(key, lambda: self._resolve(request, key, batch))
        if not joined:
            return result
        self.stats.shared += 1
        return copy_result(result)

    async def parse(self, requests: list[ParseRequest]) -> list[ParseResult]:
        """Same contract as Gateway.parse (the servicer takes either)."""
        return list(await asyncio.gather(*(self.parse_one(r) for r in requests)))

    async def aclose(self) -> None:
        await self.batcher.aclose()
