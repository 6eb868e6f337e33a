"""The public HTTP API (FastAPI): submit sentences, read, watch, confirm and cancel orders.

Every /v1 route needs a credential (Bearer token or X-API-Key); a user sees only their own orders
(anyone else's answer 404), and each user's requests are rate limited (429 with Retry-After).
The OpenAPI document (/openapi.json) lists every status each operation answers, with the error body
(yiju.intent.http_errors), and the request schemas carry the limits the handlers enforce.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, Header, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from yiju.common.auth import AuthError, Principal
from yiju.common.redis import REDIS_UNAVAILABLE
from yiju.intent.console.routes import mount_console
from yiju.intent.edge import Edge, RateLimited
from yiju.intent.health import PlatformHealth
from yiju.intent.http_errors import document_errors, error, error_responses
from yiju.intent.http_tracing import TracingMiddleware
from yiju.intent.ingest import MAX_KEY_CHARS, MAX_TEXT_CHARS, Ingest, IngestError, Outcome
from yiju.intent.orders import OrderActions
from yiju.intent.watchers import OrderWatchers, WatchersFull

HTTP_STATUS = {
    "invalid_text": 422,
    "invalid_locale": 422,
    "invalid_idempotency_key": 422,
    "unknown_user": 422,
    "idempotency_conflict": 422,
    "request_in_flight": 409,
    "not_found": 404,
    "not_awaiting_confirmation": 409,
    "not_refundable": 409,
    "refund_window_closed": 403,
    "invalid_reason": 422,
    "unavailable": 503,
}
SSE_KEEPALIVE_S = 15.0
MAX_USER_ID_CHARS = 64
MAX_LOCALE_CHARS = 35  # as Ingest.validate
# A text must hold something besides whitespace (Ingest.validate strips it). Written so that Python's
# re (the engine IntentIn validates with), JavaScript's and the regex crate agree: \x1c-\x1f are
# whitespace to str.strip() but not to the other two.
HAS_NON_SPACE = r"[^\s\x1c-\x1f]"
# A request rejected by its schema answers the code the handler would have given for that field.
FIELD_ERROR_CODES = {
    "text": "invalid_text",
    "locale": "invalid_locale",
    "idempotency_key": "invalid_idempotency_key",
    "idempotency-key": "invalid_idempotency_key",
}


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


IdempotencyKey = Annotated[
    str,
    Field(
        max_length=MAX_KEY_CHARS,
        description="The client's key for this request: the same key with the same body answers the "
        "same order (`Idempotent-Replayed: true`), with another body 422 `idempotency_conflict`, while "
        "the first is in flight 409 `request_in_flight`. Empty: no de-duplication.",
    ),
]


class IntentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")
    user_id: str = Field(
        min_length=1,
        max_length=MAX_USER_ID_CHARS,
        description="The user the order is for: the credential's own user (else 403).",
        examples=["u-1004"],
    )
    text: str = Field(
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        pattern=HAS_NON_SPACE,
        description="The sentence: not only whitespace.",
        examples=["two bubble teas and a taxi home"],
    )
    idempotency_key: IdempotencyKey | None = Field(
        default=None, description="As the `Idempotency-Key` header (this one wins when both are sent)."
    )
    locale: str | None = Field(
        default=None,
        max_length=MAX_LOCALE_CHARS,
        description="BCP 47 language tag, e.g. `zh-CN`; default: the user's.",
    )


class IntentAccepted(BaseModel):
    order_id: str = Field(description="The order opened (or replayed) for the sentence.")
    status: Literal["ACCEPTED"]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    services: dict[str, bool] = Field(description="Each service: whether it answers.")


class EventStream(StreamingResponse):
    media_type = "text/event-stream"


ORDER_EVENT = {  # one server-sent event (OpenAPI 3.1: a text/event-stream schema describes each event)
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"const": "order"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "The order, as GET /v1/orders/{order_id} answers it.",
        },
    },
}
ORDER_NOT_FOUND = "No such order, or not the caller's (`not_found`)."
REFUND_ERRORS = {
    403: "The owner asks after the refund window (`refund_window_closed`): an operator can refund.",
    404: ORDER_NOT_FOUND,
    409: "The order did not complete (`not_refundable`).",
    422: "The body breaks the schema (`invalid_request`) or the reason is too long (`invalid_reason`).",
}
SUBMIT_ERRORS = {
    403: "`user_id` is not the credential's user (`forbidden`).",
    409: "The first request with this idempotency key is still in flight (`request_in_flight`).",
    422: "The body breaks the schema (`invalid_request`, `invalid_text`, `invalid_locale`, "
    "`invalid_idempotency_key`), the user is unknown (`unknown_user`), or the idempotency key was used "
    "with another body (`idempotency_conflict`).",
    503: "The event log did not take the intent in time, or Redis is unavailable (`unavailable`): retry "
    "with the same idempotency key.",
}
NOT_AWAITING = "The order is not awaiting confirmation (`not_awaiting_confirmation`)."
WATCH_UNAVAILABLE = (
    "Redis is unavailable (`unavailable`), or every watcher slot of this server is taken "
    "(`too_many_watchers`): retry after `Retry-After` seconds, or poll the order meanwhile."
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


class BearerHeader(HTTPBearer):
    """The bearer scheme in the OpenAPI document; hands on the raw Authorization header, so that the edge
    says what is wrong with it (the base class would drop a header of another scheme)."""

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        return request.headers.get("authorization")


BEARER = BearerHeader(
    scheme_name="bearerAuth",
    bearerFormat="JWT",
    auto_error=False,
    description="`Authorization: Bearer <token>`",
)
API_KEY = APIKeyHeader(name="X-API-Key", scheme_name="apiKeyAuth", auto_error=False)


async def current_principal(
    request: Request,
    authorization: Annotated[str | None, Security(BEARER)],
    x_api_key: Annotated[str | None, Security(API_KEY)],
) -> Principal:
    """The authenticated caller; spends one request from their rate-limit bucket."""
    edge: Edge = request.app.state.edge
    who = edge.authenticate(authorization, x_api_key)
    await edge.admit(who)
    return who


User = Annotated[Principal, Depends(current_principal)]


def create_app(
    ingest: Ingest, orders: OrderActions, health: PlatformHealth, edge: Edge, watchers: OrderWatchers
) -> FastAPI:
    app = FastAPI(
        title="yiju intent API",
        version="1.0.0",
        description="One sentence in, a paid and fulfilled order out.",
        telemetry={"tracing": False},  # TracingMiddleware makes the request's span; FastAPI's is a 2nd trace
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

    @app.exception_handler(WatchersFull)
    async def watchers_full(_: Request, exc: WatchersFull) -> JSONResponse:
        # The server's watcher slots, not the caller's rate: 503, and the SDK polls the order meanwhile.
        return error(
            503,
            "too_many_watchers",
            str(exc),
            headers={"Retry-After": str(exc.retry_after_s)},
            retry_after_ms=exc.retry_after_s * 1000,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()]
        codes = {FIELD_ERROR_CODES.get(str(e["loc"][-1]), "invalid_request") for e in exc.errors()}
        code = codes.pop() if len(codes) == 1 else "invalid_request"
        return error(422, code, "; ".join(problems) or "invalid request")

    @app.post(
        "/v1/intents",
        status_code=202,
        response_model=IntentAccepted,
        responses={
            202: {
                "description": "Accepted: the order is open; follow it at /v1/orders/{order_id}.",
                "headers": {
                    "Idempotent-Replayed": {
                        "description": "`true` when the idempotency key answered an earlier order.",
                        "schema": {"type": "string", "enum": ["true"]},
                    }
                },
            },
            **error_responses(SUBMIT_ERRORS),
        },
    )
    async def submit_intent(
        body: IntentIn, who: User, idempotency_key: Annotated[IdempotencyKey | None, Header()] = None
    ) -> JSONResponse:
        if body.user_id != who.user_id:
            return error(403, "forbidden", "user_id does not match the credential")
        key = body.idempotency_key or idempotency_key or ""
        result = await ingest.submit(body.user_id, body.text, key, body.locale or "")
        headers = {"Idempotent-Replayed": "true"} if result.outcome is Outcome.REPLAYED else {}
        return JSONResponse(
            {"order_id": result.order_id, "status": "ACCEPTED"}, status_code=202, headers=headers
        )

    @app.get(
        "/v1/orders",
        responses=error_responses({404: "No order was created with this idempotency key (`not_found`)."}),
    )
    async def find_order(
        idempotency_key: Annotated[str, Query(min_length=1, max_length=MAX_KEY_CHARS)],
        who: User,
        user_id: Annotated[str | None, Query(min_length=1, max_length=MAX_USER_ID_CHARS)] = None,
    ) -> dict[str, Any]:
        """The order a client's idempotency key created (for clients that publish straight to Kafka)."""
        owner = who.user_id
        if user_id not in (None, owner):
            raise IngestError("not_found", "no order was created with this idempotency key")
        return await orders.get(await ingest.order_for_key(owner, idempotency_key), owner)

    @app.get("/v1/orders/{order_id}", responses=error_responses({404: ORDER_NOT_FOUND}))
    async def get_order(order_id: str, who: User) -> dict[str, Any]:
        return await orders.get(order_id, who.user_id)

    @app.get(
        "/v1/orders/{order_id}/events",
        response_class=EventStream,
        responses={
            200: {
                "description": "Server-sent events: `event: order` with the order as JSON after every "
                "change (and `: keepalive` comments), until the order is settled or awaits the user.",
                "content": {"text/event-stream": {"schema": ORDER_EVENT}},
            },
            **error_responses({404: ORDER_NOT_FOUND, 503: WATCH_UNAVAILABLE}),
        },
    )
    async def order_events(order_id: str, who: User) -> StreamingResponse:
        await orders.get(order_id, who.user_id)
        lease = watchers.admit()  # WatchersFull: 503 + Retry-After

        async def stream() -> AsyncIterator[bytes]:
            async for order in lease.stream(order_id, keepalive_s=SSE_KEEPALIVE_S):
                yield (
                    b": keepalive\n\n"
                    if order is None
                    else b"event: order\ndata: " + orjson.dumps(order) + b"\n\n"
                )

        return EventStream(
            stream(),
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            background=BackgroundTask(lease.release),  # also when the stream never started
        )

    @app.post(
        "/v1/orders/{order_id}/confirm", responses=error_responses({404: ORDER_NOT_FOUND, 409: NOT_AWAITING})
    )
    async def confirm(order_id: str, who: User) -> dict[str, Any]:
        return await orders.confirm(order_id, who.user_id)

    @app.post(
        "/v1/orders/{order_id}/cancel", responses=error_responses({404: ORDER_NOT_FOUND, 409: NOT_AWAITING})
    )
    async def cancel(order_id: str, who: User) -> dict[str, Any]:
        return await orders.cancel(order_id, who.user_id)

    @app.post("/v1/orders/{order_id}/refund", responses=error_responses(REFUND_ERRORS))
    async def refund(order_id: str, who: User, body: RefundIn | None = None) -> dict[str, Any]:
        """Refunds a COMPLETED order in full: its owner within the refund window (403
        refund_window_closed after it), or an operator (a token with the "operator" role) at any time.
        The order answers REFUND_PENDING, then REFUNDED; asking again answers the same (409
        not_refundable for an order that did not complete)."""
        return await orders.refund(order_id, who, body.reason if body else "")

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "A service does not answer (`degraded`)."}},
    )
    async def healthz() -> Response:
        services = await health.check()
        ok = all(services.values())
        return JSONResponse(
            {"status": "ok" if ok else "degraded", "services": services}, status_code=200 if ok else 503
        )

    mount_console(app, ingest, orders, principal=current_principal)
    document_errors(app)
    return app
