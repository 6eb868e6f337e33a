"""Three fixes from the model benchmark: the gateway drains in-flight model calls before closing its
clients on SIGTERM; the Kafka worker's calls are not micro-batched for a model server (a slow sentence
no longer delays a fast one); a model's book_rail (a route, no SKU) is priced from the catalog."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio.client import Redis

from yiju.common.catalog import Catalog
from yiju.common.consumer import EventContext
from yiju.common.envelope import EventMeta
from yiju.common.pricing import CatalogIndex, Unresolvable, price_lines
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.gen.gateway.v1 import gateway_pb2 as gw
from yiju.model_gateway.assemble import Assembly, assemble, worker_micro_batches
from yiju.model_gateway.backends.openai_backend import OpenAIBackend
from yiju.model_gateway.config import GatewaySettings, OpenAISettings
from yiju.model_gateway.kafka_worker import ParseClaims, ParseWorker
from yiju.model_gateway.sim import SimConfig, SimulatedQwen
from yiju.model_gateway.toolbox import ReadOnlyTools
from yiju.model_gateway.tools import BOOK_RAIL, Action, ParseRequest, ParseResult, validate_action

USER = "u-1004"
SLOW_S = 0.6


class SlowAndFast:
    """A model server that serves requests concurrently: "slow" sentences take SLOW_S, others 0."""

    def __init__(self, name: str = "openai") -> None:
        self.name = name
        self.calls: list[list[str]] = []

    async def parse(self, requests: list[ParseRequest]) -> list[ParseResult]:
        self.calls.append([r.text for r in requests])
        if any("slow" in r.text for r in requests):
            await asyncio.sleep(SLOW_S)
        return [ParseResult(actions=[Action(tool="order_item", product_query="latte")]) for _ in requests]


def assembly_of(catalog: Catalog, monkeypatch: pytest.MonkeyPatch, backend: Any, **env: str) -> Assembly:
    monkeypatch.setenv("YIJU_GATEWAY_RATE_LIMIT_STORE", "local")
    monkeypatch.setenv("YIJU_GATEWAY_CACHE_TTL_S", "0")
    monkeypatch.setenv("YIJU_GATEWAY_MAX_BATCH", "32")
    monkeypatch.setenv("YIJU_GATEWAY_MAX_WAIT_MS", "50")  # both sentences surely share a batch
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    redis: Any = None  # neither the cache (off) nor the local rate limiter touches Redis
    return assemble(GatewaySettings(), catalog, redis, backends=[backend])


def requested(order_id: str, text: str) -> ev.ParseRequested:
    return ev.ParseRequested(
        order_id=order_id,
        user_id=USER,
        request=gw.ParseIntentRequest(text=text, user_id=USER, tenant_id=USER),
        deadline_ms=int(time.time() * 1000) + 60_000,
    )


def ctx_of(order_id: str) -> EventContext:
    return EventContext(EventMeta("e", "t", "test", "", order_id, "topic", 0, 0, {}))


async def timed(coro: Any) -> float:
    began = time.perf_counter()
    await coro
    return time.perf_counter() - began


# ----- 2. the Kafka worker's calls are not micro-batched for a model server


async def test_a_slow_sentence_does_not_delay_a_fast_one_through_the_worker(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch, scratch_redis: Redis
) -> None:
    model = SlowAndFast("openai")
    assembly = assembly_of(catalog, monkeypatch, model)
    assert assembly.worker_batches is False
    worker = ParseWorker(assembly.worker_parse, ParseClaims(scratch_redis, 3600))
    slow_ctx, fast_ctx = ctx_of("w-slow"), ctx_of("w-fast")
    slow_took, fast_took = await asyncio.gather(
        timed(worker.on_parse_requested(requested("w-slow", "a slow latte"), slow_ctx)),
        timed(worker.on_parse_requested(requested("w-fast", "a quick latte"), fast_ctx)),
    )
    assert fast_took < SLOW_S / 2 <= SLOW_S <= slow_took
    assert sorted(model.calls) == [["a quick latte"], ["a slow latte"]]  # one call each, not a batch
    assert [type(m) for m, _ in fast_ctx.emitted] == [ev.ParseCompleted]
    await assembly.aclose()


async def test_grpc_calls_still_share_a_micro_batch(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ParseIntent/ParseIntentBatch keep micro-batching: there the two sentences share one call (and
    the fast one waits for the slow one, which is what the worker no longer does)."""
    model = SlowAndFast("openai")
    assembly = assembly_of(catalog, monkeypatch, model)
    _, fast_took = await asyncio.gather(
        timed(assembly.pipeline.parse_one(ParseRequest("a slow latte"))),
        timed(assembly.pipeline.parse_one(ParseRequest("a quick latte"))),
    )
    assert model.calls == [["a slow latte", "a quick latte"]]
    assert fast_took >= SLOW_S
    await assembly.aclose()


async def test_the_transformers_backend_keeps_micro_batching_on_the_worker_path(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = SlowAndFast("transformers")
    assembly = assembly_of(catalog, monkeypatch, model)
    assert assembly.worker_batches is True
    await asyncio.gather(
        assembly.worker_parse(ParseRequest("a slow latte")),
        assembly.worker_parse(ParseRequest("a quick latte")),
    )
    assert model.calls == [["a slow latte", "a quick latte"]]  # one generate() batch
    await assembly.aclose()


@pytest.mark.parametrize(
    ("mode", "names", "batches"),
    [
        ("auto", ["openai", "rules"], False),
        ("auto", ["rules"], False),
        ("auto", ["transformers", "rules"], True),
        ("auto", ["openai", "transformers", "rules"], True),
        ("on", ["openai", "rules"], True),
        ("off", ["transformers", "rules"], False),
    ],
)
def test_worker_micro_batching_follows_its_setting(mode: str, names: list[str], batches: bool) -> None:
    assert worker_micro_batches(mode, [SlowAndFast(n) for n in names]) is batches


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YIJU_GATEWAY_WORKER_MICRO_BATCH", "on")
    assert GatewaySettings().worker_micro_batch == "on"


# ----- 1. shutdown: the worker drains before the model clients close


def test_the_model_clients_close_after_the_worker_has_drained(monkeypatch: pytest.MonkeyPatch) -> None:
    from yiju.model_gateway import app

    order: list[str] = []

    class FakeService:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.catalog: Any = None
            self.redis: Any = None
            self.grpc_server: Any = None
            self.grpc_services: list[str] = []
            self.prepare: list[Any] = []
            self.on_start: list[Any] = []
            self.on_stop: list[Any] = []

    class FakeAssembly:
        backends = ()

        def servicer(self) -> None:
            return None

        async def worker_parse(self, request: ParseRequest) -> ParseResult:
            raise AssertionError("not called")

        async def aclose(self) -> None:
            order.append("clients closed")

    def install(service: FakeService, parse: Any, settings: Any) -> None:
        async def stop() -> None:
            order.append("worker drained")

        service.on_stop.append(stop)

    monkeypatch.setattr(app, "Service", FakeService)
    monkeypatch.setattr(app, "assemble", lambda *a, **k: FakeAssembly())
    monkeypatch.setattr(app, "install_worker", install)
    monkeypatch.setattr(app.pb_grpc, "add_ModelGatewayServiceServicer_to_server", lambda *a: None)
    service = app.build()

    async def stop_like_the_service() -> None:  # yiju.common.service.Service.run: reversed(on_stop)
        for hook in reversed(service.on_stop):
            await hook()

    asyncio.run(stop_like_the_service())
    assert order == ["worker drained", "clients closed"]


# ----- 3. a model's book_rail is priced from the catalog by route


@pytest.fixture
async def sim_backend(catalog: Catalog) -> AsyncIterator[OpenAIBackend]:
    async with SimulatedQwen(SimConfig(p50_ms=1.0, p99_ms=2.0), catalog=catalog) as sim:
        backend = OpenAIBackend(OpenAISettings(base_url=sim.url), toolbox=ReadOnlyTools(catalog))
        try:
            yield backend
        finally:
            await backend.aclose()


@pytest.mark.parametrize(
    ("text", "locale", "sku", "tickets"),
    [
        ("two high speed rail tickets from Beijing to Shanghai tomorrow", "en-SG", "rail-bj-sh-2nd", 2),
        ("train to hangzhou", "en-SG", "rail-sh-hz-2nd", 1),
        ("明天北京到上海高铁三张", "zh-CN", "rail-bj-sh-2nd", 3),
    ],
)
async def test_a_simulated_models_train_is_priced_from_the_catalog(
    catalog: Catalog, sim_backend: OpenAIBackend, text: str, locale: str, sku: str, tickets: int
) -> None:
    [answer] = await sim_backend.parse([ParseRequest(text, locale, address_labels=("home", "office"))])
    assert isinstance(answer, ParseResult), answer
    [rail] = answer.actions
    assert rail.tool == BOOK_RAIL and not rail.sku and not rail.product_query  # a route, as a model says it
    assert rail.destination
    [line] = price_lines([rail], catalog.users[USER], catalog, CatalogIndex.build(catalog))
    product = catalog.products[sku]
    assert (line.sku, line.quantity) == (sku, tickets)
    assert (line.unit_price_fen, line.line_total_fen) == (product.price_fen, product.price_fen * tickets)


def test_a_route_resolves_as_the_rules_backend_resolves_it(catalog: Catalog) -> None:
    index = CatalogIndex.build(catalog)
    user = catalog.users[USER]

    def sku_of(**arguments: Any) -> str:
        [line] = price_lines([validate_action(BOOK_RAIL, arguments)], user, catalog, index)
        return line.sku

    assert sku_of(origin="Beijing", destination="Shanghai") == "rail-bj-sh-2nd"
    assert sku_of(origin="上海", destination="杭州", passengers=2) == "rail-sh-hz-2nd"
    assert sku_of(destination="shenzhen station") == "rail-gz-sz-2nd"  # the only train there
    for unknown in (
        {"origin": "Shanghai", "destination": "Beijing"},  # the catalog sells no such train
        {"origin": "Hangzhou", "destination": "Shanghai"},
        {"destination": "Chengdu"},
    ):
        with pytest.raises(Unresolvable):
            sku_of(**unknown)


def test_quote_plan_prices_a_models_train_too(catalog: Catalog) -> None:
    """The gateway's quote_plan uses the same rules: a model's quote and the order agree."""
    tools = ReadOnlyTools(catalog)
    train = {"tool": BOOK_RAIL, "origin": "Guangzhou", "destination": "Shenzhen", "passengers": 2}
    quote = tools.run("quote_plan", {"actions": [train]}, ParseRequest("two tickets to shenzhen"))
    assert quote["total_fen"] == 2 * catalog.products["rail-gz-sz-2nd"].price_fen, quote
    priced = tools.run("quote_plan", {"actions": [{**train, "price_fen": 1}]}, ParseRequest("x"))
    assert "error" in priced  # never a price from the model
