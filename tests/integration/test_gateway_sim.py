"""The model gateway's gRPC server with the chain openai,rules against the simulated Qwen server:
ParseIntent answers from the model after tool-calling turns, and falls back to the rules backend
when the model's answer cannot be used."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from yiju.common.catalog import Catalog
from yiju.common.grpc import create_server
from yiju.common.settings import get_settings
from yiju.gen.gateway.v1 import gateway_pb2 as pb
from yiju.gen.gateway.v1 import gateway_pb2_grpc as pb_grpc
from yiju.model_gateway.assemble import assemble
from yiju.model_gateway.config import GatewaySettings, OpenAISettings
from yiju.model_gateway.sim import SimConfig, SimulatedQwen

pytestmark = pytest.mark.integration


@asynccontextmanager
async def serve_gateway(
    sim: SimulatedQwen, catalog: Catalog, redis: aioredis.Redis
) -> AsyncIterator[pb_grpc.ModelGatewayServiceStub]:
    settings = GatewaySettings(
        backends="openai,rules",
        cache_ttl_s=0,
        max_wait_ms=2,
        timeouts={"openai": 10.0},
        openai=OpenAISettings(base_url=sim.url, model=sim.config.model),
    )
    assembly = assemble(settings, catalog, redis)
    server, _health = create_server(get_settings())
    pb_grpc.add_ModelGatewayServiceServicer_to_server(assembly.servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.ModelGatewayServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(grace=None)
        await assembly.aclose()


async def test_parse_intent_answers_from_the_simulated_model_after_tool_turns(
    catalog: Catalog, scratch_redis: aioredis.Redis
) -> None:
    config = SimConfig(p50_ms=5, p99_ms=20, quote_rate=1.0)
    async with (
        SimulatedQwen(config, catalog=catalog) as sim,
        serve_gateway(sim, catalog, scratch_redis) as stub,
    ):
        tea = await stub.ParseIntent(
            pb.ParseIntentRequest(
                text="来两杯奶茶送到公司",
                locale="zh-CN",
                tenant_id="t-1",
                address_labels=["home", "office"],
            ),
            timeout=20,
        )
        hotel = await stub.ParseIntent(
            pb.ParseIntentRequest(text="book a hotel in hangzhou for 2 nights", tenant_id="t-1"),
            timeout=20,
        )
    assert (tea.backend, len(tea.actions)) == ("openai", 1)
    assert (tea.actions[0].tool, tea.actions[0].product_query, tea.actions[0].quantity) == (
        "order_item",
        "黑糖珍珠奶茶",
        2,
    )
    assert tea.actions[0].deliver_to == "office" and not tea.actions[0].sku
    assert (hotel.backend, hotel.actions[0].tool, hotel.actions[0].nights) == ("openai", "book_hotel", 2)
    assert hotel.actions[0].product_query == catalog.products["hotel-hz-westlake"].name
    assert tea.tokens_used > 0 and hotel.tokens_used > 0
    assert (sim.stats.requests, sim.stats.look_ups) == (6, 4)  # per sentence: search, quote, answer


async def test_garbage_from_the_model_is_retried_then_answered_by_the_rules(
    catalog: Catalog, scratch_redis: aioredis.Redis
) -> None:
    config = SimConfig(p50_ms=5, p99_ms=20, garbage_rate=1.0)
    async with (
        SimulatedQwen(config, catalog=catalog) as sim,
        serve_gateway(sim, catalog, scratch_redis) as stub,
    ):
        reply = await stub.ParseIntent(
            pb.ParseIntentRequest(text="two bubble teas", tenant_id="t-1"), timeout=20
        )
    assert reply.backend == "rules" and reply.actions[0].sku == "tea-brown-sugar-boba"
    assert sim.stats.faults == {"garbage": 2}  # the answer, then one retry
    assert reply.tokens_used > 0  # the refused answers' tokens are counted


async def test_model_economics_reports_calls_tokens_and_gpu_seconds_per_mode(tmp_path: Path) -> None:
    from yiju_infra.bench import model_economics

    out = tmp_path / "economics.json"
    args = model_economics.parse_args(["--sentences", "60", "--time-scale", "0.0005", "--out", str(out)])
    doc = await model_economics.main(args)
    assert json.loads(out.read_text()) == doc
    rows = {r["mode"]: r for r in doc["results"]}
    assert list(rows) == ["no cache, no single-flight", "single-flight", "cache + single-flight"]
    cold, cached = rows["no cache, no single-flight"], rows["cache + single-flight"]
    assert cold["answered_by"] == {"openai": 60} and cold["per_1000_sentences"]["model_conversations"] == 1000
    for row in rows.values():
        usage = row["per_1000_sentences"]
        assert usage["model_calls"] > 0 and usage["prompt_tokens"] > usage["completion_tokens"] > 0
        assert usage["gpu_seconds"] == pytest.approx(usage["service_seconds"] / 256, abs=0.01)
    distinct = doc["config"]["distinct_sentences_drawn"]
    assert cached["per_1000_sentences"]["model_conversations"] == pytest.approx(
        distinct * 1000 / 60, abs=0.01
    )
    assert cached["per_1000_sentences"]["gpu_seconds"] < cold["per_1000_sentences"]["gpu_seconds"]
