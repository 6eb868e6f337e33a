"""Fuzzing the platform's three doors with 10,000+ malformed or hostile inputs, on a platform of its own.

* Kafka: random bytes and random or mutated protobufs with valid, garbled or missing CloudEvents headers
  on every consumed topic. Every record must be accounted for: each group's consumed count (processed,
  duplicate or dead-lettered, from yiju_events_consumed_total) covers what was sent to its topics plus
  what the services published there, and every record without an event id is in the dead-letter topic of
  every group that reads its topic.
* HTTP: bad, mistyped, oversized and unauthenticated requests: every answer is a 4xx with a reason.
* gRPC (IntentService, ModelGatewayService): invalid messages: INVALID_ARGUMENT, NOT_FOUND (or
  PERMISSION_DENIED/UNAUTHENTICATED) with a reason.
* And no process died or was restarted.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import platform_on
from yiju.common.dead_letters import read_dead_letters
from yiju.common.envelope import BY_TOPIC, build_headers
from yiju.common.topics import CONSUMER_GROUPS
from yiju.gen.gateway.v1 import gateway_pb2 as gw
from yiju.gen.gateway.v1 import gateway_pb2_grpc as gw_grpc
from yiju.gen.intent.v1 import intent_pb2 as ipb
from yiju.gen.intent.v1 import intent_pb2_grpc as ipb_grpc
from yiju_infra.local.broker import BrokerServer
from yiju_infra.local.platform import SERVICES, LocalPlatform

pytestmark = pytest.mark.integration
KAFKA_RECORDS = 3000
HTTP_REQUESTS = 4200
GRPC_CALLS = 2900
CONSUMED_TOPICS = sorted({t for g in CONSUMER_GROUPS for t in g.topics})
CLIENT_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
}
rng = random.Random(20261128)


@pytest.fixture(scope="module")
async def fuzz_platform(
    tmp_path_factory: pytest.TempPathFactory, shared_kafka: BrokerServer
) -> AsyncIterator[LocalPlatform]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    env = {
        "YIJU_EDGE_RATE_PER_USER_PER_S": "100000",
        "YIJU_EDGE_RATE_BURST": "100000",
        "YIJU_LOG_LEVEL": "ERROR",
    }
    plat = platform_on(shared_kafka, data_dir, extra_env=env)
    try:
        await plat.start(ready_timeout=90)
        plat.started_pids = dict(plat.pids)  # type: ignore[attr-defined]
        yield plat
    finally:
        await plat.stop_all()


# ----- generators


def junk_text(n: int) -> str:
    alphabet = "aé中\u0000\u202e\U0001f600 '\";<>{}\\/\n\t%$"
    return "".join(rng.choice(alphabet) for _ in range(n))


def random_message(cls: type[Message], depth: int = 0) -> Message:
    """A message of `cls` with random values in random fields (valid protobuf, nonsense content)."""
    message = cls()
    for fd in cls.DESCRIPTOR.fields:
        if rng.random() < 0.3:
            continue
        count = rng.randint(0, 3) if fd.is_repeated else 1
        for _ in range(count):
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                if depth > 1:
                    break
                value = random_message(GetMessageClass(fd.message_type), depth + 1)
                target = getattr(message, fd.name)
                if fd.is_repeated:
                    target.add().CopyFrom(value)
                else:
                    target.CopyFrom(value)
                continue
            value = _scalar(fd)
            if fd.is_repeated:
                getattr(message, fd.name).append(value)
            else:
                setattr(message, fd.name, value)
    return message


def _scalar(fd: FieldDescriptor) -> Any:
    if fd.type == FieldDescriptor.TYPE_STRING:
        return rng.choice(["", "u-1004", "ord_" + uuid.uuid4().hex[:8], junk_text(rng.randint(1, 40))])
    if fd.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return rng.choice([0, -1, 2**63 - 1, -(2**63), rng.randint(-(10**9), 10**9)])
    if fd.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return rng.choice([0, -1, 2**31 - 1, -(2**31), rng.randint(-1000, 1000)])
    if fd.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return rng.choice([0.0, -1.5, 1e30, float("nan")])
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    return 0


def mutate(data: bytes) -> bytes:
    data = bytearray(data or b"\x00")
    for _ in range(rng.randint(1, 6)):
        choice = rng.random()
        i = rng.randrange(len(data)) if data else 0
        if choice < 0.4 and data:
            data[i] = rng.randrange(256)
        elif choice < 0.6:
            data = data[: rng.randint(0, len(data))]
        elif choice < 0.8:
            data[i:i] = rng.randbytes(rng.randint(1, 8))
        else:
            data += data[: rng.randint(0, len(data))]
    return bytes(data)


def fuzz_record(topic: str, n: int) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]], bool]:
    """(key, value, headers, malformed_by_construction) for one hostile record on `topic`."""
    spec = BY_TOPIC[topic]
    key = rng.choice([None, b"", rng.randbytes(rng.randint(1, 30)), f"ord_fuzz_{n}".encode()])
    kind = rng.random()
    if kind < 0.3:
        value: bytes | None = rng.randbytes(rng.randint(0, 300))
    elif kind < 0.6:
        value = random_message(spec.message).SerializeToString()
    elif kind < 0.95:
        value = mutate(random_message(spec.message).SerializeToString())
    elif kind < 0.98:
        value, key = None, key or b"no-value"  # a tombstone needs a key
    else:
        value = rng.randbytes(rng.randint(100_000, 300_000))
    headers = {
        k: v.encode() for k, v in build_headers(spec, f"ord_fuzz_{n}", "fuzz", eid=str(uuid.uuid4())).items()
    }
    damage = rng.random()
    malformed = False
    if damage < 0.25:
        headers.pop("ce_id")
        malformed = True
    elif damage < 0.35:
        headers["ce_type"] = rng.choice([b"", b"yiju.nope", junk_text(8).encode()])
    elif damage < 0.42:
        headers["ce_id"] = junk_text(rng.randint(1, 300)).encode()
    elif damage < 0.5:
        headers = {}
        malformed = True
    elif damage < 0.6:
        headers[junk_text(rng.randint(1, 20))] = junk_text(rng.randint(0, 2000)).encode()
    elif damage < 0.65:
        headers["ce_id"] = b"fuzz-duplicate-id"  # the same id again and again: duplicates
    return key, value, list(headers.items()), malformed


def ensure_invalid(raw: bytes) -> bytes:
    """A mutated body that might still be a valid intent gets an unknown field (always refused)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if isinstance(body, dict):
        body["fuzz"] = True
        return orjson.dumps(body)
    return raw


async def scrape(platform: LocalPlatform) -> dict[str, Counter[tuple[str, ...]]]:
    """yiju_events_consumed_total (group, topic), yiju_events_published_total (topic) and
    yiju_dead_letters_total (group) summed over every service."""
    out: dict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        for name in SERVICES:
            text = (await client.get(f"http://127.0.0.1:{platform.ports.metrics(name)}/metrics")).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    labels = sample.labels
                    if sample.name == "yiju_events_consumed_total":
                        out["consumed"][(labels["group"], labels["topic"])] += sample.value
                        out["outcomes"][(labels["group"], labels["outcome"])] += sample.value
                    elif sample.name == "yiju_events_published_total":
                        out["published"][(labels["topic"],)] += sample.value
                    elif sample.name == "yiju_dead_letters_total":
                        out["dead_letters"][(labels["group"],)] += sample.value
    return out


# ----- Kafka


async def test_hostile_kafka_records_are_all_processed_or_dead_lettered(fuzz_platform: LocalPlatform) -> None:
    before = await scrape(fuzz_platform)
    producer = AIOKafkaProducer(
        bootstrap_servers=fuzz_platform.bootstrap, acks="all", max_request_size=1_048_576, linger_ms=5
    )
    await producer.start()
    sent: Counter[str] = Counter()
    malformed: list[tuple[str, int, int]] = []
    try:
        for start in range(0, KAFKA_RECORDS, 500):
            futures = []
            for n in range(start, min(start + 500, KAFKA_RECORDS)):
                topic = CONSUMED_TOPICS[n % len(CONSUMED_TOPICS)]
                key, value, headers, bad = fuzz_record(topic, n)
                sending = await producer.send(fuzz_platform.topic(topic), value, key=key, headers=headers)
                futures.append((topic, bad, sending))
            for topic, bad, future in futures:
                meta = await future
                sent[topic] += 1
                if bad:
                    malformed.append((fuzz_platform.topic(topic), meta.partition, meta.offset))
    finally:
        await producer.stop()
    assert sum(sent.values()) == KAFKA_RECORDS

    def expected_and_consumed(now: dict[str, Counter]) -> dict[str, tuple[int, int]]:
        out = {}
        for group in CONSUMER_GROUPS:
            expect = consumed = 0
            for topic in group.topics:
                published = now["published"][(topic,)] - before["published"][(topic,)]
                expect += sent[topic] + int(published)
                consumed += int(
                    now["consumed"][(group.name, topic)] - before["consumed"][(group.name, topic)]
                )
            out[group.name] = (expect, consumed)
        return out

    deadline, stable_since, last = time.monotonic() + 90, 0.0, None
    while True:
        counts = expected_and_consumed(await scrape(fuzz_platform))
        if all(c >= e for e, c in counts.values()):
            if counts == last and time.monotonic() - stable_since > 2:
                break
            if counts != last:
                stable_since, last = time.monotonic(), counts
        assert time.monotonic() < deadline, f"records unaccounted for (expected, consumed): {counts}"
        await asyncio.sleep(0.5)
    for group, (expect, consumed) in counts.items():
        assert consumed >= expect, (group, expect, consumed)

    letters = await read_dead_letters(fuzz_platform.settings())
    dead = {(d.group, d.original_topic, d.original_partition, d.original_offset) for d in letters}
    missing = [
        (g.name, topic, partition, offset)
        for topic, partition, offset in malformed
        for g in CONSUMER_GROUPS
        if topic.removeprefix(fuzz_platform.namespace) in g.topics
        and (g.name, topic, partition, offset) not in dead
    ]
    assert malformed and not missing, missing[:10]
    reasons = Counter(d.reason for d in letters)
    assert reasons["malformed"] >= len(malformed)


# ----- HTTP


def http_cases(platform: LocalPlatform) -> list[tuple[str, str, dict[str, str], bytes | None]]:
    auth = {"Authorization": f"Bearer {platform.token('u-1004')}"}
    json_headers = {**auth, "content-type": "application/json"}
    bodies: list[Any] = [
        {"user_id": "u-1004"},
        {"text": "a latte"},
        {"user_id": "u-1004", "text": ""},
        {"user_id": "u-1004", "text": "   \n\t "},
        {"user_id": "u-1004", "text": "a" * 2001},
        {"user_id": "u-1004", "text": "a latte", "price_fen": 1},
        {"user_id": "u-1004", "text": "a latte", "idempotency_key": "k" * 201},
        {"user_id": "u-1004", "text": "a latte", "locale": "x" * 36},
        {"user_id": "u-1002", "text": "a latte"},
        {"user_id": "", "text": "a latte"},
        {"user_id": "u-1004", "text": 42},
        {"user_id": ["u-1004"], "text": "a latte"},
        {"user_id": "u-1004", "text": None},
        {"user_id": "u-1004", "text": {"$gt": ""}},
        [],
        "a latte",
        None,
        12,
    ]
    cases: list[tuple[str, str, dict[str, str], bytes | None]] = []
    while len(cases) < HTTP_REQUESTS:
        pick = rng.random()
        if pick < 0.35:
            body = dict(rng.choice([b for b in bodies if isinstance(b, dict)]))
            if rng.random() < 0.5:
                body[junk_text(5)] = junk_text(10)  # an unknown field: always refused
            cases.append(("POST", "/v1/intents", json_headers, orjson.dumps(body)))
        elif pick < 0.45:
            cases.append(("POST", "/v1/intents", json_headers, orjson.dumps(rng.choice(bodies))))
        elif pick < 0.6:
            raw = ensure_invalid(mutate(orjson.dumps({"user_id": "u-1004", "text": "a latte"})))
            cases.append(("POST", "/v1/intents", json_headers, raw))
        elif pick < 0.65:
            size = rng.choice([33_000, 40_000, 100_000])  # over the 32 KiB limit: 413
            cases.append(("POST", "/v1/intents", json_headers, b'{"text":"' + b"a" * size + b'"}'))
        elif pick < 0.7:
            cases.append(
                (
                    "POST",
                    "/v1/intents",
                    {"content-type": "application/json"},
                    b'{"user_id":"u-1004","text":"a latte"}',
                )
            )
        elif pick < 0.75:
            junk = "".join(rng.choice("abcXYZ019.-_=+/") for _ in range(rng.randint(1, 60)))
            bad = {
                "Authorization": rng.choice(["Bearer", "Bearer x.y.z", "Basic dTpw", junk, f"Bearer {junk}"])
            }
            cases.append(("POST", "/v1/intents", bad, b'{"user_id":"u-1004","text":"a latte"}'))
        elif pick < 0.9:
            order = rng.choice(
                ["ord_missing", "ord_" + uuid.uuid4().hex[:20], "..%2F..%2Fetc%2Fpasswd", "x" * 300]
            )
            method, suffix = rng.choice(
                [("GET", ""), ("POST", "/confirm"), ("POST", "/cancel"), ("GET", "/events")]
            )
            cases.append((method, f"/v1/orders/{order}{suffix}", auth, None))
        else:
            method, path = rng.choice(
                [
                    ("PUT", "/v1/intents"),
                    ("DELETE", "/v1/orders/x"),
                    ("GET", "/v1/nope"),
                    ("GET", "/v1/orders"),
                ]
            )
            cases.append((method, path, auth, None))
    return cases


async def test_hostile_http_requests_get_a_4xx_with_a_reason(fuzz_platform: LocalPlatform) -> None:
    cases = http_cases(fuzz_platform)
    gate = asyncio.Semaphore(32)
    answers: Counter[int] = Counter()
    wrong: list[tuple[str, str, int, str]] = []
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(
        base_url=fuzz_platform.api_url, timeout=15, limits=limits, trust_env=False
    ) as client:

        async def one(method: str, path: str, headers: dict[str, str], body: bytes | None) -> None:
            async with gate:
                try:
                    reply = await client.request(method, path, headers=headers, content=body)
                except httpx.TransportError:  # refused before the body was all sent: the answer is lost
                    reply = await client.request(method, path, headers=headers, content=body)
            answers[reply.status_code] += 1
            try:
                payload = reply.json()
                reason = (payload.get("error") or {}).get("message") or payload.get("detail")
            except ValueError:
                reason = None
            if not (400 <= reply.status_code < 500 and reason):
                wrong.append((method, path[:60], reply.status_code, reply.text[:200]))

        await asyncio.gather(*(one(*case) for case in cases))
    assert sum(answers.values()) >= HTTP_REQUESTS
    assert not wrong, (wrong[:10], answers)


# ----- gRPC


def grpc_cases() -> list[tuple[str, Message]]:
    cases: list[tuple[str, Message]] = []
    while len(cases) < GRPC_CALLS:
        pick = rng.random()
        if pick < 0.35:
            request = rng.choice(
                [
                    ipb.SubmitIntentRequest(user_id="u-1004", text=""),
                    ipb.SubmitIntentRequest(user_id="u-1004", text=" \t\n"),
                    ipb.SubmitIntentRequest(user_id="u-1004", text="x" * rng.randint(2001, 4000)),
                    ipb.SubmitIntentRequest(user_id="u-1004", text="a latte", locale=junk_text(40)),
                    ipb.SubmitIntentRequest(user_id="u-1004", text="a latte", idempotency_key="k" * 300),
                    ipb.SubmitIntentRequest(user_id=junk_text(8), text="a latte"),
                ]
            )
            cases.append(("SubmitIntent", request))
        elif pick < 0.65:
            method = rng.choice(["GetOrder", "ConfirmOrder", "CancelOrder", "WatchOrder"])
            order_id = rng.choice(["", "ord_missing", junk_text(20), "ord_" + uuid.uuid4().hex[:20]])
            request_cls = {"GetOrder": ipb.GetOrderRequest, "WatchOrder": ipb.WatchOrderRequest}.get(
                method, ipb.OrderActionRequest
            )
            cases.append((method, request_cls(order_id=order_id)))
        elif pick < 0.9:
            text = rng.choice(["", "   ", "\n\t", "y" * rng.randint(2001, 3000)])
            cases.append(("ParseIntent", gw.ParseIntentRequest(text=text, tenant_id=junk_text(5))))
        else:
            items = [gw.ParseIntentRequest(text="a latte") for _ in range(rng.choice([1, 3, 257]))]
            if len(items) < 257:
                items.append(gw.ParseIntentRequest(text=""))
            cases.append(("ParseIntentBatch", gw.ParseIntentBatchRequest(requests=items)))
    return cases


async def test_invalid_grpc_messages_are_invalid_argument_or_not_found(fuzz_platform: LocalPlatform) -> None:
    metadata = (("authorization", f"Bearer {fuzz_platform.token('u-1004')}"),)
    codes: Counter[str] = Counter()
    wrong: list[tuple[str, str, str]] = []
    gate = asyncio.Semaphore(32)
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{fuzz_platform.ports.grpc}") as intent_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{fuzz_platform.ports.gateway}") as gateway_channel,
    ):
        intent = ipb_grpc.IntentServiceStub(intent_channel)
        gateway = gw_grpc.ModelGatewayServiceStub(gateway_channel)

        async def one(method: str, request: Message) -> None:
            stub = gateway if method.startswith("Parse") else intent
            async with gate:
                try:
                    if method == "WatchOrder":
                        async for _ in stub.WatchOrder(request, metadata=metadata, timeout=10):
                            pass
                    else:
                        await getattr(stub, method)(request, metadata=metadata, timeout=10)
                    code, details = grpc.StatusCode.OK, ""
                except grpc.aio.AioRpcError as exc:
                    code, details = exc.code(), exc.details() or ""
            codes[code.name] += 1
            if code not in CLIENT_ERRORS or not details:
                wrong.append((method, code.name, details[:120]))

        await asyncio.gather(*(one(m, r) for m, r in grpc_cases()))
    assert sum(codes.values()) >= GRPC_CALLS
    assert not wrong, (wrong[:10], codes)


GARBAGE_METHODS = (
    "/yiju.intent.v1.IntentService/SubmitIntent",
    "/yiju.intent.v1.IntentService/GetOrder",
    "/yiju.gateway.v1.ModelGatewayService/ParseIntent",
)


async def test_undecodable_grpc_requests_are_invalid_argument(fuzz_platform: LocalPlatform) -> None:
    metadata = (("authorization", f"Bearer {fuzz_platform.token('u-1004')}"),)
    codes: Counter[str] = Counter()
    for port, method in [(fuzz_platform.ports.grpc, m) for m in GARBAGE_METHODS[:2]] + [
        (fuzz_platform.ports.gateway, GARBAGE_METHODS[2])
    ]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(method)
            for _ in range(20):
                try:
                    await call(b"\xff\xff" + rng.randbytes(rng.randint(0, 50)), metadata=metadata, timeout=5)
                    codes["OK"] += 1
                except grpc.aio.AioRpcError as exc:
                    codes[exc.code().name] += 1
    assert set(codes) <= {"INVALID_ARGUMENT"}, codes


async def test_no_process_died_under_fuzzing(fuzz_platform: LocalPlatform) -> None:
    assert fuzz_platform.pids == fuzz_platform.started_pids  # type: ignore[attr-defined]
    assert fuzz_platform.restarts == {}
    await fuzz_platform.wait_ready(timeout=10)


async def test_a_header_that_is_not_utf8_is_dead_lettered_not_a_poison_pill(
    fuzz_platform: LocalPlatform,
) -> None:
    """Runs last: until the fix, the record stalls its partition for the rest of this platform's life."""
    topic = "yiju.order.confirmed.v1"
    spec = BY_TOPIC[topic]
    headers = {
        k: v.encode() for k, v in build_headers(spec, "ord_poison", "fuzz", eid=str(uuid.uuid4())).items()
    }
    headers["ce_id"] = b"\xff\xfe-not-utf8"
    producer = AIOKafkaProducer(bootstrap_servers=fuzz_platform.bootstrap, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(
            fuzz_platform.topic(topic), b"", key=b"ord_poison", headers=list(headers.items())
        )
    finally:
        await producer.stop()
    wire = fuzz_platform.topic(topic)
    wanted = {(g.name, wire, meta.partition, meta.offset) for g in CONSUMER_GROUPS if topic in g.topics}
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        letters = await read_dead_letters(fuzz_platform.settings())
        dead = {(d.group, d.original_topic, d.original_partition, d.original_offset) for d in letters}
        if wanted <= dead:
            return
        await asyncio.sleep(1)
    raise AssertionError(f"not dead-lettered by {sorted(g for g, *_ in wanted - dead)}")
