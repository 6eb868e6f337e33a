"""The model-gateway service process."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from yiju.common.service import Service
from yiju.gen.gateway.v1 import gateway_pb2 as pb
from yiju.gen.gateway.v1 import gateway_pb2_grpc as pb_grpc
from yiju.model_gateway.assemble import assemble
from yiju.model_gateway.config import GatewaySettings
from yiju.model_gateway.kafka_worker import WorkerSettings, install_worker

log = logging.getLogger(__name__)


def _preload(name: str, load: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """Loads model weights before serving; a failure is logged and the chain falls back meanwhile."""

    async def hook() -> None:
        try:
            await load()
        except Exception as exc:
            log.error(
                "backend failed to load; serving from the next backend",
                extra={"backend": name, "error": repr(exc)},
            )

    return hook


def build() -> Service:
    worker = WorkerSettings()
    service = Service("model_gateway", grpc_port_setting="gateway_port", uses_kafka=worker.kafka_worker)
    settings = GatewaySettings()
    assembly = assemble(settings, service.catalog, service.redis)
    # Stop hooks run in reverse order of registration: the model clients are registered first so
    # that they close last, after the Kafka worker has drained its in-flight model calls (up to
    # YIJU_GATEWAY_STOP_GRACE_S). Closed first, they cut off a running call on every SIGTERM.
    service.on_stop.append(assembly.aclose)
    if worker.kafka_worker:  # planning's asynchronous model path (ParseRequested -> ParseCompleted)
        install_worker(service, assembly.worker_parse, worker)
    pb_grpc.add_ModelGatewayServiceServicer_to_server(assembly.servicer(), service.grpc_server)
    service.grpc_services.append(pb.DESCRIPTOR.services_by_name["ModelGatewayService"].full_name)
    for backend in assembly.backends:
        ensure_loaded = getattr(backend, "ensure_loaded", None)
        if ensure_loaded is not None:  # load model weights before serving, not on the first call
            service.prepare.append(_preload(backend.name, ensure_loaded))
    return service
