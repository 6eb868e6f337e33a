"""The console's pages and JSON endpoints, added to the intent service's FastAPI app.

Pages (public, no secrets in them): ``GET /`` (orders), ``GET /ops`` (operators), ``/console/*`` (static).
Endpoints:

- ``GET /v1/console/users``: the demo users;
- ``GET /v1/console/session?user_id=U``: a bearer token for demo user U, minted by
  :func:`yiju.common.auth.issue_token`;

  both exist only when ``make run`` asks for them (``YIJU_ENV=local`` and ``YIJU_DEMO_TOKENS=1``,
  set by ``yiju_infra.local.run``); anywhere else the routes are not there (404);
- ``GET /v1/orders/{id}/trace``: the order's trace as a waterfall (its owner only, like the order);
- ``GET /v1/ops/summary``: throughput, consumer lag, dead letters, orders by status, subsidy budget,
  gateway cache (any authenticated caller).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from yiju.common.trace_store import TraceQueryError, aload_trace
from yiju.intent.console.ops import OpsSummary
from yiju.intent.console.settings import ConsoleSettings
from yiju.intent.http_errors import error_responses
from yiju.intent.ingest import Ingest
from yiju.intent.orders import OrderActions

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
LOCAL_ENV = "local"
Principal = Any
"""Whatever the app's credential dependency returns; only its ``user_id`` is read."""


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _mint_token(user_id: str, settings: Any) -> str | None:
    """A demo user's token, or None where the platform has no token signing (yet)."""
    try:
        from yiju.common.auth import issue_token
    except ImportError:
        return None
    try:
        return issue_token(user_id, settings)
    except Exception:  # no signing secret configured: the API does not check tokens either
        return None


def _anonymous() -> None:
    return None


def _mount_pages(app: FastAPI) -> None:
    app.mount("/console", StaticFiles(directory=STATIC), name="console")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/ops", include_in_schema=False)
    async def ops_page() -> FileResponse:
        return FileResponse(STATIC / "ops.html", headers={"Cache-Control": "no-cache"})


def mount_console(
    app: FastAPI,
    ingest: Ingest,
    orders: OrderActions,
    *,
    principal: Callable[..., Awaitable[Principal]] | None = None,
    settings: ConsoleSettings | None = None,
) -> None:
    """Adds the console to ``app``. ``principal`` is the app's credential dependency (e.g. the one its
    /v1 routes use); without it the console's endpoints are open, as the rest of an app without auth."""
    console = settings or ConsoleSettings()
    service_settings = ingest.settings
    ops = OpsSummary(service_settings, console, ingest.redis, ingest.catalog.campaign)
    who = Depends(principal or _anonymous)
    demo = service_settings.env == LOCAL_ENV and bool(getattr(service_settings, "demo_tokens", False))

    if (STATIC / "index.html").is_file():
        _mount_pages(app)
    else:  # an install without the package data: the service must still start
        log.warning(
            "console pages not installed; serving only the console's JSON endpoints",
            extra={"static": str(STATIC)},
        )

    router = APIRouter(tags=["console"])

    if demo:

        @router.get("/v1/console/users")
        async def demo_users() -> Any:
            """The demo users to act as (`make run` only)."""
            return {
                "users": [
                    {"id": u.id, "name": u.name, "locale": u.locale, "wallet_fen": u.wallet_fen}
                    for u in ingest.catalog.users.values()
                ]
            }

        @router.get("/v1/console/session", responses=error_responses({404: "Not a demo user (`not_found`)."}))
        async def demo_session(user_id: str) -> Any:
            """A bearer token for a demo user (`make run` only); ``token`` is null without auth."""
            user = ingest.catalog.user(user_id)
            if user is None:
                return _error(404, "not_found", f"no demo user {user_id}")
            return {"user_id": user.id, "name": user.name, "token": _mint_token(user.id, service_settings)}

    @router.get(
        "/v1/orders/{order_id}/trace",
        responses=error_responses(
            {
                404: "No such order, or not the caller's (`not_found`).",
                502: "The trace store did not answer (`trace_backend`).",
            }
        ),
    )
    async def order_trace(order_id: str, caller: Principal = who) -> Any:
        """The order's spans in waterfall order: depth, offset from the first span (ms), start (epoch ms)."""
        owner = getattr(caller, "user_id", None)
        order = await orders.get(order_id, owner) if owner else await orders.get(order_id)
        trace_id = order.get("trace_id", "")
        if not trace_id:
            return {"order_id": order_id, "trace_id": "", "source": "none", "spans": []}
        try:
            trace = await aload_trace(
                trace_id, data_dir=service_settings.data_dir, query=console.trace_query_url
            )
        except TraceQueryError as exc:
            return _error(502, "trace_backend", str(exc))
        return {
            "order_id": order_id,
            "trace_id": trace.trace_id,
            "source": trace.source,
            "start": trace.start,
            "duration_ms": trace.duration_ms,
            "services": trace.services,
            "spans": [
                {
                    **row.span.to_dict(),
                    "kind": row.span.kind,
                    "status": row.span.status,
                    "depth": row.depth,
                    "offset_ms": row.offset_ms,
                }
                for row in trace.rows()
            ],
        }

    @router.get("/v1/ops/summary")
    async def ops_summary(caller: Principal = who) -> dict[str, Any]:
        """What the operator page shows, from the services' metrics and Redis."""
        return await ops.collect()

    app.include_router(router)
