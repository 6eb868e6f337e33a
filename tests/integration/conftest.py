"""A real platform for the integration tests: tansu (Kafka protocol), Redis and the five services,
started on free ports by the same code as `make run`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata
from google.protobuf.message import Message

from tests.conftest import platform_on
from yiju.common.envelope import build_headers, spec_for
from yiju.common.orders import is_settled
from yiju.common.redis import create_redis
from yiju.common.topics import ConsumerGroup, Namespace
from yiju_infra.local.broker import BrokerServer
from yiju_infra.local.platform import LocalPlatform

DEFAULT_USER = "u-1004"
# Failure injection for the saga tests: this SKU's provider always fails.
FAILING_SKU = "fest-lanterns"


@contextlib.asynccontextmanager
async def started(plat: LocalPlatform) -> AsyncIterator[LocalPlatform]:
    """The platform, started and ready; every process stopped at the end."""
    try:
        await plat.start(ready_timeout=90)
        yield plat
    finally:
        await plat.stop_all()


@contextlib.asynccontextmanager
async def redis_of(plat: LocalPlatform) -> AsyncIterator[aioredis.Redis]:
    client = create_redis(url=plat.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, shared_kafka: BrokerServer
) -> AsyncIterator[LocalPlatform]:
    data_dir: Path = tmp_path_factory.mktemp("platform")
    plat = platform_on(
        shared_kafka,
        data_dir,
        extra_env={
            "YIJU_FULFILMENT_FAIL_SKUS": FAILING_SKU,
            "YIJU_DEMO_TOKENS": "1",  # the console's demo tokens, as `make run` turns them on
        },
    )
    async with started(plat):
        yield plat


@pytest.fixture(scope="session")
async def redis(platform: LocalPlatform) -> AsyncIterator[aioredis.Redis]:
    async with redis_of(platform) as client:
        yield client


class ActAsOwner(httpx.Auth):
    """Test plumbing: every request carries the bearer token of the user it acts for — the submitting
    user for POST /v1/intents, the order's owner for /v1/orders/{id}... (default: DEFAULT_USER)."""

    requires_response_body = True

    def __init__(self, platform: LocalPlatform) -> None:
        self.platform = platform
        self.owners: dict[str, str] = {}

    def auth_flow(self, request: httpx.Request):  # type: ignore[override]
        parts = request.url.path.strip("/").split("/")
        user = DEFAULT_USER
        if parts[:2] == ["v1", "intents"] and request.content:
            user = json.loads(request.content).get("user_id", DEFAULT_USER)
        elif parts[:2] == ["v1", "orders"] and len(parts) > 2:
            user = self.owners.get(parts[2], DEFAULT_USER)
        request.headers["Authorization"] = f"Bearer {self.platform.token(user)}"
        response = yield request
        if parts[:2] == ["v1", "intents"] and response.status_code == 202:
            self.owners[response.json()["order_id"]] = user


def owner_api(plat: LocalPlatform) -> httpx.AsyncClient:
    """An HTTP client of the platform's API that acts as each request's owner (ActAsOwner)."""
    return httpx.AsyncClient(base_url=plat.api_url, timeout=10, trust_env=False, auth=ActAsOwner(plat))


@pytest.fixture(scope="session")
async def api(platform: LocalPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with owner_api(platform) as client:
        yield client


async def submit(api: httpx.AsyncClient, text: str, user: str = DEFAULT_USER, **extra: Any) -> str:
    reply = await api.post("/v1/intents", json={"user_id": user, "text": text, **extra})
    assert reply.status_code == 202, reply.text
    return reply.json()["order_id"]


async def publish_event(
    producer: AIOKafkaProducer,
    platform: LocalPlatform,
    message: Message,
    key: str,
    source: str = "test-client",
    eid: str = "",
) -> RecordMetadata:
    """Publishes an event to `platform` as a client does (CloudEvents headers, keyed by `key`) and waits
    for the ack."""
    spec = spec_for(message)
    headers = build_headers(spec, key, source, eid=eid or str(uuid.uuid4()))
    return await producer.send_and_wait(
        platform.topic(spec.topic),
        message.SerializeToString(),
        key=key.encode(),
        headers=[(k, v.encode()) for k, v in headers.items()],
    )


async def wait_consumed(
    platform: LocalPlatform, group: ConsumerGroup, records: list[RecordMetadata], timeout: float = 60.0
) -> None:
    """Waits until `group` has committed past every one of `records` (the consumer commits after the
    effect, so its handlers are done with them): the proof that injected records were consumed, rather
    than another order settling on some other partition."""
    wanted: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        wanted[tp] = max(wanted.get(tp, 0), r.offset + 1)
    admin = AIOKafkaAdminClient(bootstrap_servers=platform.bootstrap)
    await admin.start()
    try:
        group_id = Namespace(platform.namespace, platform.namespace).group(group.name)
        deadline = time.monotonic() + timeout
        committed: dict[TopicPartition, int] = {}
        while time.monotonic() < deadline:
            offsets = await admin.list_consumer_group_offsets(group_id, partitions=list(wanted))
            committed = {tp: meta.offset for tp, meta in offsets.items() if meta is not None}
            if all(committed.get(tp, -1) >= offset for tp, offset in wanted.items()):
                return
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    raise AssertionError(f"{group.name} did not consume {wanted} in {timeout}s (committed: {committed})")


MALFORMED_KEYS = (b"ord_bad", b"ord_bad2", b"ord_bad3")


async def inject_malformed_plans(platform: LocalPlatform) -> list[RecordMetadata]:
    """Three records payment can never handle, on plan.created: garbage protobuf, no CloudEvents
    headers, and a header that is not UTF-8 (keys `MALFORMED_KEYS`)."""
    topic = platform.topic("yiju.plan.created.v1")
    producer = AIOKafkaProducer(bootstrap_servers=platform.bootstrap, acks="all")
    await producer.start()
    try:
        return [
            await producer.send_and_wait(
                topic,
                b"\xff\x00garbage",
                key=MALFORMED_KEYS[0],
                headers=[("ce_id", b"bad-1"), ("ce_type", b"yiju.plan.created")],
            ),
            await producer.send_and_wait(topic, b"", key=MALFORMED_KEYS[1]),
            await producer.send_and_wait(
                topic,
                b"",
                key=MALFORMED_KEYS[2],
                headers=[("ce_id", b"\xff\xfe-not-utf8"), ("ce_type", b"yiju.plan.created")],
            ),
        ]
    finally:
        await producer.stop()


async def dead_letter_headers(
    platform: LocalPlatform, group: ConsumerGroup, keys: tuple[bytes, ...], timeout: float = 60.0
) -> dict[bytes, dict[str, str]]:
    """The headers of the dead letters with `keys` in `group`'s dead-letter topic, read from its start."""
    consumer = AIOKafkaConsumer(
        Namespace(platform.namespace, platform.namespace).dead_letter_topic(group),
        bootstrap_servers=platform.bootstrap,
        auto_offset_reset="earliest",
        group_id=f"dlq-reader-{uuid.uuid4()}",
        session_timeout_ms=3000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    try:
        found: dict[bytes, dict[str, str]] = {}
        deadline = time.monotonic() + timeout
        while not set(keys) <= set(found):
            assert time.monotonic() < deadline, f"dead letters missing: {set(keys) - set(found)}"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for r in batch:
                    if r.key in keys:  # the topic holds other tests' dead letters too
                        found[r.key] = {k: v.decode() for k, v in r.headers}
        return found
    finally:
        await consumer.stop()


async def wait_settled(
    api: httpx.AsyncClient, order_id: str, timeout: float = 30.0, until: set[str] | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    order: dict[str, Any] = {}
    while time.monotonic() < deadline:
        reply = await api.get(f"/v1/orders/{order_id}")
        if reply.status_code == 429:  # the per-user edge rate limit: back off as a client must
            await asyncio.sleep(max(reply.json()["error"]["retry_after_ms"], 50) / 1000)
            continue
        assert reply.status_code == 200, reply.text
        order = reply.json()
        if (until and order["status"] in until) or (not until and is_settled(order["status"])):
            return order
        await asyncio.sleep(0.1)
    raise AssertionError(f"order {order_id} did not settle in {timeout}s: {order}")
