"""The HTTP contract of the intent service, without any I/O.

Both clients build their requests here (:class:`Call`) and turn responses into models or exceptions here,
so the sync and async clients only differ in how they send bytes and sleep.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from yiju.sdk import errors
from yiju.sdk.models import Accepted, Order
from yiju.sdk.retry import parse_retry_after
from yiju.sdk.sse import ServerSentEvent

EVENT_STREAM = "text/event-stream"
ORDER_EVENT = "order"
HEALTH_PATH = "/healthz"


@dataclass(frozen=True, slots=True)
class Call:
    """One API request, as data."""

    method: str
    path: str
    json: dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotent: bool = True
    """Safe to resend after a network error whose outcome is unknown."""
    retry: bool = True
    """Retry at all (health checks and streams are not retried)."""
    retry_conflict: bool = False
    """A 409 after a lost attempt means that attempt is still in flight: retry (submit only)."""
    idempotency_key: str | None = None


def _order_path(order_id: str, suffix: str = "") -> str:
    if not order_id or not order_id.strip():
        raise ValueError("order_id must not be empty")
    return f"/v1/orders/{quote(order_id, safe='')}{suffix}"


def submit_intent(
    user_id: str, text: str, idempotency_key: str | None = None, locale: str | None = None
) -> Call:
    """``POST /v1/intents``; a missing idempotency key is generated so that retries are safe."""
    key = idempotency_key or str(uuid.uuid4())
    body: dict[str, Any] = {"user_id": user_id, "text": text, "idempotency_key": key}
    if locale:
        body["locale"] = locale
    return Call("POST", "/v1/intents", json=body, retry_conflict=True, idempotency_key=key)


def get_order(order_id: str) -> Call:
    return Call("GET", _order_path(order_id))


def order_events(order_id: str, last_event_id: str | None = None) -> Call:
    headers = {"Accept": EVENT_STREAM, "Cache-Control": "no-cache"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return Call("GET", _order_path(order_id, "/events"), headers=headers, retry=False)


def confirm(order_id: str) -> Call:
    return Call("POST", _order_path(order_id, "/confirm"), idempotent=False)


def cancel(order_id: str) -> Call:
    return Call("POST", _order_path(order_id, "/cancel"), idempotent=False)


def refund(order_id: str, reason: str | None = None) -> Call:
    """``POST /v1/orders/{id}/refund``: asking again answers the same, so a resend is safe."""
    return Call("POST", _order_path(order_id, "/refund"), json={"reason": reason} if reason else None)


def health() -> Call:
    return Call("GET", HEALTH_PATH, retry=False)


def auth_headers(token: str | None = None, api_key: str | None = None) -> dict[str, str]:
    """``Authorization: Bearer`` for a token, ``X-API-Key`` for an API key (both if both are given)."""
    headers: dict[str, str] = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if api_key:
        headers["X-API-Key"] = api_key
    return headers


# --- responses ---------------------------------------------------------------------------------------


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text


def _message_of(body: Any) -> tuple[str | None, str | None]:
    """(code, message) from the error shapes a server may send."""
    if not isinstance(body, Mapping):
        text = body.strip() if isinstance(body, str) else ""
        return None, (text[:500] or None)
    err = body.get("error")
    if isinstance(err, Mapping):
        code = err.get("code")
        message = err.get("message")
        return (str(code) if code else None), (str(message) if message else None)
    if isinstance(err, str):
        return None, err
    detail = body.get("detail")  # FastAPI's default shape
    if isinstance(detail, str):
        return None, detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, Mapping):
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
        return "validation_error", "; ".join(parts) or None
    message = body.get("message")
    return None, (str(message) if message else None)


def error_from_response(response: httpx.Response) -> errors.YijuError:
    """The exception for an error response (its body must have been read)."""
    status = response.status_code
    body = _body(response)
    code, message = _message_of(body)
    message = message or response.reason_phrase or f"HTTP {status}"
    cls = errors.error_class_for(status)
    if cls is errors.RateLimited:
        return errors.RateLimited(
            message,
            status=status,
            code=code,
            body=body,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    return cls(message, status=status, code=code, body=body)


def connection_error(exc: httpx.TransportError, call: Call) -> errors.ConnectionFailed:
    url = str(exc.request.url) if _has_request(exc) else call.path
    reason = str(exc) or type(exc).__name__
    return errors.ConnectionFailed(f"cannot reach the intent service at {url}: {reason}", code="connection")


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - raises RuntimeError when unset
    except RuntimeError:
        return False
    return True


def check(response: httpx.Response) -> None:
    """Raise the mapped exception for a 4xx/5xx response."""
    if response.status_code >= 400:
        raise error_from_response(response)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    check(response)
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.YijuError(
            "the server sent a response that is not JSON",
            status=response.status_code,
            code="invalid_response",
            body=response.text,
        ) from exc
    if not isinstance(data, dict):
        raise errors.YijuError(
            "the server sent JSON that is not an object",
            status=response.status_code,
            code="invalid_response",
            body=data,
        )
    return data


def parse_accepted(response: httpx.Response, call: Call) -> Accepted:
    return Accepted.from_json(_json_object(response), idempotency_key=call.idempotency_key)


def parse_order(response: httpx.Response) -> Order:
    return Order.from_json(_json_object(response))


def parse_health(response: httpx.Response) -> dict[str, Any]:
    check(response)
    body = _body(response)
    return body if isinstance(body, dict) else {"status": str(body).strip() or "ok"}


def check_event_stream(response: httpx.Response) -> None:
    """Raise unless the (already checked) response is an event stream (a missing content type is allowed)."""
    content_type = response.headers.get("content-type", "")
    if content_type and not content_type.lower().startswith(EVENT_STREAM):
        raise errors.YijuError(
            f"expected {EVENT_STREAM}, got {content_type}",
            status=response.status_code,
            code="not_event_stream",
        )


def order_from_event(event: ServerSentEvent) -> Order | None:
    """The order carried by an ``order`` event; ``None`` for events of other types.

    An ``error`` event carrying ``{"error": {"code", "message"}}`` is raised as :class:`YijuError`.
    """
    if event.event == "error":
        try:
            body: Any = json.loads(event.data)
        except ValueError:
            body = event.data
        code, message = _message_of(body)
        raise errors.YijuError(message or "the event stream reported an error", code=code, body=body)
    if event.event not in (ORDER_EVENT, "message"):
        return None
    try:
        data = json.loads(event.data)
    except ValueError as exc:
        raise errors.YijuError(
            "an order event carried data that is not JSON", code="invalid_event", body=event.data
        ) from exc
    if not isinstance(data, dict):
        raise errors.YijuError("an order event carried JSON that is not an object", code="invalid_event")
    return Order.from_json(data)


def stream_timeout(base: httpx.Timeout, remaining: float | None, read_timeout: float | None) -> httpx.Timeout:
    """Timeouts for an event stream: ``read`` bounds the silence between chunks and the time left."""
    read = read_timeout
    if remaining is not None:
        # A little past the deadline, so that when it fires the deadline check has certainly passed.
        read = remaining + 0.1 if read is None else min(read, remaining + 0.1)
    return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)
