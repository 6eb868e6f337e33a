"""Provider adapters per vertical. The built-in ones simulate a provider with configurable latency
and failure rate; real adapters implement the same three calls.

Every call to a provider has a deadline (`TimeBound`, `YIJU_FULFILMENT_PROVIDER_TIMEOUT_S`): a dispatch
that has not answered in time counts as failed, and since the provider may still have taken it, whatever
it took for that line is cancelled (`cancel_unconfirmed`, by order and line: providers take the order
id and SKU as the dispatch's idempotency key).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from dataclasses import dataclass
from typing import Protocol

from yiju.common.settings import Settings
from yiju.gen.events.v1 import order_events_pb2 as ev

log = logging.getLogger(__name__)


class ProviderError(Exception):
    """The provider refused or failed the request."""


class ProviderTimeout(ProviderError):
    """The provider did not answer within the deadline."""


@dataclass(frozen=True)
class Dispatch:
    provider_ref: str


class Provider(Protocol):
    vertical: str

    async def dispatch(self, order_id: str, line: ev.PlanLine) -> Dispatch: ...

    async def cancel(self, order_id: str, dispatch: Dispatch) -> None: ...

    async def cancel_unconfirmed(self, order_id: str, line: ev.PlanLine) -> None:
        """Cancels whatever was taken for this line of the order, if anything: for a dispatch whose
        answer never came (timed out, or the process died before recording it)."""
        ...


_PREFIX = {"food": "FD", "grocery": "GR", "retail": "SHP", "ride": "RIDE", "travel": "TRV"}


class SimulatedProvider:
    """Answers after a small latency; fails at the configured rate or for the configured SKUs."""

    def __init__(self, vertical: str, settings: Settings) -> None:
        self.vertical = vertical
        self.latency_s = settings.fulfilment_latency_ms / 1000
        self.failure_rate = settings.fulfilment_failure_rate
        self.fail_skus = {s.strip() for s in settings.fulfilment_fail_skus.split(",") if s.strip()}

    async def dispatch(self, order_id: str, line: ev.PlanLine) -> Dispatch:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if line.sku in self.fail_skus or random.random() < self.failure_rate:
            raise ProviderError(f"{self.vertical} provider could not take {line.sku}")
        digest = hashlib.sha1(f"{order_id}/{line.sku}".encode()).hexdigest()[:10].upper()
        return Dispatch(f"{_PREFIX.get(self.vertical, 'X')}-{digest}")

    async def cancel(self, order_id: str, dispatch: Dispatch) -> None:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)

    async def cancel_unconfirmed(self, order_id: str, line: ev.PlanLine) -> None:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)


class TimeBound:
    """A provider whose every call has a deadline (see the module docstring)."""

    def __init__(self, inner: Provider, timeout_s: float) -> None:
        self.inner = inner
        self.vertical = inner.vertical
        self.timeout_s = timeout_s

    async def dispatch(self, order_id: str, line: ev.PlanLine) -> Dispatch:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self.inner.dispatch(order_id, line)
        except TimeoutError:
            pass
        error = f"{self.vertical} provider did not answer for {line.sku} within {self.timeout_s:g}s"
        try:
            await self.cancel_unconfirmed(order_id, line)
        except ProviderError as exc:  # the line failed either way; the cancel is left to an operator
            log.error(
                "cancelling a dispatch that timed out failed",
                extra={"order_id": order_id, "sku": line.sku, "error": str(exc)},
            )
            error += f" (its cancellation failed: {exc})"
        raise ProviderTimeout(error)

    async def cancel(self, order_id: str, dispatch: Dispatch) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.inner.cancel(order_id, dispatch)
        except TimeoutError:
            raise ProviderTimeout(
                f"{self.vertical} provider did not confirm cancelling {dispatch.provider_ref} "
                f"within {self.timeout_s:g}s"
            ) from None

    async def cancel_unconfirmed(self, order_id: str, line: ev.PlanLine) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.inner.cancel_unconfirmed(order_id, line)
        except TimeoutError:
            raise ProviderTimeout(
                f"{self.vertical} provider did not confirm cancelling {line.sku} within {self.timeout_s:g}s"
            ) from None


def time_bound(providers: dict[str, Provider], timeout_s: float) -> dict[str, Provider]:
    """The same providers, each call with a deadline of `timeout_s`."""
    return {vertical: TimeBound(provider, timeout_s) for vertical, provider in providers.items()}


def simulated_providers(settings: Settings) -> dict[str, Provider]:
    simulated: dict[str, Provider] = {
        v: SimulatedProvider(v, settings) for v in ("food", "grocery", "retail", "ride", "travel")
    }
    return time_bound(simulated, settings.fulfilment_provider_timeout_s)
