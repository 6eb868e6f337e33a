"""The HTTP API's error body, and the statuses each operation documents in the OpenAPI document.

Every error is ``{"error": {"code": ..., "message": ..., ...}}`` (:func:`error`, :class:`ErrorBody`).
An operation lists the statuses its own handler answers (``responses=error_responses({404: "..."})``);
:func:`document_errors` adds what the edge answers for every operation: 401, 429 and 503 wherever a
credential is required, 400 and 413 wherever there is a request body, and the error body on every 422.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

ERROR_SCHEMA_REF = "#/components/schemas/ErrorBody"

DESCRIPTIONS: dict[int, str] = {
    400: "The request body could not be decoded (`bad_request`): e.g. it is not UTF-8.",
    401: "Missing or invalid credentials (`unauthenticated`).",
    403: "The credential does not allow this (`forbidden`).",
    404: "No such resource, or not the caller's (`not_found`).",
    409: "Conflicts with the resource's current state.",
    413: "The request body is over the size limit (`body_too_large`).",
    422: "The request does not satisfy the schema (`invalid_request`) or the operation's rules.",
    429: "The caller's rate limit is spent (`rate_limited`): retry after `Retry-After` seconds.",
    502: "A backend this operation reads from failed.",
    503: "A dependency (Redis, the event log) is unavailable (`unavailable`): retry after `Retry-After` "
    "seconds; a retry with the same idempotency key is safe.",
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": 'The scheme to authenticate with: `Bearer realm="yiju"`.',
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}
CREDENTIAL_STATUSES = (401, 429, 503)
"""What every operation behind a credential can answer: the edge authenticates, then rate limits."""
BODY_STATUSES = (400, 413)
"""What every operation with a request body can answer before its handler runs."""


class ErrorDetail(BaseModel):
    code: str = Field(
        description="Machine-readable reason, e.g. `not_found`, `invalid_text`, `rate_limited`.",
        examples=["not_found"],
    )
    message: str = Field(description="What went wrong, for people.")
    order_id: str | None = Field(
        default=None,
        description="The order concerned, where there is one (an idempotency key already used, a "
        "request in flight, an order not awaiting confirmation).",
    )
    retry_after_ms: int | None = Field(
        default=None,
        ge=0,
        description="With `rate_limited` and `too_many_watchers`: milliseconds to wait before retrying.",
    )


class ErrorBody(BaseModel):
    """Every error the API answers."""

    error: ErrorDetail


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, **extra}}, status_code=status, headers=headers
    )


def error_response(status: int, description: str | None = None) -> dict[str, Any]:
    """One documented error status: the error body, its description and the headers it always carries."""
    documented: dict[str, Any] = {"model": ErrorBody, "description": description or DESCRIPTIONS[status]}
    if status in HEADERS:
        documented["headers"] = HEADERS[status]
    return documented


def error_responses(statuses: Mapping[int, str | None]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status its handler answers, with what it means there."""
    return {status: error_response(status, description) for status, description in statuses.items()}


def _openapi_error(status: int) -> dict[str, Any]:
    documented = error_response(status)
    del documented["model"]
    documented["content"] = {"application/json": {"schema": {"$ref": ERROR_SCHEMA_REF}}}
    return documented


def add_error_responses(doc: dict[str, Any]) -> dict[str, Any]:
    """Adds to an OpenAPI document what the edge answers for every operation (see the module docstring).
    An operation's own description of a status wins."""
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            statuses = [422] if "422" in responses else []
            if operation.get("security"):
                statuses += CREDENTIAL_STATUSES
            if "requestBody" in operation:
                statuses += BODY_STATUSES
            for status in statuses:
                documented = responses.get(str(status))
                if documented is None or _schema_ref(documented).endswith("/HTTPValidationError"):
                    responses[str(status)] = _openapi_error(status)
            for documented in responses.values():
                if _schema_ref(documented) == ERROR_SCHEMA_REF:  # JSON, whatever the route's media type
                    documented["content"] = {"application/json": {"schema": {"$ref": ERROR_SCHEMA_REF}}}
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(body.pop("$defs", {}))
    schemas["ErrorBody"] = body
    if "HTTPValidationError" not in str(doc.get("paths")):  # FastAPI's own 422 body, answered nowhere
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return doc


def _schema_ref(documented: dict[str, Any]) -> str:
    """The schema reference of a documented response's body ("" without one)."""
    for media in documented.get("content", {}).values():
        ref = media.get("schema", {}).get("$ref", "")
        if ref:
            return str(ref)
    return ""


def document_errors(app: FastAPI) -> None:
    """Makes ``app.openapi()`` (and so ``/openapi.json``) describe every error status, once built."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_error_responses(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
