"""An in-memory stand-in for the intent service's HTTP API, for tests of code that uses the SDK.

>>> fake = FakeIntentService()
>>> with fake.client() as client:
...     accepted = client.submit_intent("u-1002", "两杯拿铁")
...     client.wait_for_order(accepted.order_id).status
'COMPLETED'

Each order follows a scripted list of statuses. ``GET /v1/orders/{id}`` returns the current state (and,
with ``advance_on_poll``, moves one step on); ``GET .../events`` streams the states from the current one
up to the next terminal or waiting status and ends, as the real service does. Confirm and cancel follow
the contract (409 unless AWAITING_CONFIRMATION). Faults can be injected with :meth:`FakeIntentService.fail`
and every request is kept in ``requests``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from yiju.sdk.async_client import AsyncYijuClient
from yiju.sdk.client import YijuClient
from yiju.sdk.models import SETTLED_STATUSES, OrderStatus
from yiju.sdk.retry import NO_RETRY

S = OrderStatus
HAPPY_PATH: tuple[str, ...] = (S.ACCEPTED, S.PLANNED, S.AUTHORIZED, S.FULFILLED, S.COMPLETED)
AFTER_CONFIRM: tuple[str, ...] = (S.AUTHORIZED, S.FULFILLED, S.COMPLETED)
BASE_URL = "http://yiju.test"

DEFAULT_LINES: tuple[dict[str, Any], ...] = (
    {"sku": "cafe-latte-l", "name": "拿铁 (大杯)", "vertical": "food", "quantity": 2, "unit_price_fen": 1800},
    {"sku": "cafe-croissant", "name": "可颂", "vertical": "food", "quantity": 1, "unit_price_fen": 1250},
)
DEFAULT_SUBSIDY_FEN = 500

_PLANNED_OR_LATER = frozenset(
    {S.PLANNED, S.AWAITING_CONFIRMATION, S.AUTHORIZED, S.FULFILLED, S.COMPLETED, S.PAYMENT_DECLINED, S.FAILED}
)


def order_json(
    order_id: str,
    status: str,
    *,
    user_id: str = "u-1002",
    text: str = "两杯大杯拿铁和一个可颂",
    reason: str | None = None,
    lines: Sequence[dict[str, Any]] = DEFAULT_LINES,
    subsidy_fen: int = DEFAULT_SUBSIDY_FEN,
    history: Sequence[str] = (),
    trace_id: str = "4bf92f3577b34da6a3ce929d0e0e4736",
) -> dict[str, Any]:
    """A plausible order JSON for ``status`` (lines once planned, payment once authorised, ...)."""
    planned = status in _PLANNED_OR_LATER or (status == S.CANCELLED and bool(history[1:]))
    items = [
        {**line, "line_total_fen": line["quantity"] * line["unit_price_fen"]}
        for line in (lines if planned else ())
    ]
    subtotal = sum(item["line_total_fen"] for item in items)
    subsidy = min(subsidy_fen, subtotal)
    total = subtotal - subsidy
    payment = None
    if status in (S.AUTHORIZED, S.FULFILLED, S.COMPLETED, S.FAILED):
        captured = total if status in (S.FULFILLED, S.COMPLETED) else 0
        payment_status = "CAPTURED" if captured else ("VOIDED" if status == S.FAILED else "AUTHORIZED")
        payment = {"status": payment_status, "authorized_fen": total, "captured_fen": captured}
    elif status == S.PAYMENT_DECLINED:
        payment = {"status": "DECLINED", "authorized_fen": 0, "captured_fen": 0}
    fulfilment = []
    if status in (S.FULFILLED, S.COMPLETED, S.FAILED):
        ok = status != S.FAILED
        fulfilment = [
            {
                "sku": item["sku"],
                "status": "DELIVERED" if ok else "FAILED",
                "provider_ref": f"prov-{item['sku']}" if ok else None,
            }
            for item in items
        ]
    steps = list(history) or [status]
    return {
        "order_id": order_id,
        "user_id": user_id,
        "text": text,
        "status": status,
        "reason": reason,
        "lines": items,
        "subtotal_fen": subtotal,
        "subsidy_fen": subsidy,
        "total_fen": total,
        "payment": payment,
        "fulfilment": fulfilment,
        "history": [{"status": s, "at": f"2025-01-01T00:00:{i:02d}+00:00"} for i, s in enumerate(steps)],
        "trace_id": trace_id,
    }


def sse_event(data: Any, event: str = "order") -> str:
    """One event in wire format."""
    payload = json.dumps(data, ensure_ascii=False)
    return f"event: {event}\ndata: {payload}\n\n"


class ChunkStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body sent in the given chunks, optionally ``delay`` seconds apart, usable sync and async."""

    def __init__(self, chunks: Iterable[bytes], delay: float = 0.0) -> None:
        self.chunks = chunks
        self.delay = delay

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            if self.delay:
                time.sleep(self.delay)
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            if self.delay:
                await asyncio.sleep(self.delay)
            yield chunk


def split(data: bytes, size: int | None) -> list[bytes]:
    """``data`` in pieces of ``size`` bytes (regardless of UTF-8 or line boundaries)."""
    if not size:
        return [data]
    return [data[i : i + size] for i in range(0, len(data), size)]


@dataclass
class FakeOrder:
    order_id: str
    user_id: str
    text: str
    statuses: list[str]
    reason: str | None = None
    position: int = 0

    @property
    def status(self) -> str:
        return self.statuses[self.position]

    def json(self) -> dict[str, Any]:
        return order_json(
            self.order_id,
            self.status,
            user_id=self.user_id,
            text=self.text,
            reason=self.reason,
            history=self.statuses[: self.position + 1],
        )

    def advance(self) -> None:
        self.position = min(self.position + 1, len(self.statuses) - 1)


@dataclass
class Fault:
    """An injected answer: a response (``status``/``body``/``headers``) or an ``exception``."""

    status: int = 503
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    exception: Exception | None = None
    method: str | None = None
    path: str | None = None
    times: int = 1
    after_handling: bool = False
    """Handle the request normally first, then fail (a response lost on the way back)."""

    def matches(self, request: httpx.Request) -> bool:
        return (self.method is None or request.method == self.method) and (
            self.path is None or request.url.path == self.path
        )


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}}, headers=headers)


class FakeIntentService:
    """The fake; see the module docstring. Pass ``tokens`` ({token: user_id}) to require authentication."""

    def __init__(
        self,
        *,
        tokens: dict[str, str] | None = None,
        plan: Callable[[str, str], Sequence[str]] | None = None,
        reason: str | None = None,
    ) -> None:
        self.tokens = tokens
        self.plan = plan or (lambda user_id, text: HAPPY_PATH)
        self.reason = reason
        self.orders: dict[str, FakeOrder] = {}
        self.requests: list[httpx.Request] = []
        self.faults: list[Fault] = []
        self.keys: dict[str, tuple[tuple[str, str, str | None], str]] = {}
        self.sse = True
        """Serve ``/events`` (else 404, as a server without streaming would)."""
        self.stall = False
        """Make ``/events`` send only keepalive comments, forever."""
        self.advance_on_poll = True
        self.chunk_size: int | None = None
        self.chunk_delay = 0.0
        self._ids = itertools.count(1)

    # --- setup ---------------------------------------------------------------------------------------

    def add_order(
        self,
        statuses: Sequence[str],
        *,
        order_id: str | None = None,
        user_id: str = "u-1002",
        text: str = "两杯大杯拿铁和一个可颂",
        reason: str | None = None,
    ) -> str:
        order_id = order_id or f"o-{next(self._ids)}"
        self.orders[order_id] = FakeOrder(order_id, user_id, text, list(statuses), reason)
        return order_id

    def fail(self, status: int = 503, **options: Any) -> Fault:
        """Inject a fault for the next matching request(s); see :class:`Fault`."""
        fault = Fault(status=status, **options)
        self.faults.append(fault)
        return fault

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self, **options: Any) -> YijuClient:
        """A sync client wired to this fake (retries off unless ``retry`` is given)."""
        options.setdefault("retry", NO_RETRY)
        return YijuClient(options.pop("base_url", BASE_URL), transport=self.transport(), **options)

    def async_client(self, **options: Any) -> AsyncYijuClient:
        options.setdefault("retry", NO_RETRY)
        return AsyncYijuClient(options.pop("base_url", BASE_URL), transport=self.transport(), **options)

    def paths(self) -> list[str]:
        """``METHOD /path`` of every request so far."""
        return [f"{r.method} {r.url.path}" for r in self.requests]

    # --- the API -------------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        fault = next((f for f in self.faults if f.times > 0 and f.matches(request)), None)
        if fault is not None:
            fault.times -= 1
            if fault.after_handling:
                self._route(request)
            if fault.exception is not None:
                raise fault.exception
            body = (
                fault.body if fault.body is not None else {"error": {"code": "injected", "message": "fault"}}
            )
            return httpx.Response(fault.status, json=body, headers=fault.headers)
        return self._route(request)

    def _user(self, request: httpx.Request) -> str | None:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        token = token or request.headers.get("x-api-key", "")
        return (self.tokens or {}).get(token)

    def _route(self, request: httpx.Request) -> httpx.Response:
        user = self._user(request)
        if self.tokens is not None and user is None:
            return _error(401, "unauthenticated", "missing or invalid credentials")
        parts = request.url.path.strip("/").split("/")
        if request.method == "GET" and parts == ["healthz"]:
            return httpx.Response(200, json={"status": "ok"})
        if request.method == "POST" and parts == ["v1", "intents"]:
            return self._submit(request, user)
        if len(parts) >= 3 and parts[:2] == ["v1", "orders"]:
            order = self.orders.get(parts[2])
            if order is None:
                return _error(404, "order_not_found", f"no order {parts[2]}")
            if user is not None and order.user_id != user:
                return _error(403, "forbidden", "not your order")
            action = "/".join(parts[3:])
            if request.method == "GET" and action == "":
                response = httpx.Response(200, json=order.json())
                if self.advance_on_poll:
                    order.advance()
                return response
            if request.method == "GET" and action == "events":
                return self._events(order)
            if request.method == "POST" and action in ("confirm", "cancel"):
                return self._decide(order, action)
        return _error(404, "not_found", f"no route for {request.method} {request.url.path}")

    def _submit(self, request: httpx.Request, user: str | None) -> httpx.Response:
        try:
            body = json.loads(request.content)
        except ValueError:
            return _error(400, "invalid_json", "the body is not JSON")
        user_id, text = body.get("user_id"), body.get("text")
        if not isinstance(user_id, str) or not user_id or not isinstance(text, str) or not text.strip():
            return _error(422, "invalid_request", "user_id and text are required")
        if user is not None and user != user_id:
            return _error(403, "forbidden", "token does not belong to user_id")
        fingerprint = (user_id, text, body.get("locale"))
        key = body.get("idempotency_key")
        if key and key in self.keys:
            seen, order_id = self.keys[key]
            if seen != fingerprint:
                return _error(422, "idempotency_key_reused", "idempotency key reused with a different body")
            return httpx.Response(200, json={"order_id": order_id, "status": "ACCEPTED"})
        order_id = self.add_order(self.plan(user_id, text), user_id=user_id, text=text, reason=self.reason)
        if key:
            self.keys[key] = (fingerprint, order_id)
        return httpx.Response(202, json={"order_id": order_id, "status": "ACCEPTED"})

    def _events(self, order: FakeOrder) -> httpx.Response:
        if not self.sse:
            return _error(404, "not_found", "no event stream here")
        headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}
        if self.stall:
            return httpx.Response(
                200, headers=headers, stream=ChunkStream(itertools.repeat(b": keepalive\n\n"), 0.02)
            )
        text = ": connected\n\n"
        while True:
            text += sse_event(order.json()) + ": keepalive\n\n"
            if order.status in SETTLED_STATUSES or order.position == len(order.statuses) - 1:
                break
            order.advance()
        chunks = split(text.encode(), self.chunk_size)
        return httpx.Response(200, headers=headers, stream=ChunkStream(chunks, self.chunk_delay))

    def _decide(self, order: FakeOrder, action: str) -> httpx.Response:
        if order.status != S.AWAITING_CONFIRMATION:
            return _error(409, "not_awaiting_confirmation", f"order {order.order_id} is {order.status}")
        done = order.statuses[: order.position + 1]
        order.statuses = done + (list(AFTER_CONFIRM) if action == "confirm" else [S.CANCELLED])
        order.advance()
        return httpx.Response(200, json=order.json())
