"""Platform health as the edge sees it: its own connections plus every other service's gRPC health."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc

from yiju.common.grpc import channel, check_health
from yiju.common.settings import Settings

PEERS = ("gateway", "planning", "payment", "fulfilment")


class PlatformHealth:
    def __init__(self, settings: Settings, self_check: Callable[[], Awaitable[bool]]) -> None:
        self.self_check = self_check
        self.channels: dict[str, grpc.aio.Channel] = {p: channel(settings, settings.target(p)) for p in PEERS}

    async def check(self) -> dict[str, bool]:
        names = ["intent", *self.channels]
        results = await asyncio.gather(
            self.self_check(), *(check_health(ch) for ch in self.channels.values())
        )
        return dict(zip(names, results, strict=True))

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close()
