"""Money races, forced both ways: each pair of events that can meet on one order, in each order.

* the subsidy: a release (an order cancelled on one planning replica) against the reserve (its
  IntentAccepted planned on another);
* fulfilment: the intent sweeper failing an AUTHORIZED order against a slow provider;
* the Kafka intake: a redelivered intent whose order exists already.

Real Redis (a server of this module's own, so the scratch keys never meet a platform), real scripts,
real handlers and the real sweeper; Kafka is replaced by a recording publisher, and each interleaving
is forced with events the fakes wait on (no sleeps).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis
from google.protobuf.message import Message

from yiju.common.catalog import Campaign, Catalog
from yiju.common.consumer import BatchProcessor, EventContext
from yiju.common.decisions import DecisionStore
from yiju.common.envelope import EventMeta, build_headers, now_iso, spec_for
from yiju.common.orders import OrderStatus
from yiju.common.settings import Settings
from yiju.common.topics import Namespace
from yiju.fulfilment.dispatcher import Dispatcher, dispatching_key
from yiju.fulfilment.providers import Dispatch, Provider, time_bound
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.gen.gateway.v1 import gateway_pb2 as gw
from yiju.intent.ingest import Ingest
from yiju.intent.store import OrderStore
from yiju.intent.sweeper import Sweeper, SweepSettings
from yiju.planning.planner import Planner
from yiju.planning.subsidy import Subsidies, budget_key, grant_key

pytestmark = pytest.mark.integration
USER = "u-1004"


@pytest.fixture
async def redis(scratch_redis: aioredis.Redis) -> aioredis.Redis:
    return scratch_redis


def _ctx(order_id: str, message: Message) -> EventContext:
    spec = spec_for(message)
    meta = EventMeta(str(uuid.uuid4()), spec.type, "test", now_iso(), order_id, spec.topic, 0, 0, {})
    return EventContext(meta)


def _order_id() -> str:
    return f"ord_{uuid.uuid4().hex[:20]}"


@dataclass
class Recording:
    """Stands in for the Kafka publisher: records what is published; the broker acknowledges at once
    unless `hold` is set (then the acknowledgement never comes, as with a broker that is away)."""

    published: list[tuple[Message, str, str | None]] = field(default_factory=list)
    dead_letters: list[dict[str, str]] = field(default_factory=list)
    hold: bool = False

    @property
    def broker(self) -> Recording:
        return self

    async def send(
        self, message: Message, order_id: str, *, extra_headers: Any = None, eid: str | None = None
    ) -> asyncio.Future:
        self.published.append((message, order_id, eid))
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        if not self.hold:
            future.set_result(None)
        return future

    async def publish(self, message: Any, order_id: str, **kwargs: Any) -> None:
        if isinstance(message, bytes):  # BatchProcessor.dead_letter: broker.publish(value, topic, ...)
            self.dead_letters.append(dict(kwargs["headers"]))
            return
        await (await self.send(message, order_id, **kwargs))

    def of_type(self, cls: type[Message]) -> list[Message]:
        return [m for m, _, _ in self.published if isinstance(m, cls)]


# ----- 1. subsidy: release against reserve, on two planning replicas


def _campaign() -> Campaign:
    return Campaign(
        id=f"race-{uuid.uuid4().hex[:8]}",
        name="race",
        min_order_fen=3000,
        discount_fen=1000,
        budget_fen=100_000,
        per_user_max_uses=3,
    )


async def _nothing_reserved(redis: aioredis.Redis, campaign: Campaign, order_id: str, user: str) -> None:
    assert int(await redis.get(budget_key(campaign.id))) == campaign.budget_fen
    assert int(await redis.get(f"subsidy:{{{campaign.id}}}:uses:{user}") or 0) == 0
    assert await redis.get(grant_key(campaign.id, order_id)) == "released"
    assert 0 < await redis.ttl(grant_key(campaign.id, order_id)) <= 3600


async def test_a_release_that_overtakes_the_reserve_leaves_a_tombstone(redis: aioredis.Redis) -> None:
    campaign = _campaign()
    planning_a, planning_b = Subsidies(redis, campaign, 3600), Subsidies(redis, campaign, 3600)
    await planning_a.initialise()
    assert await planning_b.release("o1", "u1") == 0  # the cancel, handled on replica b first
    assert await planning_a.reserve("o1", "u1", 5000) == 0  # the plan on replica a: nothing granted
    assert await planning_b.release("o1", "u1") == 0  # and a redelivered cancel gives nothing back
    await _nothing_reserved(redis, campaign, "o1", "u1")
    assert await redis.xlen(f"subsidy:{{{campaign.id}}}:ledger") == 0


async def test_a_reserve_before_the_release_is_given_back(redis: aioredis.Redis) -> None:
    campaign = _campaign()
    planning_a, planning_b = Subsidies(redis, campaign, 3600), Subsidies(redis, campaign, 3600)
    await planning_a.initialise()
    assert await planning_a.reserve("o1", "u1", 5000) == 1000
    assert 0 < await redis.ttl(grant_key(campaign.id, "o1")) <= 3600  # a grant is bounded state too
    assert await planning_b.release("o1", "u1") == 1000
    assert await planning_a.reserve("o1", "u1", 5000) == 0  # a redelivered plan grants nothing again
    await _nothing_reserved(redis, campaign, "o1", "u1")


async def test_concurrent_reserves_and_releases_never_leave_anything_reserved(redis: aioredis.Redis) -> None:
    campaign = _campaign()
    planning_a, planning_b = Subsidies(redis, campaign, 3600), Subsidies(redis, campaign, 3600)
    await planning_a.initialise()
    calls: list[tuple[str, Awaitable[int]]] = []
    for i in range(100):  # half with the release sent first, half with the reserve first
        reserve = ("reserve", planning_a.reserve(f"o{i}", f"u{i}", 5000))
        release = ("release", planning_b.release(f"o{i}", f"u{i}"))
        calls += [release, reserve] if i % 2 else [reserve, release]
    results = await asyncio.gather(*(call for _, call in calls))
    granted = sum(r for (kind, _), r in zip(calls, results, strict=True) if kind == "reserve")
    released = sum(r for (kind, _), r in zip(calls, results, strict=True) if kind == "release")
    assert granted == released  # whatever was granted was given back, and nothing else
    assert int(await redis.get(budget_key(campaign.id))) == campaign.budget_fen
    for i in range(100):
        assert await redis.get(grant_key(campaign.id, f"o{i}")) == "released"
        assert int(await redis.get(f"subsidy:{{{campaign.id}}}:uses:u{i}") or 0) == 0


class GatedGateway:
    """The model gateway, answering "two bubble teas" once `go` is set."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    async def ParseIntent(self, request: gw.ParseIntentRequest, timeout: float | None = None) -> Any:
        self.entered.set()
        await self.go.wait()
        return gw.ParseIntentResponse(
            actions=[gw.Action(tool="order_item", sku="tea-brown-sugar-boba", quantity=2)],
            confidence=1.0,
            backend="test",
        )


class PausingSubsidies(Subsidies):
    """Subsidies that stop after a reserve (before the plan is remembered) until `go` is set."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.reserved = asyncio.Event()
        self.go = asyncio.Event()

    async def reserve(self, order_id: str, user_id: str, goods_total_fen: int) -> int:
        granted = await super().reserve(order_id, user_id, goods_total_fen)
        self.reserved.set()
        await self.go.wait()
        return granted


def _planner(catalog: Catalog, gateway: GatedGateway, subsidies: Subsidies, redis: aioredis.Redis) -> Planner:
    decisions = DecisionStore(redis, "planning", 3600)
    return Planner(catalog, gateway, subsidies, decisions, Settings())  # type: ignore[arg-type]


@pytest.mark.parametrize("cancel_at", ["before_planning", "during_parse", "after_reserve", "after_plan"])
async def test_a_cancel_on_one_planning_replica_racing_the_plan_on_another(
    redis: aioredis.Redis, catalog: Catalog, cancel_at: str
) -> None:
    assert catalog.campaign is not None
    campaign = catalog.campaign
    gateway, subsidies_a = GatedGateway(), PausingSubsidies(redis, campaign, 3600)
    await subsidies_a.initialise()
    replica_a = _planner(catalog, gateway, subsidies_a, redis)
    replica_b = _planner(catalog, GatedGateway(), Subsidies(redis, campaign, 3600), redis)
    order_id = _order_id()
    accepted = ev.IntentAccepted(order_id=order_id, user_id=USER, text="two bubble teas", locale="en-AE")
    cancelled = ev.OrderCancelled(order_id=order_id, user_id=USER, reason="not planned in time")
    planned_ctx = _ctx(order_id, accepted)

    async def cancel() -> None:  # the sweeper's OrderCancelled, handled by replica b
        await replica_b.on_money_released(cancelled, _ctx(order_id, cancelled))

    if cancel_at == "before_planning":
        await cancel()
    if cancel_at != "during_parse":
        gateway.go.set()
    if cancel_at != "after_reserve":
        subsidies_a.go.set()
    planning = asyncio.create_task(replica_a.on_intent_accepted(accepted, planned_ctx))
    if cancel_at == "during_parse":  # replica a has not reserved yet: the release comes first
        await gateway.entered.wait()
        await cancel()
        gateway.go.set()
    elif cancel_at == "after_reserve":  # reserved, the plan not remembered yet
        await subsidies_a.reserved.wait()
        await cancel()
        subsidies_a.go.set()
    await planning
    emitted = [message for message, _ in planned_ctx.emitted]
    if cancel_at == "after_plan":
        [plan] = emitted
        assert isinstance(plan, ev.PlanCreated) and plan.plan.subsidy_fen == campaign.discount_fen
        await cancel()
    elif cancel_at == "before_planning":
        assert emitted == []  # nothing planned for a cancelled order
    else:
        assert emitted == [cancelled]  # the cancel stands; the plan that lost is never emitted
    await _nothing_reserved(redis, campaign, order_id, USER)


# ----- 2. fulfilment: the sweeper failing an AUTHORIZED order against a slow provider


class GatedProvider:
    """A provider that answers a dispatch once `answer` is set (never, if it is not)."""

    def __init__(self, vertical: str, *, answer: bool = True) -> None:
        self.vertical = vertical
        self.received = asyncio.Event()
        self.answer = asyncio.Event()
        if answer:
            self.answer.set()
        self.dispatched: list[str] = []
        self.cancelled: list[str] = []
        self.cancelled_lines: list[str] = []

    async def dispatch(self, order_id: str, line: ev.PlanLine) -> Dispatch:
        self.received.set()
        await self.answer.wait()
        ref = f"{self.vertical}/{order_id}/{line.sku}"
        self.dispatched.append(ref)
        return Dispatch(ref)

    async def cancel(self, order_id: str, dispatch: Dispatch) -> None:
        self.cancelled.append(dispatch.provider_ref)

    async def cancel_unconfirmed(self, order_id: str, line: ev.PlanLine) -> None:
        self.cancelled_lines.append(line.sku)


def _authorized(order_id: str) -> ev.PaymentAuthorized:
    lines = [
        ev.PlanLine(sku="tea-brown-sugar-boba", vertical="food", quantity=2, line_total_fen=3600),
        ev.PlanLine(sku="groc-eggs-12", vertical="grocery", quantity=1, line_total_fen=1500),
    ]
    plan = ev.Plan(lines=lines, subtotal_fen=5100, total_fen=5100, payer_account=f"wallet:{USER}")
    return ev.PaymentAuthorized(
        order_id=order_id, user_id=USER, amount_fen=5100, authorization_id=f"auth-{order_id}", plan=plan
    )


@dataclass
class FulfilmentRace:
    redis: aioredis.Redis
    food: GatedProvider
    grocery: GatedProvider
    sweeps: Recording
    order_id: str
    timeout_s: float = 30.0

    def dispatcher(self) -> Dispatcher:
        providers: dict[str, Provider] = {"food": self.food, "grocery": self.grocery}
        return Dispatcher(
            time_bound(providers, self.timeout_s), DecisionStore(self.redis, "fulfilment", 3600)
        )

    def sweeper(self) -> Sweeper:
        config = SweepSettings(redrives=0, after_s=0)
        return Sweeper(OrderStore(self.redis), self.sweeps, self.redis, Settings(), config)  # type: ignore[arg-type]

    async def authorize(self, dispatcher: Dispatcher | None = None) -> list[Message]:
        event = _authorized(self.order_id)
        ctx = _ctx(self.order_id, event)
        await (dispatcher or self.dispatcher()).on_payment_authorized(event, ctx)
        return [message for message, _ in ctx.emitted]

    async def sweep(self) -> str:
        return await self.sweeper().sweep_order(self.order_id, 0)


async def _authorized_order(
    redis: aioredis.Redis, *, slow_food: bool, timeout_s: float = 30.0
) -> FulfilmentRace:
    order_id = _order_id()
    store = OrderStore(redis)
    await store.create(order_id, USER, "two bubble teas and eggs", "en-AE", now_iso(), "")
    await store.apply(order_id, OrderStatus.AUTHORIZED, now_iso())
    food = GatedProvider("food", answer=not slow_food)
    return FulfilmentRace(redis, food, GatedProvider("grocery"), Recording(), order_id, timeout_s)


async def test_the_sweeper_failing_an_order_mid_dispatch_cancels_what_was_dispatched(
    redis: aioredis.Redis,
) -> None:
    race = await _authorized_order(redis, slow_food=True)
    fulfilling = asyncio.create_task(race.authorize())
    await race.food.received.wait()  # the providers have been called; the food provider is slow
    assert await race.sweep() == "timed_out"  # the sweeper's claim lands first
    race.food.answer.set()
    [emitted] = await fulfilling
    [claimed] = race.sweeps.of_type(ev.FulfilmentFailed)
    assert emitted == claimed and emitted.reason == "fulfilment timed out"  # payment voids on it
    dispatched = race.food.dispatched + race.grocery.dispatched
    assert len(dispatched) == 2
    assert sorted(race.food.cancelled + race.grocery.cancelled) == sorted(dispatched)
    assert not await redis.exists(dispatching_key(race.order_id))
    assert await race.authorize() == [claimed]  # a redelivery cancels nothing more, dispatches nothing
    assert len(race.food.dispatched + race.grocery.dispatched) == 2
    assert len(race.food.cancelled + race.grocery.cancelled) == 2


async def test_a_dispatch_that_finishes_before_the_sweeper_stands(redis: aioredis.Redis) -> None:
    race = await _authorized_order(redis, slow_food=False)
    [completed] = await race.authorize()
    assert isinstance(completed, ev.FulfilmentCompleted)
    assert await race.sweep() == "redriven"  # the claim loses: the completion is re-driven (capture)
    assert race.sweeps.of_type(ev.FulfilmentCompleted) == [completed]
    assert race.food.cancelled == race.grocery.cancelled == []
    assert not await redis.exists(dispatching_key(race.order_id))


async def test_a_sweeper_claim_before_the_authorization_dispatches_nothing(redis: aioredis.Redis) -> None:
    race = await _authorized_order(redis, slow_food=False)
    assert await race.sweep() == "timed_out"
    [claimed] = race.sweeps.of_type(ev.FulfilmentFailed)
    assert await race.authorize() == [claimed]
    assert not race.food.received.is_set() and not race.grocery.received.is_set()
    assert race.food.cancelled_lines == race.grocery.cancelled_lines == []


async def test_a_dispatch_interrupted_by_a_crash_is_cancelled_on_the_redelivery(
    redis: aioredis.Redis,
) -> None:
    race = await _authorized_order(redis, slow_food=True)
    fulfilling = asyncio.create_task(race.authorize())
    await race.food.received.wait()
    assert await race.sweep() == "timed_out"
    fulfilling.cancel()  # the process dies with the providers' answers unknown
    with pytest.raises(asyncio.CancelledError):
        await fulfilling
    [claimed] = race.sweeps.of_type(ev.FulfilmentFailed)
    race.food.answer.set()
    assert await race.authorize() == [claimed]  # the redelivery, on a fresh replica
    assert race.food.cancelled_lines == ["tea-brown-sugar-boba"]
    assert race.grocery.cancelled_lines == ["groc-eggs-12"]
    assert race.food.dispatched == []  # nothing dispatched again
    assert await race.authorize() == [claimed]  # and a further redelivery has nothing left to cancel
    assert len(race.food.cancelled_lines + race.grocery.cancelled_lines) == 2


async def test_a_provider_that_does_not_answer_in_time_fails_its_line_and_it_is_cancelled(
    redis: aioredis.Redis,
) -> None:
    race = await _authorized_order(redis, slow_food=True, timeout_s=0.2)  # food never answers
    async with asyncio.timeout(20):  # a guard: without provider deadlines this would hang
        [failed] = await race.authorize()
    assert isinstance(failed, ev.FulfilmentFailed) and "did not answer" in failed.reason
    records = {r.sku: r.status for r in failed.records}
    assert records == {"tea-brown-sugar-boba": "FAILED", "groc-eggs-12": "CANCELLED"}
    assert race.food.cancelled_lines == ["tea-brown-sugar-boba"]  # it may have taken it: cancelled
    assert race.grocery.cancelled == race.grocery.dispatched


# ----- 3. the Kafka intake: a redelivered intent whose order exists


@dataclass
class IntakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class GatedStore(OrderStore):
    """An order store whose create waits for `go` (a request that has claimed its key, not yet more)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        super().__init__(redis)
        self.creating = asyncio.Event()
        self.go = asyncio.Event()
        self.go.set()

    async def create(self, *args: Any) -> bool:
        self.creating.set()
        await self.go.wait()
        return await super().create(*args)


@dataclass
class Intake:
    ingest: Ingest
    store: GatedStore
    publisher: Recording
    processor: BatchProcessor
    settings: Settings

    def record(self, key: str, text: str) -> IntakeRecord:
        event = ev.IntentSubmitted(user_id=USER, text=text, idempotency_key=key, user_assertion="signed")
        spec = spec_for(event)
        headers = build_headers(spec, key, "test-client", eid=str(uuid.uuid4()))
        return IntakeRecord(
            topic=Namespace.of(self.settings).topic(spec.topic),
            partition=0,
            offset=0,
            key=key.encode(),
            value=event.SerializeToString(),
            headers=[(k, v.encode()) for k, v in headers.items()],
        )

    def accepted(self) -> list[str]:
        return [m.order_id for m in self.publisher.of_type(ev.IntentAccepted)]  # type: ignore[attr-defined]


@pytest.fixture
async def intake(redis: aioredis.Redis, catalog: Catalog) -> Intake:
    settings = Settings(edge_publish_timeout_s=0.2, handler_backoff_ms=1, handler_max_attempts=4)
    store, publisher = GatedStore(redis), Recording()
    ingest = Ingest(catalog, redis, store, publisher, settings)  # type: ignore[arg-type]
    # Authentication is not the subject here (see the intake assertion tests): every record passes it.
    authenticated: Callable[..., None] = lambda event, meta: None  # noqa: E731
    ingest.authenticate_intake = authenticated  # type: ignore[method-assign]
    processor = BatchProcessor(ingest.intake_router(), publisher, redis, settings)  # type: ignore[arg-type]
    return Intake(ingest, store, publisher, processor, settings)


async def test_a_redelivered_intent_whose_order_exists_finds_it(intake: Intake) -> None:
    key = f"k-{uuid.uuid4()}"
    record = intake.record(key, "two bubble teas")
    intake.publisher.hold = True  # the broker takes the IntentAccepted but does not acknowledge in time
    with pytest.raises(Exception, match="did not take the intent in time"):
        await intake.processor.handle([record])  # the batch is rewound: the record comes again
    [order_id] = intake.accepted()  # the order exists (and its IntentAccepted may well be in the log)
    intake.publisher.hold = False
    await intake.processor.handle([record])  # the redelivery
    assert intake.publisher.dead_letters == []
    assert intake.accepted() == [order_id, order_id]  # the same order, the same event id: one order
    assert await intake.ingest.order_for_key(USER, key) == order_id
    assert await intake.store.redis.hget(f"idem:{{{USER}}}:{key}", "state") == "done"
    await intake.processor.handle([record])  # and once more: de-duplicated, nothing new
    assert intake.accepted() == [order_id, order_id] and intake.publisher.dead_letters == []


async def test_a_redelivery_while_its_key_is_claimed_before_the_order_exists_waits(intake: Intake) -> None:
    key = f"k-{uuid.uuid4()}"
    intake.store.go.clear()
    first = asyncio.create_task(intake.ingest.submit(USER, "two bubble teas", key))  # e.g. over HTTP
    await intake.store.creating.wait()  # the key is claimed, the order not created yet
    with pytest.raises(Exception, match="in progress"):
        await intake.processor.handle([intake.record(key, "two bubble teas")])  # rewound, not dead
    assert intake.publisher.dead_letters == []
    intake.store.go.set()
    submitted = await first
    await intake.processor.handle([intake.record(key, "two bubble teas")])  # the redelivery finds it
    assert intake.publisher.dead_letters == []
    assert intake.accepted() == [submitted.order_id]
