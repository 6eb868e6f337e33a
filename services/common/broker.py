"""The Kafka broker connection (faststream + aiokafka) and the traced event publisher.

Events are handed straight to the broker's aiokafka producer (what faststream's own `publish` ends
in), skipping faststream's per-message publish machinery (command objects, middleware chain, codec,
a fresh correlation id): the same record, topic, key and headers, for a fraction of the CPU. The
faststream path is kept as the fallback when the broker has no aiokafka producer (e.g. test brokers).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from faststream.security import SASLPlaintext, SASLScram256, SASLScram512
from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from yiju.common import telemetry
from yiju.common.envelope import build_headers, spec_for
from yiju.common.kafka_config import ssl_context
from yiju.common.metrics import EVENTS_PUBLISHED
from yiju.common.settings import Settings
from yiju.common.topics import Namespace

log = logging.getLogger(__name__)

# Per-partition batch size of the producer: room for a few hundred events per request at load
# (aiokafka's default, 16 KiB, holds ~35 of ours).
MAX_BATCH_BYTES = 256 * 1024


def _security(settings: Settings) -> Any:
    protocol = settings.kafka_security_protocol
    if not protocol.startswith("SASL"):
        if protocol == "SSL":
            from faststream.security import BaseSecurity

            return BaseSecurity(ssl_context=ssl_context(settings), use_ssl=True)
        return None
    cls = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}[
        settings.kafka_sasl_mechanism.upper()
    ]
    return cls(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password,
        ssl_context=ssl_context(settings),
        use_ssl=protocol == "SASL_SSL",
    )


def create_broker(settings: Settings, service: str) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=f"{settings.kafka_client_prefix}-{service}",
        acks=settings.kafka_acks,  # type: ignore[arg-type]
        linger_ms=settings.kafka_linger_ms,
        # The broker drops a retried batch it already has (no duplicate from a producer retry);
        # consumers de-duplicate by event id on top of that (a handler that runs twice).
        enable_idempotence=settings.kafka_enable_idempotence,
        max_batch_size=MAX_BATCH_BYTES,
        security=_security(settings),
        logger=logging.getLogger(f"faststream.{service}"),
        graceful_timeout=10.0,
        description=f"yiju {service} service",
    )


class EventPublisher:
    """Publishes protobuf events with CloudEvents headers and the current trace context."""

    def __init__(self, broker: KafkaBroker, source: str, namespace: Namespace | None = None) -> None:
        self.broker = broker
        self.source = source
        self.namespace = namespace or Namespace()
        self._tracer = trace.get_tracer("yiju.kafka")
        self._counters: dict[str, Any] = {}

    async def send(
        self,
        message: Message,
        order_id: str,
        *,
        extra_headers: dict[str, str] | None = None,
        eid: str | None = None,
    ) -> asyncio.Future:
        """Starts publishing; the returned future resolves when the broker has acknowledged the record."""
        spec = spec_for(message)
        topic = self.namespace.topic(spec.topic)
        headers = build_headers(spec, order_id, self.source, eid=eid)
        if extra_headers:
            headers.update(extra_headers)
        # The send span is not made current (nothing runs inside it but the hand-off to the producer):
        # it is started, injected into the headers and ended, without the context-manager layers.
        span = self._tracer.start_span(
            f"send {topic}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "messaging.destination.name": topic,
                "messaging.kafka.message.key": order_id,
                "messaging.message.id": headers["ce_id"],
                "cloudevents.event_type": spec.type,
            },
        )
        try:
            telemetry.inject(headers, trace.set_span_in_context(span))
            future = await self._send(topic, message.SerializeToString(), order_id.encode(), headers)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            span.end()
        self._published(spec.topic).inc()
        return future

    def _published(self, topic: str) -> Any:
        counter = self._counters.get(topic)
        if counter is None:
            counter = self._counters[topic] = EVENTS_PUBLISHED.labels(topic)
        return counter

    def _producer(self) -> AIOKafkaProducer | None:
        """The connected aiokafka producer under the faststream broker, if there is one."""
        state = getattr(getattr(self.broker, "config", None), "producer", None)
        state = getattr(state, "_producer", None)
        if not state:  # not connected yet (or a test broker)
            return None
        producer = getattr(state, "producer", None)
        return producer if isinstance(producer, AIOKafkaProducer) else None

    async def _send(self, topic: str, value: bytes, key: bytes, headers: dict[str, str]) -> asyncio.Future:
        producer = self._producer()
        if producer is None:
            return await self.broker.publish(value, topic, key=key, headers=headers, no_confirm=True)
        headers.setdefault("correlation_id", headers["ce_id"])
        return await producer.send(
            topic, value=value, key=key, headers=[(k, v.encode()) for k, v in headers.items()]
        )

    async def publish(self, message: Message, order_id: str, **kwargs: Any) -> None:
        """Publishes and waits for the broker's acknowledgement."""
        await (await self.send(message, order_id, **kwargs))
