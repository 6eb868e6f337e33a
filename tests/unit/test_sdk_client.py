"""The SDK against an in-memory intent service (httpx.MockTransport): requests, models, errors,
retries, event streams and waiting, for the sync and the async client."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from yiju.sdk import (
    TERMINAL_STATUSES,
    AsyncYijuClient,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    NotFound,
    Order,
    OrderStatus,
    RateLimited,
    RetryPolicy,
    ServerError,
    Unauthorized,
    WaitTimeout,
    YijuClient,
    YijuError,
    default_base_url,
)
from yiju.sdk.retry import parse_retry_after
from yiju.sdk.testing import BASE_URL, ChunkStream, FakeIntentService, order_json, split, sse_event

S = OrderStatus
FAST_RETRY = RetryPolicy(retries=3, backoff=0.0)
SSE_HEADERS = {"content-type": "text/event-stream"}


def body(request: httpx.Request) -> dict:
    return json.loads(request.content)


# --- submit / get / confirm / cancel ---------------------------------------------------------------------


def test_submit_sends_the_contract_and_generates_an_idempotency_key() -> None:
    fake = FakeIntentService()
    with fake.client(token="tok-1") as client:
        accepted = client.submit_intent("u-1002", "两杯拿铁")
    request = fake.requests[0]
    assert (request.method, str(request.url)) == ("POST", f"{BASE_URL}/v1/intents")
    sent = body(request)
    assert sent["user_id"] == "u-1002" and sent["text"] == "两杯拿铁"
    assert "locale" not in sent
    uuid.UUID(sent["idempotency_key"])  # a uuid4 when none was given
    assert request.headers["authorization"] == "Bearer tok-1"
    assert request.headers["user-agent"].startswith("yiju-sdk-python/")
    assert accepted.order_id == "o-1" and accepted.status == "ACCEPTED"
    assert accepted.idempotency_key == sent["idempotency_key"]
    assert accepted.raw == {"order_id": "o-1", "status": "ACCEPTED"}


def test_submit_with_key_and_locale_is_idempotent() -> None:
    fake = FakeIntentService()
    with fake.client() as client:
        first = client.submit_intent("u-1002", "一杯美式", idempotency_key="k-1", locale="zh-CN")
        again = client.submit_intent("u-1002", "一杯美式", idempotency_key="k-1", locale="zh-CN")
        with pytest.raises(InvalidRequest) as err:
            client.submit_intent("u-1002", "两杯美式", idempotency_key="k-1", locale="zh-CN")
    assert body(fake.requests[0]) == {
        "user_id": "u-1002",
        "text": "一杯美式",
        "idempotency_key": "k-1",
        "locale": "zh-CN",
    }
    assert first.order_id == again.order_id
    assert (err.value.status, err.value.code) == (422, "idempotency_key_reused")


def test_each_submit_without_key_gets_a_new_key() -> None:
    fake = FakeIntentService()
    with fake.client() as client:
        a = client.submit_intent("u-1002", "一杯美式")
        b = client.submit_intent("u-1002", "一杯美式")
    assert a.idempotency_key != b.idempotency_key and a.order_id != b.order_id


def test_get_order_parses_every_part_and_keeps_the_raw_json() -> None:
    fake = FakeIntentService()
    order_id = fake.add_order([S.COMPLETED], text="两杯大杯拿铁和一个可颂")
    with fake.client(api_key="key-9") as client:
        order = client.get_order(order_id)
    assert fake.requests[0].headers["x-api-key"] == "key-9"
    assert "authorization" not in fake.requests[0].headers
    assert order.status == S.COMPLETED and order.is_terminal and order.is_success and not order.is_failure
    assert [(line.sku, line.quantity, line.unit_price_fen, line.line_total_fen) for line in order.lines] == [
        ("cafe-latte-l", 2, 1800, 3600),
        ("cafe-croissant", 1, 1250, 1250),
    ]
    assert (order.subtotal_fen, order.subsidy_fen, order.total_fen) == (4850, 500, 4350)
    assert order.payment is not None
    assert (order.payment.status, order.payment.authorized_fen, order.payment.captured_fen) == (
        "CAPTURED",
        4350,
        4350,
    )
    assert [f.provider_ref for f in order.fulfilment] == ["prov-cafe-latte-l", "prov-cafe-croissant"]
    assert order.history[0].status == S.COMPLETED and order.history[0].timestamp is not None
    assert order.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert order.raw == order_json(order_id, S.COMPLETED, text="两杯大杯拿铁和一个可颂")


def test_models_tolerate_missing_and_extra_fields() -> None:
    order = Order.from_json({"order_id": "o-9", "status": "SOMETHING_NEW", "extra": [1], "payment": None})
    assert (order.order_id, order.status, order.lines, order.payment, order.total_fen) == (
        "o-9",
        "SOMETHING_NEW",
        (),
        None,
        0,
    )
    assert not order.is_terminal and not order.is_waiting
    assert order.raw["extra"] == [1]


def test_order_ids_are_escaped_in_paths() -> None:
    fake = FakeIntentService()
    with fake.client() as client, pytest.raises(NotFound):
        client.get_order("../intents?x=1")
    assert fake.requests[0].url.raw_path == b"/v1/orders/..%2Fintents%3Fx%3D1"
    with fake.client() as client, pytest.raises(ValueError):
        client.get_order("")


def test_confirm_and_cancel() -> None:
    fake = FakeIntentService()
    waiting = fake.add_order([S.ACCEPTED, S.PLANNED, S.AWAITING_CONFIRMATION])
    fake.orders[waiting].position = 2
    other = fake.add_order([S.AWAITING_CONFIRMATION])
    with fake.client() as client:
        confirmed = client.confirm(waiting)
        cancelled = client.cancel(other)
        with pytest.raises(Conflict) as err:
            client.confirm(other)
    assert fake.paths()[:2] == [f"POST /v1/orders/{waiting}/confirm", f"POST /v1/orders/{other}/cancel"]
    assert confirmed.status == S.AUTHORIZED
    assert cancelled.status == S.CANCELLED and cancelled.is_failure
    assert (err.value.status, err.value.code) == (409, "not_awaiting_confirmation")
    assert err.value.message == f"order {other} is CANCELLED"


def test_health() -> None:
    with FakeIntentService().client() as client:
        assert client.health() == {"status": "ok"}


def test_base_url_from_environment() -> None:
    assert default_base_url({}) == "http://127.0.0.1:8080"
    assert default_base_url({"YIJU_HTTP_PORT": "9000"}) == "http://127.0.0.1:9000"
    assert default_base_url({"YIJU_API_URL": "https://api.example/", "YIJU_HTTP_PORT": "1"}) == (
        "https://api.example"
    )


def test_base_url_with_a_path_prefix() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(202, json={"order_id": "o-1", "status": "ACCEPTED"})

    with YijuClient("http://gw.test/yiju/", transport=httpx.MockTransport(handler)) as client:
        client.submit_intent("u-1002", "一杯美式")
    assert seen == ["http://gw.test/yiju/v1/intents"]


# --- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (422, InvalidRequest),
        (429, RateLimited),
        (500, ServerError),
        (418, YijuError),
    ],
)
def test_error_statuses_map_to_exceptions(status: int, cls: type[YijuError]) -> None:
    fake = FakeIntentService()
    fake.fail(status, body={"error": {"code": "some_code", "message": "some message"}})
    with fake.client() as client, pytest.raises(cls) as err:
        client.get_order("o-1")
    assert type(err.value) is cls
    assert (err.value.status, err.value.code, err.value.message) == (status, "some_code", "some message")
    assert str(err.value) == f"some message (HTTP {status}, some_code)"


def test_unauthenticated_request() -> None:
    fake = FakeIntentService(tokens={"good": "u-1002"})
    with fake.client(token="bad") as client, pytest.raises(Unauthorized) as err:
        client.submit_intent("u-1002", "一杯美式")
    assert err.value.code == "unauthenticated"
    with fake.client(token="good") as client:
        assert client.submit_intent("u-1002", "一杯美式").order_id == "o-1"


def test_rate_limited_carries_retry_after() -> None:
    fake = FakeIntentService()
    fake.fail(429, headers={"Retry-After": "7"})
    with fake.client() as client, pytest.raises(RateLimited) as err:
        client.submit_intent("u-1002", "一杯美式")
    assert err.value.retry_after == 7.0


def test_retry_after_as_http_date() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


def test_validation_error_in_fastapi_shape() -> None:
    detail = [{"loc": ["body", "text"], "msg": "Field required", "type": "missing"}]
    fake = FakeIntentService()
    fake.fail(422, body={"detail": detail})
    with fake.client() as client, pytest.raises(InvalidRequest) as err:
        client.submit_intent("u-1002", "x")
    assert (err.value.code, err.value.message) == ("validation_error", "text: Field required")


def test_non_json_error_and_non_json_success() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("o-1"):
            return httpx.Response(502, text="<html>Bad Gateway</html>")
        return httpx.Response(200, text="not json")

    with YijuClient(BASE_URL, transport=httpx.MockTransport(handler), retry=RetryPolicy(retries=0)) as client:
        with pytest.raises(ServerError) as err:
            client.get_order("o-1")
        assert err.value.message == "<html>Bad Gateway</html>" and err.value.code is None
        with pytest.raises(YijuError) as bad:
            client.get_order("o-2")
        assert bad.value.code == "invalid_response"


# --- retries ----------------------------------------------------------------------------------------------


def test_reads_are_retried_on_503_with_backoff() -> None:
    fake = FakeIntentService()
    order_id = fake.add_order([S.COMPLETED])
    fake.fail(503, times=2)
    with fake.client(retry=FAST_RETRY) as client:
        assert client.get_order(order_id).status == S.COMPLETED
    assert len(fake.requests) == 3


def test_retries_give_up_with_the_last_error() -> None:
    fake = FakeIntentService()
    fake.fail(503, times=10)
    with fake.client(retry=RetryPolicy(retries=2, backoff=0.0)) as client, pytest.raises(ServerError):
        client.get_order("o-1")
    assert len(fake.requests) == 3


def test_a_long_retry_after_on_503_is_not_waited_for() -> None:
    fake = FakeIntentService()
    fake.fail(503, times=10, headers={"Retry-After": "120"})
    with fake.client(retry=FAST_RETRY) as client, pytest.raises(ServerError):
        client.get_order("o-1")
    assert len(fake.requests) == 1


def test_submit_is_retried_after_a_connection_error_with_the_same_key() -> None:
    fake = FakeIntentService()
    fake.fail(exception=httpx.ConnectError("refused"))
    with fake.client(retry=FAST_RETRY) as client:
        accepted = client.submit_intent("u-1002", "一杯美式")
    keys = {body(r)["idempotency_key"] for r in fake.requests}
    assert len(fake.requests) == 2 and keys == {accepted.idempotency_key}


def test_a_lost_submit_response_is_retried_and_returns_the_same_order() -> None:
    fake = FakeIntentService()
    fake.fail(exception=httpx.ReadError("connection reset"), after_handling=True)
    with fake.client(retry=FAST_RETRY) as client:
        accepted = client.submit_intent("u-1002", "一杯美式")
    assert len(fake.orders) == 1 and accepted.order_id == "o-1"


def test_409_in_flight_after_a_lost_submit_is_retried() -> None:
    fake = FakeIntentService()
    fake.fail(exception=httpx.ReadTimeout("slow"), method="POST")
    fake.fail(409, body={"error": {"code": "in_flight", "message": "still processing"}}, method="POST")
    with fake.client(retry=FAST_RETRY) as client:
        assert client.submit_intent("u-1002", "一杯美式").order_id == "o-1"
    assert len(fake.requests) == 3


def test_409_without_a_lost_attempt_is_a_conflict() -> None:
    fake = FakeIntentService()
    fake.fail(409, body={"error": {"code": "in_flight", "message": "still processing"}})
    with fake.client(retry=FAST_RETRY) as client, pytest.raises(Conflict):
        client.submit_intent("u-1002", "一杯美式", idempotency_key="k")
    assert len(fake.requests) == 1


def test_confirm_is_not_resent_when_the_outcome_is_unknown() -> None:
    fake = FakeIntentService()
    order_id = fake.add_order([S.AWAITING_CONFIRMATION])
    fake.fail(exception=httpx.ReadError("reset"), after_handling=True)
    with fake.client(retry=FAST_RETRY) as client, pytest.raises(ConnectionFailed):
        client.confirm(order_id)
    assert len(fake.requests) == 1


def test_confirm_is_resent_when_the_request_never_left() -> None:
    fake = FakeIntentService()
    order_id = fake.add_order([S.AWAITING_CONFIRMATION])
    fake.fail(exception=httpx.ConnectError("refused"))
    fake.fail(503)  # not retried for confirm: the server may have acted
    with fake.client(retry=FAST_RETRY) as client, pytest.raises(ServerError):
        client.confirm(order_id)
    assert len(fake.requests) == 2


def test_connection_failure_after_retries() -> None:
    fake = FakeIntentService()
    fake.fail(exception=httpx.ConnectError("refused"), times=10)
    with (
        fake.client(retry=RetryPolicy(retries=1, backoff=0.0)) as client,
        pytest.raises(ConnectionFailed) as err,
    ):
        client.get_order("o-1")
    assert err.value.status is None and "refused" in err.value.message
    assert len(fake.requests) == 2


# --- event streams ----------------------------------------------------------------------------------------


def stream_handler(chunks: list[bytes], delay: float = 0.0, headers: dict | None = None):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers or SSE_HEADERS, stream=ChunkStream(chunks, delay))

    return handler


EVENTS = (
    ": connected\n\n"
    + sse_event(order_json("o-1", S.ACCEPTED))
    + ": keepalive\n\n"
    + 'event: progress\ndata: {"ignored": true}\n\n'
    + sse_event(order_json("o-1", S.PLANNED))
    + ":\n\n"
    + sse_event(order_json("o-1", S.COMPLETED))
).encode()


@pytest.mark.parametrize("size", [None, 1, 7, 64])
def test_watch_parses_events_split_across_chunks(size: int | None) -> None:
    # Chunks of 1 and 7 bytes also split the UTF-8 of the Chinese text.
    transport = httpx.MockTransport(stream_handler(split(EVENTS, size)))
    with YijuClient(BASE_URL, transport=transport) as client:
        orders = list(client.watch_order("o-1"))
    assert [o.status for o in orders] == [S.ACCEPTED, S.PLANNED, S.COMPLETED]
    assert orders[-1].text == "两杯大杯拿铁和一个可颂" and orders[-1].total_fen == 4350


def test_watch_sends_sse_headers() -> None:
    fake = FakeIntentService()
    order_id = fake.add_order([S.COMPLETED])
    with fake.client(token="t") as client:
        list(client.watch_order(order_id))
    request = fake.requests[0]
    assert request.url.path == f"/v1/orders/{order_id}/events"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["authorization"] == "Bearer t"


def test_watch_of_an_unknown_order() -> None:
    with FakeIntentService().client() as client, pytest.raises(NotFound):
        list(client.watch_order("nope"))


def test_watch_rejects_a_response_that_is_not_an_event_stream() -> None:
    transport = httpx.MockTransport(stream_handler([b"{}"], headers={"content-type": "application/json"}))
    with YijuClient(BASE_URL, transport=transport) as client, pytest.raises(YijuError) as err:
        list(client.watch_order("o-1"))
    assert err.value.code == "not_event_stream"


def test_watch_raises_error_events() -> None:
    chunks = [b'event: error\ndata: {"error": {"code": "gone", "message": "order expired"}}\n\n']
    transport = httpx.MockTransport(stream_handler(chunks))
    with YijuClient(BASE_URL, transport=transport) as client, pytest.raises(YijuError) as err:
        list(client.watch_order("o-1"))
    assert (err.value.code, err.value.message) == ("gone", "order expired")


def test_watch_timeout_with_only_keepalives() -> None:
    transport = httpx.MockTransport(stream_handler(itertools.repeat(b": keepalive\n\n"), delay=0.02))
    started = time.monotonic()
    with YijuClient(BASE_URL, transport=transport) as client, pytest.raises(WaitTimeout):
        list(client.watch_order("o-1", timeout=0.2))
    assert time.monotonic() - started < 2


# --- waiting ----------------------------------------------------------------------------------------------


def test_wait_follows_the_stream_to_completion() -> None:
    fake = FakeIntentService()
    fake.chunk_size = 5
    order_id = fake.add_order([S.ACCEPTED, S.PLANNED, S.AUTHORIZED, S.FULFILLED, S.COMPLETED])
    fake.advance_on_poll = False
    with fake.client() as client:
        order = client.wait_for_order(order_id, timeout=5)
    assert order.status == S.COMPLETED
    assert fake.paths() == [f"GET /v1/orders/{order_id}", f"GET /v1/orders/{order_id}/events"]


def test_wait_stops_at_awaiting_confirmation_by_default() -> None:
    fake = FakeIntentService()
    order_id = fake.add_order([S.ACCEPTED, S.PLANNED, S.AWAITING_CONFIRMATION])
    with fake.client() as client:
        order = client.wait_for_order(order_id)
    assert order.status == S.AWAITING_CONFIRMATION and order.is_waiting


def test_wait_returns_at_once_for_a_terminal_order() -> None:
    fake = FakeIntentService()
    order_id = fake.add_order([S.REJECTED], reason="我们不卖这个")
    with fake.client() as client:
        order = client.wait_for_order(order_id)
    assert (order.status, order.reason) == (S.REJECTED, "我们不卖这个")
    assert fake.paths() == [f"GET /v1/orders/{order_id}"]


def test_wait_for_terminal_polls_past_the_waiting_status() -> None:
    # The stream ends at AWAITING_CONFIRMATION; the rest is found by polling.
    fake = FakeIntentService()
    order_id = fake.add_order([S.ACCEPTED, S.AWAITING_CONFIRMATION, S.AUTHORIZED, S.COMPLETED])
    with fake.client() as client:
        order = client.wait_for_order(order_id, timeout=5, until=TERMINAL_STATUSES, poll_interval=0.01)
    assert order.status == S.COMPLETED
    assert fake.paths().count(f"GET /v1/orders/{order_id}/events") == 1


def test_wait_until_a_status_the_order_skips_ends_at_terminal() -> None:
    fake = FakeIntentService()
    order_id = fake.add_order([S.ACCEPTED, S.PAYMENT_DECLINED])
    with fake.client() as client:
        assert client.wait_for_order(order_id, until={S.COMPLETED}).status == S.PAYMENT_DECLINED


def test_wait_falls_back_to_polling_without_an_event_stream() -> None:
    fake = FakeIntentService()
    fake.sse = False
    order_id = fake.add_order([S.ACCEPTED, S.PLANNED, S.AUTHORIZED, S.COMPLETED])
    with fake.client() as client:
        order = client.wait_for_order(order_id, timeout=5, poll_interval=0.01)
    assert order.status == S.COMPLETED
    assert fake.paths().count(f"GET /v1/orders/{order_id}/events") == 1  # tried once, then polling


def test_wait_falls_back_to_polling_when_the_stream_breaks() -> None:
    fake = FakeIntentService()
    order_id = fake.add_order([S.ACCEPTED, S.PLANNED, S.COMPLETED])
    fake.fail(exception=httpx.ReadError("reset"), path=f"/v1/orders/{order_id}/events", times=10)
    with fake.client() as client:
        assert client.wait_for_order(order_id, timeout=5, poll_interval=0.01).status == S.COMPLETED


def test_wait_times_out_with_the_last_state() -> None:
    fake = FakeIntentService()
    fake.stall = True
    fake.advance_on_poll = False
    order_id = fake.add_order([S.PLANNED, S.COMPLETED])
    started = time.monotonic()
    with fake.client() as client, pytest.raises(WaitTimeout) as err:
        client.wait_for_order(order_id, timeout=0.3)
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 2
    assert err.value.order is not None and err.value.order.status == S.PLANNED
    assert isinstance(err.value, TimeoutError)
    assert f"order {order_id}" in str(err.value) and "PLANNED" in str(err.value)


def test_wait_times_out_while_polling() -> None:
    fake = FakeIntentService()
    fake.sse = False
    fake.advance_on_poll = False
    order_id = fake.add_order([S.PLANNED])
    started = time.monotonic()
    with fake.client() as client, pytest.raises(WaitTimeout):
        client.wait_for_order(order_id, timeout=0.2, poll_interval=0.05)
    assert 0.15 <= time.monotonic() - started < 2


def test_wait_for_an_unknown_order_raises_not_found() -> None:
    with FakeIntentService().client() as client, pytest.raises(NotFound):
        client.wait_for_order("nope")


def test_follow_yields_each_change_once() -> None:
    answers = iter([S.ACCEPTED, S.ACCEPTED, S.ACCEPTED, S.PLANNED, S.PLANNED, S.COMPLETED])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "no streams"}})
        return httpx.Response(200, json=order_json("o-1", next(answers)))

    with YijuClient(BASE_URL, transport=httpx.MockTransport(handler)) as client:
        seen = [o.status for o in client.follow_order("o-1", timeout=5, poll_interval=0.01)]
    assert seen == [S.ACCEPTED, S.PLANNED, S.COMPLETED]


# --- the async client -------------------------------------------------------------------------------------


async def test_async_submit_get_confirm_cancel() -> None:
    fake = FakeIntentService()
    waiting = fake.add_order([S.AWAITING_CONFIRMATION])
    async with fake.async_client(token="tok") as client:
        accepted = await client.submit_intent("u-1002", "一杯美式", locale="zh-CN")
        order = await client.get_order(accepted.order_id)
        confirmed = await client.confirm(waiting)
        with pytest.raises(Conflict):
            await client.cancel(waiting)
        assert await client.health() == {"status": "ok"}
    assert body(fake.requests[0])["idempotency_key"] == accepted.idempotency_key
    assert fake.requests[0].headers["authorization"] == "Bearer tok"
    assert order.status == S.ACCEPTED and confirmed.status == S.AUTHORIZED


@pytest.mark.parametrize(
    ("status", "cls"), [(404, NotFound), (409, Conflict), (422, InvalidRequest), (401, Unauthorized)]
)
async def test_async_error_mapping(status: int, cls: type[YijuError]) -> None:
    fake = FakeIntentService()
    fake.fail(status, body={"error": {"code": "c", "message": "m"}})
    async with fake.async_client() as client:
        with pytest.raises(cls) as err:
            await client.get_order("o-1")
    assert (err.value.status, err.value.code, err.value.message) == (status, "c", "m")


async def test_async_rate_limit_and_retries() -> None:
    fake = FakeIntentService()
    order_id = fake.add_order([S.COMPLETED])
    fake.fail(503)
    fake.fail(exception=httpx.ConnectError("refused"))
    async with fake.async_client(retry=FAST_RETRY) as client:
        assert (await client.get_order(order_id)).status == S.COMPLETED
        assert len(fake.requests) == 3
        fake.fail(429, headers={"Retry-After": "3"})
        with pytest.raises(RateLimited) as err:
            await client.get_order(order_id)
    assert err.value.retry_after == 3.0
    assert len(fake.requests) == 4  # 429 is not retried


@pytest.mark.parametrize("size", [None, 1, 9])
async def test_async_watch_parses_chunked_events(size: int | None) -> None:
    transport = httpx.MockTransport(stream_handler(split(EVENTS, size)))
    async with AsyncYijuClient(BASE_URL, transport=transport) as client:
        orders = [o async for o in client.watch_order("o-1")]
    assert [o.status for o in orders] == [S.ACCEPTED, S.PLANNED, S.COMPLETED]


async def test_async_wait_for_order_via_stream_and_polling() -> None:
    fake = FakeIntentService()
    streamed = fake.add_order([S.ACCEPTED, S.PLANNED, S.COMPLETED])
    async with fake.async_client() as client:
        assert (await client.wait_for_order(streamed, timeout=5)).status == S.COMPLETED
        fake.sse = False
        polled = fake.add_order([S.ACCEPTED, S.PLANNED, S.AWAITING_CONFIRMATION])
        assert (await client.wait_for_order(polled, timeout=5, poll_interval=0.01)).is_waiting


async def test_async_wait_times_out_on_a_silent_stream() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):

            async def silence():
                await asyncio.sleep(3600)
                yield b""

            return httpx.Response(200, headers=SSE_HEADERS, content=silence())
        return httpx.Response(200, json=order_json("o-1", S.PLANNED))

    started = time.monotonic()
    async with AsyncYijuClient(BASE_URL, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(WaitTimeout) as err:
            await client.wait_for_order("o-1", timeout=0.2)
    assert time.monotonic() - started < 2
    assert err.value.order is not None and err.value.order.status == S.PLANNED


async def test_async_follow_can_stop_early() -> None:
    fake = FakeIntentService()
    order_id = fake.add_order([S.ACCEPTED, S.PLANNED, S.COMPLETED])
    fake.advance_on_poll = False
    async with fake.async_client() as client:
        async for order in client.follow_order(order_id):
            assert order.status == S.ACCEPTED
            break
