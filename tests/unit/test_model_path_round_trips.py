"""What the Kafka model path costs in Redis round trips per sentence (issue 13), counted by the services'
client (`yiju_redis_round_trips_total`, a pipeline is one) against the scratch Redis, and the crash
windows the pipelining leaves: a list entry never without its wait, a redelivered request that repeats
its answer with the same event id, so the gateway's group needs no de-duplication keys."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from prometheus_client import REGISTRY
from redis.asyncio.client import Redis

from tests.unit.test_model_path import TWO_TEAS, USER, CountingModel, parse_requested, world_of
from yiju.common.broker import EventPublisher
from yiju.common.catalog import Catalog
from yiju.common.consumer import BatchProcessor
from yiju.common.envelope import build_headers, event_id, spec_for
from yiju.common.settings import Settings
from yiju.common.topics import MODEL_GATEWAY
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.model_gateway.convert import result_from_pb
from yiju.model_gateway.kafka_worker import ParseClaims, ParseWorker
from yiju.planning.config import PlanningSettings
from yiju.planning.model_path import DeadlineWatcher
from yiju.planning.model_waits import DEADLINES_KEY, wait_key


@pytest.fixture
async def redis(scratch_redis: Redis) -> Redis:
    return scratch_redis


def round_trips() -> float:
    return REGISTRY.get_sample_value("yiju_redis_round_trips_total") or 0.0


async def test_planning_pays_two_round_trips_to_ask_and_two_besides_the_plan_to_answer(
    redis: Redis, catalog: Catalog
) -> None:
    world = await world_of(redis, catalog, model_deadline_fallback="reject")
    await world.accept("warm")  # the scripts are loaded once per process (NOSCRIPT, then SCRIPT LOAD)
    await world.answer("warm")
    user = catalog.user(USER)
    assert user is not None
    before = round_trips()
    await world.planner.plan_from("plan-only", user, result_from_pb(TWO_TEAS))
    plan_trips = round_trips() - before  # the plan's own (subsidy, daily spend): the rules path's too

    before = round_trips()
    [request] = await world.accept("rt-1")
    asked = round_trips() - before
    before = round_trips()
    [plan] = await world.answer("rt-1")
    answered = round_trips() - before

    assert isinstance(request, ev.ParseRequested) and isinstance(plan, ev.PlanCreated)
    # IntentAccepted: the decision read, then the wait and its list entry together.
    assert asked == 2
    # ParseCompleted: the decision read with the wait's settle, the plan, the decision with the ZREM.
    assert answered == plan_trips + 2
    assert await redis.zcard(DEADLINES_KEY) == 0


async def test_a_redelivered_intent_lists_a_wait_its_crash_left_unlisted_at_the_first_deadline(
    redis: Redis, catalog: Catalog
) -> None:
    world = await world_of(redis, catalog, model_deadline_s=180)
    [first] = await world.accept("rt-2")
    await redis.zrem(DEADLINES_KEY, "rt-2")  # the wait written, its entry not: a crash in between
    later = await world_of(redis, catalog, model_deadline_s=600)  # a replica with another deadline
    [again] = await later.accept("rt-2")
    assert isinstance(first, ev.ParseRequested) and isinstance(again, ev.ParseRequested)
    assert again.deadline_ms == first.deadline_ms
    assert await redis.zscore(DEADLINES_KEY, "rt-2") == first.deadline_ms, "listed at a later deadline"


async def test_the_watcher_drops_a_list_entry_whose_wait_is_gone(redis: Redis, catalog: Catalog) -> None:
    class Publisher:
        async def publish(self, message: Any, order_id: str, **_: Any) -> None:
            raise AssertionError(f"nothing to decide for {order_id}")

    world = await world_of(redis, catalog)
    await world.accept("rt-3")
    await redis.delete(wait_key("rt-3"))  # expired, or a wait script refused while the ZADD passed
    watcher = DeadlineWatcher(world.path, Publisher(), PlanningSettings())  # type: ignore[arg-type]
    far = 2**50
    assert await watcher.scan_once(now=far) == 1
    assert await watcher.scan_once(now=far) == 0, "the entry stayed: every scan would look at it again"


class RecordingBroker:
    """A broker without a connected producer: EventPublisher uses faststream's publish, recorded here."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, str]]] = []

    async def publish(
        self, value: bytes, topic: str, *, key: bytes, headers: dict[str, str], **_: Any
    ) -> asyncio.Future[None]:
        self.published.append((topic, dict(headers)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def parse_requested_record(order_id: str) -> ConsumerRecord:
    message = parse_requested(order_id, "one latte")
    spec = spec_for(message)
    headers = [(k, v.encode()) for k, v in build_headers(spec, order_id, "yiju/planning").items()]
    value = message.SerializeToString()
    return ConsumerRecord(spec.topic, 0, 3, 0, 0, order_id.encode(), value, None, 1, len(value), headers)


async def test_the_gateway_group_keeps_no_dedup_keys_and_a_redelivery_repeats_the_same_event(
    redis: Redis,
) -> None:
    assert MODEL_GATEWAY.idempotent
    model = CountingModel()
    broker = RecordingBroker()
    worker = ParseWorker(model.parse, ParseClaims(redis, 3600))
    publisher = EventPublisher(broker, "yiju/model-gateway")
    processor = BatchProcessor(worker.router(), publisher, redis, Settings())
    await processor.handle([parse_requested_record("warm")])  # the claim script loaded once
    record = parse_requested_record("rt-4")
    before = round_trips()
    await processor.handle([record])
    first_trips = round_trips() - before
    await processor.handle([record])  # redelivered: a crash or a rebalance before the offset commit

    assert model.calls == {"one latte": 2}  # warm, then rt-4 once
    completed_id = event_id("rt-4", spec_for(ev.ParseCompleted()).type)
    assert [(topic, headers["ce_id"]) for topic, headers in broker.published[1:]] == [
        (spec_for(ev.ParseCompleted()).topic, completed_id)
    ] * 2, "the repeat must carry the first answer's event id, which planning de-duplicates"
    assert first_trips == 2, "the claim and the stored answer; no de-duplication read or write"
    assert not [key async for key in redis.scan_iter(match=f"dedup:{MODEL_GATEWAY.name}:*")]
