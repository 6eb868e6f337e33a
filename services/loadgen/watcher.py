"""Which sentences became orders, and when each order settled, read from the platform's Kafka topics.

Why the topics and not the API: polling GET /v1/orders/{id} for thousands of orders a second would
load the very edge being measured (and rate-limit the users), while one consumer reading two small
topics costs the platform nothing it would not do anyway. The watcher reads

- yiju.intent.accepted.v1: idempotency key -> order id, for every entry path (the Kafka intake has no
  reply); a key that yields two different order ids is a duplicated order;
- the terminal topics: yiju.payment.captured.v1 (COMPLETED) and those that end an order otherwise
  (rejected, needs clarification, awaiting confirmation, declined, fulfilment failed, cancelled);
  a second terminal event for an order with another event id is a duplicate, the same id again a
  harmless redelivery;
- the intake's dead-letter topic (a refused IntentSubmitted, keyed by its idempotency key).

It consumes without a consumer group (all partitions assigned), so there is no group join to wait for
and nothing is left behind on the broker. On Apache Kafka it starts at the end of each topic: `start()`
resolves every partition's end offset and seeks there before it returns, and the runner sends nothing
before that, so no record of the run can fall before the watcher's positions (and a long-lived
platform's history is never read). On tansu, whose LATEST offsets are wrong, it reads every topic from
the beginning instead (`from_end=False`; `reads_from_end(broker_kind)` picks).
Completion time is the terminal record's own timestamp (CreateTime, stamped by the service that
published it), so the watcher's own lag never adds to a measured latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from yiju.common import topics as t
from yiju.common.topics import Namespace
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.loadgen.stats import Window

log = logging.getLogger(__name__)

COMPLETED = "COMPLETED"
TERMINAL_TOPICS: dict[str, str] = {
    t.PAYMENT_CAPTURED: COMPLETED,
    t.PLAN_REJECTED: "REJECTED",
    t.PLAN_NEEDS_CLARIFICATION: "NEEDS_CLARIFICATION",
    t.PLAN_AWAITING_CONFIRMATION: "AWAITING_CONFIRMATION",
    t.PAYMENT_DECLINED: "PAYMENT_DECLINED",
    t.FULFILMENT_FAILED: "FAILED",
    t.ORDER_CANCELLED: "CANCELLED",
}
INTAKE_DLQ = t.INTENT_INTAKE.dead_letter_topic


@dataclass(slots=True)
class Track:
    """One sentence of the load test, from its intended send time to its order's terminal event."""

    key: str
    user_id: str
    phase: int
    intended_ms: float  # wall clock, when the schedule wanted it sent
    sent_ms: float = 0.0
    answered_ms: float = 0.0  # the edge's reply (HTTP/gRPC) or the producer's hand-over (Kafka)
    order_id: str = ""
    accepted_ms: float = 0.0
    done_ms: float = 0.0
    status: str = ""
    event_id: str = ""
    amount_fen: int = 0
    error: str = ""
    duplicates: int = 0  # a second order for this key, or a second terminal event for its order

    @property
    def settled(self) -> bool:
        return bool(self.status or self.error)


@dataclass
class Counters:
    duplicate_orders: int = 0  # one idempotency key, two order ids
    duplicate_terminals: int = 0  # a second terminal event (another event id) for one order
    redelivered: int = 0  # the same terminal event seen again (at-least-once; harmless)
    records: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(text)


class Tracker:
    """Every sentence sent, by idempotency key and by order id, and what became of it."""

    def __init__(self, key_prefix: str, start_ms: float) -> None:
        self.key_prefix = key_prefix
        self.start_ms = start_ms
        self.by_key: dict[str, Track] = {}
        self.by_order: dict[str, Track] = {}
        self.early: dict[str, tuple[str, float, str, int]] = {}  # terminal seen before the order id
        self.counters = Counters()
        self.recent = Window(5.0)  # (now, end-to-end latency ms) of recent completions
        self.completed_by_phase: dict[int, int] = {}
        self.unsettled = 0

    def add(self, track: Track) -> None:
        self.by_key[track.key] = track
        self.unsettled += 1

    def bind(self, track: Track, order_id: str) -> None:
        if track.order_id and track.order_id != order_id:
            self.counters.duplicate_orders += 1
            track.duplicates += 1
            self.counters.note(f"key {track.key}: orders {track.order_id} and {order_id}")
            return
        track.order_id = order_id
        self.by_order[order_id] = track
        early = self.early.pop(order_id, None)
        if early is not None:
            self.settle(track, *early)

    def settle(self, track: Track, status: str, at_ms: float, event_id: str, amount_fen: int = 0) -> None:
        if track.status:
            if event_id and event_id == track.event_id:
                self.counters.redelivered += 1
            else:
                self.counters.duplicate_terminals += 1
                track.duplicates += 1
                self.counters.note(f"order {track.order_id}: {track.status} then {status}")
            return
        was_settled = track.settled
        track.status, track.done_ms, track.event_id, track.amount_fen = status, at_ms, event_id, amount_fen
        if not was_settled:
            self.unsettled -= 1
        if status == COMPLETED:
            self.completed_by_phase[track.phase] = self.completed_by_phase.get(track.phase, 0) + 1
            self.recent.add(time.monotonic(), at_ms - track.intended_ms)

    def fail(self, track: Track, error: str) -> None:
        if not track.settled:
            self.unsettled -= 1
        track.error = track.error or error

    # ----- records from the watcher

    def on_accepted(self, value: bytes | None, timestamp_ms: float) -> None:
        if not value:
            return
        event = ev.IntentAccepted.FromString(value)
        if not event.idempotency_key.startswith(self.key_prefix):
            return
        track = self.by_key.get(event.idempotency_key)
        if track is None:
            return
        track.accepted_ms = float(event.accepted_at_ms or timestamp_ms)
        self.bind(track, event.order_id)

    def on_terminal(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Any, timestamp_ms: float
    ) -> None:
        if not key:
            return
        order_id = key.decode()
        event_id = next((v.decode() for k, v in headers or () if k == "ce_id"), "")
        status = TERMINAL_TOPICS[topic]
        amount = ev.PaymentCaptured.FromString(value).amount_fen if status == COMPLETED and value else 0
        track = self.by_order.get(order_id)
        if track is None:
            if timestamp_ms >= self.start_ms - 1000:
                self.early[order_id] = (status, timestamp_ms, event_id, amount)
            return
        self.settle(track, status, timestamp_ms, event_id, amount)

    def on_dead_letter(self, key: bytes | None, headers: Any) -> None:
        if not key:
            return
        track = self.by_key.get(key.decode(errors="replace"))
        if track is None:
            return
        reason = next((v.decode() for k, v in headers or () if k == "x-dlq-error-message"), "dead-lettered")
        self.fail(track, f"intake_dead_letter: {reason[:120]}")


def reads_from_end(broker_kind: str) -> bool:
    """Whether a watcher may start at the end of each topic on this broker: yes, except on tansu (its
    LATEST offsets are wrong). `broker_kind` as LocalPlatform names it: kafka, tansu or external."""
    return broker_kind != "tansu"


class CompletionWatcher:
    """Feeds a Tracker from the platform's topics until stopped.

    `from_end`: start at the end of every topic (positions resolved in `start()`), instead of reading
    each topic from the beginning."""

    def __init__(
        self,
        tracker: Tracker,
        consumer_kwargs: dict[str, Any],
        namespace: Namespace | None = None,
        *,
        from_end: bool = False,
    ) -> None:
        self.tracker = tracker
        self.namespace = namespace or Namespace()
        self.consumer_kwargs = consumer_kwargs
        self.from_end = from_end
        self.start_offsets: dict[Any, int] = {}  # TopicPartition -> first offset read (from_end only)
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self.caught_up = asyncio.Event()

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        self._consumer = AIOKafkaConsumer(
            *self.namespace.topics((t.INTENT_ACCEPTED, INTAKE_DLQ, *TERMINAL_TOPICS)),
            **self.consumer_kwargs,
            group_id=None,
            enable_auto_commit=False,
            # Also where a partition starts should aiokafka ever reassign it: re-reading is harmless
            # (redeliveries are counted as such), skipping would lose records.
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
        )
        await self._consumer.start()
        try:
            if self.from_end:
                await self._seek_to_end()
        except BaseException:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            raise
        self._task = asyncio.create_task(self._run(), name="loadgen-watcher")

    async def _seek_to_end(self) -> None:
        """Positions every assigned partition at its current end offset (resolved now, not lazily at
        the first fetch), so every record published after `start()` returns is read."""
        consumer = self._consumer
        partitions = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        if not partitions:
            raise RuntimeError("the completion watcher was assigned no partitions")
        ends: dict[Any, int] = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, ends[tp])
        self.start_offsets = {tp: await consumer.position(tp) for tp in partitions}

    async def _run(self) -> None:
        tracker = self.tracker
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=100, max_records=20_000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broker hiccup: keep watching
                log.warning("watcher fetch failed: %r", exc)
                await asyncio.sleep(0.5)
                continue
            if not batches:
                self.caught_up.set()
            for tp, records in batches.items():
                topic = self.namespace.logical(tp.topic)
                tracker.counters.records += len(records)
                for r in records:
                    if topic == t.INTENT_ACCEPTED:
                        tracker.on_accepted(r.value, r.timestamp)
                    elif topic == INTAKE_DLQ:
                        tracker.on_dead_letter(r.key, r.headers)
                    else:
                        tracker.on_terminal(topic, r.key, r.value, r.headers, r.timestamp)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
