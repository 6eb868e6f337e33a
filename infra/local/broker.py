"""The local Kafka-protocol broker: tansu, listening on 127.0.0.1 only.

Storage comes from $YIJU_KAFKA_STORAGE (default `memory://tansu/`: fast, lost on restart). For data that
survives a broker restart use `s3://BUCKET/` with the AWS_* variables in the environment (see
/work/shared/ENVIRONMENT.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from yiju_infra.local.binaries import tansu_bin
from yiju_infra.local.processes import ManagedProcess, ProcessError

log = logging.getLogger(__name__)

STORAGE_ENV = "YIJU_KAFKA_STORAGE"
DEFAULT_STORAGE = "memory://tansu/"


def storage_engine() -> str:
    """The tansu storage engine URL: $YIJU_KAFKA_STORAGE or memory://tansu/."""
    return os.environ.get(STORAGE_ENV, "").strip() or DEFAULT_STORAGE


def storage_kind(storage: str) -> str:
    """A short description for humans: 'memory storage', 's3 storage', ..."""
    return f"{storage.split(':', 1)[0]} storage"


async def kafka_metadata_ready(bootstrap: str, timeout: float = 20.0) -> list[str]:
    """Retries a Kafka metadata request (admin list_topics) until it answers; returns the topic names."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await asyncio.wait_for(admin.start(), 5)
            return list(await asyncio.wait_for(admin.list_topics(), 5))
        except Exception as exc:  # any failure means "not yet"; the last one is reported
            last_error = exc
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        await asyncio.sleep(0.1)
    raise TimeoutError(
        f"Kafka at {bootstrap} did not answer a metadata request within {timeout:g}s: {last_error!r}"
    )


class Broker:
    """A tansu broker process on `host:port`."""

    def __init__(
        self,
        port: int,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        storage: str | None = None,
        env: Mapping[str, str] | None = None,
        binary: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.storage = storage or storage_engine()
        self.binary = binary or tansu_bin()
        url = f"tcp://{host}:{port}"
        argv = [
            str(self.binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.storage,
        ]
        self.process = ManagedProcess(
            "broker",
            argv,
            data_dir=data_dir,
            env=dict(env if env is not None else os.environ),
            port=port,
            host=host,
        )

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def description(self) -> str:
        return f"tansu, {storage_kind(self.storage)}"

    def spawn(self) -> None:
        """Starts the process without waiting (see `wait_ready`)."""
        self.process.start()

    async def wait_ready(self, timeout: float = 20.0) -> float:
        """Waits until the port is open and the broker answers metadata; returns seconds since spawn."""
        await self.process.wait_for_port(timeout)
        try:
            await kafka_metadata_ready(self.bootstrap, timeout)
        except TimeoutError as exc:
            raise ProcessError(self.process.describe_failure(str(exc))) from exc
        return time.monotonic() - (self.process.started_at or 0.0)

    async def start(self, timeout: float = 20.0) -> float:
        """Spawns the broker and waits until it answers metadata; returns the seconds it took."""
        self.spawn()
        return await self.wait_ready(timeout)

    async def stop(self, timeout: float = 10.0) -> None:
        await self.process.stop(timeout)
