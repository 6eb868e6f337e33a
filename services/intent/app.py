"""The intent service process: the public edge (HTTP + gRPC), Kafka intake and the order projection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn

from yiju.common.service import Service
from yiju.gen.intent.v1 import intent_pb2 as pb
from yiju.gen.intent.v1 import intent_pb2_grpc as pb_grpc
from yiju.intent.edge import Edge
from yiju.intent.grpc_api import IntentServicer
from yiju.intent.health import PlatformHealth
from yiju.intent.http_api import create_app
from yiju.intent.ingest import Ingest
from yiju.intent.orders import OrderActions
from yiju.intent.projection import Projection
from yiju.intent.store import OrderStore
from yiju.intent.sweeper import install_sweeper
from yiju.intent.watchers import OrderWatchers


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside the service's own event loop; the service handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build() -> Service:
    service = Service("intent", grpc_port_setting="grpc_port")
    settings = service.settings
    assert service.publisher is not None
    store = OrderStore(service.redis)
    ingest = Ingest(service.catalog, service.redis, store, service.publisher, settings)
    orders = OrderActions(store, service.publisher, refund_window_s=service.settings.refund_window_s)
    health = PlatformHealth(settings, service.connected)
    edge = Edge(service.redis, settings)
    watchers = OrderWatchers.from_settings(settings)  # their own Redis pool, never the consumers'
    service.consume(ingest.intake_router())
    service.consume(Projection(store).router())
    install_sweeper(service, store)
    servicer = IntentServicer(ingest, orders, edge, watchers)
    pb_grpc.add_IntentServiceServicer_to_server(servicer, service.grpc_server)
    service.grpc_services.append(pb.DESCRIPTOR.services_by_name["IntentService"].full_name)

    app = create_app(ingest, orders, health, edge, watchers)
    server = EmbeddedServer(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    task: asyncio.Task | None = None

    async def start_http() -> None:
        nonlocal task
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn exposes no event)
            await asyncio.sleep(0.02)
        if task.done():
            task.result()
            raise RuntimeError(f"HTTP server could not start on {settings.http_host}:{settings.http_port}")

    async def stop_http() -> None:
        server.should_exit = True
        if task is not None:
            await task
        await health.close()
        await watchers.close()

    service.on_start.append(start_http)
    service.on_stop.append(stop_http)
    return service
