"""Dead-letter topics: list what is in them, and replay a record to the topic it came from.

Every consumer group dead-letters to ``yiju.dlq.<group>.v1`` (see ``yiju.common.consumer``): the original
key, value and headers, plus ``x-dlq-*`` headers saying why and where from. Replaying a record:

1. records a replay marker in Redis (``dlq:replayed:<dlq topic>:<partition>:<offset>``, SET NX), so the
   same dead letter is never replayed twice, even by two operators at once;
2. deletes the group's de-duplication key for the event id (``dedup:<group>:<event id>``): a record is
   marked as seen when it is dead-lettered, and would otherwise be dropped as a duplicate;
3. publishes the original key, value and headers (minus ``x-dlq-*``, plus ``x-replayed-from``) to the
   original topic and partition. Other groups on that topic have handled the event already and drop it
   by its event id; the group that dead-lettered it handles it again. An intake record also gets a
   replay assertion (``yiju.common.replay_assertion``), signed with the replay tool's own key, so that
   intake checks its user assertion as of the time it was dead-lettered, not now.

Topics are read with a fresh, group-less consumer from the earliest offset until the high watermark
reported in the fetch responses is reached (the local broker's ListOffsets LATEST is wrong, so
``end_offsets`` is never used).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from google.protobuf.message import DecodeError
from redis.asyncio.client import Redis

from yiju.common.envelope import now_iso
from yiju.common.kafka_config import admin_client_kwargs, security_kwargs
from yiju.common.replay_assertion import HEADER as REPLAY_ASSERTION_HEADER
from yiju.common.replay_assertion import ReplaySigner
from yiju.common.settings import Settings
from yiju.common.topics import CONSUMER_GROUPS, INTENT_INTAKE, ConsumerGroup, Namespace
from yiju.gen.events.v1 import order_events_pb2 as ev

DLQ_HEADER_PREFIX = "x-dlq-"
REPLAYED_FROM_HEADER = "x-replayed-from"
MARKER_TTL_S = 90 * 24 * 3600


class UnknownGroup(ValueError):
    """No consumer group has that name."""


def resolve_group(name: str) -> ConsumerGroup:
    """A consumer group by its name ("yiju-payment") or without the "yiju-" prefix ("payment")."""
    for group in CONSUMER_GROUPS:
        if name in (group.name, group.name.removeprefix("yiju-")):
            return group
    known = ", ".join(g.name for g in CONSUMER_GROUPS)
    raise UnknownGroup(f"unknown consumer group {name!r} (known: {known})")


def dedup_key(group: str, event_id: str) -> str:
    """The consumer's "already handled" key (the format of BatchProcessor._dedup_key)."""
    return f"dedup:{group}:{event_id}"


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = field(default=())

    @classmethod
    def from_record(cls, record: ConsumerRecord) -> DeadLetter:
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
            key=record.key,
            value=record.value,
            headers=tuple((k, bytes(v) if v is not None else b"") for k, v in record.headers or ()),
        )

    def header(self, name: str, default: str = "") -> str:
        for key, value in self.headers:
            if key == name:
                return value.decode(errors="replace")
        return default

    @property
    def position(self) -> str:
        """Where the dead letter itself is: "topic/partition/offset"."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def group(self) -> str:
        return self.header("x-dlq-group") or self.topic.rsplit("yiju.dlq.", 1)[-1].removesuffix(".v1")

    @property
    def reason(self) -> str:
        return self.header("x-dlq-reason")

    @property
    def event_id(self) -> str:
        return self.header("ce_id")

    @property
    def event_type(self) -> str:
        return self.header("ce_type")

    @property
    def order_id(self) -> str:
        if self.header("ce_subject"):
            return self.header("ce_subject")
        return self.key.decode(errors="replace") if self.key else ""

    @property
    def original_topic(self) -> str:
        return self.header("x-dlq-original-topic")

    @property
    def original_partition(self) -> int | None:
        raw = self.header("x-dlq-original-partition")
        return int(raw) if raw.isdigit() else None

    @property
    def original_offset(self) -> int | None:
        raw = self.header("x-dlq-original-offset")
        return int(raw) if raw.isdigit() else None

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers the record had before it was dead-lettered (every x-dlq-* header removed)."""
        return [(k, v) for k, v in self.headers if not k.startswith(DLQ_HEADER_PREFIX)]

    def marker_key(self) -> str:
        return f"dlq:replayed:{self.topic}:{self.partition}:{self.offset}"

    def summary(self, replayed: dict[str, Any] | None = None) -> dict[str, Any]:
        """A JSON-friendly description (what `yiju dlq list --json` prints)."""
        return {
            "group": self.group,
            "dlq_position": self.position,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "order_id": self.order_id,
            "reason": self.reason,
            "error_class": self.header("x-dlq-error-class"),
            "error_message": self.header("x-dlq-error-message"),
            "attempts": int(self.header("x-dlq-attempts") or 0),
            "original_topic": self.original_topic,
            "original_partition": self.original_partition,
            "original_offset": self.original_offset,
            "dead_lettered_at": self.header("x-dlq-at"),
            "value_bytes": len(self.value or b""),
            "replayed": replayed,
        }


def consumer_kwargs(settings: Settings) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": f"{settings.kafka_client_prefix}-reader",
        **security_kwargs(settings),
    }


async def partitions_of(settings: Settings, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of those `topics` (names on the cluster) that exist, from a metadata request."""
    admin = AIOKafkaAdminClient(**admin_client_kwargs(settings))
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    found = {
        t["topic"]: sorted(p["partition"] for p in t["partitions"]) for t in described if not t["error_code"]
    }
    return [TopicPartition(topic, p) for topic in topics for p in found.get(topic, ())]


async def read_to_end(
    settings: Settings, topics: Sequence[str], *, timeout_s: float = 60.0, max_bytes: int = 4 * 1024 * 1024
) -> list[ConsumerRecord]:
    """Every record of `topics` (the contract's names; read in the settings' namespace), from the
    earliest offset up to the high watermark of each partition (as reported by the fetch responses),
    in partition order. The records carry the topics' names on the cluster. Raises TimeoutError."""
    topics = Namespace.of(settings).topics(tuple(topics))
    partitions = await partitions_of(settings, topics)
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=max_bytes,
        **consumer_kwargs(settings),
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in partitions}
        deadline = time.monotonic() + timeout_s
        pending = set(partitions)
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"did not reach the end of {sorted({tp.topic for tp in pending})}")
            batch = await consumer.getmany(*pending, timeout_ms=200, max_records=5000)
            for tp, got in batch.items():
                records[tp].extend(got)
            for tp in list(pending):
                high = consumer.highwater(tp)
                if high is not None and await consumer.position(tp) >= high:
                    pending.discard(tp)
                    consumer.pause(tp)
        return [r for tp in partitions for r in records[tp]]
    finally:
        await consumer.stop()


async def read_dead_letters(
    settings: Settings, groups: Iterable[ConsumerGroup] = CONSUMER_GROUPS, *, timeout_s: float = 60.0
) -> list[DeadLetter]:
    """Every dead letter of `groups`, oldest first within each partition."""
    topics = [g.dead_letter_topic for g in groups]
    return [DeadLetter.from_record(r) for r in await read_to_end(settings, topics, timeout_s=timeout_s)]


async def replay_markers(redis: Redis, letters: Sequence[DeadLetter]) -> list[dict[str, Any] | None]:
    """For each dead letter, its replay marker ({"at", "by"}) or None if it was never replayed."""
    if not letters:
        return []
    raw = await redis.mget([d.marker_key() for d in letters])
    return [json.loads(v) if v else None for v in raw]


@dataclass(frozen=True)
class ReplayResult:
    letter: DeadLetter
    outcome: str  # replayed | already_replayed | not_replayable

    def summary(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "dlq_position": self.letter.position,
            "event_id": self.letter.event_id,
            "original_topic": self.letter.original_topic,
        }


class Replayer:
    """Replays dead letters (see the module docstring); use as an async context manager."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        *,
        by: str = "yiju dlq replay",
        replay_signer: ReplaySigner | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.by = by
        self.replay_signer = replay_signer or ReplaySigner.from_settings(settings)
        self._producer = AIOKafkaProducer(acks="all", **consumer_kwargs(settings))

    async def __aenter__(self) -> Replayer:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def replay(self, letter: DeadLetter) -> ReplayResult:
        if not letter.original_topic:
            return ReplayResult(letter, "not_replayable")
        marker = json.dumps({"at": now_iso(), "by": self.by})
        if not await self.redis.set(letter.marker_key(), marker, nx=True, ex=MARKER_TTL_S):
            return ReplayResult(letter, "already_replayed")
        try:
            if letter.event_id:
                await self.redis.delete(dedup_key(letter.group, letter.event_id))
            headers = [
                *[(k, v) for k, v in letter.original_headers() if k != REPLAY_ASSERTION_HEADER],
                (REPLAYED_FROM_HEADER, letter.position.encode()),
                *self.replay_assertion(letter),
            ]
            partitions = await self._producer.partitions_for(letter.original_topic)
            partition = letter.original_partition if letter.original_partition in partitions else None
            await self._producer.send_and_wait(
                letter.original_topic, letter.value, key=letter.key, headers=headers, partition=partition
            )
        except BaseException:
            await self.redis.delete(letter.marker_key())  # not replayed after all: may be tried again
            raise
        return ReplayResult(letter, "replayed")

    def replay_assertion(self, letter: DeadLetter) -> list[tuple[str, bytes]]:
        """The replay assertion header of an intake record: it was dead-lettered at its timestamp."""
        if letter.group != INTENT_INTAKE.name or self.replay_signer is None:
            return []
        try:
            event = ev.IntentSubmitted.FromString(letter.value or b"")
        except DecodeError:
            return []  # malformed: intake dead-letters it again whatever it carries
        token = self.replay_signer.sign(
            event,
            event_id=letter.event_id,
            dead_letter=letter.position,
            checked_at=letter.timestamp_ms / 1000,
        )
        return [(REPLAY_ASSERTION_HEADER, token.encode())]


def select(
    letters: Sequence[DeadLetter], *, event_id: str | None = None, include_malformed: bool = False
) -> list[DeadLetter]:
    """The dead letters to replay: those with `event_id` (or at that "topic/partition/offset"), or all;
    malformed records (which can never succeed) only when asked for or named."""
    if event_id:
        return [d for d in letters if event_id in (d.event_id, d.position)]
    return [d for d in letters if include_malformed or d.reason != "malformed"]
