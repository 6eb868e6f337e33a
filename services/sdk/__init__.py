"""Python client for the yiju intent service: submit a sentence, follow the order it becomes.

``YijuClient`` (blocking) and ``AsyncYijuClient`` (asyncio) share one implementation of the HTTP contract
(:mod:`yiju.sdk._protocol`), the retry policy (:mod:`yiju.sdk.retry`) and the SSE parser
(:mod:`yiju.sdk.sse`); results are the typed models of :mod:`yiju.sdk.models`, errors the exceptions of
:mod:`yiju.sdk.errors`.
"""

from yiju.sdk.async_client import AsyncYijuClient
from yiju.sdk.client import YijuClient
from yiju.sdk.config import default_base_url
from yiju.sdk.errors import (
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    WaitTimeout,
    YijuError,
)
from yiju.sdk.models import (
    FAILURE_STATUSES,
    SETTLED_STATUSES,
    SUCCESS_STATUSES,
    TERMINAL_STATUSES,
    WAITING_STATUSES,
    Accepted,
    Fulfilment,
    HistoryEntry,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
)
from yiju.sdk.retry import NO_RETRY, RetryPolicy
from yiju.sdk.sse import ServerSentEvent, SSEDecoder

__all__ = [
    "FAILURE_STATUSES",
    "NO_RETRY",
    "SETTLED_STATUSES",
    "SUCCESS_STATUSES",
    "TERMINAL_STATUSES",
    "WAITING_STATUSES",
    "Accepted",
    "AsyncYijuClient",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "Fulfilment",
    "HistoryEntry",
    "InvalidRequest",
    "NotFound",
    "Order",
    "OrderLine",
    "OrderStatus",
    "Payment",
    "RateLimited",
    "RetryPolicy",
    "SSEDecoder",
    "ServerError",
    "ServerSentEvent",
    "Unauthorized",
    "WaitTimeout",
    "YijuClient",
    "YijuError",
    "default_base_url",
]
