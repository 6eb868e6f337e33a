"""The life of one service process: connect, serve, report health, stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable

import uvloop
from faststream.kafka import KafkaBroker
from grpc_health.v1 import health_pb2
from redis.asyncio.client import Redis

from yiju.common.broker import EventPublisher, create_broker
from yiju.common.catalog import Catalog, load_catalog
from yiju.common.consumer import BatchProcessor, EventRouter, subscribe
from yiju.common.grpc import bind, create_server, enable_reflection
from yiju.common.logs import setup_logging
from yiju.common.metrics import serve_metrics
from yiju.common.offset_commits import OffsetCommitter
from yiju.common.redis import INFRA_ERRORS, create_redis
from yiju.common.settings import Settings, get_settings
from yiju.common.telemetry import setup_tracing, shutdown_tracing
from yiju.common.topics import Namespace

log = logging.getLogger(__name__)
Hook = Callable[[], Awaitable[None]]

# Default metrics ports for the local run; in Kubernetes every pod uses YIJU_METRICS_PORT.
# A gRPC health name that answers SERVING while the process runs, whatever its dependencies do:
# for liveness probes (readiness uses the overall status, which follows Kafka and Redis).
LIVENESS_SERVICE = "liveness"

DEFAULT_METRICS_PORTS = {
    "intent": 9101,
    "model_gateway": 9102,
    "planning": 9103,
    "payment": 9104,
    "fulfilment": 9105,
}


class Service:
    """Holds a service's connections; subclasses or callers add routers, gRPC servicers and hooks."""

    def __init__(self, name: str, *, grpc_port_setting: str, uses_kafka: bool = True) -> None:
        self.name = name
        self.settings: Settings = get_settings()
        setup_logging(name, self.settings.log_level)
        setup_tracing(name, self.settings.data_dir)
        self.catalog: Catalog = load_catalog(self.settings.catalog_dir, self.settings.synthetic_users)
        self.redis: Redis = create_redis(self.settings)
        self.broker: KafkaBroker | None = create_broker(self.settings, name) if uses_kafka else None
        self.publisher: EventPublisher | None = (
            EventPublisher(self.broker, f"yiju/{name}", Namespace.of(self.settings))
            if self.broker is not None
            else None
        )
        self.grpc_server, self.health = create_server(self.settings)
        self.grpc_port: int = getattr(self.settings, grpc_port_setting)
        self.grpc_services: list[str] = []
        self.prepare: list[Hook] = []  # after Redis is up, before any event is consumed
        self.on_start: list[Hook] = []
        self.on_stop: list[Hook] = []
        self._committers: list[OffsetCommitter] = []
        self._stopping = asyncio.Event()

    def consume(self, router: EventRouter) -> BatchProcessor:
        assert self.broker is not None and self.publisher is not None
        processor = BatchProcessor(router, self.publisher, self.redis, self.settings)
        self._committers.append(subscribe(self.broker, processor, self.settings))
        return processor

    async def _wait_for_redis(self) -> None:
        for attempt in range(60):
            try:
                await self.redis.ping()
                return
            except INFRA_ERRORS:
                if attempt == 0:
                    log.warning("waiting for Redis", extra={"url": self.settings.redis_url})
                await asyncio.sleep(0.5)
        raise RuntimeError(f"Redis at {self.settings.redis_url} did not answer")

    async def _start_broker(self) -> None:
        assert self.broker is not None
        for attempt in range(60):
            try:
                await self.broker.start()
                return
            except Exception as exc:  # the broker may still be starting
                if attempt == 0:
                    log.warning(
                        "waiting for Kafka",
                        extra={"bootstrap": self.settings.kafka_bootstrap, "error": repr(exc)},
                    )
                with contextlib.suppress(Exception):
                    await self.broker.stop()
                await asyncio.sleep(0.5)
        raise RuntimeError(f"Kafka at {self.settings.kafka_bootstrap} did not answer")

    async def connected(self) -> bool:
        """True while Redis answers and the Kafka producer is connected."""
        try:
            await asyncio.wait_for(self.redis.ping(), 1.0)
        except (*INFRA_ERRORS, TimeoutError):
            return False
        if self.broker is not None:
            try:
                return await asyncio.wait_for(self.broker.ping(timeout=1.0), 1.5)
            except Exception:
                return False
        return True

    async def _watch_health(self) -> None:
        serving = None
        while not self._stopping.is_set():
            ok = await self.connected()
            if ok != serving:
                status = (
                    health_pb2.HealthCheckResponse.SERVING
                    if ok
                    else health_pb2.HealthCheckResponse.NOT_SERVING
                )
                await self.health.set("", status)
                for svc in self.grpc_services:
                    await self.health.set(svc, status)
                log.info("health changed", extra={"serving": ok})
                serving = ok
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 2.0)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        metrics_port = self.settings.metrics_port or DEFAULT_METRICS_PORTS.get(self.name, 0)
        serve_metrics(metrics_port, self.settings.grpc_host)
        await self._wait_for_redis()
        for hook in self.prepare:
            await hook()
        if self.broker is not None:
            await self._start_broker()
        enable_reflection(self.grpc_server, self.grpc_services)
        address = bind(self.grpc_server, self.settings, self.grpc_port)
        await self.grpc_server.start()
        await self.health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        for hook in self.on_start:
            await hook()
        watcher = asyncio.create_task(self._watch_health())
        tune_gc(self.settings.gc_gen0_threshold)
        log.info("service started", extra={"grpc": address, "metrics_port": metrics_port})
        await self._stopping.wait()
        log.info("service stopping")
        await self.health.enter_graceful_shutdown()
        for hook in reversed(self.on_stop):
            with contextlib.suppress(Exception):
                await hook()
        await self.grpc_server.stop(grace=3)
        for committer in self._committers:  # what is handled is committed; later batches commit at once
            with contextlib.suppress(Exception):
                await committer.close()
        if self.broker is not None:
            await self.broker.stop()
        watcher.cancel()
        await self.redis.aclose()
        shutdown_tracing()
        log.info("service stopped")


def tune_gc(gen0_threshold: int) -> None:
    """Moves everything alive after startup out of the collector's sight (gc.freeze: the catalog,
    modules and descriptors are never garbage, but every full collection would walk them) and sets the
    young-generation threshold. Collections are stop-the-world pauses inside every hop's latency."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)


def main(build: Callable[[], Service]) -> None:
    """Entry point for `python -m yiju.<service>`."""
    uvloop.run(_run(build))


async def _run(build: Callable[[], Service]) -> None:
    service = build()
    await service.run()
