"""A server span for every HTTP request, continuing the caller's W3C trace context."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yiju.common import telemetry

UNTRACED = frozenset({"/healthz", "/livez", "/metrics", "/", "/ops", "/v1/ops/summary"})


class TracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tracer = trace.get_tracer("yiju.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED or scope["path"].startswith("/console/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        route = scope["path"]
        with self.tracer.start_as_current_span(
            f"{scope['method']} {route}",
            context=telemetry.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "url.path": route, "url.scheme": "http"},
        ) as span:

            async def send_wrapper(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                    trace_id = telemetry.current_trace_id()
                    if trace_id:
                        message.setdefault("headers", [])
                        message["headers"] = [*message["headers"], (b"x-trace-id", trace_id.encode())]
                await send(message)

            await self.app(scope, receive, send_wrapper)
