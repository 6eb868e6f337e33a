"""The synchronous client (httpx.Client)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing
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


class YijuClient(BaseClient):
    """Blocking client for the intent service.

    >>> with YijuClient(token="...") as client:  # doctest: +SKIP
    ...     accepted = client.submit_intent("u-1002", "两杯拿铁送到公司")
    ...     order = client.wait_for_order(accepted.order_id)

    - ``base_url``: default ``$YIJU_API_URL``, else ``http://127.0.0.1:${YIJU_HTTP_PORT:-8080}``.
    - ``token`` is sent as ``Authorization: Bearer``, ``api_key`` as ``X-API-Key``.
    - ``timeout``: seconds per request (or an ``httpx.Timeout``); ``sse_read_timeout``: longest silence
      tolerated on an event stream before it counts as dropped (``None``: no limit).
    - ``retry``: a :class:`~yiju.sdk.RetryPolicy` (``NO_RETRY``: none); ``headers``: sent on every request.
    - ``transport`` (e.g. ``httpx.MockTransport``) or a ready ``http_client`` control the HTTP layer; a
      client passed in is not closed by :meth:`close`.
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
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
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
        self._http = http_client or httpx.Client(transport=transport, timeout=self.timeout)

    def close(self) -> None:
        """Close the connection pool (unless it was passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- API -----------------------------------------------------------------------------------------

    def submit_intent(
        self, user_id: str, text: str, idempotency_key: str | None = None, locale: str | None = None
    ) -> Accepted:
        """Submit a sentence; safe to retry (a key is generated when none is given)."""
        call = _protocol.submit_intent(user_id, text, idempotency_key, locale)
        return _protocol.parse_accepted(self._send(call), call)

    def get_order(self, order_id: str) -> Order:
        return _protocol.parse_order(self._send(_protocol.get_order(order_id)))

    def confirm(self, order_id: str) -> Order:
        """Confirm an order that is AWAITING_CONFIRMATION (else :class:`~yiju.sdk.errors.Conflict`)."""
        return _protocol.parse_order(self._send(_protocol.confirm(order_id)))

    def cancel(self, order_id: str) -> Order:
        """Cancel an order that is AWAITING_CONFIRMATION (else :class:`~yiju.sdk.errors.Conflict`)."""
        return _protocol.parse_order(self._send(_protocol.cancel(order_id)))

    def refund(self, order_id: str, reason: str | None = None) -> Order:
        """Refund a COMPLETED order in full (its owner within the refund window, or an operator): the
        order answers REFUND_PENDING, then becomes REFUNDED (``wait_for_order(..., until={"REFUNDED"})``).
        :class:`~yiju.sdk.errors.Conflict` for an order that did not complete."""
        return _protocol.parse_order(self._send(_protocol.refund(order_id, reason)))

    def health(self) -> dict[str, Any]:
        """``GET /healthz`` as a dict (raises for a non-2xx answer)."""
        return _protocol.parse_health(self._send(_protocol.health()))

    def watch_order(self, order_id: str, *, timeout: float | None = None) -> Iterator[Order]:
        """The order each time it changes, from its event stream, until the server ends the stream.

        Raises :class:`~yiju.sdk.errors.WaitTimeout` after ``timeout`` seconds (``None``: no limit).
        Close the iterator (``contextlib.closing``) when stopping early, to release the connection.
        """
        return self._watch(order_id, self._deadline(timeout), timeout)

    def follow_order(
        self,
        order_id: str,
        *,
        timeout: float | None = None,
        until: Iterable[str] | None = None,
        poll_interval: float = 1.0,
    ) -> Iterator[Order]:
        """The order now and on every change until it is done (see :mod:`yiju.sdk._follow`).

        Uses the event stream and falls back to polling every ``poll_interval`` seconds.
        """
        state = Follower(order_id, timeout=timeout, until=until, poll_interval=poll_interval)
        return self._follow(state)

    def wait_for_order(
        self,
        order_id: str,
        timeout: float | None = 30.0,
        until: Iterable[str] | None = None,
        *,
        poll_interval: float = 1.0,
    ) -> Order:
        """Block until the order reaches a status in ``until`` (default: terminal or waiting) or any
        terminal status; raise :class:`~yiju.sdk.errors.WaitTimeout` after ``timeout`` seconds."""
        state = Follower(order_id, timeout=timeout, until=until, poll_interval=poll_interval)
        with closing(self._follow(state)) as orders:
            for _ in orders:
                pass
        assert state.last is not None  # _follow always reads the order before it returns
        return state.last

    # --- plumbing ------------------------------------------------------------------------------------

    def _send(self, call: Call) -> httpx.Response:
        state = self.retry.start(call)
        while True:
            try:
                response = self._http.request(
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
                response.close()
            time.sleep(delay)

    def _watch(self, order_id: str, deadline: float | None, timeout: float | None) -> Iterator[Order]:
        call = _protocol.order_events(order_id)
        decoder = SSEDecoder()
        try:
            with self._http.stream(
                call.method,
                self._url(call),
                headers=self._headers(call),
                timeout=self._stream_timeout(deadline),
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    _protocol.check(response)
                _protocol.check_event_stream(response)
                with closing(response.iter_text()) as chunks:
                    for chunk in chunks:
                        for event in decoder.feed(chunk):
                            order = _protocol.order_from_event(event)
                            if order is not None:
                                yield order
                        if self._past(deadline):
                            raise WaitTimeout(order_id, timeout)
        except httpx.TransportError as exc:
            if self._past(deadline):
                raise WaitTimeout(order_id, timeout) from None
            raise _protocol.connection_error(exc, call) from exc

    def _follow(self, state: Follower) -> Iterator[Order]:
        while True:
            # Read the order first (the stream may only report changes) and after every stream or wait.
            order = self.get_order(state.order_id)
            if state.observe(order):
                yield order
            if state.done:
                return
            if state.expired():
                raise state.timed_out()
            if not state.use_stream:
                time.sleep(state.poll_delay())
                continue
            events = 0
            try:
                with closing(self._watch(state.order_id, state.deadline, state.timeout)) as stream:
                    for order in stream:
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
