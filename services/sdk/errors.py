"""Exceptions raised by the SDK: one class per kind of failure, all under :class:`YijuError`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from yiju.sdk.models import Order


class YijuError(Exception):
    """Any failure talking to the intent service.

    ``status`` is the HTTP status (``None`` when no response came back), ``code`` and ``message`` are the
    server's ``{"error": {"code", "message"}}`` when it sent one, and ``body`` is the decoded response
    body (JSON value or text) for anything else a caller may want to inspect.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.body = body

    def __str__(self) -> str:
        parts = [self.message]
        details = []
        if self.status is not None:
            details.append(f"HTTP {self.status}")
        if self.code:
            details.append(self.code)
        if details:
            parts.append(f"({', '.join(details)})")
        return " ".join(parts)


class InvalidRequest(YijuError):
    """400 or 422: the request was malformed, or an idempotency key was reused with a different body."""


class Unauthorized(YijuError):
    """401: missing or invalid credentials."""


class Forbidden(Unauthorized):
    """403: the credentials are valid but not allowed to do this (e.g. another user's order)."""


class NotFound(YijuError):
    """404: no such order."""


class Conflict(YijuError):
    """409: the order is not in a state that allows this, or the same idempotency key is still in flight."""


class RateLimited(YijuError):
    """429: slow down; ``retry_after`` is the server's Retry-After in seconds (``None`` if it sent none)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(YijuError):
    """5xx: the service failed (after the retries allowed for the call)."""


class ConnectionFailed(YijuError):
    """No usable response: connection refused or reset, or a network timeout (after retries)."""


class WaitTimeout(YijuError, TimeoutError):
    """The order did not reach the awaited status in time; ``order`` is the last state seen (if any)."""

    def __init__(self, order_id: str, timeout: float | None, order: Order | None = None) -> None:
        after = f" after {timeout:g}s" if timeout is not None else ""
        last = f"; last status {order.status}" if order is not None else ""
        super().__init__(f"timed out{after} waiting for order {order_id}{last}", code="timeout")
        self.order_id = order_id
        self.timeout = timeout
        self.order = order


_BY_STATUS: dict[int, type[YijuError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidRequest,
    429: RateLimited,
}


def error_class_for(status: int) -> type[YijuError]:
    """The exception class for an HTTP error status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return YijuError
