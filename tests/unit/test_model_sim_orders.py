"""The simulated Qwen per order (issue 13 item 7): the gateway's order-id header, calls counted per order,
the slow-sentence share; and the gateway's switch for single-flight, which the model benchmark turns off."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from yiju.common.catalog import Catalog
from yiju.model_gateway.assemble import assemble
from yiju.model_gateway.backends.openai_backend import ORDER_ID_HEADER, OpenAIBackend
from yiju.model_gateway.config import GatewaySettings, OpenAISettings
from yiju.model_gateway.prompt import chat_messages
from yiju.model_gateway.sim import SimConfig, SimulatedQwen
from yiju.model_gateway.sim.__main__ import parse_args
from yiju.model_gateway.sim.latency import SlowShare
from yiju.model_gateway.toolbox import ReadOnlyTools
from yiju.model_gateway.tools import ParseRequest, ParseResult, openai_tools

TEA = ParseRequest("two bubble teas to my office", locale="en-SG", address_labels=("home", "office"))
FAST = {"p50_ms": 1.0, "p99_ms": 2.0}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


def test_the_slow_share_is_a_stable_draw_of_about_the_configured_share() -> None:
    share = SlowShare(0.1, 30_000, seed=7)
    keys = [f"ord-{i}" for i in range(20_000)]
    slow = [k for k in keys if share.is_slow(k)]
    assert 0.09 < len(slow) / len(keys) < 0.11
    assert slow == [k for k in keys if SlowShare(0.1, 30_000, seed=7).is_slow(k)]  # the same every time
    assert not any(SlowShare(0.0, 30_000, seed=7).is_slow(k) for k in keys)
    assert share.slow_s == 30.0


def test_slow_settings_are_checked_and_reach_the_command_line() -> None:
    with pytest.raises(ValueError, match="shares"):
        SimConfig(slow_rate=1.5)
    with pytest.raises(ValueError, match="slow_ms"):
        SimConfig(slow_ms=0)
    config = parse_args(["--slow-rate", "0.1", "--slow-ms", "30000"])
    assert (config.slow_rate, config.slow_ms) == (0.1, 30_000)


async def test_a_slow_sentence_takes_slow_ms_on_its_first_turn_only(
    catalog: Catalog, client: httpx.AsyncClient
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with SimulatedQwen(
        SimConfig(slow_rate=1.0, slow_ms=30_000, **FAST), catalog=catalog, sleep=sleep
    ) as sim:
        first = {"model": "qwen-sim", "messages": chat_messages(TEA), "tools": openai_tools()}
        reply = await client.post(f"{sim.url}/chat/completions", json=first, headers={ORDER_ID_HEADER: "o-1"})
        assert reply.status_code == 200
        answer = reply.json()["choices"][0]["message"]
        later = {**first, "messages": [*first["messages"], answer]}  # a second turn of the same order
        await client.post(f"{sim.url}/chat/completions", json=later, headers={ORDER_ID_HEADER: "o-1"})
        orders = (await client.get(sim.url.removesuffix("/v1") + "/orders")).json()
    assert slept[0] == 30.0 and slept[1] < 1.0
    assert orders["o-1"]["slow"] is True
    assert (orders["o-1"]["conversations"], orders["o-1"]["requests"]) == (1, 2)
    assert orders["o-1"]["service_s"] == pytest.approx(30.0 + slept[1])
    assert sim.stats.slow == 1


async def test_the_openai_backend_names_the_order_and_the_server_counts_its_calls(catalog: Catalog) -> None:
    async with SimulatedQwen(SimConfig(**FAST), catalog=catalog) as sim:
        backend = OpenAIBackend(OpenAISettings(base_url=sim.url), toolbox=ReadOnlyTools(catalog))
        try:
            request = ParseRequest(TEA.text, TEA.locale, address_labels=TEA.address_labels, order_id="o-7")
            [answer] = await backend.parse([request])
            assert isinstance(answer, ParseResult) and answer.actions
            await backend.parse([request])  # the same order's sentence sent again: a second conversation
            await backend.parse([TEA])  # no order id (gRPC ParseIntent): not counted per order
        finally:
            await backend.aclose()
    calls = sim.orders["o-7"]
    assert (calls.conversations, calls.requests) == (2, 4)  # each conversation: search, then answer
    assert calls.last_ms >= calls.first_ms > 0
    assert list(sim.orders) == ["o-7"]
    assert "o-7" not in json.dumps(backend.body(request))  # the order id is a header, not in the prompt


def test_single_flight_follows_its_setting(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YIJU_GATEWAY_RATE_LIMIT_STORE", "local")
    monkeypatch.setenv("YIJU_GATEWAY_CACHE_TTL_S", "0")
    redis: Any = None  # neither the cache (off) nor the local rate limiter touches Redis
    assert assemble(GatewaySettings(), catalog, redis).pipeline.flights is not None
    monkeypatch.setenv("YIJU_GATEWAY_SINGLE_FLIGHT", "false")
    assert assemble(GatewaySettings(), catalog, redis).pipeline.flights is None
