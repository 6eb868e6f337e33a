"""Planning's Kafka model path and the gateway's per-order claim, against a real Redis (issue 13, items 2-3).

Money code as interleavings: every pair of things that can meet on one waiting order (the model's
answer, the deadline, a cancellation, a redelivered IntentAccepted) is forced in each order, and each
time the order gets one decision, and a subsidy only with a plan that stands."""

from __future__ import annotations

import time
from typing import Any

import pytest
from google.protobuf.message import Message
from redis.asyncio.client import Redis

from yiju.common.catalog import Catalog
from yiju.common.consumer import EventContext
from yiju.common.decisions import DecisionStore
from yiju.common.envelope import EventMeta
from yiju.common.orders import OrderStatus
from yiju.common.settings import Settings
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.gen.gateway.v1 import gateway_pb2 as gw
from yiju.intent.projection import model_section
from yiju.intent.store import OrderStore
from yiju.intent.sweeper import Sweeper, SweepSettings
from yiju.model_gateway.backends.rules import RulesBackend
from yiju.model_gateway.kafka_worker import ParseClaims, ParseWorker
from yiju.model_gateway.tools import Action, ParseRequest, ParseResult
from yiju.planning.config import PlanningSettings
from yiju.planning.model_path import DeadlineWatcher, ModelPath
from yiju.planning.model_waits import DEADLINES_KEY, ModelWaits
from yiju.planning.planner import Planner
from yiju.planning.subsidy import Subsidies, grant_key

USER = "u-1002"
TWO_TEAS = gw.ParseIntentResponse(
    actions=[
        gw.Action(tool="order_item", sku="tea-brown-sugar-boba", product_query="bubble tea", quantity=2)
    ],
    backend="openai",
)


@pytest.fixture
async def redis(scratch_redis: Redis) -> Redis:
    return scratch_redis


class World:
    """One planning replica's model path on a shared Redis, plus what it emitted."""

    def __init__(self, redis: Redis, catalog: Catalog, **config: Any) -> None:
        self.redis = redis
        self.catalog = catalog
        self.subsidies = Subsidies(redis, catalog.campaign)
        self.planner = Planner(
            catalog,
            None,
            self.subsidies,
            DecisionStore(redis, "planning", 3600),
            Settings(),  # type: ignore[arg-type]
        )
        self.config = PlanningSettings(model_path="kafka", **config)
        self.path = ModelPath(self.planner, ModelWaits(redis, 3600), self.config, RulesBackend(catalog))
        self.planner.model_path = self.planner.model_waits = self.path

    @staticmethod
    def ctx(order_id: str) -> EventContext:
        return EventContext(EventMeta("e", "t", "test", "", order_id, "topic", 0, 0, {}))

    async def accept(self, order_id: str, text: str = "two bubble teas") -> list[Message]:
        ctx = self.ctx(order_id)
        await self.planner.on_intent_accepted(
            ev.IntentAccepted(order_id=order_id, user_id=USER, text=text), ctx
        )
        return [m for m, _ in ctx.emitted]

    async def answer(self, order_id: str, result: gw.ParseIntentResponse = TWO_TEAS) -> list[Message]:
        ctx = self.ctx(order_id)
        await self.planner.on_parse_completed(
            ev.ParseCompleted(order_id=order_id, user_id=USER, result=result, model_calls=1), ctx
        )
        return [m for m, _ in ctx.emitted]

    async def deadline(self, order_id: str) -> Message | None:
        return await self.path.expire(order_id)

    async def cancel(self, order_id: str) -> None:
        await self.planner.on_money_released(
            ev.OrderCancelled(order_id=order_id, user_id=USER, reason="not planned in time"),
            self.ctx(order_id),
        )

    async def grant(self, order_id: str) -> str | None:
        assert self.catalog.campaign is not None
        return await self.redis.get(grant_key(self.catalog.campaign.id, order_id))


async def world_of(redis: Redis, catalog: Catalog, **config: Any) -> World:
    world = World(redis, catalog, **config)
    await world.subsidies.initialise()  # the campaign budget, as planning seeds it at start
    return world


async def test_accepting_asks_the_model_commits_and_reserves_nothing(redis: Redis, catalog: Catalog) -> None:
    world = await world_of(redis, catalog, model_deadline_s=180)
    before = time.time() * 1000
    [request] = await world.accept("o-1")
    assert isinstance(request, ev.ParseRequested)
    assert request.request.text == "two bubble teas" and request.request.request_id == "o-1"
    assert before + 179_000 <= request.deadline_ms <= time.time() * 1000 + 180_000
    assert await world.grant("o-1") is None, "a subsidy was reserved before the plan exists"
    [again] = await world.accept("o-1")  # redelivered, or re-driven by the sweeper: the same deadline
    assert again.deadline_ms == request.deadline_ms  # type: ignore[attr-defined]


async def test_answer_then_deadline_plans_once_from_the_answer(redis: Redis, catalog: Catalog) -> None:
    world = await world_of(redis, catalog, model_deadline_fallback="reject")
    await world.accept("o-2")
    [plan] = await world.answer("o-2")
    assert isinstance(plan, ev.PlanCreated)
    assert [(ln.sku, ln.quantity) for ln in plan.plan.lines] == [("tea-brown-sugar-boba", 2)]
    assert plan.plan.payer_account == f"wallet:{USER}" and plan.plan.subsidy_fen == 1000
    assert await world.deadline("o-2") == plan
    assert await world.answer("o-2") == [plan]  # a redelivered answer: the same decision
    assert await world.grant("o-2") == "1000"
    assert await redis.zcard(DEADLINES_KEY) == 0


async def test_deadline_then_answer_rejects_and_holds_no_subsidy(redis: Redis, catalog: Catalog) -> None:
    world = await world_of(redis, catalog, model_deadline_s=30, model_deadline_fallback="reject")
    await world.accept("o-3")
    rejected = await world.deadline("o-3")
    assert isinstance(rejected, ev.PlanRejected)
    assert rejected.code == "model_timeout" and "30 s" in rejected.reason
    assert await world.answer("o-3") == [rejected], "a late answer changed the decision"
    assert await world.grant("o-3") is None


async def test_deadline_with_the_rules_fallback_plans_from_the_rules_backend(
    redis: Redis, catalog: Catalog
) -> None:
    world = await world_of(redis, catalog, model_deadline_fallback="rules")
    await world.accept("o-4", "order two bubble teas")
    plan = await world.deadline("o-4")
    assert isinstance(plan, ev.PlanCreated)
    assert [(ln.sku, ln.quantity) for ln in plan.plan.lines] == [("tea-brown-sugar-boba", 2)]
    assert await world.answer("o-4", gw.ParseIntentResponse()) == [plan]


async def test_cancel_then_answer_plans_nothing_and_reserves_nothing(redis: Redis, catalog: Catalog) -> None:
    world = await world_of(redis, catalog)
    await world.accept("o-5")
    await world.cancel("o-5")
    assert await world.answer("o-5") == []
    assert await world.deadline("o-5") is not None  # the standing decision: the cancellation
    assert await world.grant("o-5") == "released"  # the tombstone: a later reserve grants nothing
    assert await redis.zcard(DEADLINES_KEY) == 0


async def test_answer_then_cancel_gives_the_subsidy_back(redis: Redis, catalog: Catalog) -> None:
    world = await world_of(redis, catalog)
    await world.accept("o-6")
    [plan] = await world.answer("o-6")
    assert isinstance(plan, ev.PlanCreated) and await world.grant("o-6") == "1000"
    await world.cancel("o-6")
    assert await world.grant("o-6") == "released"


async def test_deadline_then_cancel_and_cancel_then_deadline_hold_nothing(
    redis: Redis, catalog: Catalog
) -> None:
    world = await world_of(redis, catalog, model_deadline_fallback="reject")
    await world.accept("o-7")
    assert isinstance(await world.deadline("o-7"), ev.PlanRejected)
    await world.cancel("o-7")
    await world.accept("o-8")
    await world.cancel("o-8")
    assert isinstance(await world.deadline("o-8"), ev.OrderCancelled)
    assert await world.grant("o-7") in (None, "released") and await world.grant("o-8") == "released"


async def test_an_intent_redelivered_after_the_deadline_is_decided_at_once(
    redis: Redis, catalog: Catalog
) -> None:
    world = await world_of(redis, catalog, model_deadline_s=0.001, model_deadline_fallback="reject")
    await world.accept("o-9")
    time.sleep(0.005)  # noqa: ASYNC251 - a 1 ms deadline in the past, not a wait for another task
    [rejected] = await world.accept("o-9")
    assert isinstance(rejected, ev.PlanRejected) and rejected.code == "model_timeout"


async def test_the_deadline_watcher_publishes_the_decision_of_every_due_wait(
    redis: Redis, catalog: Catalog
) -> None:
    class Publisher:
        def __init__(self) -> None:
            self.sent: list[Message] = []

        async def publish(self, message: Message, order_id: str, **_: Any) -> None:
            self.sent.append(message)

    world = await world_of(redis, catalog, model_deadline_fallback="reject")
    await world.accept("o-10")
    await world.accept("o-11")
    await world.answer("o-11")
    publisher = Publisher()
    watcher = DeadlineWatcher(world.path, publisher, world.config)  # type: ignore[arg-type]
    assert await watcher.scan_once(now=int(time.time() * 1000) + 10**9) == 1  # o-11 is off the list
    [rejected] = publisher.sent
    assert isinstance(rejected, ev.PlanRejected) and rejected.order_id == "o-10"


class CountingModel:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    async def parse(self, request: ParseRequest) -> ParseResult:
        self.calls[request.text] = self.calls.get(request.text, 0) + 1
        return ParseResult(
            actions=[Action(tool="order_item", product_query="latte", quantity=1)], backend="openai"
        )


def parse_requested(order_id: str, text: str, deadline_ms: int = 0) -> ev.ParseRequested:
    return ev.ParseRequested(
        order_id=order_id,
        user_id=USER,
        request=gw.ParseIntentRequest(text=text, user_id=USER, tenant_id=USER),
        deadline_ms=deadline_ms or int(time.time() * 1000) + 60_000,
    )


async def test_a_redelivered_request_replays_the_answer_across_a_gateway_restart(redis: Redis) -> None:
    model = CountingModel()
    first = ParseWorker(model.parse, ParseClaims(redis, 3600))
    ctx = World.ctx("g-1")
    await first.on_parse_requested(parse_requested("g-1", "one latte"), ctx)
    [(answer, _)] = ctx.emitted
    assert isinstance(answer, ev.ParseCompleted) and answer.model_calls == 1
    restarted = ParseWorker(model.parse, ParseClaims(redis, 3600))  # a new process, the same Redis
    replay = World.ctx("g-1")
    await restarted.on_parse_requested(parse_requested("g-1", "one latte"), replay)
    assert [m for m, _ in replay.emitted] == [answer]
    assert model.calls == {"one latte": 1}
    assert await ParseClaims(redis, 3600).calls("g-1") == 1


async def test_a_call_lost_with_a_crashed_gateway_is_not_made_again(redis: Redis) -> None:
    model = CountingModel()
    crashed = ParseClaims(redis, 3600)  # claimed and called, then died: its liveness key is gone
    assert (await crashed.claim("g-2")).state == "new"
    ctx = World.ctx("g-2")
    await ParseWorker(model.parse, ParseClaims(redis, 3600)).on_parse_requested(
        parse_requested("g-2", "one latte"), ctx
    )
    [(lost, _)] = ctx.emitted  # answered at once as lost: planning need not wait for its deadline
    assert isinstance(lost, ev.ParseCompleted) and crashed.replica in lost.lost_reason
    assert model.calls == {}


async def test_a_request_past_its_deadline_is_not_sent_to_the_model(redis: Redis) -> None:
    model = CountingModel()
    ctx = World.ctx("g-3")
    past = int(time.time() * 1000) - 1
    await ParseWorker(model.parse, ParseClaims(redis, 3600)).on_parse_requested(
        parse_requested("g-3", "one latte", deadline_ms=past), ctx
    )
    assert ctx.emitted == [] and model.calls == {}


async def test_a_call_that_raised_gives_the_claim_back(redis: Redis) -> None:
    async def broken(request: ParseRequest) -> ParseResult:
        raise ConnectionError("redis cache away")

    claims = ParseClaims(redis, 3600)
    with pytest.raises(ConnectionError):
        await ParseWorker(broken, claims).on_parse_requested(
            parse_requested("g-4", "one latte"), World.ctx("g-4")
        )
    model = CountingModel()
    ctx = World.ctx("g-4")
    await ParseWorker(model.parse, claims).on_parse_requested(parse_requested("g-4", "one latte"), ctx)
    assert len(ctx.emitted) == 1 and model.calls == {"one latte": 1}


async def test_the_sweeper_leaves_an_order_waiting_on_the_model_until_its_deadline(redis: Redis) -> None:
    class Publisher:
        def __init__(self) -> None:
            self.sent: list[Message] = []

        async def publish(self, message: Message, order_id: str, **_: Any) -> None:
            self.sent.append(message)

    store = OrderStore(redis)
    publisher = Publisher()
    config = SweepSettings(after_s=120, cluster_lag_guard=False, redrives=1)
    sweeper = Sweeper(store, publisher, redis, Settings(), config)  # type: ignore[arg-type]
    now = int(time.time() * 1000)
    deadline = now + 180_000
    await store.create("s-1", USER, "two bubble teas", "en", "2026-01-01T00:00:00Z", "")
    await store.apply(
        "s-1",
        OrderStatus.AWAITING_MODEL,
        "2026-01-01T00:00:01Z",
        "waiting for the model",
        {"model": model_section(ev.ParseRequested(deadline_ms=deadline, requested_at_ms=now))},
    )
    for moment in (now + 121_000, deadline, deadline + 119_000):  # idle, at, and just after the deadline
        assert await sweeper.sweep_order("s-1", moment) == "awaiting_model"
    assert publisher.sent == []
    assert await sweeper.sweep_order("s-1", deadline + 121_000) == "redriven"
    [redriven] = publisher.sent
    assert isinstance(redriven, ev.IntentAccepted) and redriven.order_id == "s-1"
