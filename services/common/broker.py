"""The Kafka broker connection (faststream, on the client YIJU_KAFKA_CLIENT picks) and the event publisher.

The broker is faststream's, for aiokafka or confluent-kafka (`yiju.common.kafka_client`). Events are
handed straight to the connected producer's own send (what faststream's `publish` ends in), skipping
faststream's per-message publish machinery (command objects, middleware chain, codec, a fresh
correlation id): the same record, topic, key and headers, for a fraction of the CPU. The faststream
path is kept as the fallback when the broker has no connected producer (e.g. test brokers).

Tracing: a publish inside a span (a consumer's process span, the edge's request span) carries that
span's context in its `traceparent`, so the next hop's process span is its child and the sentence stays
one trace; no span of its own, since it would time nothing but the hand-off to the producer (it was 5 of
the 15 spans a sentence). A publish outside any span starts a `send` span as the root of its trace.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from yiju.common import kafka_client, telemetry
from yiju.common.envelope import build_headers, spec_for
from yiju.common.metrics import EVENTS_PUBLISHED
from yiju.common.settings import Settings
from yiju.common.topics import Namespace

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = kafka_client.MAX_BATCH_BYTES


def create_broker(settings: Settings, service: str) -> Any:
    """faststream's broker for the configured Kafka client (aiokafka or confluent-kafka)."""
    return kafka_client.create_broker(settings, service)


class EventPublisher:
    """Publishes protobuf events with CloudEvents headers and the current trace context."""

    def __init__(self, broker: Any, source: str, namespace: Namespace | None = None) -> None:
        self.broker = broker
        self.source = source
        self.namespace = namespace or Namespace()
        self._tracer = trace.get_tracer("yiju.kafka")
        self._counters: dict[str, Any] = {}
        self._sender: kafka_client.Sender | None = None
        self._sender_of: Any = None  # the producer state the sender was made for

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
        value = message.SerializeToString()
        key = order_id.encode()
        if trace.get_current_span().get_span_context().is_valid:
            telemetry.inject(headers)  # the current span covers the publish: its context goes along
            future = await self._send(topic, value, key, headers)
        else:
            future = await self._send_in_span(topic, value, key, headers, spec.type)
        self._published(spec.topic).inc()
        return future

    def _published(self, topic: str) -> Any:
        counter = self._counters.get(topic)
        if counter is None:
            counter = self._counters[topic] = EVENTS_PUBLISHED.labels(topic)
        return counter

    async def _send_in_span(
        self, topic: str, value: bytes, key: bytes, headers: dict[str, str], event_type: str
    ) -> asyncio.Future:
        """A publish that starts its trace: a `send` span, injected into the headers and ended (not made
        current: nothing runs inside it but the hand-off to the producer)."""
        span = self._tracer.start_span(f"send {topic}", kind=SpanKind.PRODUCER)
        if span.is_recording():
            span.set_attributes(
                {
                    "messaging.system": "kafka",
                    "messaging.operation.type": "send",
                    "messaging.operation.name": "send",
                    "messaging.destination.name": topic,
                    "messaging.kafka.message.key": key.decode(),
                    "messaging.message.id": headers["ce_id"],
                    "cloudevents.event_type": event_type,
                }
            )
        try:
            telemetry.inject(headers, trace.set_span_in_context(span))
            return await self._send(topic, value, key, headers)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            span.end()

    async def _send(self, topic: str, value: bytes, key: bytes, headers: dict[str, str]) -> asyncio.Future:
        state = kafka_client.producer_state(self.broker)
        if state is not self._sender_of:  # connected (or reconnected) since the last send
            self._sender_of, self._sender = state, kafka_client.fast_sender(self.broker)
        sender = self._sender
        if sender is None:  # not connected yet (or a test broker): faststream's publish
            return await self.broker.publish(value, topic, key=key, headers=headers, no_confirm=True)
        headers.setdefault("correlation_id", headers["ce_id"])
        return await sender(topic, value, key, [(k, v.encode()) for k, v in headers.items()])

    async def publish(self, message: Message, order_id: str, **kwargs: Any) -> None:
        """Publishes and waits for the broker's acknowledgement."""
        await (await self.send(message, order_id, **kwargs))
