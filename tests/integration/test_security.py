"""The authenticated edge: who may do what, and what happens to everyone else."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import grpc
import httpx
import jwt
import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.conftest import dead_letter_headers, publish_event, submit, wait_settled
from yiju.common.auth import issue_token
from yiju.common.intake_assertion import IntakeSigner
from yiju.common.topics import INTENT_INTAKE
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.gen.intent.v1 import intent_pb2 as ipb
from yiju.gen.intent.v1 import intent_pb2_grpc as ipb_grpc
from yiju_infra.local.platform import LocalPlatform

pytestmark = pytest.mark.integration


@pytest.fixture
async def raw(platform: LocalPlatform):
    async with httpx.AsyncClient(base_url=platform.api_url, timeout=10, trust_env=False) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_no_or_bad_credentials_get_401(platform: LocalPlatform, raw: httpx.AsyncClient) -> None:
    settings = platform.settings()
    body = {"user_id": "u-1002", "text": "a latte"}
    expired = issue_token("u-1002", settings, ttl_s=-120)
    forged = jwt.encode(
        {
            "sub": "u-1002",
            "iss": "yiju",
            "aud": "yiju-api",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
        },
        "not-the-secret-but-long-enough-for-hs256-keys",
        algorithm="HS256",
    )
    none_alg = jwt.encode({"sub": "u-1002", "iss": "yiju", "aud": "yiju-api"}, None, algorithm="none")
    for headers in (
        {},
        bearer("garbage"),
        bearer(expired),
        bearer(forged),
        bearer(none_alg),
        {"Authorization": "Basic dTpw"},
        {"X-API-Key": "yk_wrong"},
    ):
        reply = await raw.post("/v1/intents", json=body, headers=headers)
        assert reply.status_code == 401, (headers, reply.text)
        assert reply.json()["error"]["code"] == "unauthenticated"
        assert "www-authenticate" in reply.headers


async def test_api_keys_authenticate_their_user(platform: LocalPlatform, raw: httpx.AsyncClient) -> None:
    creds = json.loads((platform.data_dir / "credentials.json").read_text())
    key = creds["users"]["u-1004"]["api_key"]
    reply = await raw.post(
        "/v1/intents", json={"user_id": "u-1004", "text": "a latte"}, headers={"X-API-Key": key}
    )
    assert reply.status_code == 202
    assert (
        await raw.get(f"/v1/orders/{reply.json()['order_id']}", headers={"X-API-Key": key})
    ).status_code == 200


async def test_a_user_cannot_act_for_or_see_another(
    platform: LocalPlatform, api: httpx.AsyncClient, raw: httpx.AsyncClient
) -> None:
    mine = await submit(api, "three pairs of earbuds", user="u-1001")
    assert (await wait_settled(api, mine))["status"] == "AWAITING_CONFIRMATION"
    other = bearer(platform.token("u-1002"))
    assert (
        await raw.post("/v1/intents", json={"user_id": "u-1001", "text": "a latte"}, headers=other)
    ).status_code == 403
    for method, path in (
        ("GET", f"/v1/orders/{mine}"),
        ("GET", f"/v1/orders/{mine}/events"),
        ("POST", f"/v1/orders/{mine}/confirm"),
        ("POST", f"/v1/orders/{mine}/cancel"),
    ):
        reply = await raw.request(method, path, headers=other)
        assert reply.status_code == 404, (method, path)
    assert (await wait_settled(api, mine))["status"] == "AWAITING_CONFIRMATION"  # untouched
    await api.post(f"/v1/orders/{mine}/cancel")


async def test_grpc_needs_a_token_and_hides_other_users_orders(
    platform: LocalPlatform, api: httpx.AsyncClient
) -> None:
    order_id = await submit(api, "a green tea", user="u-1004")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{platform.ports.grpc}") as channel:
        stub = ipb_grpc.IntentServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetOrder(ipb.GetOrderRequest(order_id=order_id))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        someone_else = (("authorization", f"Bearer {platform.token('u-1001')}"),)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetOrder(ipb.GetOrderRequest(order_id=order_id), metadata=someone_else)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.SubmitIntent(
                ipb.SubmitIntentRequest(user_id="u-1004", text="tea"), metadata=someone_else
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_each_user_is_rate_limited_with_retry_after(
    platform: LocalPlatform, raw: httpx.AsyncClient
) -> None:
    settings = platform.settings()  # 20 requests/s, bursts of 40 per user
    token = issue_token(f"rate-{uuid.uuid4().hex[:6]}", settings)
    started = time.monotonic()
    replies = await asyncio.gather(
        *(raw.get("/v1/orders/ord_none", headers=bearer(token)) for _ in range(200))
    )
    elapsed = time.monotonic() - started
    codes = [r.status_code for r in replies]
    assert set(codes) == {404, 429}
    admitted = codes.count(404)
    assert admitted <= settings.edge_rate_burst + settings.edge_rate_per_user_per_s * elapsed + 1
    limited = next(r for r in replies if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"


async def test_oversized_bodies_are_refused(platform: LocalPlatform, raw: httpx.AsyncClient) -> None:
    huge = {"user_id": "u-1004", "text": "tea", "pad": "x" * 100_000}
    reply = await raw.post("/v1/intents", json=huge, headers=bearer(platform.token("u-1004")))
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "body_too_large"


async def test_kafka_intake_needs_a_signed_assertion_for_that_user(platform: LocalPlatform) -> None:
    settings = platform.settings()
    signer = IntakeSigner.from_settings(settings)
    cases = {  # name -> the assertion sent with the intent ("a latte" for u-1004 under key)
        "none": lambda key: "",
        "other-user": lambda key: signer.sign("u-1001", key, "a latte"),
        "other-intent": lambda key: signer.sign("u-1004", f"{key}-other", "a latte"),
        "altered-text": lambda key: signer.sign("u-1004", key, "ten lattes"),
        # a bearer token is not an intake assertion, even with the intake's audience (HS256, the edge secret)
        "api-token": lambda key: issue_token("u-1004", settings),
        "hs256-assertion": lambda key: issue_token("u-1004", settings, audience="yiju-intake"),
    }
    producer = AIOKafkaProducer(bootstrap_servers=platform.bootstrap, acks="all")
    await producer.start()
    keys = {}
    try:
        for name, assertion_for in cases.items():
            key = f"sec-{name}-{uuid.uuid4().hex[:6]}"
            keys[key] = name
            message = ev.IntentSubmitted(
                user_id="u-1004", text="a latte", idempotency_key=key, user_assertion=assertion_for(key)
            )
            await publish_event(producer, platform, message, key, source="attacker")
    finally:
        await producer.stop()
    letters = await dead_letter_headers(
        platform, INTENT_INTAKE, tuple(key.encode() for key in keys), timeout=20
    )
    seen = {keys[key.decode()]: headers["x-dlq-error-message"] for key, headers in letters.items()}
    assert set(seen) == set(cases)
    assert all(msg.startswith("unauthenticated") for msg in seen.values())
