"""The openai backend against a local OpenAI-compatible server that answers scripted replies."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator

import pytest

from yiju.common.catalog import Catalog
from yiju.model_gateway.backends.base import InvalidAnswer
from yiju.model_gateway.backends.openai_backend import BackendUnavailable, OpenAIBackend
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
    assert fresh.headers[0]["content-type"] == "application/json"
    assert "x-yiju-order-id" not in fresh.headers[0]  # no order (gRPC ParseIntent): no header


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


def backend_for(url: str, timeout_s: float = 5.0, **settings: object) -> OpenAIBackend:
    return OpenAIBackend(OpenAISettings(base_url=url, **settings), timeout_s=timeout_s)


def test_the_backend_is_built_without_a_running_loop() -> None:
    backend = backend_for("http://127.0.0.1:1/v1")  # the session is made on the first call, in its loop
    assert backend._session is None


async def test_one_session_serves_every_call_until_aclose(fresh: FakeOpenAI) -> None:
    fresh.reply = lambda body: tool_calls_reply([("order_item", {"product_query": "tea", "quantity": 1})])
    backend = backend_for(fresh.url)
    order = ParseRequest(TEA.text, TEA.locale, address_labels=TEA.address_labels, order_id="o-9")
    try:
        await backend.parse([TEA, order])
        session = backend._session
        await backend.parse([TEA])
        assert backend._session is session and session is not None
    finally:
        await backend.aclose()
    assert session.closed and backend._session is None
    assert [h.get("x-yiju-order-id") for h in fresh.headers].count("o-9") == 1
    assert "authorization" not in fresh.headers[0]  # no api key, no Authorization header
    try:
        [answer] = await backend.parse([TEA])  # closed, then used again: a new session
        assert isinstance(answer, ParseResult)
    finally:
        await backend.aclose()


async def test_an_http_error_is_unavailable_with_the_start_of_the_body(fresh: FakeOpenAI) -> None:
    fresh.reply = lambda body: (503, {"error": {"message": "overloaded " * 100}})
    backend = backend_for(fresh.url)
    try:
        with pytest.raises(BackendUnavailable, match="HTTP 503") as raised:
            await backend.parse([TEA])
    finally:
        await backend.aclose()
    detail = str(raised.value).split("HTTP 503: ", 1)[1]
    assert len(detail) == 200 and detail.startswith('{"error"')


async def test_a_reply_that_is_not_json_is_an_invalid_answer(fresh: FakeOpenAI) -> None:
    fresh.reply = lambda body: "<html>bad gateway</html>"
    backend = backend_for(fresh.url)
    try:
        [answer] = await backend.parse([TEA])
    finally:
        await backend.aclose()
    assert isinstance(answer, InvalidAnswer) and "not JSON" in str(answer)


async def test_a_slow_server_raises_timeout(fresh: FakeOpenAI) -> None:
    fresh.reply = lambda body: tool_calls_reply([("order_item", {"product_query": "tea", "quantity": 1})])
    fresh.delay_s = 1.0
    backend = backend_for(fresh.url, timeout_s=0.2)
    try:
        with pytest.raises(TimeoutError):
            await backend.parse([TEA])
    finally:
        await backend.aclose()


async def test_a_server_that_is_not_there_is_unavailable() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = backend_for(f"http://127.0.0.1:{port}/v1")
    try:
        with pytest.raises(BackendUnavailable, match="unreachable"):
            await backend.parse([TEA, TEA])  # every sentence failed: one verdict for the breaker
    finally:
        await backend.aclose()
