"""A model call claimed by a gateway replica that is gone (kill -9, a stop that cut the call short) is
answered as lost at once, never made again; planning ends the order as at its deadline. Against a real
Redis, each pair of things that can meet on one claim forced in both orders."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio.client import Redis

from tests.unit.test_model_path import USER, CountingModel, World, parse_requested, world_of
from yiju.common.catalog import Catalog
from yiju.common.consumer import EventContext
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.model_gateway.kafka_worker import Heartbeat, ParseClaims, ParseWorker, replica_key
from yiju.model_gateway.tools import ParseRequest, ParseResult

POLL_S = 0.02


@pytest.fixture
async def redis(scratch_redis: Redis) -> Redis:
    return scratch_redis


def worker(redis: Redis, model: CountingModel) -> tuple[ParseWorker, ParseClaims]:
    claims = ParseClaims(redis, 3600)
    return ParseWorker(model.parse, claims, hold_poll_s=POLL_S), claims


async def alive_replica(redis: Redis) -> ParseClaims:
    """Another replica that is running: its liveness key stands."""
    other = ParseClaims(redis, 3600, replica_ttl_ms=60_000)
    await other.beat()
    return other


async def held_by_another_replica(
    redis: Redis, model: CountingModel, order_id: str
) -> tuple[ParseClaims, EventContext, asyncio.Task[None]]:
    """Another live replica claimed the order (a rebalance moved the partition mid-call); this replica's
    delivery of the request is running, held."""
    other = await alive_replica(redis)
    assert (await other.claim(order_id)).state == "new"
    this, _ = worker(redis, model)
    ctx = World.ctx(order_id)
    held = asyncio.create_task(this.on_parse_requested(parse_requested(order_id, "one latte"), ctx))
    await asyncio.sleep(5 * POLL_S)
    assert not held.done() and ctx.emitted == []
    return other, ctx, held


async def test_a_claim_of_a_live_replica_is_held_until_that_replica_answers(redis: Redis) -> None:
    model = CountingModel()
    other, ctx, held = await held_by_another_replica(redis, model, "l-1")
    answer = ev.ParseCompleted(order_id="l-1", user_id=USER, model_calls=1, answered_at_ms=1)
    await other.answer("l-1", answer)  # the other replica's call answers
    await asyncio.wait_for(held, 5)
    assert [m for m, _ in ctx.emitted] == [answer] and model.calls == {}


async def test_a_held_claim_whose_replica_dies_is_answered_as_lost(redis: Redis) -> None:
    model = CountingModel()
    other, ctx, held = await held_by_another_replica(redis, model, "l-2")
    await other.leave()  # the other replica stops (or its key expires after a kill -9)
    await asyncio.wait_for(held, 5)
    [(lost, _)] = ctx.emitted
    assert isinstance(lost, ev.ParseCompleted) and other.replica in lost.lost_reason
    assert model.calls == {} and await other.calls("l-2") == 1


async def test_the_claimant_answering_just_before_the_lost_mark_wins(redis: Redis) -> None:
    crashed = ParseClaims(redis, 3600)  # looked dead to another replica, then answered after all
    await crashed.claim("l-3")
    answer = ev.ParseCompleted(order_id="l-3", user_id=USER, model_calls=1, answered_at_ms=1)
    await crashed.answer("l-3", answer)
    lost = ev.ParseCompleted(order_id="l-3", lost_reason="lost")
    assert not await ParseClaims(redis, 3600).mark_lost("l-3", crashed.replica, lost)
    assert (await crashed.claim("l-3")).stored == answer  # the real answer stands


async def test_the_lost_mark_before_a_late_answer_is_what_a_redelivery_replays(redis: Redis) -> None:
    model = CountingModel()
    crashed = ParseClaims(redis, 3600)
    await crashed.claim("l-4")
    this, _ = worker(redis, model)
    first = World.ctx("l-4")
    await this.on_parse_requested(parse_requested("l-4", "one latte"), first)
    [(lost, _)] = first.emitted
    again = World.ctx("l-4")
    await this.on_parse_requested(parse_requested("l-4", "one latte"), again)
    assert [m for m, _ in again.emitted] == [lost] and model.calls == {}


async def test_a_claim_given_back_while_held_is_called_once_by_the_holder(redis: Redis) -> None:
    model = CountingModel()
    other, ctx, held = await held_by_another_replica(redis, model, "l-5")
    await other.give_back("l-5")  # its call raised before any answer: the next delivery may call
    await asyncio.wait_for(held, 5)
    [(answer, _)] = ctx.emitted
    assert isinstance(answer, ev.ParseCompleted) and not answer.lost_reason
    assert model.calls == {"one latte": 1}


async def test_a_held_claim_is_let_go_at_the_orders_deadline(redis: Redis) -> None:
    other = await alive_replica(redis)
    await other.claim("l-6")
    model = CountingModel()
    this, _ = worker(redis, model)
    ctx = World.ctx("l-6")
    soon = int(time.time() * 1000) + 200
    await asyncio.wait_for(this.on_parse_requested(parse_requested("l-6", "one latte", soon), ctx), 5)
    assert ctx.emitted == [] and model.calls == {}  # planning's deadline ends the order


async def test_the_heartbeat_keeps_the_replica_alive_and_a_stop_lets_its_claims_go(redis: Redis) -> None:
    claims = ParseClaims(redis, 3600, replica_ttl_ms=300)
    heartbeat = Heartbeat(claims, interval_s=0.05)
    await heartbeat.start()
    await asyncio.sleep(0.5)  # longer than the key's TTL: the beats kept it
    assert await claims.alive(claims.replica)
    await heartbeat.stop()
    assert not await claims.alive(claims.replica) and not await redis.exists(replica_key(claims.replica))


async def test_a_lost_answer_takes_the_rules_fallback_at_once(redis: Redis, catalog: Catalog) -> None:
    world = await world_of(redis, catalog, model_deadline_fallback="rules")
    await world.accept("l-7", "order two bubble teas")
    ctx = World.ctx("l-7")
    lost = ev.ParseCompleted(order_id="l-7", user_id=USER, model_calls=1, lost_reason="replica r gone")
    await world.planner.on_parse_completed(lost, ctx)
    [(plan, _)] = ctx.emitted
    assert isinstance(plan, ev.PlanCreated)
    assert [(ln.sku, ln.quantity) for ln in plan.plan.lines] == [("tea-brown-sugar-boba", 2)]
    assert await world.deadline("l-7") == plan  # the deadline later: the same decision


async def test_a_lost_answer_without_the_fallback_rejects_with_the_reason(
    redis: Redis, catalog: Catalog
) -> None:
    world = await world_of(redis, catalog, model_deadline_fallback="reject")
    await world.accept("l-8")
    ctx = World.ctx("l-8")
    lost = ev.ParseCompleted(order_id="l-8", user_id=USER, model_calls=1, lost_reason="replica r gone")
    await world.planner.on_parse_completed(lost, ctx)
    [(rejected, _)] = ctx.emitted
    assert isinstance(rejected, ev.PlanRejected)
    assert (rejected.code, rejected.reason) == ("model_call_lost", "replica r gone")
    assert await world.grant("l-8") is None


async def test_the_deadline_before_a_lost_answer_stands(redis: Redis, catalog: Catalog) -> None:
    world = await world_of(redis, catalog, model_deadline_fallback="reject")
    await world.accept("l-9")
    timed_out = await world.deadline("l-9")
    assert isinstance(timed_out, ev.PlanRejected) and timed_out.code == "model_timeout"
    ctx = World.ctx("l-9")
    lost = ev.ParseCompleted(order_id="l-9", user_id=USER, model_calls=1, lost_reason="replica r gone")
    await world.planner.on_parse_completed(lost, ctx)
    assert [m for m, _ in ctx.emitted] == [timed_out]


async def test_a_claimant_answering_after_the_lost_mark_publishes_what_stands(redis: Redis) -> None:
    # The claimant looked gone (its key lapsed in a long stall) and another replica stored "lost" while
    # its call still ran; the call then answers: the stored answer stays the lost one, and that is what
    # the claimant publishes again (the same event as the first), so the record matches what planning saw.
    called, release = asyncio.Event(), asyncio.Event()

    class StalledModel(CountingModel):
        async def parse(self, request: ParseRequest) -> ParseResult:
            called.set()
            await release.wait()
            return await super().parse(request)

    model = StalledModel()
    claimant, claims = worker(redis, model)
    ctx = World.ctx("l-10")
    running = asyncio.create_task(claimant.on_parse_requested(parse_requested("l-10", "one latte"), ctx))
    await asyncio.wait_for(called.wait(), 5)  # claimed, and the model is being called
    lost = ev.ParseCompleted(order_id="l-10", user_id=USER, model_calls=1, lost_reason="looked gone")
    assert await ParseClaims(redis, 3600).mark_lost("l-10", claims.replica, lost)
    release.set()
    await asyncio.wait_for(running, 5)
    assert [m for m, _ in ctx.emitted] == [lost] and model.calls == {"one latte": 1}
    assert (await claims.claim("l-10")).stored == lost
