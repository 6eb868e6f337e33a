"""The HTTP contract (issue 14, item 11): the OpenAPI document lists every status each operation answers,
with the error body, and the request schemas carry the limits the handlers enforce.

The app here reaches nothing: its Redis is a port nobody listens on, so an authenticated request finds
the edge's Redis down (503). The live check of the whole document is
tests/integration/test_http_contract.py (schemathesis against a running platform).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
from pydantic import ValidationError

from yiju.common.auth import issue_token
from yiju.common.catalog import Catalog
from yiju.common.redis import create_redis, create_watcher_redis
from yiju.common.settings import Settings
from yiju.intent.edge import Edge, RateLimited
from yiju.intent.health import PlatformHealth
from yiju.intent.http_api import IntentIn, create_app
from yiju.intent.http_errors import BODY_STATUSES, CREDENTIAL_STATUSES, HEADERS
from yiju.intent.ingest import Ingest, IngestError
from yiju.intent.orders import OrderActions
from yiju.intent.store import OrderStore
from yiju.intent.watchers import OrderWatchers
from yiju_infra.local.processes import free_port

SECRET = "contract-test-secret-of-32-bytes-or-more"
USER = "u-1004"
ERROR_REF = "#/components/schemas/ErrorBody"
HANDLER_STATUSES = {
    ("post", "/v1/intents"): {202, 403, 409, 422, 503},
    ("get", "/v1/orders"): {200, 404, 422},
    ("get", "/v1/orders/{order_id}"): {200, 404},
    ("get", "/v1/orders/{order_id}/events"): {200, 404, 503},
    ("get", "/v1/orders/{order_id}/trace"): {200, 404, 502},
    ("post", "/v1/orders/{order_id}/confirm"): {200, 404, 409},
    ("post", "/v1/orders/{order_id}/cancel"): {200, 404, 409},
    ("post", "/v1/orders/{order_id}/refund"): {200, 403, 404, 409, 422},
    ("get", "/healthz"): {200, 503},
}


class NoPublisher:
    async def publish(self, *_: Any, **__: Any) -> None:
        raise AssertionError("nothing is published here")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(env="local", redis_url=f"redis://127.0.0.1:{free_port()}/0", jwt_secret=SECRET)


@pytest.fixture(scope="module")
def ingest(catalog: Catalog, settings: Settings) -> Ingest:
    redis = create_redis(settings)
    return Ingest(catalog, redis, OrderStore(redis), NoPublisher(), settings)  # type: ignore[arg-type]


@pytest.fixture
async def app_and_edge(ingest: Ingest, settings: Settings) -> AsyncIterator[tuple[Any, Edge]]:
    async def alive() -> bool:
        return True

    health = PlatformHealth(settings, alive)
    watchers = OrderWatchers(create_watcher_redis(settings, max_connections=2), limit=1)
    edge = Edge(ingest.redis, settings)
    yield create_app(ingest, OrderActions(ingest.store, ingest.publisher), health, edge, watchers), edge
    await health.close()
    await watchers.close()


@pytest.fixture
def document(app_and_edge: tuple[Any, Edge]) -> dict[str, Any]:
    return app_and_edge[0].openapi()


@pytest.fixture
async def client(app_and_edge: tuple[Any, Edge]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_and_edge[0])
    async with httpx.AsyncClient(transport=transport, base_url="http://intent") as c:
        yield c


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def error_body(documented: dict[str, Any]) -> bool:
    return (
        documented.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref") == ERROR_REF
    )


def test_every_operation_behind_a_credential_documents_401_429_and_503(document: dict[str, Any]) -> None:
    secured = [(m, p, op) for m, p, op in operations(document) if op.get("security")]
    assert {("post", "/v1/intents"), ("get", "/v1/orders/{order_id}"), ("get", "/v1/ops/summary")} <= {
        (m, p) for m, p, _ in secured
    }
    for method, path, operation in secured:
        assert {"bearerAuth", "apiKeyAuth"} == {name for s in operation["security"] for name in s}
        for status in CREDENTIAL_STATUSES:
            documented = operation["responses"].get(str(status))
            assert documented and error_body(documented), f"{method} {path}: {status}"
            for header in HEADERS[status]:
                assert documented["headers"][header]["required"] is True, f"{method} {path}: {status}"


def test_every_error_status_is_documented_with_the_error_body(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        responses = operation["responses"]
        if "requestBody" in operation:
            assert {str(s) for s in BODY_STATUSES} <= set(responses), f"{method} {path}"
        for status, documented in responses.items():
            if int(status) >= 400 and path != "/healthz":
                assert error_body(documented), f"{method} {path}: {status} {documented}"
    assert "HTTPValidationError" not in document["components"]["schemas"]


@pytest.mark.parametrize(("method", "path"), sorted(HANDLER_STATUSES))
def test_each_operation_documents_what_its_handler_answers(
    document: dict[str, Any], method: str, path: str
) -> None:
    documented = {int(s) for s in document["paths"][path][method]["responses"]}
    assert HANDLER_STATUSES[(method, path)] <= documented


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("text", ""),
        ("text", "   "),
        ("text", "\x1c\t\u3000"),
        ("text", "x" * 2001),
        ("text", "tea"),
        ("text", " two teas \n"),
        ("text", "中" * 2000),
        ("idempotency_key", "k" * 200),
        ("idempotency_key", "k" * 201),
        ("idempotency_key", ""),
        ("locale", "x" * 35),
        ("locale", "x" * 36),
    ],
)
def test_the_intent_schema_refuses_exactly_what_ingest_refuses(
    ingest: Ingest, document: dict[str, Any], field: str, value: str
) -> None:
    body = {"user_id": USER, "text": "tea", field: value}
    try:
        ingest.validate(
            body["user_id"], body["text"], body.get("idempotency_key", ""), body.get("locale", "")
        )
        handler_accepts = True
    except IngestError:
        handler_accepts = False
    try:
        IntentIn.model_validate(body)
        model_accepts = True
    except ValidationError:
        model_accepts = False
    intent_in = {"$ref": "#/components/schemas/IntentIn", "components": document["components"]}
    document_accepts = jsonschema_rs.Draft202012Validator(intent_in).is_valid(body)  # not Python's re
    assert handler_accepts == model_accepts == document_accepts, (handler_accepts, model_accepts)


def assert_documented(document: dict[str, Any], method: str, path: str, response: httpx.Response) -> None:
    """The answer is one the document lists for the operation: status, content type, headers and body."""
    documented = document["paths"][path][method]["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {path} answered an undocumented {response.status_code}"
    media_type = response.headers["content-type"].split(";")[0]
    assert media_type in documented["content"], f"{media_type} is not documented"
    for header, spec in documented.get("headers", {}).items():
        assert not spec.get("required") or header in response.headers, f"{header} missing"
        if spec["schema"]["type"] == "integer":
            assert int(response.headers[header]) >= spec["schema"]["minimum"]
    schema = {**documented["content"][media_type]["schema"], "components": document["components"]}
    jsonschema_rs.Draft202012Validator(schema).validate(response.json())


def bearer(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(USER, settings)}"}


async def test_no_credential_401_is_documented(document: dict[str, Any], client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/orders/ord_1")
    assert response.status_code == 401
    assert_documented(document, "get", "/v1/orders/{order_id}", response)


async def test_redis_down_503_is_documented(
    document: dict[str, Any], client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.get("/v1/orders/ord_1", headers=bearer(settings))
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
    assert_documented(document, "get", "/v1/orders/{order_id}", response)


async def test_rate_limited_429_is_documented(
    document: dict[str, Any],
    client: httpx.AsyncClient,
    settings: Settings,
    app_and_edge: tuple[Any, Edge],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def spent(_: Any) -> None:
        raise RateLimited(1500)

    monkeypatch.setattr(app_and_edge[1], "admit", spent)
    response = await client.post(
        "/v1/intents", json={"user_id": USER, "text": "tea"}, headers=bearer(settings)
    )
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    assert_documented(document, "post", "/v1/intents", response)


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b'{"user_id": "u-1004", "text": ""}', 422, "invalid_text"),
        (b'{"user_id": "u-1004", "text": " \\n "}', 422, "invalid_text"),
        (b'{"user_id": "u-1004", "text": "tea", "locale": "' + b"x" * 36 + b'"}', 422, "invalid_locale"),
        (b'{"user_id": "u-1004", "text": "tea", "extra": 1}', 422, "invalid_request"),
        (b'{"user_id": "u-1004", "text": "\xff"}', 400, "bad_request"),
        (b'{"user_id": "u-1004", "text": "' + b"x" * 40_000 + b'"}', 413, "body_too_large"),
    ],
)
async def test_refused_bodies_answer_a_documented_status(
    document: dict[str, Any],
    client: httpx.AsyncClient,
    settings: Settings,
    app_and_edge: tuple[Any, Edge],
    monkeypatch: pytest.MonkeyPatch,
    content: bytes,
    status: int,
    code: str,
) -> None:
    async def admitted(_: Any) -> None:
        return None

    monkeypatch.setattr(app_and_edge[1], "admit", admitted)
    headers = {**bearer(settings), "Content-Type": "application/json"}
    response = await client.post("/v1/intents", content=content, headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    assert_documented(document, "post", "/v1/intents", response)
