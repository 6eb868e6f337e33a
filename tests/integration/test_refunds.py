"""Refunds on a real platform (HTTP, gRPC, all five services), and the money scripts' interleavings on a
real Redis: a refund against a redelivered capture, two refunds at once, a refund against the sweeper."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
import redis.asyncio as aioredis

from tests.integration.conftest import submit, wait_settled
from yiju.cli.main import main
from yiju.common.auth import OPERATOR_ROLE, issue_token
from yiju.common.ledger_replay import Wallet, replay_ledger
from yiju.common.mandates import daily_key, spend_day
from yiju.common.redis import create_redis
from yiju.common.settings import Settings
from yiju.gen.intent.v1 import intent_pb2 as ipb
from yiju.gen.intent.v1 import intent_pb2_grpc as ipb_grpc
from yiju.intent.store import OPEN_ORDERS_KEY, OrderStore, history_key, order_key
from yiju.intent.sweeper import Sweeper
from yiju.payment.wallet import Wallets, ledger_key, payment_key, wallet_key
from yiju.planning.subsidy import budget_key
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration
USER = "u-1002"  # subsidised orders: 5,200 fen of goods, 1,000 fen off
TEXT = "order two bubble teas and a latte to my office"
CAMPAIGN = "spring-festival"


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Polls `check` until it returns something truthy (a condition, never a fixed sleep)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


def operator_headers(platform: LocalPlatform) -> dict[str, str]:
    settings = Settings(jwt_secret=platform.credentials_env()["YIJU_JWT_SECRET"])
    return {"Authorization": f"Bearer {issue_token('ops-1', settings, roles=(OPERATOR_ROLE,))}"}


async def as_someone(platform: LocalPlatform, path: str, headers: dict[str, str]) -> httpx.Response:
    """A POST with these credentials (the `api` fixture always acts as the order's owner)."""
    async with httpx.AsyncClient(base_url=platform.api_url, timeout=10, trust_env=False) as client:
        return await client.post(path, headers=headers)


async def yiju(capsys: pytest.CaptureFixture[str], platform: LocalPlatform, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv), env=platform.env())
    return code, capsys.readouterr().out


async def refunded(api: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    """The order once REFUNDED and once fulfilment has reported its cancellations."""

    async def done() -> dict[str, Any] | None:
        order = (await api.get(f"/v1/orders/{order_id}")).json()
        lines_done = order["fulfilment"] and all(f["status"] != "DISPATCHED" for f in order["fulfilment"])
        return order if order["status"] == "REFUNDED" and lines_done else None

    order = await until(done)
    assert order, (await api.get(f"/v1/orders/{order_id}")).json()
    return order


# ----- the whole flow


async def test_a_refund_returns_the_money_and_the_subsidy_and_cancels_the_lines(
    platform: LocalPlatform,
    api: httpx.AsyncClient,
    redis: aioredis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wallet_before = await redis.hgetall(wallet_key(USER))
    budget_before = int(await redis.get(budget_key(CAMPAIGN)))
    order_id = await submit(api, TEXT, user=USER)
    order = await wait_settled(api, order_id)
    assert order["status"] == "COMPLETED" and order["subsidy_fen"] == 1000, order
    total = order["total_fen"]
    assert int(await redis.hget(wallet_key(USER), "balance")) == int(wallet_before["balance"]) - total

    reply = await api.post(f"/v1/orders/{order_id}/refund", json={"reason": "the tea was cold"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] in ("REFUND_PENDING", "REFUNDED")
    assert reply.json()["refund"]["requested_by"] == f"user:{USER}"
    order = await refunded(api, order_id)
    history = [h["status"] for h in order["history"]]
    assert history[-2:] == ["REFUND_PENDING", "REFUNDED"], history
    assert order["payment"] == {
        "status": "REFUNDED",
        "authorized_fen": total,
        "captured_fen": total,
        "refunded_fen": total,
    }
    assert {f["status"] for f in order["fulfilment"]} == {"CANCELLED"}
    grant = f"subsidy:{{{CAMPAIGN}}}:order:{order_id}"
    assert await until(lambda: _equals(redis.get(grant), "released")), await redis.get(grant)
    assert int(await redis.get(budget_key(CAMPAIGN))) == budget_before
    wallet_after = await redis.hgetall(wallet_key(USER))
    for name in ("balance", "held", "spent"):
        assert wallet_after[name] == wallet_before[name], name

    again = await api.post(f"/v1/orders/{order_id}/refund")  # the same answer, no second refund
    assert again.status_code == 200 and again.json()["status"] == "REFUNDED"
    moves = [e for _, e in await redis.xrange(ledger_key(USER)) if e["order"] == order_id]
    assert [e["type"] for e in moves] == ["authorize", "capture", "refund"]

    code, out = await yiju(capsys, platform, "reconcile", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"], report["differences"]
    assert report["refunds"] >= 1 and report["daily_counters"] >= 1


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return (await value) == expected


async def test_who_may_refund(platform: LocalPlatform, api: httpx.AsyncClient, redis: aioredis.Redis) -> None:
    order_id = await submit(api, "one latte", user="u-1004")
    assert (await wait_settled(api, order_id))["status"] == "COMPLETED"
    stranger = {"Authorization": f"Bearer {platform.token('u-1001')}"}
    reply = await as_someone(platform, f"/v1/orders/{order_id}/refund", stranger)
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "not_found"

    # Move the order's completion two days back: past the user's 24 h window.
    [completed] = [h for h in await redis.lrange(history_key(order_id), 0, -1) if h.startswith("COMPLETED|")]
    long_ago = (
        (datetime.now(UTC) - timedelta(days=2)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
    position = (await redis.lrange(history_key(order_id), 0, -1)).index(completed)
    await redis.lset(history_key(order_id), position, f"COMPLETED|{long_ago}")
    reply = await api.post(f"/v1/orders/{order_id}/refund")
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "refund_window_closed"
    assert await redis.hget(order_key(order_id), "status") == "COMPLETED"

    reply = await as_someone(platform, f"/v1/orders/{order_id}/refund", operator_headers(platform))
    assert reply.status_code == 200, reply.text
    assert reply.json()["refund"]["requested_by"] == "operator:ops-1"
    assert (await refunded(api, order_id))["payment"]["status"] == "REFUNDED"

    failed = await wait_settled(api, await submit(api, "a latte and two red lanterns", user="u-1004"))
    reply = await api.post(f"/v1/orders/{failed['order_id']}/refund")
    assert reply.status_code == 409 and reply.json()["error"]["code"] == "not_refundable"


async def test_grpc_refund_order(platform: LocalPlatform, api: httpx.AsyncClient) -> None:
    order_id = await submit(api, "a jasmine green tea", user="u-1004")
    assert (await wait_settled(api, order_id))["status"] == "COMPLETED"
    auth = (("authorization", f"Bearer {platform.token('u-1004')}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{platform.ports.grpc}") as channel:
        stub = ipb_grpc.IntentServiceStub(channel)
        order = await stub.RefundOrder(ipb.RefundOrderRequest(order_id=order_id, reason="r"), metadata=auth)
        assert order.status in ("REFUND_PENDING", "REFUNDED")
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.RefundOrder(ipb.RefundOrderRequest(order_id="ord_nope"), metadata=auth)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await refunded(api, order_id))["payment"]["refunded_fen"] > 0


# ----- the scripts' interleavings (a scratch database: these wallets are made up)


@pytest.fixture
async def scratch(platform: LocalPlatform) -> AsyncIterator[aioredis.Redis]:
    client = create_redis(url=platform.redis_url.rsplit("/", 1)[0] + "/8")
    yield client
    await client.flushdb()
    await client.aclose()


async def captured(scratch: aioredis.Redis, wallets: Wallets, amount: int = 4200) -> tuple[str, str]:
    user, order = f"w-{uuid.uuid4().hex[:6]}", f"ord-{uuid.uuid4().hex[:6]}"
    await scratch.hset(
        wallet_key(user), mapping={"opening": 10_000, "balance": 10_000, "held": 0, "spent": 0}
    )
    assert (await wallets.authorize(user, order, amount, 10**9)).status == "AUTHORIZED"
    assert (await wallets.capture(user, order)).status == "CAPTURED"
    return user, order


async def test_a_refund_and_a_redelivered_capture_in_either_order(scratch: aioredis.Redis) -> None:
    wallets = Wallets(scratch)
    user, order = await captured(scratch, wallets)  # refund, then the capture again
    assert (await wallets.refund(user, order)).status == "REFUNDED"
    assert (await wallets.capture(user, order)).status == "REFUNDED"  # the redelivery moves nothing
    assert await wallets.balance(user) == {"opening": 10_000, "balance": 10_000, "held": 0, "spent": 0}
    user, order = await captured(scratch, wallets)  # the capture again, then the refund
    assert (await wallets.capture(user, order)).status == "CAPTURED"
    assert (await wallets.refund(user, order)).status == "REFUNDED"
    assert await wallets.balance(user) == {"opening": 10_000, "balance": 10_000, "held": 0, "spent": 0}
    kinds = [e["type"] for _, e in await scratch.xrange(ledger_key(user))]
    assert kinds == ["authorize", "capture", "refund"]


async def test_twenty_refunds_at_once_move_the_money_once(scratch: aioredis.Redis) -> None:
    wallets = Wallets(scratch)
    user, order = await captured(scratch, wallets)
    day = daily_key(user, spend_day())
    assert int(await scratch.hget(day, "spent")) == 4200
    results = await asyncio.gather(*(wallets.refund(user, order) for _ in range(20)))
    assert {r.status for r in results} == {"REFUNDED"} and {r.amount_fen for r in results} == {4200}
    assert (await wallets.balance(user))["balance"] == 10_000
    assert int(await scratch.hget(day, "spent")) == 0  # the day's allowance is given back once
    assert [e["type"] for _, e in await scratch.xrange(ledger_key(user))].count("refund") == 1
    assert (await wallets.void(user, order)).status == "REFUNDED"  # nothing else moves it any more


async def test_only_a_captured_payment_is_refunded_and_a_void_never_undoes_a_capture(
    scratch: aioredis.Redis,
) -> None:
    wallets = Wallets(scratch)
    user, order = await captured(scratch, wallets)
    assert (await wallets.void(user, order)).status == "CAPTURED"
    assert (await wallets.balance(user))["spent"] == 4200
    assert (await wallets.authorize(user, "held", 100, 10**9)).status == "AUTHORIZED"
    assert (await wallets.refund(user, "held")).status == "AUTHORIZED"
    assert (await wallets.refund(user, "never")).status == "NONE"


async def test_a_refund_after_the_days_counter_expired_does_not_bring_it_back(
    scratch: aioredis.Redis,
) -> None:
    wallets = Wallets(scratch)
    user, order = await captured(scratch, wallets)
    await scratch.delete(daily_key(user, spend_day()))  # as its 3-day TTL would
    assert (await wallets.refund(user, order)).status == "REFUNDED"
    assert await scratch.exists(daily_key(user, spend_day())) == 0


async def test_two_refund_requests_at_once_mark_the_order_once(scratch: aioredis.Redis) -> None:
    store = OrderStore(scratch)
    order = f"ord-{uuid.uuid4().hex[:6]}"
    await store.create(order, "u-1", "one latte", "en", "2026-12-01T10:00:00.000Z", "")
    assert (await store.request_refund(order, "user:u-1", "r", "t0")).outcome == "not_refundable"
    await store.apply(order, "COMPLETED", "2026-12-01T10:00:01.000Z")  # type: ignore[arg-type]
    marks = await asyncio.gather(
        *(store.request_refund(order, f"user:u-{i}", f"reason {i}", f"t{i}") for i in range(20))
    )
    assert [m.outcome for m in marks].count("new") == 1
    first = next(m for m in marks if m.outcome == "new")
    assert {(m.requested_by, m.requested_at) for m in marks} == {(first.requested_by, first.requested_at)}
    doc, history = await store.raw(order)
    assert doc["status"] == "REFUND_PENDING"
    assert [h.split("|")[0] for h in history].count("REFUND_PENDING") == 1
    # The projection applying the request again (same time) adds nothing; REFUNDED moves it on.
    assert not await store.apply(order, "REFUND_PENDING", first.requested_at)  # type: ignore[arg-type]
    assert await store.apply(order, "REFUNDED", "2026-12-01T10:00:03.000Z")  # type: ignore[arg-type]
    assert (await store.raw(order))[0]["status"] == "REFUNDED"


async def test_a_failed_order_never_takes_a_refund_status(scratch: aioredis.Redis) -> None:
    store = OrderStore(scratch)
    order = f"ord-{uuid.uuid4().hex[:6]}"
    await store.create(order, "u-1", "red lanterns", "en", "2026-12-01T10:00:00.000Z", "")
    await store.apply(order, "FAILED", "2026-12-01T10:00:01.000Z")  # type: ignore[arg-type]
    await store.apply(order, "REFUNDED", "2026-12-01T10:00:02.000Z")  # type: ignore[arg-type]
    assert (await store.raw(order))[0]["status"] == "FAILED"
    assert (await store.request_refund(order, "user:u-1", "r", "t")).outcome == "not_refundable"


class Recorder:
    def __init__(self) -> None:
        self.published: list[Any] = []

    async def publish(self, message: Any, order_id: str, **_: Any) -> None:
        self.published.append(message)


async def test_a_refund_and_the_sweeper_in_either_order(scratch: aioredis.Redis) -> None:
    store = OrderStore(scratch)
    recorder = Recorder()
    sweeper = Sweeper(store, recorder, scratch, Settings())  # type: ignore[arg-type]
    # The sweeper first: a FULFILLED order (capture late) is re-driven, and can't be refunded yet.
    order = f"ord-{uuid.uuid4().hex[:6]}"
    await store.create(order, "u-1", "one latte", "en", "2026-12-01T10:00:00.000Z", "")
    await store.apply(order, "FULFILLED", "2026-12-01T10:00:01.000Z")  # type: ignore[arg-type]
    await sweeper.sweep_order(order, 10**13)
    assert (await store.request_refund(order, "user:u-1", "r", "t")).outcome == "not_refundable"
    # The refund first: a REFUND_PENDING order is never cancelled or closed by the sweeper; it only asks
    # for the refund again (payment refunds once per order), with backoff, until the money is back.
    await store.apply(order, "COMPLETED", "2026-12-01T10:00:02.000Z")  # type: ignore[arg-type]
    assert await scratch.zscore(OPEN_ORDERS_KEY, order) is None  # COMPLETED: off the list
    assert (await store.request_refund(order, "user:u-1", "r", "t")).outcome == "new"
    assert await scratch.zscore(OPEN_ORDERS_KEY, order) is not None  # back on it until REFUNDED
    before = len(recorder.published)
    assert await sweeper.sweep_order(order, 10**13) == "refund_redriven"
    assert [type(m).__name__ for m in recorder.published[before:]] == ["OrderRefundRequested"]
    assert (await store.raw(order))[0]["status"] == "REFUND_PENDING"
    assert await scratch.zscore(OPEN_ORDERS_KEY, order) > 10**13  # looked at again later (backoff)
    await store.apply(order, "REFUNDED", "2026-12-01T10:00:03.000Z")  # type: ignore[arg-type]
    assert await scratch.zscore(OPEN_ORDERS_KEY, order) is None


# ----- bounded state


async def test_settled_payment_records_expire_and_held_money_never_does(scratch: aioredis.Redis) -> None:
    wallets = Wallets(scratch, record_ttl_s=3600)
    user, order = await captured(scratch, wallets)
    assert 0 < await scratch.ttl(payment_key(user, order)) <= 3600
    assert (await wallets.authorize(user, "held", 100, 10**9)).status == "AUTHORIZED"
    assert await scratch.ttl(payment_key(user, "held")) == -1  # no TTL while money is held
    assert (await wallets.authorize(user, "too-big", 10**9, 10**12)).status == "DECLINED"
    assert 0 < await scratch.ttl(payment_key(user, "too-big")) <= 3600


async def test_a_trimmed_ledger_still_proves_the_wallet(scratch: aioredis.Redis) -> None:
    wallets = Wallets(scratch, ledger_maxlen=50)
    user = f"w-{uuid.uuid4().hex[:6]}"
    await scratch.hset(wallet_key(user), mapping={"opening": 10**6, "balance": 10**6, "held": 0, "spent": 0})
    for i in range(200):
        await wallets.authorize(user, f"o{i}", 100 + i, 10**12)
        await (wallets.capture if i % 3 else wallets.void)(user, f"o{i}")
        if i % 5 == 0:
            await wallets.refund(user, f"o{i}")
    entries = [e for _, e in await scratch.xrange(ledger_key(user))]
    assert len(entries) < 200  # trimmed to about 50 (approximately: whole stream nodes go)
    replay = replay_ledger(entries, 10**6)
    stored = await wallets.balance(user)
    assert replay.trimmed and replay.breaks == []
    assert replay.wallet == Wallet(stored["balance"], stored["held"], stored["spent"])
