"""Publishing intents straight to Kafka, for client teams: each record signed and bound to its intent.

The publisher holds the intake signing key (Ed25519, private; the platform holds only its public key):
every intent gets its own short-lived assertion naming its user, its idempotency key and the SHA-256 of
its text (``yiju.common.intake_assertion``). Find the order afterwards with
``GET /v1/orders?user_id=U&idempotency_key=K``::

    signer = IntakeSigner.from_file("/etc/my-team/yiju-intake.key", issuer="yiju-intake-publisher")
    async with IntentPublisher("kafka:9092", signer, source="my-team/app") as publisher:
        key = await publisher.publish("u-1004", "two bubble teas")
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaProducer

from yiju.common.envelope import BY_MESSAGE, build_headers
from yiju.common.intake_assertion import IntakeSigner
from yiju.gen.events.v1 import order_events_pb2 as ev

__all__ = ["IntakeRecord", "IntakeSigner", "IntentPublisher", "intent_record"]

ASSERTION_TTL_S = 300


@dataclass(frozen=True, slots=True)
class IntakeRecord:
    """One Kafka record for the intake topic: where it goes, its key, value and headers."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def intent_record(
    signer: IntakeSigner,
    user_id: str,
    text: str,
    idempotency_key: str,
    *,
    locale: str = "",
    source: str = "yiju-sdk",
    topic_prefix: str = "",
    ttl_s: int = ASSERTION_TTL_S,
) -> IntakeRecord:
    """The record of one intent, with an assertion that is good for this intent only."""
    event = ev.IntentSubmitted(
        user_id=user_id,
        text=text,
        idempotency_key=idempotency_key,
        locale=locale,
        user_assertion=signer.sign(user_id, idempotency_key, text, ttl_s=ttl_s),
    )
    spec = BY_MESSAGE[ev.IntentSubmitted]
    headers = build_headers(spec, idempotency_key, source, eid=str(uuid.uuid4()))
    return IntakeRecord(
        topic=f"{topic_prefix}{spec.topic}",
        key=idempotency_key.encode(),
        value=event.SerializeToString(),
        headers=[(k, v.encode()) for k, v in headers.items()],
    )


class IntentPublisher:
    """An async Kafka producer of signed intents (acks=all). `producer_kwargs` go to AIOKafkaProducer
    (security_protocol, sasl_*, ssl_context ...)."""

    def __init__(
        self,
        bootstrap_servers: str,
        signer: IntakeSigner,
        *,
        source: str = "yiju-sdk",
        topic_prefix: str = "",
        **producer_kwargs: Any,
    ) -> None:
        self.signer = signer
        self.source = source
        self.topic_prefix = topic_prefix
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", **producer_kwargs)

    async def __aenter__(self) -> Self:
        await self._producer.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._producer.stop()

    async def publish(self, user_id: str, text: str, idempotency_key: str = "", *, locale: str = "") -> str:
        """Publishes one intent and waits for the broker's ack; returns its idempotency key (a new one
        unless given: retry with the same key to get the same order)."""
        key = idempotency_key or str(uuid.uuid4())
        record = intent_record(
            self.signer, user_id, text, key, locale=locale, source=self.source, topic_prefix=self.topic_prefix
        )
        await self._producer.send_and_wait(record.topic, record.value, key=record.key, headers=record.headers)
        return key
