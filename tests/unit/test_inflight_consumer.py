"""The in-flight window (yiju.common.inflight): a slow record holds neither its partition nor its
neighbours, offsets are committed only over a done prefix, and the window pauses the consumer when full."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from yiju.common.inflight import InFlightConsumer, OffsetWindow
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
    """What InFlightConsumer uses of AIOKafkaConsumer: records handed out once, commits and pauses kept."""

    records: list[Rec]
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    paused: bool = False
    pauses: int = 0
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

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Rec]]:
        assert not self.paused, "fetched while paused"
        if not self.records:
            self.fetched.set()
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        batch, self.records = self.records[:max_records], self.records[max_records:]
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


def consumer_for(processor: GatedProcessor, fake: FakeConsumer, window: int) -> InFlightConsumer:
    return InFlightConsumer(
        processor,  # type: ignore[arg-type]
        Settings(),
        window,
        consumer_factory=lambda **_: fake,
        poll_timeout_ms=20,
    )


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
