"""The main flow on each Kafka client (YIJU_KAFKA_CLIENT=aiokafka|confluent) over the real Apache Kafka:
every sentence's ending, dead letters of malformed records with their neighbours still flowing, and a
redelivered event that moves no money twice. One platform per client, each in its own namespace."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from tests.conftest import platform_on
from tests.integration.conftest import (
    MALFORMED_KEYS,
    dead_letter_headers,
    inject_malformed_plans,
    owner_api,
    redis_of,
    started,
    submit,
    wait_consumed,
    wait_settled,
)
from yiju.common.envelope import build_headers, spec_for
from yiju.common.kafka_client import CLIENTS
from yiju.common.topics import PAYMENT
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.payment.wallet import wallet_key
from yiju_infra.local.broker import BrokerServer
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=CLIENTS)
async def client_platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, shared_kafka: BrokerServer
) -> AsyncIterator[LocalPlatform]:
    data_dir: Path = tmp_path_factory.mktemp(f"platform-{request.param}")
    async with started(
        platform_on(shared_kafka, data_dir, extra_env={"YIJU_KAFKA_CLIENT": request.param})
    ) as plat:
        yield plat


@pytest.fixture(scope="module")
async def client_api(client_platform: LocalPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with owner_api(client_platform) as api:
        yield api


@pytest.fixture(scope="module")
async def client_redis(client_platform: LocalPlatform) -> AsyncIterator[aioredis.Redis]:
    async with redis_of(client_platform) as redis:
        yield redis


async def producer_for(platform: LocalPlatform) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(bootstrap_servers=platform.bootstrap, acks="all")
    await producer.start()
    return producer


async def test_each_ending_on_this_client(
    client_platform: LocalPlatform, client_api: httpx.AsyncClient
) -> None:
    """Completed (paid, subsidised), declined (an empty wallet) and a question back (nothing matches)."""
    completed, declined, clarify = await asyncio.gather(
        submit(client_api, "order two bubble teas and a latte to my office", user="u-1002"),
        submit(client_api, "one latte", user="u-1003"),  # wallet: 10 CNY
        submit(client_api, "book me a flight to mars"),
    )
    orders = await asyncio.gather(*(wait_settled(client_api, o) for o in (completed, declined, clarify)))
    assert [o["status"] for o in orders] == ["COMPLETED", "PAYMENT_DECLINED", "NEEDS_CLARIFICATION"]
    paid = orders[0]
    assert (paid["subtotal_fen"], paid["subsidy_fen"], paid["total_fen"]) == (5200, 1000, 4200)
    assert paid["payment"] == {"status": "CAPTURED", "authorized_fen": 4200, "captured_fen": 4200}
    assert [h["status"] for h in paid["history"]] == [
        "ACCEPTED",
        "PLANNED",
        "AUTHORIZED",
        "FULFILLED",
        "COMPLETED",
    ]
    assert orders[1]["payment"]["captured_fen"] == 0
    assert orders[2]["reason"]


async def test_malformed_records_are_dead_lettered_and_neighbours_flow_on_this_client(
    client_platform: LocalPlatform, client_api: httpx.AsyncClient
) -> None:
    records = await inject_malformed_plans(client_platform)
    order = await wait_settled(client_api, await submit(client_api, "one mango slush"))
    assert order["status"] == "COMPLETED"  # the neighbours still flow
    await wait_consumed(client_platform, PAYMENT, records)  # payment dead-lettered them and moved past
    found = await dead_letter_headers(client_platform, PAYMENT, MALFORMED_KEYS)
    assert found[b"ord_bad"]["x-dlq-reason"] == "malformed"
    assert "protobuf" in found[b"ord_bad"]["x-dlq-error-message"]
    assert found[b"ord_bad"]["x-dlq-original-topic"] == client_platform.topic("yiju.plan.created.v1")
    assert "missing CloudEvents headers" in found[b"ord_bad2"]["x-dlq-error-message"]
    assert "UTF-8" in found[b"ord_bad3"]["x-dlq-error-message"]  # a poison header is not a poison pill


async def test_a_redelivered_event_moves_no_money_twice_on_this_client(
    client_platform: LocalPlatform, client_api: httpx.AsyncClient, client_redis: aioredis.Redis
) -> None:
    order_id = await submit(client_api, "one jasmine green tea")
    assert (await wait_settled(client_api, order_id))["status"] == "COMPLETED"
    before = await client_redis.hgetall(wallet_key("u-1004"))
    completed = ev.FulfilmentCompleted(order_id=order_id, user_id="u-1004")
    spec = spec_for(completed)
    producer = await producer_for(client_platform)
    try:
        records = []
        for eid in (None, str(uuid.uuid4())):  # the event id the order had, then a new one
            headers = build_headers(spec, order_id, "test", eid=eid)
            records.append(
                await producer.send_and_wait(
                    client_platform.topic(spec.topic),
                    completed.SerializeToString(),
                    key=order_id.encode(),
                    headers=[(k, v.encode()) for k, v in headers.items()],
                )
            )
    finally:
        await producer.stop()
    await wait_consumed(client_platform, PAYMENT, records)  # payment has handled both
    assert await client_redis.hgetall(wallet_key("u-1004")) == before  # captured once, never again
    entries = [e for e in await client_redis.xrange("ledger:{u-1004}") if e[1]["order"] == order_id]
    assert len(entries) == 2  # the authorization and the one capture
