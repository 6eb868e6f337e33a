"""A shared Redis pipeline reads its replies under one deadline, not one timer per reply; when the
deadline passes, every caller in it gets Redis' TimeoutError and the connection is dropped (its replies
would be out of step), so the next commands go out on a fresh connection.

The server is a minimal RESP stub: the first connection that is sent a GET never answers one (a server
stuck behind a slow script); every other connection answers everything."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from yiju.common.redis import create_redis


def parse_commands(buffer: bytearray) -> list[list[bytes]]:
    """Complete RESP arrays of bulk strings at the start of buffer (consumed from it)."""
    commands = []
    while True:
        try:
            head, rest = bytes(buffer).split(b"\r\n", 1)
            count, parts = int(head[1:]), []
            for _ in range(count):
                size_line, rest = rest.split(b"\r\n", 1)
                size = int(size_line[1:])
                if len(rest) < size + 2:
                    raise ValueError("incomplete")
                parts.append(rest[:size])
                rest = rest[size + 2 :]
        except ValueError:
            return commands
        commands.append(parts)
        del buffer[: len(buffer) - len(rest)]


@pytest.fixture
async def stub_server() -> AsyncIterator[tuple[int, list[int]]]:
    connections: list[int] = []  # ids of the connections that were sent a GET
    stuck: set[int] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = id(writer)
        buffer = bytearray()
        while data := await reader.read(65536):
            buffer += data
            for command in parse_commands(buffer):
                if command[0].upper() == b"GET":
                    if me not in connections:
                        connections.append(me)
                        if len(connections) == 1:
                            stuck.add(me)
                    if me not in stuck:
                        writer.write(b"$2\r\nok\r\n")
                else:
                    writer.write(b"+OK\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, connections
    finally:
        server.close()


async def test_one_deadline_fails_the_whole_pipeline_then_a_fresh_connection_serves(
    stub_server: tuple[int, list[int]],
) -> None:
    port, connections = stub_server
    redis = create_redis(url=f"redis://127.0.0.1:{port}/0")
    redis.connection_pool.connection_kwargs["socket_timeout"] = 0.3
    try:
        started = asyncio.get_running_loop().time()
        stuck = await asyncio.gather(*(redis.get(f"k{i}") for i in range(3)), return_exceptions=True)
        waited = asyncio.get_running_loop().time() - started
        assert all(isinstance(r, RedisTimeoutError) for r in stuck), stuck
        assert waited < 0.3 * 3, "one deadline for the pipeline, not one per reply"
        assert await asyncio.gather(*(redis.get(f"k{i}") for i in range(3))) == ["ok"] * 3
        assert len(connections) == 2, "the timed-out connection was not used again"
    finally:
        await redis.aclose()
