"""RESOURCE_EXHAUSTED with the time to wait, the two ways gRPC clients read it.

- `retry-after-ms` trailing metadata (simple to read from any client);
- `grpc-status-details-bin`: a google.rpc.Status carrying a google.rpc.RetryInfo detail (what
  grpcio-status's `rpc_status.from_call` and the Go/Java status helpers decode).
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

RETRY_AFTER_KEY = "retry-after-ms"
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def retry_trailers(message: str, retry_after_ms: int) -> tuple[tuple[str, str | bytes], ...]:
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(max(0, retry_after_ms))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message, details=[detail])
    return ((RETRY_AFTER_KEY, str(max(0, retry_after_ms))), (STATUS_DETAILS_KEY, status.SerializeToString()))


async def abort_exhausted(context: grpc.aio.ServicerContext, message: str, retry_after_ms: int) -> None:
    await context.abort(
        grpc.StatusCode.RESOURCE_EXHAUSTED, message, trailing_metadata=retry_trailers(message, retry_after_ms)
    )


def retry_after_ms(error: grpc.aio.AioRpcError) -> int | None:
    """The wait a RESOURCE_EXHAUSTED error asks for (client side), from RetryInfo or the metadata."""
    for key, value in error.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return int(info.retry_delay.ToMilliseconds())
    for key, value in error.trailing_metadata() or ():
        if key == RETRY_AFTER_KEY:
            return int(value)
    return None
