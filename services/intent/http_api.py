"""The public HTTP API (FastAPI): submit sentences, read, watch, confirm and cancel orders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

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
}


class IntentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=64)
    text: str
    idempotency_key: str | None = None
    locale: str | None = None


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def create_app(ingest: Ingest, orders: OrderActions, health: PlatformHealth) -> FastAPI:
    app = FastAPI(
        title="yiju intent API",
        version="1.0.0",
        description="One sentence in, a paid and fulfilled order out.",
    )
    app.add_middleware(TracingMiddleware)

    @app.exception_handler(IngestError)
    async def ingest_error(_: Request, exc: IngestError) -> JSONResponse:
        extra = {"order_id": exc.order_id} if exc.order_id else {}
        return error(HTTP_STATUS.get(exc.code, 400), exc.code, exc.message, **extra)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()]
        return error(422, "invalid_request", "; ".join(problems) or "invalid request")

    @app.post("/v1/intents", status_code=202)
    async def submit_intent(
        body: IntentIn, idempotency_key: str | None = Header(default=None)
    ) -> JSONResponse:
        key = body.idempotency_key or idempotency_key or ""
        result = await ingest.submit(body.user_id, body.text, key, body.locale or "")
        headers = {"Idempotent-Replayed": "true"} if result.outcome is Outcome.REPLAYED else {}
        return JSONResponse(
            {"order_id": result.order_id, "status": "ACCEPTED"}, status_code=202, headers=headers
        )

    @app.get("/v1/orders")
    async def find_order(user_id: str, idempotency_key: str) -> dict[str, Any]:
        """The order a client's idempotency key created (for clients that publish straight to Kafka)."""
        return await orders.get(await ingest.order_for_key(user_id, idempotency_key))

    @app.get("/v1/orders/{order_id}")
    async def get_order(order_id: str) -> dict[str, Any]:
        return await orders.get(order_id)

    @app.get("/v1/orders/{order_id}/events")
    async def order_events(order_id: str) -> StreamingResponse:
        await orders.get(order_id)

        async def stream() -> AsyncIterator[bytes]:
            async for order in orders.store.watch(order_id):
                yield b"event: order\ndata: " + orjson.dumps(order) + b"\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post("/v1/orders/{order_id}/confirm")
    async def confirm(order_id: str) -> dict[str, Any]:
        return await orders.confirm(order_id)

    @app.post("/v1/orders/{order_id}/cancel")
    async def cancel(order_id: str) -> dict[str, Any]:
        return await orders.cancel(order_id)

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

    return app
