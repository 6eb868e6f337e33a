"""The one place that knows which Kafka client library sits under faststream (YIJU_KAFKA_CLIENT).

`aiokafka` (the design's default) picks `faststream.kafka.KafkaBroker`; `confluent` picks
`faststream.confluent.KafkaBroker` (confluent-kafka, i.e. librdkafka). Everything else in yiju.common
talks to the broker through faststream's API and to the client only through this module:

- `create_broker`: the broker, with the producer settings mapped to each client's names (idempotence,
  acks, linger, batch size, the partitioner, SASL/SSL: librdkafka's `enable.idempotence`, `acks`,
  `linger.ms`, `batch.size`, `partitioner`, `security.protocol`, `sasl.*`, `ssl.ca.location`);
- `batch_subscriber_options`: the subscriber arguments each client takes for the same batch consumer;
- `records_of`, `highwater`, `printable`: records, lag and header sanitising, whichever client the
  records came from (decided by the record's or consumer's type, so a consumer built on aiokafka
  directly, like the in-flight one, works under either broker);
- `fast_sender`: the connected producer's own send, skipping faststream's per-message publish layers;
- `KAFKA_ERRORS`: what either client raises when the cluster is unreachable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka import TopicPartition as AioTopicPartition
from aiokafka.errors import CommitFailedError as AioCommitFailedError
from aiokafka.errors import IllegalStateError as AioIllegalStateError
from aiokafka.errors import KafkaError as AioKafkaError
from aiokafka.structs import OffsetAndMetadata as AioOffsetAndMetadata
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from yiju.common.kafka_config import ssl_context
from yiju.common.settings import Settings

try:  # confluent-kafka is a declared dependency; the import is guarded only for a partial install
    import confluent_kafka
except ImportError:  # pragma: no cover
    confluent_kafka = None  # type: ignore[assignment]

ClientName = Literal["aiokafka", "confluent"]
AIOKAFKA: ClientName = "aiokafka"
CONFLUENT: ClientName = "confluent"
CLIENTS: tuple[ClientName, ...] = (AIOKAFKA, CONFLUENT)

# Per-partition batch size of the producer: room for a few hundred events per request at load
# (aiokafka's default, 16 KiB, holds ~35 of ours). librdkafka's `batch.size` is the same idea.
MAX_BATCH_BYTES = 256 * 1024
# Java's and aiokafka's default partitioner: the same key lands on the same partition whichever client
# wrote it (librdkafka's own default, consistent_random, would move an order's events when switching).
PARTITIONER = "murmur2_random"

KAFKA_ERRORS: tuple[type[BaseException], ...] = (AioKafkaError,)
if confluent_kafka is not None:
    # BufferError: librdkafka's local queue is full (the cluster is not taking records): retry later.
    KAFKA_ERRORS = (AioKafkaError, confluent_kafka.KafkaException, BufferError)

# A commit for partitions this member no longer owns (rebalanced, or not assigned): never retried, the
# partition's new owner reads on from the last commit that did land.
REBALANCE_ERRORS: tuple[type[BaseException], ...] = (AioCommitFailedError, AioIllegalStateError)

Sender = Callable[[str, bytes, bytes, list[tuple[str, bytes]]], Awaitable[asyncio.Future]]


@dataclass(slots=True, frozen=True)
class ClientRecord:
    """A consumed record with attributes, as aiokafka's ConsumerRecord has them."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


def _security(settings: Settings) -> BaseSecurity | None:
    """faststream's security object for the aiokafka broker."""
    protocol = settings.kafka_security_protocol
    if not protocol.startswith("SASL"):
        if protocol == "SSL":
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


def librdkafka_config(settings: Settings) -> dict[str, Any]:
    """The settings faststream's confluent broker has no argument for, under librdkafka's names."""
    config: dict[str, Any] = {
        "batch.size": MAX_BATCH_BYTES,
        "security.protocol": settings.kafka_security_protocol.lower(),
    }
    if settings.kafka_security_protocol.startswith("SASL"):
        config.update(
            {
                "sasl.mechanism": settings.kafka_sasl_mechanism.upper(),
                "sasl.username": settings.kafka_sasl_username,
                "sasl.password": settings.kafka_sasl_password,
            }
        )
    if "SSL" in settings.kafka_security_protocol and settings.kafka_ssl_cafile:
        config["ssl.ca.location"] = settings.kafka_ssl_cafile
    return config


def create_broker(settings: Settings, service: str) -> Any:
    """faststream's broker for the configured client (`Settings.kafka_client`)."""
    common: dict[str, Any] = {
        "client_id": f"{settings.kafka_client_prefix}-{service}",
        "acks": settings.kafka_acks,
        "linger_ms": settings.kafka_linger_ms,
        # The broker drops a retried batch it already has (no duplicate from a producer retry);
        # consumers de-duplicate by event id on top of that (a handler that runs twice).
        "enable_idempotence": settings.kafka_enable_idempotence,
        "logger": logging.getLogger(f"faststream.{service}"),
        "graceful_timeout": 10.0,
        "description": f"yiju {service} service",
    }
    if settings.kafka_client == CONFLUENT:
        from faststream.confluent import KafkaBroker as ConfluentBroker

        return ConfluentBroker(
            settings.kafka_bootstrap, partitioner=PARTITIONER, config=librdkafka_config(settings), **common
        )
    if settings.kafka_client != AIOKAFKA:
        raise ValueError(f"unknown kafka client {settings.kafka_client!r}; expected one of {CLIENTS}")
    from faststream.kafka import KafkaBroker

    return KafkaBroker(
        settings.kafka_bootstrap, max_batch_size=MAX_BATCH_BYTES, security=_security(settings), **common
    )


def batch_subscriber_options(settings: Settings) -> dict[str, Any]:
    """How long a batch may wait for records, in each client's terms (the rest is common)."""
    if settings.kafka_client == CONFLUENT:
        # confluent's batch poll (Consumer.consume) returns when max_records arrived or this has passed
        return {"polling_interval": settings.kafka_batch_timeout_ms / 1000}
    return {"batch_timeout_ms": settings.kafka_batch_timeout_ms}


def _is_confluent(record: Any) -> bool:
    return confluent_kafka is not None and isinstance(record, confluent_kafka.Message)


def records_of(raw: Sequence[Any]) -> Sequence[Any]:
    """A batch's records with attributes (topic, partition, offset, key, value, headers)."""
    if not raw or not _is_confluent(raw[0]):
        return raw
    return [
        ClientRecord(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.headers() or ()) for m in raw
    ]


def values_of(raw: Sequence[Any]) -> list[bytes]:
    """A batch's record values (b"" for a record without one)."""
    if raw and _is_confluent(raw[0]):
        return [m.value() or b"" for m in raw]
    return [r.value or b"" for r in raw]


def next_offsets(raw: Sequence[Any]) -> dict[tuple[str, int], int]:
    """Per (topic, partition): the offset after the batch's last record (what a commit of it names)."""
    offsets: dict[tuple[str, int], int] = {}
    confluent = bool(raw) and _is_confluent(raw[0])  # read through methods, not copied into records
    for r in raw:
        key, offset = (
            ((r.topic(), r.partition()), r.offset()) if confluent else ((r.topic, r.partition), r.offset)
        )
        if offset + 1 > offsets.get(key, -1):
            offsets[key] = offset + 1
    return offsets


async def commit_offsets(consumer: Any, offsets: dict[tuple[str, int], int]) -> None:
    """Commits exactly these offsets for the consumer's group (never the consumer's position, which a
    fetch may have moved past records not handled yet)."""
    native = getattr(consumer, "consumer", None)  # faststream's confluent wrapper
    if confluent_kafka is not None and isinstance(native, confluent_kafka.Consumer):
        # Asynchronous: librdkafka sends it from its own thread and the call returns at once; a commit
        # that fails is covered by the next one (or by the redelivery the handlers absorb).
        native.commit(
            offsets=[confluent_kafka.TopicPartition(t, p, off) for (t, p), off in offsets.items()],
            asynchronous=True,
        )
        return
    await consumer.commit(
        {AioTopicPartition(t, p): AioOffsetAndMetadata(off, "") for (t, p), off in offsets.items()}
    )


def highwater(consumer: Any, topic: str, partition: int) -> int | None:
    """The partition's last known end offset from the consumer's fetches (no request), if it has one."""
    if hasattr(consumer, "highwater"):  # aiokafka
        return consumer.highwater(AioTopicPartition(topic, partition))
    native = getattr(consumer, "consumer", None)  # faststream's confluent wrapper
    if native is None or confluent_kafka is None:
        return None
    try:
        _, high = native.get_watermark_offsets(confluent_kafka.TopicPartition(topic, partition), cached=True)
    except (confluent_kafka.KafkaException, TypeError, ValueError):
        return None
    return high if high >= 0 else None


def _utf8(value: bytes | None) -> bool:
    try:
        (value or b"").decode()
    except UnicodeDecodeError:
        return False
    return value is not None


class _PrintableMessage:
    """A confluent record seen through header values that decode as UTF-8 (for faststream's parser)."""

    def __init__(self, message: Any) -> None:
        self._message = message
        self._headers = [(k, v if _utf8(v) else b"") for k, v in message.headers() or ()]

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def __getattr__(self, name: str) -> Any:
        return getattr(self._message, name)


def printable(record: Any) -> Any:
    """The record, or a copy whose header values all decode as UTF-8 (faststream decodes every one)."""
    if _is_confluent(record):
        if all(_utf8(v) for _, v in record.headers() or ()):
            return record
        return _PrintableMessage(record)
    if all(_utf8(v) for _, v in record.headers):
        return record
    return dataclasses.replace(record, headers=tuple((k, v if _utf8(v) else b"") for k, v in record.headers))


def producer_state(broker: Any) -> Any:
    """faststream's holder of the connected producer (a new one after each connect), or None."""
    return getattr(getattr(getattr(broker, "config", None), "producer", None), "_producer", None)


def fast_sender(broker: Any) -> Sender | None:
    """The connected producer's own send (what faststream's `publish` ends in), or None before the
    broker is connected (or for a test broker): the caller then uses `broker.publish`."""
    state = producer_state(broker)
    if not state:
        return None
    producer = getattr(state, "producer", None)
    if isinstance(producer, AIOKafkaProducer):

        async def send_aiokafka(
            topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
        ) -> asyncio.Future:
            return await producer.send(topic, value=value, key=key, headers=headers)

        return send_aiokafka
    native = getattr(producer, "producer", None)
    if confluent_kafka is not None and isinstance(native, confluent_kafka.Producer):
        return _confluent_sender(native)
    return None


def _confluent_sender(producer: Any) -> Sender:
    """librdkafka's produce with a future for the delivery report (faststream's poll loop serves the
    reports on its thread; the future is resolved on the event loop)."""

    async def send_confluent(
        topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                loop.call_soon_threadsafe(_fail, future, confluent_kafka.KafkaException(err))
            else:
                loop.call_soon_threadsafe(_succeed, future, msg)

        producer.produce(topic, value=value, key=key, headers=headers, on_delivery=delivered)
        return future

    return send_confluent


def _succeed(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
