"""The decisions behind ``follow_order`` / ``wait_for_order``, shared by the sync and async clients.

Following an order means: read it once (the event stream may only report changes), then listen to its
event stream; when the stream ends early or cannot be used, fall back to polling ``GET /v1/orders/{id}``.
It stops when the order reaches one of the awaited statuses or any terminal status (a terminal order can
never reach another status), and raises :class:`~yiju.sdk.errors.WaitTimeout` when time runs out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from yiju.sdk.errors import WaitTimeout, YijuError
from yiju.sdk.models import SETTLED_STATUSES, Order

# Statuses of a stream request that say "this will not work, poll instead" (the order may still exist).
_STREAM_UNUSABLE = frozenset({400, 401, 403, 404, 405, 406, 410, 415, 501})


class Follower:
    """Bookkeeping for following one order."""

    max_stream_failures = 3

    def __init__(
        self,
        order_id: str,
        *,
        timeout: float | None,
        until: Iterable[str] | None = None,
        poll_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must not be negative")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.order_id = order_id
        self.timeout = timeout
        self.until = frozenset(SETTLED_STATUSES if until is None else until)
        self.poll_interval = poll_interval
        self._clock = clock
        self.deadline = None if timeout is None else clock() + timeout
        self.last: Order | None = None
        self.done = False
        self.use_stream = True
        self._stream_failures = 0

    def remaining(self) -> float | None:
        """Seconds left (``None``: no limit)."""
        return None if self.deadline is None else max(0.0, self.deadline - self._clock())

    def expired(self) -> bool:
        return self.deadline is not None and self._clock() >= self.deadline

    def is_done(self, order: Order) -> bool:
        return order.status in self.until or order.is_terminal

    def observe(self, order: Order) -> bool:
        """Record an order; True if it differs from the last one seen (the caller then reports it)."""
        changed = self.last is None or order.raw != self.last.raw
        self.last = order
        self.done = self.is_done(order)
        return changed

    def stream_ended(self, events: int) -> None:
        """The server closed the stream before the order was done."""
        # It closes at a waiting status (reconnecting would only close again), and one that sends nothing
        # at all is of no use: poll from now on. Otherwise treat it like a dropped connection.
        if events == 0 or (self.last is not None and self.last.is_waiting):
            self.use_stream = False
        else:
            self._stream_failed()

    def stream_failed(self, exc: YijuError) -> None:
        """Opening or reading the stream failed (the authoritative error, if any, comes from polling)."""
        if exc.status in _STREAM_UNUSABLE:
            self.use_stream = False
        else:
            self._stream_failed()

    def _stream_failed(self) -> None:
        self._stream_failures += 1
        if self._stream_failures >= self.max_stream_failures:
            self.use_stream = False

    def poll_delay(self) -> float:
        remaining = self.remaining()
        return self.poll_interval if remaining is None else min(self.poll_interval, remaining)

    def timed_out(self) -> WaitTimeout:
        return WaitTimeout(self.order_id, self.timeout, self.last)
