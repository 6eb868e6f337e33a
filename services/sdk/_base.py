"""Configuration shared by :class:`~yiju.sdk.YijuClient` and :class:`~yiju.sdk.AsyncYijuClient`."""

from __future__ import annotations

import time
from collections.abc import Mapping

import httpx

from yiju.sdk import _protocol
from yiju.sdk._protocol import Call
from yiju.sdk.config import USER_AGENT, default_base_url
from yiju.sdk.retry import RetryPolicy

DEFAULT_TIMEOUT = 10.0
DEFAULT_SSE_READ_TIMEOUT = 60.0


class BaseClient:
    """Base URL, credentials, timeouts and retry policy; no I/O."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        sse_read_timeout: float | None = DEFAULT_SSE_READ_TIMEOUT,
    ) -> None:
        self.base_url = (base_url or default_base_url()).rstrip("/")
        self.retry = retry if retry is not None else RetryPolicy()
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.sse_read_timeout = sse_read_timeout
        self.headers: dict[str, str] = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        self.headers.update(_protocol.auth_headers(token, api_key))
        self.headers.update(headers or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def _url(self, call: Call) -> str:
        return self.base_url + call.path

    def _headers(self, call: Call) -> dict[str, str]:
        return {**self.headers, **call.headers}

    def _stream_timeout(self, deadline: float | None) -> httpx.Timeout:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return _protocol.stream_timeout(self.timeout, remaining, self.sse_read_timeout)

    @staticmethod
    def _deadline(timeout: float | None) -> float | None:
        return None if timeout is None else time.monotonic() + timeout

    @staticmethod
    def _past(deadline: float | None) -> bool:
        return deadline is not None and time.monotonic() >= deadline
