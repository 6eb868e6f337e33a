"""Kafka intake trust end to end: a client publishes with the SDK; a dead-lettered intake record is
replayed after its assertion expired, without the intake check being weakened for anyone else."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.conftest import wait_settled
from yiju.cli.main import main
from yiju.common.dead_letters import DeadLetter, read_dead_letters
from yiju.common.envelope import BY_MESSAGE, build_headers
from yiju.common.intake_assertion import IntakeSigner
from yiju.common.topics import INTENT_INTAKE
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.sdk.intake import IntentPublisher
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration

USER = "u-1004"
TEXT = "two americanos to the office"


async def order_for(api: httpx.AsyncClient, key: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = await api.get("/v1/orders", params={"user_id": USER, "idempotency_key": key})
        if reply.status_code == 200:
            return str(reply.json()["order_id"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"no order for idempotency key {key} in {timeout}s")


async def dead_letters_of(
    platform: LocalPlatform, event_id: str, count: int, timeout: float = 60.0
) -> list[DeadLetter]:
    """The intake's dead letters of `event_id`, once there are `count` of them."""
    deadline = time.monotonic() + timeout
    found: list[DeadLetter] = []
    while time.monotonic() < deadline:
        letters = await read_dead_letters(platform.settings(), [INTENT_INTAKE])
        found = [d for d in letters if d.event_id == event_id]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"{count} dead letters of {event_id} expected, found {len(found)}")


async def dead_letter_as_intake_would(
    platform: LocalPlatform, event: ev.IntentSubmitted, event_id: str, dead_lettered_at: float
) -> None:
    """A dead letter of the intake group, written `dead_lettered_at` (as the consumer writes them)."""
    spec = BY_MESSAGE[ev.IntentSubmitted]
    headers = build_headers(spec, event.idempotency_key, "test-client", eid=event_id)
    headers |= {
        "x-dlq-reason": "rejected",
        "x-dlq-error-class": "PermanentError",
        "x-dlq-error-message": "unknown_user: the catalog did not know the user yet",
        "x-dlq-attempts": "1",
        "x-dlq-group": INTENT_INTAKE.name,
        "x-dlq-original-topic": platform.topic(spec.topic),
        "x-dlq-original-partition": "0",
        "x-dlq-original-offset": "0",
    }
    producer = AIOKafkaProducer(bootstrap_servers=platform.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            platform.topic(INTENT_INTAKE.dead_letter_topic),
            event.SerializeToString(),
            key=event.idempotency_key.encode(),
            headers=[(k, v.encode()) for k, v in headers.items()],
            timestamp_ms=int(dead_lettered_at * 1000),
        )
    finally:
        await producer.stop()


async def replay(platform: LocalPlatform, event_id: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    argv = ["dlq", "replay", "--group", "intent-intake", "--id", event_id]
    code = await asyncio.to_thread(main, argv, env=platform.env())
    out = capsys.readouterr().out
    assert code == 0, out
    return out


async def test_a_client_publishes_with_the_sdk(platform: LocalPlatform, api: httpx.AsyncClient) -> None:
    signer = IntakeSigner.from_settings(platform.settings())
    async with IntentPublisher(platform.bootstrap, signer, topic_prefix=platform.namespace) as publisher:
        key = await publisher.publish(USER, TEXT)
    order = await wait_settled(api, await order_for(api, key))
    assert order["status"] == "COMPLETED"


async def test_an_expired_dead_letter_is_replayed_and_the_intake_check_still_holds(
    platform: LocalPlatform, api: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    signer = IntakeSigner.from_settings(platform.settings())
    an_hour_ago = time.time() - 3600
    key = f"replay-{uuid.uuid4()}"
    # Valid for five minutes an hour ago, when intake dead-lettered it: long expired now.
    event = ev.IntentSubmitted(
        user_id=USER,
        text=TEXT,
        idempotency_key=key,
        user_assertion=signer.sign(USER, key, TEXT, ttl_s=300, now=an_hour_ago - 60),
    )
    event_id = str(uuid.uuid4())
    await dead_letter_as_intake_would(platform, event, event_id, dead_lettered_at=an_hour_ago)

    # Republished as it is (no replay tool), intake refuses it: expired.
    copy_id = str(uuid.uuid4())
    producer = AIOKafkaProducer(bootstrap_servers=platform.bootstrap, acks="all")
    await producer.start()
    try:
        headers = build_headers(BY_MESSAGE[ev.IntentSubmitted], key, "attacker", eid=copy_id)
        await producer.send_and_wait(
            platform.topic(BY_MESSAGE[ev.IntentSubmitted].topic),
            event.SerializeToString(),
            key=key.encode(),
            headers=[(k, v.encode()) for k, v in headers.items()],
        )
    finally:
        await producer.stop()
    [refused] = await dead_letters_of(platform, copy_id, 1)
    assert refused.header("x-dlq-error-message") == "unauthenticated: user assertion expired"

    # Replayed by the operator's tool: checked as of its dead-lettering, admitted once.
    assert "1 replayed" in await replay(platform, event_id, capsys)
    order = await wait_settled(api, await order_for(api, key))
    assert order["status"] == "COMPLETED"
    assert [ln["sku"] for ln in order["lines"]] == ["coffee-americano"]


async def test_a_dead_letter_that_had_expired_when_dead_lettered_stays_out(
    platform: LocalPlatform, capsys: pytest.CaptureFixture[str]
) -> None:
    signer = IntakeSigner.from_settings(platform.settings())
    an_hour_ago = time.time() - 3600
    key = f"replay-late-{uuid.uuid4()}"
    event = ev.IntentSubmitted(
        user_id=USER,
        text=TEXT,
        idempotency_key=key,
        user_assertion=signer.sign(USER, key, TEXT, ttl_s=300, now=an_hour_ago - 900),
    )
    event_id = str(uuid.uuid4())
    await dead_letter_as_intake_would(platform, event, event_id, dead_lettered_at=an_hour_ago)
    assert "1 replayed" in await replay(platform, event_id, capsys)
    letters = await dead_letters_of(platform, event_id, 2)
    again = next(d for d in letters if d.header("x-replayed-from"))
    assert again.header("x-dlq-error-message") == "unauthenticated: user assertion expired"
