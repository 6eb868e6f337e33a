"""The openai backend against a local OpenAI-compatible server that answers scripted replies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from yiju.common.catalog import Catalog
from yiju.model_gateway.backends.openai_backend import OpenAIBackend
from yiju.model_gateway.backends.rules import RulesBackend
from yiju.model_gateway.config import OpenAISettings
from yiju.model_gateway.fake_openai import FakeOpenAI, content_reply, tool_calls_reply
from yiju.model_gateway.gateway import Gateway
from yiju.model_gateway.tools import ParseRequest, ParseResult

TEA = ParseRequest("two bubble teas to my office", locale="en", address_labels=("home", "office"))


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def fresh(server: FakeOpenAI) -> FakeOpenAI:
    server.requests.clear()
    server.headers.clear()
    server.delay_s = 0.0
    return server


async def ask(
    server: FakeOpenAI,
    catalog: Catalog,
    request: ParseRequest = TEA,
    timeout_s: float = 5.0,
    **settings: object,
) -> ParseResult:
    backend = OpenAIBackend(
        OpenAISettings(base_url=server.url, api_key="sk-test", **settings), timeout_s=timeout_s
    )
    try:
        gateway = Gateway([backend, RulesBackend(catalog)], timeouts={"openai": timeout_s})
        [result] = await gateway.parse([request])
        return result
    finally:
        await backend.aclose()


async def test_tool_calls_are_requested_with_the_tool_schema_and_read(
    fresh: FakeOpenAI, catalog: Catalog
) -> None:
    fresh.reply = lambda body: tool_calls_reply(
        [("order_item", {"product_query": "bubble tea", "quantity": 2, "deliver_to": "office"})],
        total_tokens=321,
    )
    result = await ask(fresh, catalog)
    assert result.backend == "openai" and result.tokens_used == 321
    [action] = result.actions
    assert (action.tool, action.product_query, action.quantity, action.deliver_to) == (
        "order_item",
        "bubble tea",
        2,
        "office",
    )
    [body] = fresh.requests
    assert [t["function"]["name"] for t in body["tools"]] == [
        "order_item",
        "book_ride",
        "book_rail",
        "book_hotel",
    ]
    assert body["tool_choice"] == "auto" and body["temperature"] == 0
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert json.loads(body["messages"][1]["content"])["sentence"] == TEA.text
    assert fresh.headers[0]["authorization"] == "Bearer sk-test"


async def test_qwen_tool_call_text_in_content_is_read(fresh: FakeOpenAI, catalog: Catalog) -> None:
    fresh.reply = lambda body: content_reply(
        '<think>\n\n</think>\n\n<tool_call>\n{"name": "book_ride", '
        '"arguments": {"destination": "home"}}\n</tool_call>'
    )
    result = await ask(fresh, catalog, ParseRequest("taxi home"))
    assert result.backend == "openai" and result.actions[0].destination == "home"


async def test_json_schema_mode_asks_for_constrained_output(fresh: FakeOpenAI, catalog: Catalog) -> None:
    answer = {"actions": [{"tool": "book_hotel", "product_query": "hangzhou", "nights": 2}]}
    fresh.reply = lambda body: content_reply(json.dumps(answer))
    result = await ask(
        fresh,
        catalog,
        ParseRequest("hotel in hangzhou for 2 nights"),
        mode="json_schema",
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )
    assert result.backend == "openai" and result.actions[0].nights == 2
    [body] = fresh.requests
    assert "tools" not in body and body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["actions"]
    assert body["chat_template_kwargs"] == {"enable_thinking": False}


async def test_invalid_json_is_retried_once_then_rules_answer(fresh: FakeOpenAI, catalog: Catalog) -> None:
    fresh.reply = lambda body: tool_calls_reply(
        [("order_item", '{"product_query": "bubble tea", "quantity": ')]
    )
    result = await ask(fresh, catalog)
    assert len(fresh.requests) == 2  # the first try and one retry
    assert result.backend == "rules"
    assert result.actions[0].sku == "tea-brown-sugar-boba" and result.actions[0].quantity == 2
    assert result.tokens_used == 84  # the refused answers' tokens still count


async def test_a_reply_that_is_not_json_falls_back(fresh: FakeOpenAI, catalog: Catalog) -> None:
    fresh.reply = lambda body: "<html>bad gateway</html>"
    result = await ask(fresh, catalog)
    assert result.backend == "rules" and len(fresh.requests) == 2


async def test_http_500_falls_back_without_retry(fresh: FakeOpenAI, catalog: Catalog) -> None:
    fresh.reply = lambda body: (500, {"error": {"message": "CUDA out of memory"}})
    result = await ask(fresh, catalog)
    assert len(fresh.requests) == 1
    assert result.backend == "rules" and result.actions[0].deliver_to == "office"


async def test_a_slow_server_times_out_and_falls_back(fresh: FakeOpenAI, catalog: Catalog) -> None:
    fresh.reply = lambda body: tool_calls_reply([("order_item", {"product_query": "tea", "quantity": 1})])
    fresh.delay_s = 1.0
    result = await ask(fresh, catalog, timeout_s=0.2)
    assert result.backend == "rules"


async def test_a_model_trying_to_set_a_price_is_refused(fresh: FakeOpenAI, catalog: Catalog) -> None:
    fresh.reply = lambda body: tool_calls_reply(
        [("order_item", {"product_query": "bubble tea", "quantity": 2, "price_fen": 1})]
    )
    result = await ask(fresh, catalog)
    assert result.backend == "rules" and result.actions[0].sku == "tea-brown-sugar-boba"
