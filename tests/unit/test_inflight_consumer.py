"""The in-flight window (yiju.common.inflight): a slow record holds neither its partition nor its
neighbours, offsets are committed only over a done prefix (at most once per commit interval), and the
window pauses the consumer when full until a low-water amount of room is free."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from yiju.common.inflight import PAUSED_POLL_S, InFlightConsumer, OffsetWindow
from yiju.common.settings import Settings
from yiju.common.topics import MODEL_GATEWAY

TP = TopicPartition("yiju.parse.requested.v1", 0)


@dataclass
class Rec:
    offset: int
    key: bytes
    topic: str = TP.topic
    partition: int = 0
    value: bytes = b""
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass
class FakeConsumer:
    """What InFlightConsumer uses of AIOKafkaConsumer: records handed out once, commits, pauses and
    fetches kept. Like aiokafka, a poll of paused partitions returns nothing (and must not wait)."""

    records: list[Rec]
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    paused: bool = False
    pauses: int = 0
    resumes: int = 0
    fetches: list[int] = field(default_factory=list)  # max_records of each poll that returned records
    paused_polls: int = 0
    fetched: asyncio.Event = field(default_factory=asyncio.Event)

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def pause(self, *tps: TopicPartition) -> None:
        self.paused = True
        self.pauses += 1

    def resume(self, *tps: TopicPartition) -> None:
        self.paused = False
        self.resumes += 1

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Rec]]:
        if self.paused:
            assert timeout_ms == 0, "waited on a poll while paused"
            self.paused_polls += 1
            return {}
        if not self.records:
            self.fetched.set()
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        batch, self.records = self.records[:max_records], self.records[max_records:]
        self.fetches.append(max_records)
        return {TP: batch}

    async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def committed(self) -> int:
        return max((c[TP] for c in self.commits if TP in c), default=0)


class GatedProcessor:
    """Each record's handling waits for its gate; records seen in the order they started."""

    group = MODEL_GATEWAY

    def __init__(self) -> None:
        self.gates: dict[int, asyncio.Event] = {}
        self.started: list[int] = []
        self.finished: list[int] = []

    def gate(self, offset: int) -> asyncio.Event:
        return self.gates.setdefault(offset, asyncio.Event())

    async def handle(self, records: Sequence[Rec], consumer: Any = None) -> None:
        [record] = records
        self.started.append(record.offset)
        await self.gate(record.offset).wait()
        self.finished.append(record.offset)


async def until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - a condition on the fakes, checked each loop turn
            await asyncio.sleep(0.005)


class FakeClock:
    """Monotonic seconds that move only when a test says; its reads count the consumer loop's turns."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now

    async def turns(self, n: int = 5) -> None:
        """Until the consumer's loop has read the clock `n` more times (it reads it every turn)."""
        target = self.reads + n
        await until(lambda: self.reads >= target)


def consumer_for(
    processor: GatedProcessor,
    fake: FakeConsumer,
    window: int,
    *,
    clock: FakeClock | None = None,
    commit_interval_ms: int = 0,
    low_water_room: int | None = None,
) -> InFlightConsumer:
    """A consumer over the fakes; with no clock given, real time, and commits at every loop turn."""
    return InFlightConsumer(
        processor,  # type: ignore[arg-type]
        Settings(),
        window,
        consumer_factory=lambda **_: fake,
        poll_timeout_ms=20,
        commit_interval_ms=commit_interval_ms,
        low_water_room=low_water_room,
        **({"clock": clock} if clock is not None else {}),
    )


@dataclass
class Clocked:
    processor: GatedProcessor
    clock: FakeClock
    fake: FakeConsumer
    consumer: InFlightConsumer


@contextlib.asynccontextmanager
async def clocked(records: int, window: int, **kwargs: Any) -> AsyncIterator[Clocked]:
    """A started consumer over `records` records of distinct orders, on a fake clock; stopped at the end."""
    processor, clock = GatedProcessor(), FakeClock()
    fake = FakeConsumer([Rec(i, f"order-{i}".encode()) for i in range(records)])
    consumer = consumer_for(processor, fake, window, clock=clock, **kwargs)
    await consumer.start()
    try:
        yield Clocked(processor, clock, fake, consumer)
    finally:
        await consumer.stop(grace_s=0.05)


def test_the_commit_point_is_the_first_record_not_done() -> None:
    window = OffsetWindow()
    for offset in (5, 6, 7):
        window.start(TP, offset)
    window.finish(TP, 7)
    assert window.take_committable() == {}
    window.finish(TP, 5)
    assert window.take_committable() == {TP: 6}
    window.finish(TP, 6)
    assert window.take_committable() == {TP: 8}
    assert window.in_flight() == 0


def test_a_revoked_partition_forgets_its_window_and_a_late_finish_commits_nothing() -> None:
    window = OffsetWindow()
    window.start(TP, 1)
    window.forget({TP})
    window.finish(TP, 1)
    assert window.take_committable() == {}


async def test_a_slow_record_does_not_delay_the_records_behind_it_on_its_partition() -> None:
    processor = GatedProcessor()
    fake = FakeConsumer([Rec(0, b"slow-order"), Rec(1, b"fast-order-1"), Rec(2, b"fast-order-2")])
    consumer = consumer_for(processor, fake, window=8)
    await consumer.start()
    try:
        processor.gate(1).set()
        processor.gate(2).set()
        await until(lambda: processor.finished == [1, 2])  # done while offset 0 still runs
        assert 0 not in processor.finished
        assert fake.committed() == 0, "nothing may be committed past the slow record"
        processor.gate(0).set()
        await until(lambda: fake.committed() == 3)
    finally:
        await consumer.stop(grace_s=1)


async def test_records_of_one_order_run_one_after_another() -> None:
    processor = GatedProcessor()
    fake = FakeConsumer([Rec(0, b"order-a"), Rec(1, b"order-a")])
    consumer = consumer_for(processor, fake, window=8)
    await consumer.start()
    try:
        await until(lambda: processor.started == [0])
        await fake.fetched.wait()
        assert processor.started == [0], "the second record of the order started before the first ended"
        processor.gate(0).set()
        processor.gate(1).set()
        await until(lambda: processor.finished == [0, 1])
    finally:
        await consumer.stop(grace_s=1)


async def test_a_full_window_pauses_the_consumer_and_resumes_as_records_finish() -> None:
    processor = GatedProcessor()
    fake = FakeConsumer([Rec(i, f"order-{i}".encode()) for i in range(5)])
    consumer = consumer_for(processor, fake, window=2)
    await consumer.start()
    try:
        await until(lambda: fake.paused)
        assert processor.started == [0, 1] and consumer.in_flight == 2
        processor.gate(0).set()
        await until(lambda: processor.started == [0, 1, 2])
        assert consumer.high_water == 2
        for offset in (1, 2, 3, 4):
            processor.gate(offset).set()
        await until(lambda: fake.committed() == 5)
        assert consumer.high_water == 2, "more records in flight than the window"
    finally:
        await consumer.stop(grace_s=1)


async def test_an_infrastructure_error_retries_the_record_and_holds_its_offset() -> None:
    class FlakyProcessor(GatedProcessor):
        failures = 2

        async def handle(self, records: Sequence[Rec], consumer: Any = None) -> None:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("redis away")
            await super().handle(records, consumer)

    processor = FlakyProcessor()
    processor.gate(0).set()
    fake = FakeConsumer([Rec(0, b"order")])
    consumer = consumer_for(processor, fake, window=4)
    await consumer.start()
    try:
        await until(lambda: fake.committed() == 1)
        assert processor.finished == [0] and processor.failures == 0
    finally:
        await consumer.stop(grace_s=1)


def test_the_default_low_water_room_is_an_eighth_of_the_window() -> None:
    def low_water(window: int) -> int:
        return InFlightConsumer(GatedProcessor(), Settings(), window).low_water_room  # type: ignore[arg-type]

    assert [low_water(n) for n in (1, 7, 8, 256)] == [1, 1, 1, 32]


async def test_a_full_window_stays_paused_until_the_low_water_room_is_free_then_fetches_it_at_once() -> None:
    async with clocked(20, window=8, low_water_room=4) as c:
        await until(lambda: c.fake.paused)
        assert c.processor.started == list(range(8)) and c.fake.fetches == [8]
        for offset in (0, 1, 2):  # 3 slots free: under the low water, the window stays shut
            c.processor.gate(offset).set()
        await until(lambda: c.processor.finished == [0, 1, 2])
        await c.clock.turns()
        assert c.fake.paused and c.fake.resumes == 0 and c.processor.started == list(range(8))
        c.processor.gate(3).set()  # 4 free: one resume, one fetch of the whole room, paused again
        await until(lambda: c.processor.started == list(range(12)))
        await until(lambda: c.fake.paused)
        assert c.fake.fetches == [8, 4] and c.fake.resumes == 1 and c.fake.pauses == 2
        assert c.consumer.high_water == 8


async def test_a_paused_window_still_polls_now_and_then_to_stay_in_its_group() -> None:
    async with clocked(4, window=2) as c:
        await until(lambda: c.fake.paused)
        await c.clock.turns()
        assert c.fake.paused_polls == 0, "polled a paused window before the poll interval"
        c.clock.now += PAUSED_POLL_S
        await until(lambda: c.fake.paused_polls == 1)
        assert c.fake.paused and c.processor.started == [0, 1]
        await c.clock.turns()
        assert c.fake.paused_polls == 1, "polled again without the interval passing"


async def test_records_finishing_within_one_commit_interval_make_one_commit_of_the_done_prefix() -> None:
    async with clocked(5, window=8, commit_interval_ms=200) as c:
        await until(lambda: c.processor.started == list(range(5)))
        for offset in range(5):
            c.processor.gate(offset).set()
            await until(lambda offset=offset: offset in c.processor.finished)
            await c.clock.turns()
        assert c.fake.commits == [], "committed before the interval passed"
        c.clock.now += 0.2
        await until(lambda: c.fake.commits != [])
        await c.clock.turns()
        assert c.fake.commits == [{TP: 5}]
    assert c.fake.commits == [{TP: 5}], "stop committed again with nothing new done"


async def test_stop_commits_the_done_prefix_whatever_the_interval() -> None:
    async with clocked(4, window=8, commit_interval_ms=60_000) as c:
        for offset in (0, 1, 3):
            c.processor.gate(offset).set()
        await until(lambda: sorted(c.processor.finished) == [0, 1, 3])
        await c.clock.turns()
        assert c.fake.commits == []
    # the stop: offset 2 still ran, cancelled and left for the next owner
    assert c.fake.commits == [{TP: 2}]


async def test_a_record_finished_out_of_order_is_not_committed_before_its_predecessors() -> None:
    async with clocked(3, window=8, commit_interval_ms=200) as c:
        await until(lambda: c.processor.started == [0, 1, 2])
        c.processor.gate(1).set()
        c.processor.gate(2).set()
        await until(lambda: c.processor.finished == [1, 2])
        c.clock.now += 1.0  # commits are due: there is nothing to commit yet
        await c.clock.turns()
        assert c.fake.commits == []
        c.processor.gate(0).set()
        await until(lambda: c.fake.commits != [])
        assert c.fake.commits == [{TP: 3}]


async def test_a_commit_cut_short_by_stop_is_made_by_stops_own_commit() -> None:
    @dataclass
    class StuckCommitConsumer(FakeConsumer):
        """The first commit never returns (a broker that stopped answering): stop cancels it."""

        attempts: int = 0

        async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
            self.attempts += 1
            if self.attempts == 1:
                await asyncio.Event().wait()
            await super().commit(offsets)

    processor = GatedProcessor()
    processor.gate(0).set()
    fake = StuckCommitConsumer([Rec(0, b"order")])
    consumer = consumer_for(processor, fake, window=4)
    await consumer.start()
    await until(lambda: fake.attempts == 1)
    await consumer.stop(grace_s=0.05)
    assert fake.commits == [{TP: 1}]
