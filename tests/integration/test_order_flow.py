"""Sentences through all five services over a real broker and Redis: the saga's every ending."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid

import grpc
import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from tests.integration.conftest import (
    FAILING_SKU,
    MALFORMED_KEYS,
    dead_letter_headers,
    inject_malformed_plans,
    publish_event,
    submit,
    wait_consumed,
    wait_settled,
)
from yiju.common.envelope import build_headers, spec_for
from yiju.common.intake_assertion import IntakeSigner
from yiju.common.orders import RANK, TERMINAL, OrderStatus
from yiju.common.topics import PAYMENT
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.gen.intent.v1 import intent_pb2 as ipb
from yiju.gen.intent.v1 import intent_pb2_grpc as ipb_grpc
from yiju.payment.wallet import wallet_key
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration


async def test_two_bubble_teas_and_a_latte_complete_paid_and_subsidised(api: httpx.AsyncClient) -> None:
    order_id = await submit(api, "order two bubble teas and a latte to my office", user="u-1002")
    order = await wait_settled(api, order_id)
    assert order["status"] == "COMPLETED", order
    assert [(ln["sku"], ln["quantity"], ln["unit_price_fen"]) for ln in order["lines"]] == [
        ("tea-brown-sugar-boba", 2, 1800),
        ("coffee-latte", 1, 1600),
    ]
    assert (order["subtotal_fen"], order["subsidy_fen"], order["total_fen"]) == (5200, 1000, 4200)
    assert order["payment"] == {"status": "CAPTURED", "authorized_fen": 4200, "captured_fen": 4200}
    assert {f["sku"] for f in order["fulfilment"]} == {"tea-brown-sugar-boba", "coffee-latte"}
    assert all(f["status"] == "DISPATCHED" and f["provider_ref"] for f in order["fulfilment"])
    statuses = [h["status"] for h in order["history"]]
    assert statuses == ["ACCEPTED", "PLANNED", "AUTHORIZED", "FULFILLED", "COMPLETED"]
    assert len(order["trace_id"]) == 32


async def test_over_the_limit_is_rejected_and_nothing_is_charged(
    api: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    before = await redis.hgetall(wallet_key("u-1002"))
    order = await wait_settled(api, await submit(api, "buy a flagship smartphone", user="u-1002"))
    assert order["status"] == "REJECTED"
    assert "limit" in order["reason"]
    assert order["payment"]["captured_fen"] == 0 and order["payment"]["authorized_fen"] == 0
    assert await redis.hgetall(wallet_key("u-1002")) == before


async def test_nothing_in_the_catalog_asks_for_clarification(api: httpx.AsyncClient) -> None:
    order = await wait_settled(api, await submit(api, "book me a flight to mars"))
    assert order["status"] == "NEEDS_CLARIFICATION"
    assert order["reason"]


async def test_an_empty_wallet_declines(api: httpx.AsyncClient) -> None:
    order = await wait_settled(api, await submit(api, "one latte", user="u-1003"))  # wallet: 10 CNY
    assert order["status"] == "PAYMENT_DECLINED"
    assert order["payment"]["captured_fen"] == 0


async def test_above_the_threshold_waits_for_confirmation_then_completes(api: httpx.AsyncClient) -> None:
    order_id = await submit(api, "three pairs of earbuds", user="u-1001")  # 119700 - 1000 > 100000
    order = await wait_settled(api, order_id)
    assert order["status"] == "AWAITING_CONFIRMATION"
    assert order["total_fen"] == 118700
    reply = await api.post(f"/v1/orders/{order_id}/confirm")
    assert reply.status_code == 200, reply.text
    order = await wait_settled(api, order_id, until=set(TERMINAL))
    assert order["status"] == "COMPLETED"
    assert order["payment"]["captured_fen"] == 118700
    assert (await api.post(f"/v1/orders/{order_id}/cancel")).status_code == 409


async def test_cancelling_a_waiting_order_releases_its_subsidy(
    api: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    order_id = await submit(api, "3 earbuds", user="u-1001")
    assert (await wait_settled(api, order_id))["status"] == "AWAITING_CONFIRMATION"
    grant_key = f"subsidy:{{spring-festival}}:order:{order_id}"
    assert await redis.get(grant_key) == "1000"
    reply = await api.post(f"/v1/orders/{order_id}/cancel")
    assert reply.status_code == 200
    order = await wait_settled(api, order_id, until=set(TERMINAL))
    assert order["status"] == "CANCELLED"
    for _ in range(100):
        if await redis.get(grant_key) == "released":
            break
        await asyncio.sleep(0.1)
    assert await redis.get(grant_key) == "released"
    assert (await api.post(f"/v1/orders/{order_id}/confirm")).status_code == 409


async def test_a_failed_delivery_voids_the_payment(api: httpx.AsyncClient, redis: aioredis.Redis) -> None:
    before = int(await redis.hget(wallet_key("u-1004"), "balance"))
    order_id = await submit(api, "a latte and two red lanterns", user="u-1004")
    order = await wait_settled(api, order_id)
    assert order["status"] == "FAILED"
    assert FAILING_SKU in order["reason"]
    statuses = {f["sku"]: f["status"] for f in order["fulfilment"]}
    assert statuses == {"coffee-latte": "CANCELLED", FAILING_SKU: "FAILED"}
    for _ in range(100):
        order = (await api.get(f"/v1/orders/{order_id}")).json()
        if order["payment"]["status"] == "VOIDED":
            break
        await asyncio.sleep(0.1)
    assert order["payment"]["status"] == "VOIDED"
    assert order["payment"]["captured_fen"] == 0
    assert int(await redis.hget(wallet_key("u-1004"), "balance")) == before


async def test_idempotency_keys(api: httpx.AsyncClient) -> None:
    key = f"k-{uuid.uuid4()}"
    body = {"user_id": "u-1004", "text": "a green tea", "idempotency_key": key}
    first = await api.post("/v1/intents", json=body)
    again = await api.post("/v1/intents", json=body)
    assert first.status_code == again.status_code == 202
    assert first.json()["order_id"] == again.json()["order_id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await api.post("/v1/intents", json={**body, "text": "a latte"})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_conflict"


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": "u-1004", "text": ""},
        {"user_id": "u-1004", "text": "   "},
        {"user_id": "u-1004", "text": "tea " * 501},
        {"user_id": "u-1004"},
        {"user_id": "u-1004", "text": "a latte", "price_fen": 1},
    ],
)
async def test_bad_input_gets_a_clear_error(api: httpx.AsyncClient, body: dict) -> None:
    reply = await api.post("/v1/intents", json=body)
    assert reply.status_code in (400, 422)
    assert reply.json()["error"]["code"] and reply.json()["error"]["message"]


async def test_unknown_order_is_404(api: httpx.AsyncClient) -> None:
    reply = await api.get("/v1/orders/ord_missing")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "not_found"


async def _producer(platform: LocalPlatform) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(bootstrap_servers=platform.bootstrap, acks="all")
    await producer.start()
    return producer


async def test_clients_can_publish_intents_straight_to_kafka(
    platform: LocalPlatform, api: httpx.AsyncClient
) -> None:
    key = f"kafka-{uuid.uuid4()}"
    signer = IntakeSigner.from_settings(platform.settings())  # the client's key (the local platform's)
    assertion = signer.sign("u-1004", key, "two americanos to the office")
    message = ev.IntentSubmitted(
        user_id="u-1004", text="two americanos to the office", idempotency_key=key, user_assertion=assertion
    )
    producer = await _producer(platform)
    try:
        await publish_event(producer, platform, message, key)
    finally:
        await producer.stop()
    for _ in range(100):
        reply = await api.get("/v1/orders", params={"idempotency_key": key})
        if reply.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert reply.status_code == 200, reply.text
    order = await wait_settled(api, reply.json()["order_id"])
    assert order["status"] == "COMPLETED"
    assert [(ln["sku"], ln["quantity"]) for ln in order["lines"]] == [("coffee-americano", 2)]


async def test_malformed_records_are_dead_lettered_and_neighbours_still_flow(
    platform: LocalPlatform, api: httpx.AsyncClient
) -> None:
    records = await inject_malformed_plans(platform)
    order = await wait_settled(api, await submit(api, "one mango slush"))  # the neighbours still flow
    assert order["status"] == "COMPLETED"
    await wait_consumed(platform, PAYMENT, records)  # payment has dead-lettered them and moved past
    found = await dead_letter_headers(platform, PAYMENT, MALFORMED_KEYS)
    bad = found[b"ord_bad"]
    assert bad["x-dlq-reason"] == "malformed"
    assert "protobuf" in bad["x-dlq-error-message"]
    assert bad["x-dlq-original-topic"] == platform.topic("yiju.plan.created.v1")
    assert bad["x-dlq-original-offset"].isdigit()
    assert "missing CloudEvents headers" in found[b"ord_bad2"]["x-dlq-error-message"]
    assert "UTF-8" in found[b"ord_bad3"]["x-dlq-error-message"]  # a poison header is not a poison pill


async def test_a_redelivered_event_does_not_move_money_twice(
    platform: LocalPlatform, api: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    order_id = await submit(api, "one jasmine green tea")
    order = await wait_settled(api, order_id)
    assert order["status"] == "COMPLETED"
    balance = await redis.hgetall(wallet_key("u-1004"))
    completed = ev.FulfilmentCompleted(order_id=order_id, user_id="u-1004")
    producer = await _producer(platform)
    records = []
    try:
        for eid in (None, str(uuid.uuid4())):  # the same event id again, and a new one
            headers = build_headers(spec_for(completed), order_id, "test", eid=eid)
            records.append(
                await producer.send_and_wait(
                    platform.topic(spec_for(completed).topic),
                    completed.SerializeToString(),
                    key=order_id.encode(),
                    headers=[(k, v.encode()) for k, v in headers.items()],
                )
            )
    finally:
        await producer.stop()
    await wait_consumed(platform, PAYMENT, records)  # payment has handled both redeliveries
    await wait_settled(api, await submit(api, "one jasmine green tea"))
    after = await redis.hgetall(wallet_key("u-1004"))
    assert int(after["spent"]) - int(balance["spent"]) == 1200  # only the second tea
    assert len([e for e in await redis.xrange("ledger:{u-1004}") if e[1]["order"] == order_id]) == 2


async def test_grpc_api_submits_reads_and_streams(platform: LocalPlatform) -> None:
    auth = (("authorization", f"Bearer {platform.token('u-1004')}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{platform.ports.grpc}") as channel:
        stub = ipb_grpc.IntentServiceStub(channel)
        reply = await stub.SubmitIntent(
            ipb.SubmitIntentRequest(user_id="u-1004", text="一杯拿铁"), metadata=auth
        )
        assert reply.status == "ACCEPTED"
        watch = stub.WatchOrder(ipb.WatchOrderRequest(order_id=reply.order_id), metadata=auth)
        seen = [o.status async for o in watch]
        assert seen[-1] == "COMPLETED"
        order = await stub.GetOrder(ipb.GetOrderRequest(order_id=reply.order_id), metadata=auth)
        assert [(ln.sku, ln.quantity) for ln in order.lines] == [("coffee-latte", 1)]
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.SubmitIntent(ipb.SubmitIntentRequest(user_id="u-1004", text=""), metadata=auth)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetOrder(ipb.GetOrderRequest(order_id="ord_missing"), metadata=auth)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_server_sent_events_stream_the_order_to_its_end(api: httpx.AsyncClient) -> None:
    order_id = await submit(api, "one coconut latte")
    orders = []
    async with api.stream("GET", f"/v1/orders/{order_id}/events") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data: "):
                orders.append(json.loads(line[6:]))
    statuses = [o["status"] for o in orders]
    assert statuses[-1] == "COMPLETED"
    assert all(a != b for a, b in itertools.pairwise(orders))  # an event per change
    ranks = [RANK[OrderStatus(s)] for s in statuses]
    assert ranks == sorted(ranks)  # never backwards
