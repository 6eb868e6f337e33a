"""The Kafka model path end to end (issue 13, items 2-3): planning asks the gateway over
yiju.parse.requested.v1 and commits, the gateway answers on yiju.parse.completed.v1 when a slow
OpenAI-compatible model has answered. Through the real broker, with all five services."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka.partitioner import murmur2
from starlette.requests import Request
from starlette.responses import Response

from tests.conftest import platform_on
from tests.integration.conftest import owner_api, redis_of, started
from yiju.common.orders import TERMINAL
from yiju.model_gateway.fake_openai import FakeOpenAI, sentence_of, tool_calls_reply
from yiju.model_gateway.kafka_worker import claim_key
from yiju_infra.local.broker import BrokerServer
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration

DEADLINE_S = 30
SLOW_S = 20.0
USER = "u-1004"


class SlowModel(FakeOpenAI):
    """Answers like a model that takes its time: each sentence's delay is chosen by a word in it
    ("slow" 20 s, "hang" 10 min, "medium" 6 s); "garbage" answers non-JSON tool arguments (always, or
    only the first time with "garbage-once"). Every call is counted by sentence."""

    def __init__(self) -> None:
        super().__init__(reply=self.answer)
        self.calls: Counter[str] = Counter()
        self.started: dict[str, asyncio.Event] = {}

    def started_event(self, word: str) -> asyncio.Event:
        return self.started.setdefault(word, asyncio.Event())

    async def _chat(self, request: Request) -> Response:
        sentence = sentence_of(await request.json())
        self.calls[sentence] += 1
        for word, delay in (("slow", SLOW_S), ("hang", 600.0), ("medium", 6.0)):
            if word in sentence:
                self.started_event(word).set()
                await asyncio.sleep(delay)
        return await super()._chat(request)

    def answer(self, body: dict[str, Any]) -> Any:
        sentence = sentence_of(body)
        if "garbage" in sentence and (self.calls[sentence] == 1 or "garbage-once" not in sentence):
            return tool_calls_reply([("order_item", "{not json")])
        return tool_calls_reply([("order_item", {"product_query": "latte", "quantity": 1})])


def model_path_env(model: SlowModel, deadline_s: int) -> dict[str, str]:
    """The Kafka model path against the slow model, with the rules backend at the deadline."""
    return {
        "YIJU_PLANNING_MODEL_PATH": "kafka",
        "YIJU_PLANNING_MODEL_DEADLINE_S": str(deadline_s),
        "YIJU_PLANNING_MODEL_DEADLINE_FALLBACK": "rules",
        "YIJU_GATEWAY_BACKENDS": "openai",
        "YIJU_OPENAI_BASE_URL": model.url,
        "YIJU_GATEWAY_TIMEOUT_S": "900",
        "YIJU_GATEWAY_CACHE_TTL_S": "0",
        "YIJU_GATEWAY_INVALID_RETRIES": "1",
    }


async def serve_slow_model() -> AsyncIterator[SlowModel]:
    """The slow model on a port of its own, served for one module's tests (its `model` fixture)."""
    server = SlowModel()
    await server.start()
    yield server
    await server.stop()


model = pytest.fixture(scope="module", name="model")(serve_slow_model)


@pytest.fixture(scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, shared_kafka: BrokerServer, model: SlowModel
) -> AsyncIterator[LocalPlatform]:
    plat = platform_on(
        shared_kafka, tmp_path_factory.mktemp("model-path"), extra_env=model_path_env(model, DEADLINE_S)
    )
    async with started(plat):
        yield plat


@pytest.fixture(scope="module")
async def api(platform: LocalPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with owner_api(platform) as client:
        yield client


async def submit(api: httpx.AsyncClient, text: str) -> str:
    reply = await api.post("/v1/intents", json={"user_id": USER, "text": text})
    assert reply.status_code == 202, reply.text
    return str(reply.json()["order_id"])


async def wait_status(
    api: httpx.AsyncClient, order_id: str, statuses: set[str], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    order: dict[str, Any] = {}
    while time.monotonic() < deadline:
        reply = await api.get(f"/v1/orders/{order_id}")
        if reply.status_code == 200:
            order = reply.json()
            if order["status"] in statuses:
                return order
        await asyncio.sleep(0.1)
    raise AssertionError(f"order {order_id} not in {statuses} within {timeout}s: {order}")


def partition_of(order_id: str, partitions: int) -> int:
    return (murmur2(order_id.encode()) & 0x7FFFFFFF) % partitions


def statuses(order: dict[str, Any]) -> list[str]:
    return [h["status"] for h in order["history"]]


async def test_a_slow_answer_does_not_hold_a_fast_one_on_its_partition(
    api: httpx.AsyncClient, platform: LocalPlatform, model: SlowModel
) -> None:
    slow = await submit(api, "a slow latte please")
    waiting = await wait_status(api, slow, {"AWAITING_MODEL"}, 30)
    assert statuses(waiting) == ["ACCEPTED", "AWAITING_MODEL"]
    await model.started_event("slow").wait()  # the slow call is in the model now
    partitions = platform.settings().kafka_partitions
    fast_orders = []
    for i in range(60):  # until one fast order shares the slow one's partition of the request topic
        fast = await submit(api, f"a quick latte number {i}")
        fast_orders.append(fast)
        if partition_of(fast, partitions) == partition_of(slow, partitions):
            break
    assert partition_of(fast_orders[-1], partitions) == partition_of(slow, partitions)
    began = time.monotonic()
    for fast in fast_orders:
        order = await wait_status(api, fast, set(TERMINAL), SLOW_S)
        assert order["status"] == "COMPLETED", order
    fast_took = time.monotonic() - began
    order = await wait_status(api, slow, {"AWAITING_MODEL"}, 1)  # still waiting: it was not in the way
    assert fast_took < SLOW_S, f"fast orders took {fast_took:.1f}s, as long as the slow answer"
    order = await wait_status(api, slow, set(TERMINAL), SLOW_S + 30)
    assert order["status"] == "COMPLETED"
    assert statuses(order)[:2] == ["ACCEPTED", "AWAITING_MODEL"]
    assert model.calls["a slow latte please"] == 1


async def test_restarts_of_planning_and_the_gateway_while_waiting_repeat_no_model_call(
    api: httpx.AsyncClient, platform: LocalPlatform, model: SlowModel
) -> None:
    order_id = await submit(api, "a medium latte after restarts")
    await wait_status(api, order_id, {"AWAITING_MODEL"}, 30)
    await model.started_event("medium").wait()
    await platform.restart("planning")  # planning holds nothing while the model thinks
    await platform.restart("model_gateway")  # SIGTERM: the running call finishes in its grace time
    order = await wait_status(api, order_id, set(TERMINAL), 60)
    assert order["status"] == "COMPLETED", order
    assert model.calls["a medium latte after restarts"] == 1


async def test_kill_9_of_the_gateway_mid_call_is_answered_as_lost_without_a_second_call(
    api: httpx.AsyncClient, platform: LocalPlatform, model: SlowModel
) -> None:
    text = "hang on, two bubble teas"
    order_id = await submit(api, text)
    await wait_status(api, order_id, {"AWAITING_MODEL"}, 30)
    await model.started_event("hang").wait()
    platform.kill("model_gateway")  # the call's answer is lost with it; the watcher restarts it
    platform.kill("planning")
    order = await wait_status(api, order_id, set(TERMINAL), DEADLINE_S + 60)
    # The restarted gateway found the dead replica's claim and answered "lost" (not calling the model
    # again); planning's rules fallback planned it: completed, paid once, never cancelled by the sweeper.
    assert order["status"] == "COMPLETED", order
    assert [(ln["sku"], ln["quantity"]) for ln in order["lines"]] == [("tea-brown-sugar-boba", 2)]
    assert order["payment"]["captured_fen"] == order["total_fen"]
    assert "CANCELLED" not in statuses(order)
    assert model.calls[text] == 1, "the sentence went to the model twice"
    async with redis_of(platform) as redis:
        claim = await redis.hgetall(claim_key(order_id))
    assert claim["lost_replica"] == claim["replica"] and claim["calls"] == "1", claim


async def test_a_model_that_never_answers_ends_at_the_deadline_by_the_rules_fallback(
    api: httpx.AsyncClient, platform: LocalPlatform, model: SlowModel
) -> None:
    text = "hang there, one latte"
    submitted = time.monotonic()
    order_id = await submit(api, text)
    await wait_status(api, order_id, {"AWAITING_MODEL"}, 30)
    order = await wait_status(api, order_id, set(TERMINAL), DEADLINE_S + 60)
    # Nothing answered: the gateway's replica is alive and its call still hangs, so the order waited
    # for its deadline (not a lost call), then the rules backend planned it; the sweeper left it alone.
    assert time.monotonic() - submitted >= DEADLINE_S
    assert order["status"] == "COMPLETED", order
    assert statuses(order)[:2] == ["ACCEPTED", "AWAITING_MODEL"] and "CANCELLED" not in statuses(order)
    assert order["payment"]["captured_fen"] == order["total_fen"]
    assert model.calls[text] == 1
    async with redis_of(platform) as redis:
        claim = await redis.hgetall(claim_key(order_id))
    assert claim["state"] == "claimed" and "lost_replica" not in claim, claim


async def test_garbage_answers_are_retried_then_handled(api: httpx.AsyncClient, model: SlowModel) -> None:
    once = await submit(api, "garbage-once then a latte")
    always = await submit(api, "garbage forever")
    order = await wait_status(api, once, set(TERMINAL), 30)
    assert order["status"] == "COMPLETED", order
    assert model.calls["garbage-once then a latte"] == 2  # the gateway asked once more, then it was fine
    order = await wait_status(api, always, set(TERMINAL), 30)
    assert order["status"] == "NEEDS_CLARIFICATION", order
    assert order["reason"]
