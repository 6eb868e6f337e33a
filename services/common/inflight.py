"""Consuming long-running records: an in-flight window with ordered commits.

The batch consumer (yiju.common.consumer.subscribe) commits a batch when every record of it is done,
and fetches the next batch only then: right for handlers that take milliseconds, wrong for one that
waits seconds or minutes on a model, where one slow record would hold its whole partition. Here each
record is its own task, up to `max_in_flight` at a time:

- **Commit after effect, in order.** A partition's committed offset is its first record that is not
  done yet: a record finished out of order is committed once everything before it is, so a crash
  redelivers exactly the records whose effect may be missing (and maybe some that are done: handlers
  are idempotent, as everywhere).
- **Backpressure, with hysteresis.** At `max_in_flight` records the consumer pauses its partitions and
  resumes only once `low_water_room` slots are free (an eighth of the window by default), then fetches
  that whole room at once: memory is bounded by the window, whatever the backlog; the backlog stays in
  Kafka, as lag an autoscaler can see. Resuming at every finished record cost a resume, a fetch, a
  pause and two commits per record: the broker's CPU, not the model, became the bound of a backlog.
  While paused it still polls now and then (a poll of paused partitions asks the broker nothing), so
  aiokafka never counts it idle past `max_poll_interval_ms` and it stays in its group.
- **Throttled commits.** The done prefix is committed at most every `commit_interval_ms` (and always on
  stop and on revocation), not after every fetch and every finished record: a crash may redeliver up
  to one interval's worth of records that are done, which idempotent handlers absorb.
- **Per-order order.** Records with the same key run one after another; different keys in parallel.
- **The same record semantics** as every consumer: each record goes through BatchProcessor.handle
  (envelope check, de-duplication by event id, tracing, retries, dead letters, events published and
  acknowledged before the record counts as done). An infrastructure error retries the record (its
  offset stays uncommitted meanwhile) instead of rewinding the partition.
- **Rebalances.** On revocation the done prefix is committed and the partition's window dropped; a
  record still running finishes its effect, and the new owner's redelivery is a duplicate its
  handler must absorb (the gateway's per-order claim does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from yiju.common.consumer import BatchProcessor
from yiju.common.kafka_config import security_kwargs
from yiju.common.settings import Settings
from yiju.common.topics import Namespace

log = logging.getLogger(__name__)


class OffsetWindow:
    """Per partition: the offsets handed out and which are done; the commit point is the first not done."""

    def __init__(self) -> None:
        self._open: dict[TopicPartition, deque[int]] = {}
        self._done: dict[TopicPartition, set[int]] = {}
        self._committable: dict[TopicPartition, int] = {}

    def start(self, tp: TopicPartition, offset: int) -> None:
        self._open.setdefault(tp, deque()).append(offset)
        self._done.setdefault(tp, set())

    def finish(self, tp: TopicPartition, offset: int) -> None:
        """Marks a record done; ignored for a partition that was revoked meanwhile."""
        done = self._done.get(tp)
        if done is None:
            return
        done.add(offset)
        pending = self._open[tp]
        while pending and pending[0] in done:
            first = pending.popleft()
            done.discard(first)
            self._committable[tp] = first + 1

    def in_flight(self) -> int:
        return sum(len(q) for q in self._open.values())

    def has_committable(self) -> bool:
        return bool(self._committable)

    def take_committable(self, only: set[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Offsets to commit (next offset to read per partition) that have moved since the last take."""
        ready = {tp: off for tp, off in self._committable.items() if only is None or tp in only}
        for tp in ready:
            del self._committable[tp]
        return ready

    def restore(self, offsets: dict[TopicPartition, int]) -> None:
        """Puts back offsets whose commit failed (kept for partitions still held, unless moved on)."""
        for tp, off in offsets.items():
            if tp in self._open and self._committable.get(tp, -1) < off:
                self._committable[tp] = off

    def forget(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self._open.pop(tp, None)
            self._done.pop(tp, None)
            self._committable.pop(tp, None)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: InFlightConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.commit(set(revoked))
        self.owner.window.forget(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # aiokafka's new assignment starts unpaused: a full window keeps it paused (the loop resumes
        # every assigned partition once there is room again).
        self.owner.pause_assigned(set(assigned))


# While paused, a poll this often (well under aiokafka's default max_poll_interval_ms, 300 s) keeps
# the consumer in its group; more often would only drop aiokafka's prefetched records for nothing.
PAUSED_POLL_S = 30.0


class InFlightConsumer:
    """Consumes the processor's group with up to `max_in_flight` records being handled at once."""

    def __init__(
        self,
        processor: BatchProcessor,
        settings: Settings,
        max_in_flight: int,
        *,
        consumer_factory: Callable[..., Any] = AIOKafkaConsumer,
        poll_timeout_ms: int = 200,
        low_water_room: int | None = None,
        commit_interval_ms: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`low_water_room`: free slots a full window waits for before it fetches again (default an
        eighth of the window, at least 1); `commit_interval_ms`: the least time between two commits of
        the done prefix (0: after every loop turn); `clock`: monotonic seconds (tests pass their own)."""
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if low_water_room is None:
            low_water_room = max(1, max_in_flight // 8)
        if not 1 <= low_water_room <= max_in_flight:
            raise ValueError("low_water_room must be between 1 and max_in_flight")
        if commit_interval_ms < 0:
            raise ValueError("commit_interval_ms must not be negative")
        self.processor = processor
        self.settings = settings
        self.max_in_flight = max_in_flight
        self.low_water_room = low_water_room
        self.window = OffsetWindow()
        self.namespace = Namespace.of(settings)
        self._factory = consumer_factory
        self._poll_timeout_ms = poll_timeout_ms
        self._commit_interval_s = commit_interval_ms / 1000
        self._clock = clock
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_by_key: dict[bytes | None, asyncio.Task[None]] = {}
        self._paused = False
        self._slot_free = asyncio.Event()  # set when a paused window may fetch again
        self._last_commit = 0.0
        self._last_poll = 0.0
        self.high_water = 0  # the most records ever in flight at once (tests and the benchmark read it)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def room(self) -> int:
        return self.max_in_flight - len(self._tasks)

    async def start(self) -> None:
        group = self.processor.group
        self._consumer = self._factory(
            bootstrap_servers=self.settings.kafka_bootstrap,
            client_id=f"{self.settings.kafka_client_prefix}-{group.service}",
            group_id=self.namespace.group(group.name),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.max_in_flight,
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_heartbeat_interval_ms,
            **security_kwargs(self.settings),
        )
        self._consumer.subscribe(list(self.namespace.topics(group.topics)), listener=_Rebalance(self))
        await self._consumer.start()
        self._last_commit = self._last_poll = self._clock()
        self._task = asyncio.create_task(self._run(), name=f"inflight-{group.name}")

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stops fetching, gives running records `grace_s` to finish, commits what is done, leaves."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._tasks:
            _, running = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in running:  # redelivered to the next owner, whose handler absorbs a repeat
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        if self._consumer is not None:
            await self.commit()
            with contextlib.suppress(Exception):
                await self._consumer.stop()  # leaves the group: its partitions move at once

    async def _run(self) -> None:
        consumer = self._consumer
        while True:
            await self._commit_if_due()
            room = self.room
            if room <= 0 or (self._paused and room < self.low_water_room):
                self._pause(consumer)
                await self._wait_for_room(consumer)
                continue
            self._resume(consumer)
            await self._poll(consumer, self._wait_ms(), room)

    async def _poll(self, consumer: Any, timeout_ms: int, max_records: int) -> None:
        try:
            batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            log.warning("fetch failed", extra={"group": self.processor.group.name, "error": repr(exc)})
            await asyncio.sleep(self.settings.handler_backoff_ms / 1000)
            return
        finally:
            self._last_poll = self._clock()
        for tp, records in batch.items():
            for record in records:
                self._begin(tp, record)

    async def _wait_for_room(self, consumer: Any) -> None:
        """Paused: sleeps until `low_water_room` slots are free, a commit is due, or a poll is due."""
        self._slot_free.clear()  # no await since `room` was read: a finish in between is not lost
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._slot_free.wait(), self._wait_ms() / 1000)
        if self.room < self.low_water_room and self._clock() - self._last_poll >= PAUSED_POLL_S:
            # Every partition is paused (on_partitions_assigned pauses new ones): nothing is fetched;
            # whatever might come back anyway is begun, not dropped.
            await self._poll(consumer, 0, max(1, self.room))

    def _wait_ms(self) -> int:
        """How long a wait may last: the poll timeout, or less when a pending commit falls due sooner."""
        wait_s = self._poll_timeout_ms / 1000
        if self.window.has_committable():
            wait_s = min(wait_s, self._last_commit + self._commit_interval_s - self._clock())
        return max(1, int(wait_s * 1000))

    async def _commit_if_due(self) -> None:
        if not self.window.has_committable():
            return
        now = self._clock()
        if now - self._last_commit >= self._commit_interval_s:
            self._last_commit = now
            await self.commit()

    def pause_assigned(self, assigned: set[TopicPartition]) -> None:
        """Keeps newly assigned partitions paused while the window waits for room."""
        if self._paused and assigned and self._consumer is not None:
            self._consumer.pause(*assigned)

    def _pause(self, consumer: Any) -> None:
        if not self._paused:
            consumer.pause(*consumer.assignment())
            self._paused = True

    def _resume(self, consumer: Any) -> None:
        if self._paused:
            consumer.resume(*consumer.assignment())
            self._paused = False

    def _begin(self, tp: TopicPartition, record: Any) -> None:
        self.window.start(tp, record.offset)
        before = self._last_by_key.get(record.key)
        task = asyncio.create_task(self._handle(tp, record, before))
        self._tasks.add(task)
        self._last_by_key[record.key] = task
        self.high_water = max(self.high_water, len(self._tasks))
        task.add_done_callback(lambda t, key=record.key: self._done(t, key))

    def _done(self, task: asyncio.Task[None], key: bytes | None) -> None:
        self._tasks.discard(task)
        if self._last_by_key.get(key) is task:
            del self._last_by_key[key]
        if self.room >= self.low_water_room:  # one wake-up per refill, not one per finished record
            self._slot_free.set()

    async def _handle(self, tp: TopicPartition, record: Any, before: asyncio.Task[None] | None) -> None:
        if before is not None:  # the same order's earlier record goes first
            await asyncio.gather(before, return_exceptions=True)
        while True:
            try:
                await self.processor.handle([record], self._consumer)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # infrastructure (the processor backed off already): again
                log.warning(
                    "record retried after infrastructure error",
                    extra={"group": self.processor.group.name, "offset": record.offset, "error": repr(exc)},
                )
        self.window.finish(tp, record.offset)

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        """Commits the done prefix now (of `only`'s partitions when given); the loop calls it throttled,
        stop and revocation directly."""
        offsets = self.window.take_committable(only)
        if not offsets or self._consumer is None:
            return
        try:
            await self._consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in offsets.items()})
        except KafkaError as exc:  # rebalanced (the new owner redelivers from its commit point), or a blip
            self.window.restore(offsets)
            log.warning("commit failed", extra={"group": self.processor.group.name, "error": repr(exc)})
        except asyncio.CancelledError:  # stop() cancelled the loop mid-commit: its final commit retries
            self.window.restore(offsets)
            raise
