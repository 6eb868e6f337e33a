"""Bytes that are not the request message answer INVALID_ARGUMENT with a reason, not UNKNOWN."""

from __future__ import annotations

import grpc
import pytest

from yiju.common.grpc import bind, check_health, create_server
from yiju.common.settings import Settings
from yiju_infra.local.processes import free_port


async def test_undecodable_requests_are_invalid_argument_and_good_ones_still_work() -> None:
    settings = Settings(grpc_host="127.0.0.1")
    server, _ = create_server(settings)
    port = free_port()
    bind(server, settings, port)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            garbage = channel.unary_unary("/grpc.health.v1.Health/Check")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await garbage(b"\xff\xff\x00garbage", timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not a valid" in (err.value.details() or "")
            stream = channel.unary_stream("/grpc.health.v1.Health/Watch")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stream(b"\xff\xff", timeout=5):
                    pass
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert await check_health(channel, timeout=5)
    finally:
        await server.stop(None)
