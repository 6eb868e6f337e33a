"""The model gateway's gRPC server in-process, with a real Redis and a local OpenAI-compatible server.

Cache, single-flight, tenant limits (RESOURCE_EXHAUSTED with retry info), the circuit breaker, and
a model server that goes away in the middle of a run while every request still gets an answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from yiju.common.catalog import Catalog
from yiju.common.grpc import create_server, enable_reflection
from yiju.common.settings import get_settings
from yiju.gen.gateway.v1 import gateway_pb2 as pb
from yiju.gen.gateway.v1 import gateway_pb2_grpc as pb_grpc
from yiju.model_gateway.assemble import Assembly, assemble
from yiju.model_gateway.backends.base import Backend
from yiju.model_gateway.backends.rules import RulesBackend
from yiju.model_gateway.breaker import State
from yiju.model_gateway.config import GatewaySettings, OpenAISettings
from yiju.model_gateway.fake_openai import FakeOpenAI, naive_reply, tool_calls_reply
from yiju.model_gateway.retry_info import RETRY_AFTER_KEY, retry_after_ms
from yiju.model_gateway.tools import ParseRequest, ParseResult

pytestmark = pytest.mark.integration

SERVICE = pb.DESCRIPTOR.services_by_name["ModelGatewayService"].full_name


@pytest.fixture
async def redis_db(scratch_redis: aioredis.Redis) -> aioredis.Redis:
    return scratch_redis


@pytest.fixture
async def model_server() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    await fake.start()
    yield fake
    await fake.stop()


@dataclasses.dataclass
class Running:
    assembly: Assembly
    stub: pb_grpc.ModelGatewayServiceStub
    channel: grpc.aio.Channel

    async def ask(self, text: str, tenant: str = "t-1", **extra: Any) -> pb.ParseIntentResponse:
        return await self.stub.ParseIntent(
            pb.ParseIntentRequest(text=text, tenant_id=tenant, **extra), timeout=10
        )


@asynccontextmanager
async def gateway_server(
    settings: GatewaySettings,
    catalog: Catalog,
    redis: aioredis.Redis,
    backends: Sequence[Backend] | None = None,
) -> AsyncIterator[Running]:
    assembly = assemble(settings, catalog, redis, backends=backends)
    server, _health = create_server(get_settings())
    pb_grpc.add_ModelGatewayServiceServicer_to_server(assembly.servicer(), server)
    enable_reflection(server, [SERVICE])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Running(assembly, pb_grpc.ModelGatewayServiceStub(channel), channel)
    finally:
        await channel.close()
        await server.stop(grace=None)
        await assembly.aclose()


class CountingRules:
    """The real rules backend, slowed down and counted (to see single-flight and the cache)."""

    name = "rules"

    def __init__(self, catalog: Catalog, delay_s: float = 0.0) -> None:
        self.rules = RulesBackend(catalog)
        self.delay_s = delay_s
        self.sentences = 0

    async def parse(self, requests: list[ParseRequest]) -> list[ParseResult]:
        self.sentences += len(requests)
        await asyncio.sleep(self.delay_s)
        return await self.rules.parse(requests)


def with_openai(server: FakeOpenAI, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "backends": "openai,rules",
        "cache_ttl_s": 0,
        "max_wait_ms": 2,
        "timeouts": {"openai": 1.0},
        "breaker_failures": 2,
        "breaker_cooldown_s": 0.4,
        "openai": OpenAISettings(base_url=server.url, connect_timeout_s=0.5),
    }
    return GatewaySettings(**{**values, **overrides})


async def test_reflection_lists_the_gateway_service(redis_db: aioredis.Redis, catalog: Catalog) -> None:
    async with gateway_server(GatewaySettings(), catalog, redis_db) as running:
        stub = reflection_pb2_grpc.ServerReflectionStub(running.channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = [s.name async for reply in replies for s in reply.list_services_response.service]
        assert SERVICE in names and "grpc.health.v1.Health" in names


async def test_second_identical_sentence_is_a_cache_hit_and_a_new_catalog_misses(
    redis_db: aioredis.Redis, catalog: Catalog
) -> None:
    rules = CountingRules(catalog)
    settings = GatewaySettings(cache_ttl_s=60)
    async with gateway_server(settings, catalog, redis_db, [rules]) as running:
        first = await running.ask("two bubble teas to my office", address_labels=["office"])
        second = await running.ask("Two  bubble teas to my office ", address_labels=["office"])
        assert not first.cached and second.cached
        assert second.actions == first.actions and second.actions[0].sku == "tea-brown-sugar-boba"
        assert rules.sentences == 1
        [key] = await redis_db.keys("yiju:gw:cache:*")
        assert 0 < await redis_db.ttl(key) <= 60
    new_catalog = dataclasses.replace(catalog, version="next-version")
    async with gateway_server(settings, new_catalog, redis_db, [rules]) as running:
        third = await running.ask("two bubble teas to my office", address_labels=["office"])
        assert not third.cached and rules.sentences == 2


async def test_identical_sentences_in_flight_cost_one_backend_call(
    redis_db: aioredis.Redis, catalog: Catalog
) -> None:
    rules = CountingRules(catalog, delay_s=0.2)
    async with gateway_server(GatewaySettings(cache_ttl_s=60), catalog, redis_db, [rules]) as running:
        replies = await asyncio.gather(*(running.ask("来两杯奶茶送到公司") for _ in range(20)))
        assert rules.sentences == 1
        assert {r.actions[0].sku for r in replies} == {"tea-brown-sugar-boba"}
        assert running.assembly.pipeline.stats.shared == 19


async def test_tenant_request_limit_answers_resource_exhausted_with_retry_info(
    redis_db: aioredis.Redis, catalog: Catalog
) -> None:
    settings = GatewaySettings(tenant_requests_per_s=1, tenant_request_burst=2, rate_limit_store="redis")
    async with gateway_server(settings, catalog, redis_db) as running:
        await running.ask("a latte", tenant="acme")
        await running.ask("a latte", tenant="acme")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await running.ask("a latte", tenant="acme")
        error = refused.value
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        wait = retry_after_ms(error)
        assert wait is not None and 0 < wait <= 1000
        assert dict(error.trailing_metadata())[RETRY_AFTER_KEY] == str(wait)
        assert (await running.ask("a latte", tenant="other")).actions  # another tenant is not affected
        batch = pb.ParseIntentBatchRequest(requests=[pb.ParseIntentRequest(text="tea", tenant_id="t-9")] * 3)
        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            await running.stub.ParseIntentBatch(batch, timeout=10)
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_tenant_token_limit_counts_model_tokens(
    redis_db: aioredis.Redis, catalog: Catalog, model_server: FakeOpenAI
) -> None:
    model_server.reply = lambda body: tool_calls_reply(
        [("order_item", {"product_query": "latte", "quantity": 1})], total_tokens=500
    )
    settings = with_openai(model_server, tenant_tokens_per_min=120)
    async with gateway_server(settings, catalog, redis_db) as running:
        first = await running.ask("a latte", tenant="chatty")
        assert first.backend == "openai" and first.tokens_used == 500
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await running.ask("a latte", tenant="chatty")
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (retry_after_ms(refused.value) or 0) > 1000  # 380 tokens of debt at 2 tokens/s


async def test_breaker_opens_serves_rules_half_opens_and_closes_when_the_model_recovers(
    redis_db: aioredis.Redis, catalog: Catalog, model_server: FakeOpenAI
) -> None:
    model_server.reply = lambda body: (503, {"error": "overloaded"})
    settings = with_openai(model_server, breaker_cooldown_s=1.0)
    async with gateway_server(settings, catalog, redis_db) as running:
        breaker = running.assembly.breakers["openai"]
        answers = [await running.ask("two bubble teas") for _ in range(5)]
        assert {a.backend for a in answers} == {"rules"} and answers[0].actions[0].quantity == 2
        assert len(model_server.requests) == 2  # open after two failures: no more calls
        assert breaker.state is State.OPEN
        model_server.reply = naive_reply  # the model server recovers
        await asyncio.sleep(1.05)
        assert breaker.state is State.HALF_OPEN
        probe = await running.ask("two bubble teas")
        assert probe.backend == "openai" and breaker.state is State.CLOSED
        assert (await running.ask("a latte")).backend == "openai"


async def test_model_server_stopping_mid_run_fails_no_request(
    redis_db: aioredis.Redis, catalog: Catalog, model_server: FakeOpenAI
) -> None:
    """600 requests from 12 clients; the model server stops after a quarter of them and comes back
    at half. Then requests go on (up to 10 s) until the gateway is back on the model server."""
    model_server.delay_s = 0.005
    sentences = [
        "two bubble teas to my office",
        "来两杯奶茶送到公司",
        "taxi home at 7pm",
        "a latte",
        "3 pizzas",
    ]
    total, workers = 600, 12
    backends: list[str] = []
    errors: list[BaseException] = []
    quarter, half, restarted = asyncio.Event(), asyncio.Event(), asyncio.Event()
    settings = with_openai(model_server, timeouts={"openai": 5.0})  # no timeouts on a busy machine
    async with gateway_server(settings, catalog, redis_db) as running:

        async def one(i: int) -> None:
            try:
                reply = await running.ask(f"{sentences[i % len(sentences)]} #{i}")
                assert reply.actions or reply.clarification
                backends.append(reply.backend)
            except BaseException as exc:
                errors.append(exc)

        async def worker(index: int) -> None:
            for i in range(index, total, workers):
                await one(i)
                if len(backends) >= total // 4:
                    quarter.set()
                if len(backends) >= total // 2:
                    half.set()
                await asyncio.sleep(0.003)

        async def chaos() -> None:
            await quarter.wait()
            await model_server.stop()  # the GPU node goes away
            await half.wait()
            await model_server.start()  # and comes back on the same port
            restarted.set()

        await asyncio.gather(chaos(), *(worker(w) for w in range(workers)))
        await restarted.wait()
        deadline = asyncio.get_running_loop().time() + 10
        while backends[-workers:] != ["openai"] * workers and asyncio.get_running_loop().time() < deadline:
            await asyncio.gather(*(one(len(backends) + w) for w in range(workers)))
    assert errors == []
    assert len(backends) >= total
    assert set(backends[: total // 5]) == {"openai"}  # before the outage
    assert backends[total // 4 + workers : total // 2].count("rules") > total // 8  # during it
    assert backends[-workers:] == ["openai"] * workers  # after the restart the breaker closed again
