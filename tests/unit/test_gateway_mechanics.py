"""Gateway mechanics without network: backend chain, retries, breaker, batcher, single-flight, limits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from yiju.model_gateway.backends.base import BackendAnswer, InvalidAnswer
from yiju.model_gateway.batcher import MicroBatcher
from yiju.model_gateway.breaker import CircuitBreaker, State
from yiju.model_gateway.cache import cache_key, dump_result, load_result
from yiju.model_gateway.gateway import CLARIFY_EN, CLARIFY_ZH, Gateway
from yiju.model_gateway.pipeline import GatewayPipeline
from yiju.model_gateway.ratelimit import LocalBuckets, TenantLimiter
from yiju.model_gateway.singleflight import SingleFlight
from yiju.model_gateway.tools import Action, ParseRequest, ParseResult


def order(text: str, backend: str = "") -> ParseResult:
    return ParseResult(
        actions=[Action(tool="order_item", product_query=text)], confidence=0.9, backend=backend
    )


class FakeBackend:
    """Answers every sentence with `answer(request)`; records each call."""

    def __init__(
        self,
        name: str,
        answer: Callable[[ParseRequest], BackendAnswer] | None = None,
        *,
        delay_s: float = 0.0,
        error: Exception | None = None,
    ) -> None:
        self.name = name
        self.answer = answer or (lambda r: order(r.text))
        self.delay_s = delay_s
        self.error = error
        self.calls: list[list[str]] = []

    async def parse(self, requests: list[ParseRequest]) -> list[BackendAnswer]:
        self.calls.append([r.text for r in requests])
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return [self.answer(r) for r in requests]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- the backend chain -------------------------------------------------------------------------


async def test_transport_failure_falls_back_to_the_next_backend() -> None:
    broken = FakeBackend("model", error=ConnectionError("down"))
    rules = FakeBackend("rules")
    before = sample("yiju_gateway_fallbacks_total", from_backend="model", to_backend="rules", reason="error")
    [result] = await Gateway([broken, rules]).parse([ParseRequest("two teas")])
    assert result.backend == "rules" and result.actions[0].product_query == "two teas"
    assert len(broken.calls) == 1  # a transport failure is not retried
    after = sample("yiju_gateway_fallbacks_total", from_backend="model", to_backend="rules", reason="error")
    assert after - before == 1


async def test_invalid_output_is_retried_once_then_falls_back_with_tokens_counted() -> None:
    model = FakeBackend("model", lambda r: InvalidAnswer("bad json", tokens_used=30))
    rules = FakeBackend("rules")
    [result] = await Gateway([model, rules], invalid_retries=1).parse([ParseRequest("tea")])
    assert len(model.calls) == 2 and len(rules.calls) == 1
    assert result.backend == "rules"
    assert result.tokens_used == 60  # the two refused model answers still cost tokens


async def test_only_the_invalid_sentences_of_a_batch_are_retried() -> None:
    model = FakeBackend("model", lambda r: order(r.text) if "good" in r.text else InvalidAnswer("nope"))
    rules = FakeBackend("rules")
    results = await Gateway([model, rules]).parse([ParseRequest("good tea"), ParseRequest("bad tea")])
    assert [r.backend for r in results] == ["model", "rules"]
    assert model.calls == [["good tea", "bad tea"], ["bad tea"]]
    assert rules.calls == [["bad tea"]]


async def test_sentences_failed_per_item_still_fall_back_when_the_retry_call_fails() -> None:
    model = FakeBackend(
        "model", lambda r: ConnectionError("reset") if "lost" in r.text else InvalidAnswer("bad")
    )
    rules = FakeBackend("rules")
    gateway = Gateway([model, rules])
    original = model.parse

    async def then_down(requests: list[ParseRequest]) -> list[BackendAnswer]:
        if model.calls:
            raise ConnectionError("down")
        return await original(requests)

    model.parse = then_down  # type: ignore[method-assign]
    results = await gateway.parse([ParseRequest("lost tea"), ParseRequest("bad tea")])
    assert [r.backend for r in results] == ["rules", "rules"]
    assert sorted(rules.calls[0]) == ["bad tea", "lost tea"]


async def test_a_slow_backend_times_out_and_falls_back() -> None:
    slow = FakeBackend("model", delay_s=1.0)
    rules = FakeBackend("rules")
    gateway = Gateway([slow, rules], timeouts={"model": 0.05})
    [result] = await asyncio.wait_for(gateway.parse([ParseRequest("tea")]), 0.5)
    assert result.backend == "rules"


async def test_when_no_backend_answers_the_user_gets_a_question_in_their_language() -> None:
    broken = FakeBackend("model", error=RuntimeError("boom"))
    results = await Gateway([broken]).parse([ParseRequest("two teas"), ParseRequest("来两杯奶茶")])
    assert [r.clarification for r in results] == [CLARIFY_EN, CLARIFY_ZH]
    assert all(r.backend == "none" and not r.actions for r in results)


# --- circuit breaker ---------------------------------------------------------------------------


def test_breaker_opens_half_opens_for_one_probe_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker("unit-model", failures=3, cooldown_s=10, clock=clock)
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state is State.OPEN and not breaker.allow()
    clock.now += 10
    assert breaker.state is State.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failure()  # the probe failed: open for another cool-down
    assert breaker.state is State.OPEN and not breaker.allow()
    clock.now += 10
    assert breaker.allow()
    breaker.success()
    assert breaker.state is State.CLOSED and breaker.allow()
    assert sample("yiju_gateway_breaker_state", backend="unit-model") == 0


async def test_open_breaker_serves_from_rules_until_the_probe_succeeds() -> None:
    clock = Clock()
    model = FakeBackend("model", error=ConnectionError("down"))
    rules = FakeBackend("rules")
    breaker = CircuitBreaker("model", failures=2, cooldown_s=5, clock=clock)
    gateway = Gateway([model, rules], breakers={"model": breaker})
    for _ in range(4):
        [result] = await gateway.parse([ParseRequest("tea")])
        assert result.backend == "rules"
    assert len(model.calls) == 2  # after two failures the model is no longer called
    model.error = None  # it recovers
    [result] = await gateway.parse([ParseRequest("tea")])
    assert result.backend == "rules" and len(model.calls) == 2  # still cooling down
    clock.now += 5
    [result] = await gateway.parse([ParseRequest("tea")])
    assert result.backend == "model" and breaker.state is State.CLOSED


# --- micro-batching and single-flight ----------------------------------------------------------


async def test_concurrent_calls_are_collected_into_batches() -> None:
    seen: list[int] = []

    async def handler(requests: list[ParseRequest]) -> list[ParseResult]:
        seen.append(len(requests))
        return [order(r.text) for r in requests]

    batcher = MicroBatcher(handler, max_batch=4, max_wait_ms=50)
    results = await asyncio.gather(*(batcher.submit(ParseRequest(f"s{i}")) for i in range(10)))
    assert [r.actions[0].product_query for r in results] == [f"s{i}" for i in range(10)]
    assert seen == [4, 4, 2]
    await batcher.aclose()


async def test_a_lone_call_waits_at_most_max_wait() -> None:
    async def handler(requests: list[ParseRequest]) -> list[ParseResult]:
        return [order(r.text) for r in requests]

    batcher = MicroBatcher(handler, max_batch=32, max_wait_ms=20)
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await batcher.submit(ParseRequest("alone"))
    assert result.actions[0].product_query == "alone"
    assert loop.time() - began < 0.5
    await batcher.aclose()


async def test_single_flight_runs_identical_work_once_and_survives_a_cancelled_caller() -> None:
    flights: SingleFlight[str] = SingleFlight()
    runs = 0

    async def work() -> str:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.05)
        return "answer"

    first = asyncio.create_task(flights.do("k", work))
    await asyncio.sleep(0)
    others = [asyncio.create_task(flights.do("k", work)) for _ in range(9)]
    await asyncio.sleep(0.01)
    first.cancel()  # the caller that started the work gives up; the others still get the answer
    answers = await asyncio.gather(*others)
    assert runs == 1
    assert answers == [("answer", True)] * 9
    assert flights.in_flight() == 0


async def test_pipeline_sends_identical_concurrent_sentences_to_the_backend_once() -> None:
    backend = FakeBackend("rules", delay_s=0.02)
    pipeline = GatewayPipeline(Gateway([backend]), catalog_version="v1", max_wait_ms=5)
    results = await asyncio.gather(*(pipeline.parse_one(ParseRequest("Two  Teas")) for _ in range(20)))
    await pipeline.parse_one(ParseRequest("two teas"))  # normalised to the same key, but not in flight
    assert sum(len(c) for c in backend.calls) == 2
    assert pipeline.stats.shared == 19
    results[0].actions.clear()  # every caller has its own copy
    assert results[1].actions
    await pipeline.aclose()


# --- cache keys --------------------------------------------------------------------------------


def test_cache_key_normalises_the_sentence_and_includes_catalog_and_chain() -> None:
    base = ParseRequest("Two  bubble TEAS ", locale="en", address_labels=("office", "home"))
    same = ParseRequest("two bubble teas", locale="EN", address_labels=("home", "office"))
    assert cache_key(base, "cat1", "openai,rules") == cache_key(same, "cat1", "openai,rules")
    assert cache_key(base, "cat1", "openai,rules") != cache_key(base, "cat2", "openai,rules")
    assert cache_key(base, "cat1", "openai,rules") != cache_key(base, "cat1", "rules")
    other_places = ParseRequest("two bubble teas", locale="en", address_labels=("home",))
    assert cache_key(base, "cat1", "rules") != cache_key(other_places, "cat1", "rules")


def test_cached_results_round_trip_and_are_marked_cached() -> None:
    result = order("tea", backend="rules")
    result.tokens_used = 99
    loaded = load_result(dump_result(result))
    assert loaded.actions == result.actions and loaded.backend == "rules"
    assert loaded.cached and loaded.tokens_used == 0  # a hit costs no model tokens


# --- tenant limits (in-process store; the Redis store is tested in integration) -----------------


async def test_request_bucket_refuses_past_the_burst_with_a_wait() -> None:
    limiter = TenantLimiter(LocalBuckets(), requests_per_s=1, request_burst=3)
    verdicts = [await limiter.admit("t-1") for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert verdicts[-1].kind == "requests" and 500 < verdicts[-1].retry_after_ms <= 1000
    assert (await limiter.admit("t-2")).allowed  # tenants have their own buckets


async def test_token_bucket_admits_until_used_tokens_exhaust_it() -> None:
    limiter = TenantLimiter(LocalBuckets(), tokens_per_min=600)  # 10 tokens/s
    assert (await limiter.admit("t-1")).allowed
    await limiter.charge_tokens("t-1", 650)  # one big call: 50 tokens in debt
    verdict = await limiter.admit("t-1")
    assert not verdict.allowed and verdict.kind == "tokens"
    assert verdict.retry_after_ms == pytest.approx(5100, abs=200)  # (1 - (-50)) / 10 per second
