"""gRPC server and client set-up: tracing, health, reflection and optional (mutual) TLS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor

from yiju.common.settings import Settings

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
]


def _read(path: str) -> bytes | None:
    return Path(path).read_bytes() if path else None


class _Undecodable:
    def __init__(self, error: Exception) -> None:
        self.error = error


class RejectUndecodable(grpc.aio.ServerInterceptor):
    """Bytes that are not the method's request message answer INVALID_ARGUMENT with the reason
    (grpcio would answer UNKNOWN "Unexpected DecodeError")."""

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None or handler.request_streaming:
            return handler
        deserialize = handler.request_deserializer

        def safe(raw: bytes) -> Any:
            try:
                return deserialize(raw)
            except Exception as exc:
                return _Undecodable(exc)

        async def refuse(request: _Undecodable, context: grpc.aio.ServicerContext) -> None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request is not a valid {details.method} message: {request.error}",
            )

        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if isinstance(request, _Undecodable):
                    await refuse(request, context)
                return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, request_deserializer=safe, response_serializer=handler.response_serializer
            )
        inner_stream = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if isinstance(request, _Undecodable):
                await refuse(request, context)
            async for item in inner_stream(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, request_deserializer=safe, response_serializer=handler.response_serializer
        )


def create_server(settings: Settings) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    server = grpc.aio.server(interceptors=[RejectUndecodable(), aio_server_interceptor()], options=_OPTIONS)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    return server, health_servicer


def enable_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    reflection.enable_server_reflection(
        (*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )


def bind(server: grpc.aio.Server, settings: Settings, port: int) -> str:
    address = f"{settings.grpc_host}:{port}"
    if settings.grpc_tls_cert:
        credentials = grpc.ssl_server_credentials(
            [(_read(settings.grpc_tls_key), _read(settings.grpc_tls_cert))],
            root_certificates=_read(settings.grpc_tls_ca),
            require_client_auth=bool(settings.grpc_tls_ca),
        )
        server.add_secure_port(address, credentials)
    else:
        server.add_insecure_port(address)
    return address


def channel(settings: Settings, target: str) -> grpc.aio.Channel:
    """A long-lived client channel to another service (create once, reuse for every call)."""
    interceptors = aio_client_interceptors()
    if settings.grpc_tls_ca:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(settings.grpc_tls_ca),
            private_key=_read(settings.grpc_tls_key),
            certificate_chain=_read(settings.grpc_tls_cert),
        )
        return grpc.aio.secure_channel(target, credentials, options=_OPTIONS, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, options=_OPTIONS, interceptors=interceptors)


async def check_health(ch: grpc.aio.Channel, timeout: float = 1.0) -> bool:
    try:
        reply = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=timeout
        )
    except grpc.aio.AioRpcError:
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING
