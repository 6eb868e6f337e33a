"""The services' Redis client counts its round trips (a pipeline is one) and the commands it sends, for
the per-sentence budget (yiju_infra.bench.budget): a RESP stub answers every command."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from yiju.common.redis import create_redis


def _commands(buffer: bytearray) -> int:
    """How many complete RESP arrays sit at the start of buffer (consumed from it)."""
    count = 0
    while True:
        try:
            head, rest = bytes(buffer).split(b"\r\n", 1)
            for _ in range(int(head[1:])):
                size_line, rest = rest.split(b"\r\n", 1)
                size = int(size_line[1:])
                if len(rest) < size + 2:
                    return count
                rest = rest[size + 2 :]
        except ValueError:
            return count
        count += 1
        del buffer[: len(buffer) - len(rest)]


@pytest.fixture
async def stub_port() -> AsyncIterator[int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        while data := await reader.read(65536):
            buffer += data
            writer.write(b"+OK\r\n" * _commands(buffer))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def _counts() -> tuple[float, float]:
    trips = REGISTRY.get_sample_value("yiju_redis_round_trips_total") or 0.0
    commands = REGISTRY.get_sample_value("yiju_redis_commands_total") or 0.0
    return trips, commands


async def test_a_shared_pipeline_is_one_round_trip_and_each_command_counts(stub_port: int) -> None:
    redis = create_redis(url=f"redis://127.0.0.1:{stub_port}/0")
    try:
        await redis.set("warm", "1")  # connects (and says hello) first
        trips, commands = _counts()
        # Three commands issued in one event-loop turn leave as one pipeline ...
        await asyncio.gather(redis.set("a", "1"), redis.set("b", "2"), redis.set("c", "3"))
        assert _counts() == (trips + 1, commands + 3)
        # ... and one on its own is one round trip.
        await redis.set("d", "4")
        assert _counts() == (trips + 2, commands + 4)
    finally:
        await redis.aclose()
