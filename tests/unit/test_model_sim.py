"""The simulated Qwen server: latency distribution, concurrency cap and queue, usage, faults, tool turns."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from yiju.common.catalog import Catalog
from yiju.model_gateway.backends.base import InvalidAnswer
from yiju.model_gateway.backends.openai_backend import BackendUnavailable, OpenAIBackend
from yiju.model_gateway.config import OpenAISettings
from yiju.model_gateway.prompt import chat_messages
from yiju.model_gateway.sim import SimConfig, SimulatedQwen
from yiju.model_gateway.sim.__main__ import parse_args
from yiju.model_gateway.sim.answers import SimulatedModel
from yiju.model_gateway.sim.latency import LognormalLatency
from yiju.model_gateway.sim.tokens import completion_tokens, count_tokens, prompt_tokens
from yiju.model_gateway.toolbox import ReadOnlyTools
from yiju.model_gateway.tools import ParseRequest, ParseResult, openai_read_only_tools, openai_tools
from yiju.model_gateway.turns import TurnBudget

TEA = ParseRequest("two bubble teas to my office", locale="en-SG", address_labels=("home", "office"))
FAST = {"p50_ms": 1.0, "p99_ms": 2.0}


def body_for(request: ParseRequest, *, read_only: bool = False) -> dict:
    tools = openai_tools() + (openai_read_only_tools() if read_only else [])
    return {"model": "qwen-sim", "messages": chat_messages(request), "tools": tools}


async def wait_until(sim: SimulatedQwen, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        await sim.pool.wait_until(condition)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


def test_lognormal_latency_has_the_configured_median_and_99th_percentile() -> None:
    latency = LognormalLatency(1200, 6000, random.Random(3))
    samples = sorted(latency.sample_s() for _ in range(40_000))
    p50, p99 = samples[len(samples) // 2], samples[int(len(samples) * 0.99)]
    assert p50 == pytest.approx(1.2, rel=0.03)
    assert p99 == pytest.approx(6.0, rel=0.06)
    assert latency.quantile_s(0.99) == pytest.approx(6.0)
    assert sum(samples) / len(samples) == pytest.approx(latency.mean_s, rel=0.03)


def test_bad_settings_are_refused_on_the_command_line() -> None:
    with pytest.raises(ValueError, match="p50_ms <= p99_ms"):
        parse_args(["--p50-ms", "500", "--p99-ms", "100"])
    with pytest.raises(ValueError, match="fault rates"):
        SimConfig(error_rate=0.6, hang_rate=0.6)
    config = parse_args(["--p50-ms", "1200", "--p99-ms", "6000", "--slots", "256", "--port", "0"])
    assert (config.p50_ms, config.p99_ms, config.slots) == (1200, 6000, 256)


async def test_the_slot_cap_queues_the_rest_and_metrics_show_it(
    catalog: Catalog, client: httpx.AsyncClient
) -> None:
    gate = asyncio.Event()

    async def held(seconds: float) -> None:
        await gate.wait()

    async with SimulatedQwen(SimConfig(slots=2, **FAST), catalog=catalog, sleep=held) as sim:
        calls = [
            asyncio.create_task(client.post(f"{sim.url}/chat/completions", json=body_for(TEA)))
            for _ in range(5)
        ]
        await wait_until(sim, lambda: sim.stats.in_flight == 2 and sim.stats.queued == 3)
        metrics = (await client.get(sim.url.removesuffix("/v1") + "/metrics")).text
        assert "yiju_sim_in_flight 2\n" in metrics and "yiju_sim_queue_depth 3\n" in metrics
        gate.set()
        replies = await asyncio.gather(*calls)
        assert [r.status_code for r in replies] == [200] * 5
        assert (sim.stats.max_in_flight, sim.stats.max_queued, sim.stats.in_flight) == (2, 3, 0)


async def test_usage_counts_prompt_and_completion_tokens(catalog: Catalog, client: httpx.AsyncClient) -> None:
    async with SimulatedQwen(SimConfig(**FAST), catalog=catalog) as sim:
        short = (await client.post(f"{sim.url}/chat/completions", json=body_for(TEA))).json()
        longer = dataclasses.replace(TEA, text=TEA.text + ", and a latte, and a taxi home at 7pm please" * 3)
        long = (await client.post(f"{sim.url}/chat/completions", json=body_for(longer))).json()
    usage = short["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == completion_tokens(short["choices"][0]["message"])
    assert usage["prompt_tokens"] > count_tokens(json.dumps(openai_tools()))  # the tool definitions count
    added = count_tokens(longer.text) - count_tokens(TEA.text)
    assert long["usage"]["prompt_tokens"] - usage["prompt_tokens"] == pytest.approx(added, abs=8)
    assert sim.stats.prompt_tokens == usage["prompt_tokens"] + long["usage"]["prompt_tokens"]
    assert count_tokens("来两杯奶茶") == 5
    assert count_tokens("来两杯 latte") == 3 + 2  # CJK one each, the rest about 4 characters a token


def test_the_tool_definitions_count_the_same_whether_seen_before_or_not() -> None:
    body = body_for(TEA)
    messages_only = prompt_tokens({"messages": body["messages"]})
    tools = count_tokens(json.dumps(body["tools"], ensure_ascii=False)) + 20
    assert prompt_tokens(body) == prompt_tokens(body) == messages_only + tools
    more = body_for(TEA, read_only=True)  # other tools: counted on their own
    assert (
        prompt_tokens(more)
        == messages_only + count_tokens(json.dumps(more["tools"], ensure_ascii=False)) + 20
    )


async def test_a_body_that_is_not_a_chat_request_is_refused_with_400(
    catalog: Catalog, client: httpx.AsyncClient
) -> None:
    async with SimulatedQwen(SimConfig(**FAST), catalog=catalog) as sim:
        not_json = await client.post(f"{sim.url}/chat/completions", content=b"{not json")
        no_messages = await client.post(f"{sim.url}/chat/completions", json={"messages": "hi"})
        models = (await client.get(f"{sim.url}/models")).json()
        health = await client.get(sim.url.removesuffix("/v1") + "/health")
    assert (not_json.status_code, no_messages.status_code) == (400, 400)
    assert not_json.json()["error"] == {
        "message": "the body is not JSON",
        "type": "invalid_request_error",
        "code": 400,
    }
    assert sim.stats.requests == 0
    assert models["data"] == [{"id": "qwen-sim", "object": "model"}]
    assert (health.status_code, health.text) == (200, "ok")


async def test_stop_does_not_wait_for_a_hung_request(catalog: Catalog, client: httpx.AsyncClient) -> None:
    sim = SimulatedQwen(SimConfig(hang_rate=1.0, hang_s=600, **FAST), catalog=catalog)
    await sim.start()
    call = asyncio.create_task(client.post(f"{sim.url}/chat/completions", json=body_for(TEA)))
    await wait_until(sim, lambda: sim.stats.in_flight == 1)
    async with asyncio.timeout(5):
        await sim.stop()
    with pytest.raises(httpx.HTTPError):
        await call  # dropped without an answer, as a crashed model server would
    assert (sim.stats.in_flight, sim.stats.aborted) == (0, 1)


async def test_first_turn_searches_the_catalog_then_answers_with_what_it_found(
    catalog: Catalog, client: httpx.AsyncClient
) -> None:
    async with SimulatedQwen(SimConfig(**FAST), catalog=catalog) as sim:
        body = body_for(TEA, read_only=True)
        first = (await client.post(f"{sim.url}/chat/completions", json=body)).json()["choices"][0]
        assert first["finish_reason"] == "tool_calls"
        [search] = first["message"]["tool_calls"]
        assert search["function"]["name"] == "search_catalog"
        query = json.loads(search["function"]["arguments"])["query"]
        results = ReadOnlyTools(catalog).run("search_catalog", {"query": query}, TEA)
        body["messages"] += [
            first["message"],
            {"role": "tool", "tool_call_id": search["id"], "content": json.dumps(results)},
        ]
        second = (await client.post(f"{sim.url}/chat/completions", json=body)).json()["choices"][0]
        [order] = second["message"]["tool_calls"]
        assert order["function"]["name"] == "order_item"
        args = json.loads(order["function"]["arguments"])
        assert args == {"product_query": results["results"][0]["name"], "quantity": 2, "deliver_to": "office"}
        assert sim.stats.look_ups == 1 and sim.stats.answered == 2


async def test_without_read_only_tools_it_answers_at_once(
    catalog: Catalog, client: httpx.AsyncClient
) -> None:
    async with SimulatedQwen(SimConfig(**FAST), catalog=catalog) as sim:
        reply = (await client.post(f"{sim.url}/chat/completions", json=body_for(TEA))).json()
    [call] = reply["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "order_item"


async def ask_backend(sim: SimulatedQwen, catalog: Catalog, timeout_s: float = 5.0) -> list[object]:
    backend = OpenAIBackend(
        OpenAISettings(base_url=sim.url, model="qwen-sim"),
        timeout_s=timeout_s,
        toolbox=ReadOnlyTools(catalog),
        budget=TurnBudget(max_turns=4),
    )
    try:
        return await backend.parse([TEA])
    except (BackendUnavailable, TimeoutError) as exc:
        return [exc]
    finally:
        await backend.aclose()


async def test_injected_errors_are_http_500_or_503(catalog: Catalog, client: httpx.AsyncClient) -> None:
    async with SimulatedQwen(SimConfig(error_rate=1.0, **FAST), catalog=catalog) as sim:
        statuses = {
            (await client.post(f"{sim.url}/chat/completions", json=body_for(TEA))).status_code
            for _ in range(12)
        }
        [answer] = await ask_backend(sim, catalog)
    assert statuses == {500, 503}
    assert isinstance(answer, BackendUnavailable)
    assert sim.stats.faults == {"error": 13}


@pytest.mark.parametrize("fault", ["garbage_rate", "schema_break_rate"])
async def test_garbage_and_schema_breaking_answers_are_refused_by_the_gateway(
    catalog: Catalog, fault: str
) -> None:
    async with SimulatedQwen(SimConfig(**{fault: 1.0}, **FAST), catalog=catalog) as sim:
        answers = [a for _ in range(12) for a in await ask_backend(sim, catalog)]
    assert all(isinstance(a, InvalidAnswer) and a.tokens_used > 0 for a in answers), answers
    assert sim.stats.faults == {fault.removesuffix("_rate"): 12}


async def test_a_hung_request_holds_its_slot_until_the_client_gives_up(catalog: Catalog) -> None:
    async with SimulatedQwen(SimConfig(hang_rate=1.0, hang_s=600, slots=1, **FAST), catalog=catalog) as sim:
        [answer] = await ask_backend(sim, catalog, timeout_s=0.3)
        assert isinstance(answer, TimeoutError)
        await wait_until(sim, lambda: sim.stats.in_flight == 0)
        assert sim.stats.aborted == 1 and sim.stats.faults == {"hang": 1}


async def test_the_gateway_backend_completes_a_tool_turn_against_it(catalog: Catalog) -> None:
    async with SimulatedQwen(SimConfig(quote_rate=1.0, **FAST), catalog=catalog) as sim:
        [result] = await ask_backend(sim, catalog)
    assert isinstance(result, ParseResult) and result.backend == "openai"
    [action] = result.actions
    assert (action.tool, action.product_query, action.quantity, action.deliver_to) == (
        "order_item",
        "brown sugar boba milk tea",
        2,
        "office",
    )
    assert (sim.stats.requests, sim.stats.look_ups) == (3, 2)  # search, quote, answer
    assert result.tokens_used == sim.stats.prompt_tokens + sim.stats.completion_tokens


def test_a_sentence_is_read_once_across_its_turns_and_repeats(catalog: Catalog) -> None:
    model = SimulatedModel(catalog, search_rate=1.0)
    reads: list[str] = []
    parse_one = model.rules.parse_one

    def counting(request: ParseRequest) -> ParseResult:
        reads.append(request.text)
        return parse_one(request)

    model.rules.parse_one = counting  # type: ignore[method-assign]
    request = ParseRequest("two bubble teas to my office", locale="en")
    body = {"messages": chat_messages(request), "tools": openai_read_only_tools() + openai_tools()}
    first = model.answer(body)  # the first turn searches the catalog
    assert first["tool_calls"][0]["function"]["name"] == "search_catalog"
    assert model.answer(body) == first  # the same sentence again: the same answer, not read again
    assert reads == ["two bubble teas to my office"]
    other = ParseRequest("一杯拿铁", locale="zh")
    model.answer({"messages": chat_messages(other), "tools": openai_tools()})
    assert reads == ["two bubble teas to my office", "一杯拿铁"]
