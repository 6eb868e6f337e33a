"""Tool-calling turns in the gateway: read-only tools over several turns, bounded, one span per turn,
and no price, total or payer taken from the model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from yiju.common import pricing
from yiju.common.catalog import Catalog
from yiju.model_gateway import turns
from yiju.model_gateway.backends.base import InvalidAnswer
from yiju.model_gateway.backends.openai_backend import OpenAIBackend
from yiju.model_gateway.config import GatewaySettings, OpenAISettings
from yiju.model_gateway.fake_openai import FakeOpenAI, tool_calls_reply
from yiju.model_gateway.toolbox import ReadOnlyTools
from yiju.model_gateway.tools import (
    MAX_QUANTITY,
    READ_ONLY_TOOL_NAMES,
    TOOL_NAMES,
    InvalidModelOutput,
    ParseRequest,
    ParseResult,
    validate_read_only_call,
)
from yiju.model_gateway.turns import TurnBudget

TEA = ParseRequest(
    "two bubble teas to my office", locale="en-SG", user_id="u-1002", address_labels=("home", "office")
)
LATTE = {"tool": "order_item", "product_query": "latte", "quantity": 2}


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def fresh(server: FakeOpenAI) -> FakeOpenAI:
    server.requests.clear()
    return server


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(turns, "_tracer", provider.get_tracer("test"))
    yield exporter


def scripted(*replies: dict[str, Any]) -> Any:
    """Replies in turn order: the n-th request of a conversation gets the n-th reply (the last repeats)."""

    def reply(body: dict[str, Any]) -> dict[str, Any]:
        turn = sum(1 for m in body["messages"] if m["role"] == "assistant")
        return replies[min(turn, len(replies) - 1)]

    return reply


def usage_reply(
    calls: list[tuple[str, dict[str, Any] | str]], prompt: int, completion: int
) -> dict[str, Any]:
    doc = tool_calls_reply(calls)
    doc["usage"] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return doc


async def ask(server: FakeOpenAI, catalog: Catalog, budget: TurnBudget | None = None) -> Any:
    backend = OpenAIBackend(
        OpenAISettings(base_url=server.url, model="qwen3.5"), toolbox=ReadOnlyTools(catalog), budget=budget
    )
    try:
        [answer] = await backend.parse([TEA])
        return answer
    finally:
        await backend.aclose()


def tool_names(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body["tools"]]


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"]


async def test_the_model_searches_then_answers_and_each_turn_is_a_span_with_its_tokens(
    fresh: FakeOpenAI, catalog: Catalog, spans: InMemorySpanExporter
) -> None:
    fresh.reply = scripted(
        usage_reply([("search_catalog", {"query": "bubble tea"})], 900, 20),
        usage_reply(
            [("order_item", {"product_query": "brown sugar boba milk tea", "quantity": 2})], 1000, 30
        ),
    )
    result = await ask(fresh, catalog)
    assert isinstance(result, ParseResult) and result.tokens_used == 1950
    assert result.actions[0].product_query == "brown sugar boba milk tea"
    first, second = fresh.requests
    assert set(READ_ONLY_TOOL_NAMES) <= set(tool_names(first))
    [found] = tool_results(second)
    assert found["results"][0] == {
        "id": "tea-brown-sugar-boba",
        "name": "brown sugar boba milk tea",
        "name_zh": "黑糖珍珠奶茶",
        "vertical": "food",
    }
    assert "price" not in json.dumps(found)
    chats = [s for s in spans.get_finished_spans() if s.name == "chat qwen3.5"]
    assert [dict(s.attributes or {}) for s in chats] == [
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "qwen3.5",
            "gen_ai.response.model": "fake",
            "yiju.gateway.turn": turn,
            "gen_ai.usage.input_tokens": prompt,
            "gen_ai.usage.output_tokens": completion,
            "yiju.gateway.tool_calls": (tool,),
        }
        for turn, prompt, completion, tool in ((1, 900, 20, "search_catalog"), (2, 1000, 30, "order_item"))
    ]
    [tool_span] = [s for s in spans.get_finished_spans() if s.name == "execute_tool search_catalog"]
    assert tool_span.attributes is not None and tool_span.attributes["gen_ai.tool.name"] == "search_catalog"


async def test_turns_are_bounded_and_the_last_turn_offers_only_the_actions(
    fresh: FakeOpenAI, catalog: Catalog
) -> None:
    fresh.reply = scripted(usage_reply([("saved_places", {})], 100, 10))  # looks things up forever
    answer = await ask(fresh, catalog, TurnBudget(max_turns=3, max_tokens=100_000))
    assert isinstance(answer, InvalidAnswer) and "no answer after 3 turns" in str(answer)
    assert answer.tokens_used == 330
    assert len(fresh.requests) == 3
    assert [set(tool_names(b)) & set(READ_ONLY_TOOL_NAMES) for b in fresh.requests] == [
        set(READ_ONLY_TOOL_NAMES),
        set(READ_ONLY_TOOL_NAMES),
        set(),
    ]
    assert tool_results(fresh.requests[1]) == [{"labels": ["home", "office"]}]


async def test_tokens_are_bounded_per_sentence(fresh: FakeOpenAI, catalog: Catalog) -> None:
    fresh.reply = scripted(usage_reply([("search_catalog", {"query": "tea"})], 3000, 100))
    answer = await ask(fresh, catalog, TurnBudget(max_turns=8, max_tokens=7000))
    assert isinstance(answer, InvalidAnswer) and answer.tokens_used == 9300
    assert len(fresh.requests) == 3  # 3,100 and 6,200 tokens leave room for one more turn; 9,300 none
    assert [b["max_tokens"] for b in fresh.requests] == [512, 512, 512]
    fresh.requests.clear()
    await ask(fresh, catalog, TurnBudget(max_turns=8, max_tokens=6500))
    assert [b["max_tokens"] for b in fresh.requests] == [512, 512, 300]


async def test_a_quote_is_priced_by_the_catalog_and_refuses_a_price_or_payer(
    fresh: FakeOpenAI, catalog: Catalog
) -> None:
    fresh.reply = scripted(
        usage_reply([("quote_plan", {"actions": [{**LATTE, "price_fen": 1}]})], 10, 10),
        usage_reply([("quote_plan", {"actions": [LATTE], "total_fen": 1})], 10, 10),
        usage_reply([("quote_plan", {"actions": [LATTE]})], 10, 10),
        usage_reply([("order_item", {"product_query": "latte", "quantity": 2, "payer": "u-9"})], 10, 10),
    )
    answer = await ask(fresh, catalog, TurnBudget(max_turns=4))
    refused_price, refused_total, quote = (tool_results(fresh.requests[n])[-1] for n in (1, 2, 3))
    assert refused_price == {"error": "order_item: unexpected arguments ['price_fen']"}
    assert refused_total == {"error": "quote_plan: unexpected arguments ['total_fen']"}
    latte = catalog.products["coffee-latte"].price_fen
    assert quote["lines"] == [
        {"name": "latte", "quantity": 2, "unit_price_fen": latte, "line_total_fen": 2 * latte}
    ]
    assert quote["total_fen"] == 2 * latte
    assert isinstance(answer, InvalidAnswer) and "payer" in str(answer)  # nor in the answer


def test_read_only_arguments_are_checked_against_the_schema() -> None:
    assert validate_read_only_call("search_catalog", {"query": " tea "}) == {"query": "tea", "limit": 5}
    for tool, args in [
        ("search_catalog", {"query": "tea", "payer": "u-1"}),
        ("search_catalog", {"query": ""}),
        ("search_catalog", {"query": "tea", "limit": 99}),
        ("quote_plan", {"actions": []}),
        ("quote_plan", {"actions": [{"tool": "order_item", "product_query": "tea", "quantity": 100}]}),
        ("quote_plan", {"actions": [{"tool": "order_item", "sku": "tea-jasmine-green", "quantity": 1}]}),
        ("saved_places", {"user_id": "u-1"}),
        ("transfer", {}),
    ]:
        with pytest.raises(InvalidModelOutput):
            validate_read_only_call(tool, args)


def test_pricing_is_shared_and_agrees_with_the_tool_schema() -> None:
    from yiju.planning import pricing as planning_pricing

    assert planning_pricing.price_lines is pricing.price_lines
    assert set(pricing.TOOL_ACCEPTS) == set(TOOL_NAMES) and pricing.MAX_QUANTITY == MAX_QUANTITY


def test_settings_bound_turns_and_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YIJU_GATEWAY_MAX_TURNS", "3")
    monkeypatch.setenv("YIJU_GATEWAY_MAX_SENTENCE_TOKENS", "5000")
    assert GatewaySettings().turn_budget == TurnBudget(max_turns=3, max_tokens=5000)
    monkeypatch.setenv("YIJU_GATEWAY_MAX_TURNS", "0")
    with pytest.raises(ValueError):
        GatewaySettings()
