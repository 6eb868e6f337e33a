"""The asyncio client (httpx.AsyncClient). Same API as :class:`~yiju.sdk.YijuClient`, awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import aclosing
from types import TracebackType
from typing import Any, Self

import httpx

from yiju.sdk import _protocol
from yiju.sdk._base import DEFAULT_SSE_READ_TIMEOUT, DEFAULT_TIMEOUT, BaseClient
from yiju.sdk._follow import Follower
from yiju.sdk._protocol import Call
from yiju.sdk.errors import WaitTimeout, YijuError
from yiju.sdk.models import Accepted, Order
from yiju.sdk.retry import RetryPolicy
from yiju.sdk.sse import SSEDecoder


class AsyncYijuClient(BaseClient):
    """Non-blocking client for the intent service.

    >>> async with AsyncYijuClient(token="...") as client:  # doctest: +SKIP
    ...     accepted = await client.submit_intent("u-1002", "两杯拿铁送到公司")
    ...     order = await client.wait_for_order(accepted.order_id)

    Constructor arguments as for :class:`~yiju.sdk.YijuClient`, with async transports and clients.
    """

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
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            base_url,
            token=token,
            api_key=api_key,
            timeout=timeout,
            retry=retry,
            headers=headers,
            sse_read_timeout=sse_read_timeout,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, timeout=self.timeout)

    async def aclose(self) -> None:
        """Close the connection pool (unless it was passed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- API -----------------------------------------------------------------------------------------

    async def submit_intent(
        self, user_id: str, text: str, idempotency_key: str | None = None, locale: str | None = None
    ) -> Accepted:
        """Submit a sentence; safe to retry (a key is generated when none is given)."""
        call = _protocol.submit_intent(user_id, text, idempotency_key, locale)
        return _protocol.parse_accepted(await self._send(call), call)

    async def get_order(self, order_id: str) -> Order:
        return _protocol.parse_order(await self._send(_protocol.get_order(order_id)))

    async def confirm(self, order_id: str) -> Order:
        """Confirm an order that is AWAITING_CONFIRMATION (else :class:`~yiju.sdk.errors.Conflict`)."""
        return _protocol.parse_order(await self._send(_protocol.confirm(order_id)))

    async def cancel(self, order_id: str) -> Order:
        """Cancel an order that is AWAITING_CONFIRMATION (else :class:`~yiju.sdk.errors.Conflict`)."""
        return _protocol.parse_order(await self._send(_protocol.cancel(order_id)))

    async def refund(self, order_id: str, reason: str | None = None) -> Order:
        """Refund a COMPLETED order in full (see :meth:`yiju.sdk.YijuClient.refund`)."""
        return _protocol.parse_order(await self._send(_protocol.refund(order_id, reason)))

    async def health(self) -> dict[str, Any]:
        """``GET /healthz`` as a dict (raises for a non-2xx answer)."""
        return _protocol.parse_health(await self._send(_protocol.health()))

    def watch_order(self, order_id: str, *, timeout: float | None = None) -> AsyncIterator[Order]:
        """The order each time it changes, from its event stream, until the server ends the stream.

        Raises :class:`~yiju.sdk.errors.WaitTimeout` after ``timeout`` seconds (``None``: no limit).
        Close the iterator (``contextlib.aclosing``) when stopping early, to release the connection.
        """
        return self._watch(order_id, self._deadline(timeout), timeout)

    def follow_order(
        self,
        order_id: str,
        *,
        timeout: float | None = None,
        until: Iterable[str] | None = None,
        poll_interval: float = 1.0,
    ) -> AsyncIterator[Order]:
        """The order now and on every change until it is done (see :mod:`yiju.sdk._follow`)."""
        state = Follower(order_id, timeout=timeout, until=until, poll_interval=poll_interval)
        return self._follow(state)

    async def wait_for_order(
        self,
        order_id: str,
        timeout: float | None = 30.0,
        until: Iterable[str] | None = None,
        *,
        poll_interval: float = 1.0,
    ) -> Order:
        """Wait until the order reaches a status in ``until`` (default: terminal or waiting) or any
        terminal status; raise :class:`~yiju.sdk.errors.WaitTimeout` after ``timeout`` seconds."""
        state = Follower(order_id, timeout=timeout, until=until, poll_interval=poll_interval)
        async with aclosing(self._follow(state)) as orders:
            async for _ in orders:
                pass
        assert state.last is not None  # _follow always reads the order before it returns
        return state.last

    # --- plumbing ------------------------------------------------------------------------------------

    async def _send(self, call: Call) -> httpx.Response:
        state = self.retry.start(call)
        while True:
            try:
                response = await self._http.request(
                    call.method, self._url(call), json=call.json, headers=self._headers(call)
                )
            except httpx.TransportError as exc:
                delay = state.after_exception(exc)
                if delay is None:
                    raise _protocol.connection_error(exc, call) from exc
            else:
                delay = state.after_response(response)
                if delay is None:
                    return response
                await response.aclose()
            await asyncio.sleep(delay)

    async def _watch(
        self, order_id: str, deadline: float | None, timeout: float | None
    ) -> AsyncIterator[Order]:
        call = _protocol.order_events(order_id)
        decoder = SSEDecoder()
        try:
            async with self._http.stream(
                call.method,
                self._url(call),
                headers=self._headers(call),
                timeout=self._stream_timeout(deadline),
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _protocol.check(response)
                _protocol.check_event_stream(response)
                async with aclosing(response.aiter_text()) as chunks:
                    while True:
                        left = None if deadline is None else max(0.0, deadline - time.monotonic())
                        try:
                            async with asyncio.timeout(left):
                                chunk = await anext(chunks)
                        except StopAsyncIteration:
                            return
                        except TimeoutError:
                            raise WaitTimeout(order_id, timeout) from None
                        for event in decoder.feed(chunk):
                            order = _protocol.order_from_event(event)
                            if order is not None:
                                yield order
        except httpx.TransportError as exc:
            if self._past(deadline):
                raise WaitTimeout(order_id, timeout) from None
            raise _protocol.connection_error(exc, call) from exc

    async def _follow(self, state: Follower) -> AsyncIterator[Order]:
        while True:
            # Read the order first (the stream may only report changes) and after every stream or wait.
            order = await self.get_order(state.order_id)
            if state.observe(order):
                yield order
            if state.done:
                return
            if state.expired():
                raise state.timed_out()
            if not state.use_stream:
                await asyncio.sleep(state.poll_delay())
                continue
            events = 0
            try:
                async with aclosing(self._watch(state.order_id, state.deadline, state.timeout)) as stream:
                    async for order in stream:
                        events += 1
                        if state.observe(order):
                            yield order
                        if state.done:
                            return
                state.stream_ended(events)
            except WaitTimeout:
                raise state.timed_out() from None
            except YijuError as exc:
                state.stream_failed(exc)
