"""The local Redis: valkey-server (or redis-server) on 127.0.0.1 with the append-only file on.

AOF (`appendfsync everysec`) in `DATA_DIR/redis` lets state survive a Redis restart (at most about
one second of writes is lost on kill -9); RDB snapshots are off.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from pathlib import Path

import redis.asyncio as aioredis

from yiju_infra.local.binaries import redis_server_bin
from yiju_infra.local.processes import ManagedProcess, ProcessError


async def redis_ping_ready(url: str, timeout: float = 20.0) -> None:
    """Retries PING on `url` until it answers PONG."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        try:
            if await client.ping():
                return
        except Exception as exc:  # LOADING (replaying the AOF), connection refused, ...: not yet
            last_error = exc
        finally:
            await client.aclose()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"Redis at {url} did not answer PING within {timeout:g}s: {last_error!r}")


class RedisServer:
    """A Redis/valkey server process on `host:port`, persisting to `data_dir/redis`."""

    def __init__(
        self,
        port: int,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        binary: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.dir = Path(data_dir) / "redis"
        self.binary = binary or redis_server_bin()
        argv = [
            str(self.binary),
            "--port",
            str(port),
            "--bind",
            host,
            "--protected-mode",
            "no",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
        ]
        self.process = ManagedProcess(
            "redis",
            argv,
            data_dir=data_dir,
            env=dict(env if env is not None else os.environ),
            port=port,
            host=host,
        )

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def description(self) -> str:
        return f"{self.binary.name}, AOF in {self.dir}"

    def spawn(self) -> None:
        """Starts the process without waiting (see `wait_ready`)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process.start()

    async def wait_ready(self, timeout: float = 20.0) -> float:
        """Waits until the server answers PING; returns seconds since spawn."""
        await self.process.wait_for_port(timeout)
        try:
            await redis_ping_ready(self.url, timeout)
        except TimeoutError as exc:
            raise ProcessError(self.process.describe_failure(str(exc))) from exc
        return time.monotonic() - (self.process.started_at or 0.0)

    async def start(self, timeout: float = 20.0) -> float:
        """Spawns Redis and waits for PING; returns the seconds it took."""
        self.spawn()
        return await self.wait_ready(timeout)

    async def stop(self, timeout: float = 10.0) -> None:
        await self.process.stop(timeout)
