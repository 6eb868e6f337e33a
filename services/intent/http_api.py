"""The public HTTP API (FastAPI): submit sentences, read, watch, confirm and cancel orders.

Every /v1 route needs a credential (Bearer token or X-API-Key); a user sees only their own orders
(anyone else's answer 404), and each user's requests are rate limited (429 with Retry-After).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from yiju.common.auth import AuthError, Principal
from yiju.common.redis import REDIS_UNAVAILABLE
from yiju.intent.console.routes import mount_console
from yiju.intent.edge import Edge, RateLimited
from yiju.intent.health import PlatformHealth
from yiju.intent.http_tracing import TracingMiddleware
from yiju.intent.ingest import Ingest, IngestError, Outcome
from yiju.intent.orders import OrderActions

HTTP_STATUS = {
    "invalid_text": 422,
    "invalid_locale": 422,
    "invalid_idempotency_key": 422,
    "unknown_user": 422,
    "idempotency_conflict": 422,
    "request_in_flight": 409,
    "not_found": 404,
    "not_awaiting_confirmation": 409,
    "unavailable": 503,
}
SSE_KEEPALIVE_S = 15.0


class IntentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=64)
    text: str
    idempotency_key: str | None = None
    locale: str | None = None


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, **extra}}, status_code=status, headers=headers
    )


class BodyLimitMiddleware:
    """Refuses request bodies over the limit (413) before they are read into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await error(413, "body_too_large", f"request body over {self.max_bytes} bytes")(
                scope, receive, send
            )
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except BodyTooLarge:
            await error(413, "body_too_large", f"request body over {self.max_bytes} bytes")(
                scope, receive, send
            )


class BodyTooLarge(Exception):
    pass


async def current_principal(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    """The authenticated caller; spends one request from their rate-limit bucket."""
    edge: Edge = request.app.state.edge
    who = edge.authenticate(authorization, x_api_key)
    await edge.admit(who)
    return who


User = Annotated[Principal, Depends(current_principal)]


def create_app(ingest: Ingest, orders: OrderActions, health: PlatformHealth, edge: Edge) -> FastAPI:
    app = FastAPI(
        title="yiju intent API",
        version="1.0.0",
        description="One sentence in, a paid and fulfilled order out.",
    )
    app.state.edge = edge
    app.add_middleware(TracingMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=edge.settings.max_body_bytes)

    @app.exception_handler(IngestError)
    async def ingest_error(_: Request, exc: IngestError) -> JSONResponse:
        extra = {"order_id": exc.order_id} if exc.order_id else {}
        status = HTTP_STATUS.get(exc.code, 400)
        headers = {"Retry-After": "1"} if status == 503 else None
        return error(status, exc.code, exc.message, headers=headers, **extra)

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        # Redis unreachable: the client is told to retry (a retry with its key is safe), not a 500.
        return error(503, "unavailable", f"a dependency is unavailable ({type(exc).__name__}); retry",
                     headers={"Retry-After": "1"})  # fmt: skip

    for infra_error in REDIS_UNAVAILABLE:
        app.add_exception_handler(infra_error, unavailable)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}.get(
            exc.status_code, "http_error"
        )
        return error(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(AuthError)
    async def auth_error(_: Request, exc: AuthError) -> JSONResponse:
        return error(401, "unauthenticated", str(exc), headers={"WWW-Authenticate": 'Bearer realm="yiju"'})

    @app.exception_handler(RateLimited)
    async def rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
        return error(
            429,
            "rate_limited",
            str(exc),
            headers={"Retry-After": str(math.ceil(exc.retry_after_ms / 1000))},
            retry_after_ms=exc.retry_after_ms,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()]
        return error(422, "invalid_request", "; ".join(problems) or "invalid request")

    @app.post("/v1/intents", status_code=202)
    async def submit_intent(
        body: IntentIn, who: User, idempotency_key: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        if body.user_id != who.user_id:
            return error(403, "forbidden", "user_id does not match the credential")
        key = body.idempotency_key or idempotency_key or ""
        result = await ingest.submit(body.user_id, body.text, key, body.locale or "")
        headers = {"Idempotent-Replayed": "true"} if result.outcome is Outcome.REPLAYED else {}
        return JSONResponse(
            {"order_id": result.order_id, "status": "ACCEPTED"}, status_code=202, headers=headers
        )

    @app.get("/v1/orders")
    async def find_order(idempotency_key: str, who: User, user_id: str | None = None) -> dict[str, Any]:
        """The order a client's idempotency key created (for clients that publish straight to Kafka)."""
        owner = who.user_id
        if user_id not in (None, owner):
            raise IngestError("not_found", "no order was created with this idempotency key")
        return await orders.get(await ingest.order_for_key(owner, idempotency_key), owner)

    @app.get("/v1/orders/{order_id}")
    async def get_order(order_id: str, who: User) -> dict[str, Any]:
        return await orders.get(order_id, who.user_id)

    @app.get("/v1/orders/{order_id}/events")
    async def order_events(order_id: str, who: User) -> StreamingResponse:
        await orders.get(order_id, who.user_id)

        async def stream() -> AsyncIterator[bytes]:
            async for order in orders.store.watch(order_id, keepalive_s=SSE_KEEPALIVE_S):
                yield (
                    b": keepalive\n\n"
                    if order is None
                    else b"event: order\ndata: " + orjson.dumps(order) + b"\n\n"
                )

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post("/v1/orders/{order_id}/confirm")
    async def confirm(order_id: str, who: User) -> dict[str, Any]:
        return await orders.confirm(order_id, who.user_id)

    @app.post("/v1/orders/{order_id}/cancel")
    async def cancel(order_id: str, who: User) -> dict[str, Any]:
        return await orders.cancel(order_id, who.user_id)

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/healthz")
    async def healthz() -> Response:
        services = await health.check()
        ok = all(services.values())
        return JSONResponse(
            {"status": "ok" if ok else "degraded", "services": services}, status_code=200 if ok else 503
        )

    mount_console(app, ingest, orders, principal=current_principal)
    return app
