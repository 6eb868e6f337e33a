"""When to retry a call, and how long to wait first (shared by the sync and async clients)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from yiju.sdk._protocol import Call

# Errors raised before the request left this machine: retrying them cannot duplicate anything.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """A Retry-After header (delta seconds or an HTTP date) in seconds; ``None`` if absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    Idempotent calls (reads, and submits, which always carry an idempotency key) are retried on any
    network error and on 502/503/504. Other calls (confirm, cancel) are retried only when the request
    provably never reached the server (connection refused, connect timeout).
    """

    retries: int = 3
    """Retries after the first attempt (0 disables retrying)."""
    backoff: float = 0.2
    """Base delay in seconds; attempt n waits about ``backoff * 2**n``."""
    max_backoff: float = 3.0
    """Upper bound for one delay; a Retry-After longer than this is not waited for (the error is raised)."""
    retry_statuses: frozenset[int] = field(default=frozenset({502, 503, 504}))
    jitter: bool = True

    def start(self, call: Call) -> RetryState:
        """The retry bookkeeping for one call."""
        return RetryState(self, call)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        if not self.jitter or ceiling <= 0:
            return max(0.0, ceiling)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


NO_RETRY = RetryPolicy(retries=0)


class RetryState:
    """Tracks the attempts of one call; each ``after_*`` returns the delay before retrying, or ``None``."""

    def __init__(self, policy: RetryPolicy, call: Call) -> None:
        self.policy = policy
        self.call = call
        self.attempt = 0
        self.lost = False
        """An earlier attempt may have reached the server although no answer came back."""

    def _allowed(self) -> bool:
        return self.call.retry and self.attempt < self.policy.retries

    def _next(self, at_least: float = 0.0) -> float:
        delay = max(self.policy.delay(self.attempt), at_least)
        self.attempt += 1
        return delay

    def after_exception(self, exc: httpx.TransportError) -> float | None:
        """A network error happened; retry it?"""
        not_sent = isinstance(exc, _NOT_SENT)
        if not not_sent:
            self.lost = True
        if not self._allowed() or not (self.call.idempotent or not_sent):
            return None
        return self._next()

    def after_response(self, response: httpx.Response) -> float | None:
        """A response came back; retry it?"""
        if not self._allowed():
            return None
        status = response.status_code
        if status in self.policy.retry_statuses and self.call.idempotent:
            wait = parse_retry_after(response.headers.get("retry-after")) or 0.0
            return None if wait > self.policy.max_backoff else self._next(wait)
        if status == 409 and self.call.retry_conflict and self.lost:
            # Our own earlier attempt reached the server and is still in flight under the same key.
            return self._next()
        return None
