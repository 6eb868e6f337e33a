"""A circuit breaker per model backend.

closed: calls go through; `failures` consecutive failures or timeouts open it.
open: calls are refused (the gateway serves from the next backend) for `cooldown_s`.
half-open: after the cool-down one probe call goes through; success closes the breaker, failure
opens it again for another cool-down. Only one probe is in flight at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum

from yiju.model_gateway import metrics


class State(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failures: int = 5,
        cooldown_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = max(1, failures)
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._state = State.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._publish()

    @property
    def state(self) -> State:
        """The state now (an open breaker whose cool-down is over reads as half-open)."""
        if self._state is State.OPEN and self._clock() - self._opened_at >= self.cooldown_s:
            return State.HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """True if a call may go to the backend now; in half-open state only the one probe may."""
        state = self.state
        if state is State.CLOSED:
            return True
        if state is State.HALF_OPEN and not self._probing:
            self._state = State.HALF_OPEN
            self._probing = True
            self._publish()
            return True
        return False

    def success(self) -> None:
        self._failures = 0
        self._probing = False
        if self._state is not State.CLOSED:
            self._state = State.CLOSED
            self._publish()

    def failure(self) -> None:
        self._probing = False
        self._failures += 1
        if self._state is State.HALF_OPEN or self._failures >= self.threshold:
            self._state = State.OPEN
            self._opened_at = self._clock()
            self._publish()

    def abandon(self) -> None:
        """A call that ended without a verdict (cancelled): let another call probe."""
        self._probing = False

    def _publish(self) -> None:
        metrics.BREAKER_STATE.labels(self.name).set(int(self._state))
