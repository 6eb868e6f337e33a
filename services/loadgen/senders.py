"""How a sentence reaches the platform: HTTP, gRPC or straight onto the Kafka intake topic.

Each sender's `submit` hands one sentence over and returns the order id when the edge answers with
one (HTTP, gRPC) or None (Kafka: the order id is learnt from yiju.intent.accepted.v1). It raises
SendError when the platform refuses the sentence or cannot be reached.

The HTTP sender is a small keep-alive HTTP/1.1 client on asyncio streams rather than httpx: at a few
thousand requests per second httpx alone would need most of a core of a two-core machine, and the
generator must leave the CPU to the platform it measures. `--http-client sdk` uses the project's
AsyncYijuClient instead (slower, the same requests).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import orjson

from yiju.common.topics import Namespace
from yiju.loadgen.users import Credentials


class SendError(Exception):
    """The sentence was not accepted; `kind` labels it in the report (http_429, grpc_UNAVAILABLE, ...)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


@dataclass(slots=True)
class Submission:
    key: str
    user_id: str
    text: str
    locale: str


class Sender(Protocol):
    name: str
    # True: `submit` only enqueues (cheap, awaited in line by the scheduler); False: one task per sentence.
    inline: bool

    async def start(self) -> None: ...

    async def submit(self, item: Submission) -> str | None: ...

    async def close(self) -> None: ...


# ----- HTTP


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = bytearray()
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
            return status, headers, bytes(body)
        length = int(headers.get(b"content-length", b"0"))
        return status, headers, await self.reader.readexactly(length) if length else b""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class RawHttpSender:
    """POST /v1/intents over a pool of keep-alive HTTP/1.1 connections."""

    name = "http"
    inline = False

    def __init__(self, api_url: str, credentials: Credentials, connections: int = 128) -> None:
        parts = urlsplit(api_url)
        if parts.scheme != "http":
            raise ValueError("the raw HTTP sender speaks plain http:// only (use --http-client sdk)")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.credentials = credentials
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[_Connection] = []
        self._host_header = f"{self.host}:{self.port}".encode()

    async def start(self) -> None:
        return None

    def _request(self, item: Submission) -> bytes:
        body = orjson.dumps(
            {"user_id": item.user_id, "text": item.text, "idempotency_key": item.key, "locale": item.locale}
        )
        return b"".join(
            (
                b"POST /v1/intents HTTP/1.1\r\nHost: ",
                self._host_header,
                b"\r\nAuthorization: Bearer ",
                self.credentials.token(item.user_id).encode(),
                b"\r\nContent-Type: application/json\r\nContent-Length: ",
                str(len(body)).encode(),
                b"\r\n\r\n",
                body,
            )
        )

    async def submit(self, item: Submission) -> str | None:
        request = self._request(item)
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            try:
                if conn is None:
                    conn = _Connection(*await asyncio.open_connection(self.host, self.port))
                status, headers, body = await conn.exchange(request)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                if conn is not None:
                    conn.close()
                raise SendError("http_connection", repr(exc)) from exc
            if headers.get(b"connection", b"").lower() == b"close":
                conn.close()
            else:
                self._idle.append(conn)
        if status != 202:
            raise SendError(f"http_{status}", body[:200].decode(errors="replace"))
        return str(orjson.loads(body)["order_id"])

    async def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


class SdkHttpSender:
    """POST /v1/intents with the project's AsyncYijuClient (one shared connection pool)."""

    name = "http"
    inline = False

    def __init__(self, api_url: str, credentials: Credentials, connections: int = 128) -> None:
        import httpx

        self.api_url = api_url
        self.credentials = credentials
        self._http = httpx.AsyncClient(
            trust_env=False,
            timeout=30.0,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        self._clients: dict[str, object] = {}

    async def start(self) -> None:
        return None

    async def submit(self, item: Submission) -> str | None:
        from yiju.sdk import NO_RETRY, AsyncYijuClient, YijuError

        client = self._clients.get(item.user_id)
        if client is None:
            client = self._clients[item.user_id] = AsyncYijuClient(
                self.api_url,
                token=self.credentials.token(item.user_id),
                http_client=self._http,
                retry=NO_RETRY,
            )
        try:
            accepted = await client.submit_intent(  # type: ignore[attr-defined]
                item.user_id, item.text, idempotency_key=item.key, locale=item.locale
            )
        except YijuError as exc:
            raise SendError(f"http_{getattr(exc, 'status', 'error')}", str(exc)[:200]) from exc
        return str(accepted.order_id)

    async def close(self) -> None:
        await self._http.aclose()


# ----- gRPC


class GrpcSender:
    """yiju.intent.v1.IntentService/SubmitIntent over one HTTP/2 channel."""

    name = "grpc"
    inline = False

    def __init__(self, target: str, credentials: Credentials, timeout_s: float = 30.0) -> None:
        self.target = target
        self.credentials = credentials
        self.timeout_s = timeout_s
        self._channel = None
        self._stub = None

    async def start(self) -> None:
        import grpc

        from yiju.gen.intent.v1 import intent_pb2_grpc as pb_grpc

        self._channel = grpc.aio.insecure_channel(self.target, options=[("grpc.enable_http_proxy", 0)])
        self._stub = pb_grpc.IntentServiceStub(self._channel)

    async def submit(self, item: Submission) -> str | None:
        import grpc

        from yiju.gen.intent.v1 import intent_pb2 as pb

        assert self._stub is not None, "start() the sender first"
        request = pb.SubmitIntentRequest(
            user_id=item.user_id, text=item.text, idempotency_key=item.key, locale=item.locale
        )
        metadata = (("authorization", f"Bearer {self.credentials.token(item.user_id)}"),)
        try:
            reply = await self._stub.SubmitIntent(request, metadata=metadata, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise SendError(f"grpc_{exc.code().name}", exc.details() or "") from exc
        return str(reply.order_id)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


# ----- Kafka intake


class KafkaSender:
    """Publishes IntentSubmitted (protobuf, CloudEvents headers, key = idempotency key) to the intake
    topic, as a client team would. `submit` returns once the record is queued in the producer; a
    failed delivery is reported through `failures`."""

    name = "kafka"
    inline = True

    def __init__(
        self,
        producer_kwargs: dict,
        credentials: Credentials,
        linger_ms: int = 5,
        *,
        namespace: Namespace | None = None,
    ) -> None:
        self.producer_kwargs = producer_kwargs
        self.namespace = namespace or Namespace()
        self.credentials = credentials
        self.linger_ms = linger_ms
        self.failures: list[tuple[str, str]] = []  # (idempotency key, error kind)
        self._producer = None
        self._pending: set[asyncio.Future] = set()

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(
            **self.producer_kwargs,
            acks="all",
            linger_ms=self.linger_ms,
            max_batch_size=256 * 1024,
            enable_idempotence=False,
        )
        await self._producer.start()

    async def submit(self, item: Submission) -> str | None:
        from yiju.common.envelope import BY_MESSAGE, build_headers
        from yiju.gen.events.v1 import order_events_pb2 as ev

        assert self._producer is not None, "start() the sender first"
        message = ev.IntentSubmitted(
            user_id=item.user_id,
            text=item.text,
            idempotency_key=item.key,
            locale=item.locale,
            user_assertion=self.credentials.assertion(item.user_id, item.key, item.text),
        )
        headers = build_headers(BY_MESSAGE[ev.IntentSubmitted], item.key, "yiju/loadgen")
        future = await self._producer.send(
            self.namespace.topic(BY_MESSAGE[ev.IntentSubmitted].topic),
            message.SerializeToString(),
            key=item.key.encode(),
            headers=[(k, v.encode()) for k, v in headers.items()],
        )
        self._pending.add(future)
        future.add_done_callback(lambda f, key=item.key: self._delivered(f, key))
        return None

    def _delivered(self, future: asyncio.Future, key: str) -> None:
        self._pending.discard(future)
        if future.cancelled():
            self.failures.append((key, "kafka_cancelled"))
        elif future.exception() is not None:
            self.failures.append((key, f"kafka_{type(future.exception()).__name__}"))

    async def close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.flush()
            await self._producer.stop()


def make_sender(
    via: str,
    credentials: Credentials,
    *,
    api_url: str = "",
    grpc_target: str = "",
    producer_kwargs: dict | None = None,
    namespace: Namespace | None = None,
    http_client: str = "raw",
    connections: int = 128,
) -> Sender:
    if via == "http":
        cls = SdkHttpSender if http_client == "sdk" else RawHttpSender
        return cls(api_url, credentials, connections)
    if via == "grpc":
        return GrpcSender(grpc_target, credentials)
    if via == "kafka":
        return KafkaSender(producer_kwargs or {}, credentials, namespace=namespace)
    raise ValueError(f"unknown --via {via!r} (http, grpc or kafka)")
