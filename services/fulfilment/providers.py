"""Provider adapters per vertical. The built-in ones simulate a provider with configurable latency
and failure rate; real adapters implement the same two calls."""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass
from typing import Protocol

from yiju.common.settings import Settings
from yiju.gen.events.v1 import order_events_pb2 as ev


class ProviderError(Exception):
    """The provider refused or failed the request."""


@dataclass(frozen=True)
class Dispatch:
    provider_ref: str


class Provider(Protocol):
    vertical: str

    async def dispatch(self, order_id: str, line: ev.PlanLine) -> Dispatch: ...

    async def cancel(self, order_id: str, dispatch: Dispatch) -> None: ...


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


def simulated_providers(settings: Settings) -> dict[str, Provider]:
    return {v: SimulatedProvider(v, settings) for v in ("food", "grocery", "retail", "ride", "travel")}
