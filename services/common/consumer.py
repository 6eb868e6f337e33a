"""Consuming events: batches in, per-order ordering, idempotent handlers, bounded retries, dead letters.

Delivery is at-least-once. A batch's offsets are committed only after every record's effect is done
and every event it emitted has been acknowledged by the broker (yiju.common.offset_commits: explicit
offsets, at most one commit per `kafka_commit_interval_ms`). Records for one order are handled in
order; different orders in parallel. An infrastructure failure (Redis or Kafka unreachable) rewinds
the batch so it is redelivered; a record that can never succeed goes to the group's dead-letter topic
with the reason, so bad input never stalls a partition or loses a neighbour's message.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from faststream import AckPolicy
from google.protobuf.message import Message
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from redis.asyncio.client import Redis

from yiju.common import kafka_client, telemetry
from yiju.common.broker import EventPublisher
from yiju.common.envelope import BY_MESSAGE, EventMeta, MalformedEvent, decode, now_iso
from yiju.common.metrics import BATCH_SIZE, CONSUMER_LAG, DEAD_LETTERS, EVENTS_CONSUMED, HANDLER_SECONDS
from yiju.common.offset_commits import OffsetCommitter
from yiju.common.redis import INFRA_ERRORS
from yiju.common.settings import Settings
from yiju.common.topics import ConsumerGroup, Namespace

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """A dependency is down (not the record's fault): rewind the batch and try again later."""


INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    *INFRA_ERRORS,
    *kafka_client.KAFKA_ERRORS,
    TimeoutError,
    RetryLater,
)


class PermanentError(Exception):
    """The record can never be handled (invalid content): dead-letter it now, with this reason."""


class Record(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass
class EventContext:
    """What a handler gets besides the event: its metadata and a place to emit follow-up events."""

    meta: EventMeta
    emitted: list[tuple[Message, str]] = field(default_factory=list)

    @property
    def order_id(self) -> str:
        return self.meta.subject

    def emit(self, message: Message, order_id: str) -> None:
        """Queues an event; it is published after the handler returns, before the offset is committed."""
        self.emitted.append((message, order_id))


Handler = Callable[[Any, EventContext], Awaitable[None]]


class EventRouter:
    """Maps each event type a consumer group reads to its handler."""

    def __init__(self, group: ConsumerGroup) -> None:
        self.group = group
        self.handlers: dict[str, Handler] = {}

    def on(self, message_cls: type[Message]) -> Callable[[Handler], Handler]:
        topic = BY_MESSAGE[message_cls].topic
        if topic not in self.group.topics:
            raise ValueError(f"{self.group.name} does not subscribe to {topic}")

        def register(handler: Handler) -> Handler:
            self.handlers[topic] = handler
            return handler

        return register


class BatchProcessor:
    def __init__(
        self, router: EventRouter, publisher: EventPublisher, redis: Redis, settings: Settings
    ) -> None:
        self.router = router
        self.group = router.group
        self.publisher = publisher
        self.redis = redis
        self.settings = settings
        self.namespace = Namespace.of(settings)
        self._wire_group = self.namespace.group(self.group.name)
        self._tracer = trace.get_tracer("yiju.kafka")
        self._children: dict[tuple[Any, ...], Any] = {}

    def _metric(self, metric: Any, *labels: str) -> Any:
        """The labelled child of a metric, looked up once (labels() costs more than the increment)."""
        child = self._children.get((metric, *labels))
        if child is None:
            child = self._children[(metric, *labels)] = metric.labels(*labels)
        return child

    def _dedup_key(self, event_id: str) -> str:
        return f"dedup:{self.group.name}:{event_id}"

    async def handle(self, records: Sequence[Any], consumer: Any | None = None) -> None:
        """Handles a batch of either client's records (`consumer`: the one they came from, for lag)."""
        records = kafka_client.records_of(records)
        self._metric(BATCH_SIZE, self.group.name).observe(len(records))
        decoded: list[tuple[Record, EventMeta, Message]] = []
        for record in records:
            try:
                meta, message = decode(
                    self.namespace.logical(record.topic),
                    record.partition,
                    record.offset,
                    record.value,
                    record.headers,
                )
            except MalformedEvent as exc:
                await self.dead_letter(record, "malformed", exc, attempts=0)
                continue
            decoded.append((record, meta, message))
        if decoded and not self.group.idempotent:
            seen = await self.redis.mget([self._dedup_key(m.id) for _, m, _ in decoded])
        else:  # nothing to look up, or a group whose handlers are idempotent by construction
            seen = [None] * len(decoded)
        by_order: dict[bytes | None, list[tuple[Record, EventMeta, Message]]] = defaultdict(list)
        for item, already in zip(decoded, seen, strict=True):
            if already:
                topic = self.namespace.logical(item[0].topic)
                self._metric(EVENTS_CONSUMED, self.group.name, topic, "duplicate").inc()
            else:
                by_order[item[0].key].append(item)
        pending: list[asyncio.Future] = []
        done: list[str] = []
        outcomes = await asyncio.gather(
            *(self._handle_in_order(items, pending, done) for items in by_order.values()),
            return_exceptions=True,
        )
        await asyncio.gather(*pending)
        if done and not self.group.idempotent:
            async with self.redis.pipeline(transaction=False) as pipe:
                for event_id in done:
                    pipe.set(self._dedup_key(event_id), "1", ex=self.settings.dedup_ttl_s)
                await pipe.execute()
        self._record_lag(records, consumer)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            log.warning(
                "batch rewound after infrastructure error",
                extra={"group": self.group.name, "error": repr(failures[0])},
            )
            await asyncio.sleep(self.settings.handler_backoff_ms / 1000)
            raise failures[0]

    async def _handle_in_order(
        self, items: list[tuple[Record, EventMeta, Message]], pending: list[asyncio.Future], done: list[str]
    ) -> None:
        for record, meta, message in items:
            if await self._handle_one(record, meta, message, pending):
                done.append(meta.id)

    async def _handle_one(
        self, record: Record, meta: EventMeta, message: Message, pending: list[asyncio.Future]
    ) -> bool:
        topic = self.namespace.logical(record.topic)
        handler = self.router.handlers.get(topic)
        if handler is None:
            await self.dead_letter(record, "unhandled", MalformedEvent(f"no handler for {topic}"), 0)
            return True
        parent = telemetry.extract(meta.headers)
        started = time.perf_counter()
        # Made current by hand rather than with start_as_current_span's context-manager layers (a
        # measurable share of a consumer's CPU at ~17 spans a sentence); same span, same context.
        span = self._tracer.start_span(f"process {record.topic}", context=parent, kind=SpanKind.CONSUMER)
        if span.is_recording():  # a sampled-out sentence pays for no attributes
            span.set_attributes(self._process_attributes(record, meta))
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            attempt = 0
            while True:
                attempt += 1
                ctx = EventContext(meta)
                try:
                    await handler(message, ctx)
                    break
                except INFRASTRUCTURE_ERRORS:
                    raise
                except PermanentError as exc:
                    span.set_status(Status(StatusCode.ERROR, str(exc)))
                    await self.dead_letter(record, "rejected", exc, attempt)
                    return True
                except Exception as exc:
                    if attempt >= self.settings.handler_max_attempts:
                        span.record_exception(exc)
                        span.set_status(Status(StatusCode.ERROR, str(exc)))
                        await self.dead_letter(record, "retries_exhausted", exc, attempt)
                        return True
                    log.warning(
                        "handler failed, retrying",
                        extra={
                            "group": self.group.name,
                            "attempt": attempt,
                            "event_id": meta.id,
                            "error": repr(exc),
                        },
                    )
                    await asyncio.sleep(self.settings.handler_backoff_ms / 1000 * 2 ** (attempt - 1))
            for out, order_id in ctx.emitted:
                pending.append(await self.publisher.send(out, order_id))
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            otel_context.detach(token)
            span.end()
        self._metric(HANDLER_SECONDS, self.group.name, topic).observe(time.perf_counter() - started)
        self._metric(EVENTS_CONSUMED, self.group.name, topic, "ok").inc()
        return True

    def _process_attributes(self, record: Record, meta: EventMeta) -> dict[str, Any]:
        return {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": record.topic,
            "messaging.consumer.group.name": self._wire_group,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.kafka.message.key": meta.subject,
            "messaging.message.id": meta.id,
            "cloudevents.event_type": meta.type,
        }

    async def dead_letter(self, record: Record, reason: str, error: BaseException, attempts: int) -> None:
        """Moves a record to the group's dead-letter topic with the error and where it came from."""
        headers = {
            k: v.decode(errors="replace") if isinstance(v, bytes) else str(v)
            for k, v in (record.headers or ())
        }
        headers.update(
            {
                "x-dlq-reason": reason,
                "x-dlq-error-class": type(error).__name__,
                "x-dlq-error-message": str(error)[:1000],
                "x-dlq-attempts": str(attempts),
                "x-dlq-group": self.group.name,
                "x-dlq-original-topic": record.topic,
                "x-dlq-original-partition": str(record.partition),
                "x-dlq-original-offset": str(record.offset),
                "x-dlq-at": now_iso(),
            }
        )
        if reason != "malformed":
            headers["x-dlq-traceback"] = "".join(traceback.format_exception_only(error)).strip()[:2000]
        await self.publisher.broker.publish(
            record.value or b"", self.namespace.dead_letter_topic(self.group), key=record.key, headers=headers
        )
        DEAD_LETTERS.labels(self.group.name, reason).inc()
        EVENTS_CONSUMED.labels(self.group.name, self.namespace.logical(record.topic), "dead_lettered").inc()
        log.error(
            "record dead-lettered",
            extra={
                "group": self.group.name,
                "reason": reason,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error": str(error)[:300],
            },
        )

    def _record_lag(self, records: Sequence[Record], consumer: Any | None) -> None:
        last: dict[tuple[str, int], int] = {}
        for r in records:
            last[(r.topic, r.partition)] = max(r.offset, last.get((r.topic, r.partition), -1))
        if consumer is None:
            return
        for (topic, partition), offset in last.items():
            high = kafka_client.highwater(consumer, topic, partition)
            if high is not None:
                CONSUMER_LAG.labels(self.group.name, topic, str(partition)).set(max(high - offset - 1, 0))


async def tolerant_parser(records: tuple[Any, ...], original: Callable[..., Awaitable[Any]]) -> Any:
    """faststream's batch parser fails a whole batch on one header that is not UTF-8, and the batch
    would be redelivered forever. It gets sanitized copies; the handler gets the original records, so
    the envelope check dead-letters the bad one with its reason and its neighbours flow."""
    message = await original(tuple(kafka_client.printable(r) for r in records))
    message.raw_message = records
    return message


async def raw_values(message: Any, original: Callable[..., Awaitable[Any]]) -> list[bytes]:
    """The batch body as raw values (the handler decodes protobuf itself)."""
    return kafka_client.values_of(message.raw_message)


def subscribe(broker: Any, processor: BatchProcessor, settings: Settings) -> OffsetCommitter:
    """Attaches a batch subscriber for the processor's consumer group to the broker (faststream's, for
    either Kafka client: yiju.common.kafka_client). Returns its committer (the service closes it on stop,
    which commits everything handled)."""
    group = processor.group
    namespace = Namespace.of(settings)
    context = broker.context
    committer = OffsetCommitter(group.name, settings.kafka_commit_interval_ms)

    @broker.subscriber(
        *namespace.topics(group.topics),
        group_id=namespace.group(group.name),
        batch=True,
        max_records=settings.kafka_max_poll_records,
        **kafka_client.batch_subscriber_options(settings),
        # The broker's long poll: Kafka answers as soon as records arrive, so this bounds only how often
        # an idle consumer asks (settings.kafka_fetch_max_wait_ms; 20 ms on tansu, which waits it out).
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        fetch_min_bytes=settings.kafka_fetch_min_bytes,
        # A new group reads its topics from the start: nothing published before a service first joined
        # is skipped.
        auto_offset_reset="earliest",
        # Acknowledged here, not by faststream: a handled batch is committed by the committer (explicit
        # offsets, throttled); a failed one is rewound (nack: seek back to its first records).
        ack_policy=AckPolicy.MANUAL,
        parser=tolerant_parser,
        decoder=raw_values,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        title=group.name,
        description=f"Consumer group {group.name} of the {group.service} service; dead letters go to "
        f"{namespace.dead_letter_topic(group)}.",
    )
    async def consume(body: list[bytes]) -> None:
        # The message comes from faststream's context, not as a `message: KafkaMessage` parameter:
        # fast_depends resolves such a context parameter with a sync call in a worker thread, a
        # thread hand-off for every batch.
        message = context.get_local("message")
        try:
            await processor.handle(message.raw_message, message.consumer)
        except Exception:
            await message.nack()  # redelivered from its first records; nothing of it is committed
            raise
        committer.handled(message.raw_message, message.consumer)
        await committer.after_batch()

    return committer
