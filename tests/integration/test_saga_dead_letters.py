"""Dead letters end to end: a record is dead-lettered, the operator fixes the cause and replays it once."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from tests.integration.conftest import publish_event, submit, wait_settled
from yiju.cli.main import main
from yiju.common.intake_assertion import IntakeSigner
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration


async def yiju(capsys: pytest.CaptureFixture[str], platform: LocalPlatform, *argv: str) -> tuple[int, str]:
    """Runs the CLI in a thread (it has its own event loop) against this platform."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv), env=platform.env())
    return code, capsys.readouterr().out


async def test_a_dead_letter_is_listed_and_replayed_once_after_the_cause_is_fixed(
    platform: LocalPlatform,
    api: httpx.AsyncClient,
    redis: aioredis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = f"dlq-{uuid.uuid4()}"
    first = await submit(api, "one latte", idempotency_key=key)  # the key now belongs to another request
    message = ev.IntentSubmitted(
        user_id="u-1004",
        text="two americanos to the office",
        idempotency_key=key,
        user_assertion=IntakeSigner.from_settings(platform.settings()).sign(
            "u-1004", key, "two americanos to the office"
        ),
    )
    event_id = str(uuid.uuid4())
    producer = AIOKafkaProducer(bootstrap_servers=platform.bootstrap, acks="all")
    await producer.start()
    try:
        await publish_event(producer, platform, message, key, eid=event_id)
    finally:
        await producer.stop()

    listed: list[dict] = []
    for _ in range(60):
        code, out = await yiju(capsys, platform, "dlq", "list", "--group", "intent-intake", "--json")
        assert code == 0
        listed = [d for d in json.loads(out) if d["event_id"] == event_id]
        if listed:
            break
        await asyncio.sleep(0.5)
    [dead] = listed
    assert dead["reason"] == "rejected" and "idempotency_conflict" in dead["error_message"]
    assert dead["original_topic"] == platform.topic("yiju.intent.submitted.v1")
    assert dead["replayed"] is None
    code, out = await yiju(capsys, platform, "dlq", "list")
    assert code == 0 and "dead letters" in out

    await redis.delete(f"idem:{{u-1004}}:{key}")  # the operator frees the key
    code, out = await yiju(
        capsys, platform, "dlq", "replay", "--group", "yiju-intent-intake", "--id", event_id
    )
    assert code == 0 and "1 replayed" in out, out
    reply = httpx.Response(404)
    for _ in range(100):
        reply = await api.get("/v1/orders", params={"user_id": "u-1004", "idempotency_key": key})
        if reply.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert reply.status_code == 200, reply.text
    order = await wait_settled(api, reply.json()["order_id"])
    assert order["order_id"] != first and order["status"] == "COMPLETED"
    assert [ln["sku"] for ln in order["lines"]] == ["coffee-americano"]

    code, out = await yiju(
        capsys, platform, "dlq", "replay", "--group", "intent-intake", "--id", event_id, "--json"
    )
    assert code == 0 and json.loads(out)[0]["outcome"] == "already_replayed"
    code, out = await yiju(capsys, platform, "dlq", "list", "--group", "intent-intake", "--json")
    [again] = [d for d in json.loads(out) if d["event_id"] == event_id]
    assert again["replayed"]["by"] == "yiju dlq replay"


async def test_reconcile_command_reports_no_difference_when_quiet(
    platform: LocalPlatform, api: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    await wait_settled(api, await submit(api, "one mango slush"))
    for _ in range(20):
        code, out = await yiju(capsys, platform, "reconcile", "--json")
        if code == 0:
            break
        await asyncio.sleep(0.3)
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["diff_fen"] == 0, report["differences"]
    assert report["wallets"]["u-1004"]["spent"] > 0
    assert report["campaign"]["overspent_fen"] == 0
