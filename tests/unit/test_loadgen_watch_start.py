"""Where the load generator's completion watcher starts: at the end of every topic on Apache Kafka, with
the positions resolved before `start()` returns (so the runner sends nothing the watcher could miss);
from the beginning on tansu, whose LATEST offsets are wrong."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from aiokafka import TopicPartition

from yiju.loadgen.watcher import CompletionWatcher, Tracker, reads_from_end


class FakeConsumer:
    """What CompletionWatcher uses of AIOKafkaConsumer, with two partitions already holding records."""

    instances: ClassVar[list[FakeConsumer]] = []
    ends: ClassVar[dict[TopicPartition, int]] = {
        TopicPartition("yiju.intent.accepted.v1", 0): 41,
        TopicPartition("yiju.payment.captured.v1", 0): 7,
    }

    def __init__(self, *topics: str, **kwargs: Any) -> None:
        self.topics, self.kwargs = topics, kwargs
        self.positions: dict[TopicPartition, int] = {}
        self.events: list[str] = []
        self.assigned = dict(self.ends)
        FakeConsumer.instances.append(self)

    async def start(self) -> None:
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.events.append("end_offsets")
        return {tp: self.assigned[tp] for tp in partitions}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.events.append(f"seek {tp.topic} {offset}")
        self.positions[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def getmany(self, **kwargs: Any) -> dict[TopicPartition, list[Any]]:
        await asyncio.sleep(3600)  # nothing more arrives in this test
        return {}


@pytest.fixture
def fake_consumer(monkeypatch: pytest.MonkeyPatch) -> type[FakeConsumer]:
    FakeConsumer.instances.clear()
    monkeypatch.setattr("aiokafka.AIOKafkaConsumer", FakeConsumer)
    return FakeConsumer


@pytest.mark.parametrize(("kind", "from_end"), [("kafka", True), ("external", True), ("tansu", False)])
def test_only_tansu_reads_from_the_beginning(kind: str, from_end: bool) -> None:
    assert reads_from_end(kind) is from_end


async def test_on_kafka_start_returns_with_every_partition_at_its_end_offset(
    fake_consumer: type[FakeConsumer],
) -> None:
    watcher = CompletionWatcher(Tracker("load-x-", 0.0), {}, from_end=True)
    await watcher.start()
    try:
        consumer = fake_consumer.instances[0]
        assert watcher.start_offsets == FakeConsumer.ends
        assert consumer.events == [
            "start",
            "end_offsets",
            "seek yiju.intent.accepted.v1 41",
            "seek yiju.payment.captured.v1 7",
        ]
        # A partition aiokafka ever reassigns starts at the beginning: re-read, never skipped.
        assert consumer.kwargs["auto_offset_reset"] == "earliest"
    finally:
        await watcher.stop()


async def test_on_tansu_nothing_is_sought_and_every_topic_is_read_from_the_start(
    fake_consumer: type[FakeConsumer],
) -> None:
    watcher = CompletionWatcher(Tracker("load-x-", 0.0), {}, from_end=False)
    await watcher.start()
    try:
        consumer = fake_consumer.instances[0]
        assert consumer.events == ["start"]
        assert consumer.kwargs["auto_offset_reset"] == "earliest"
        assert watcher.start_offsets == {}
    finally:
        await watcher.stop()


async def test_a_watcher_without_partitions_fails_to_start_and_closes_its_consumer(
    fake_consumer: type[FakeConsumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeConsumer, "ends", {})
    watcher = CompletionWatcher(Tracker("load-x-", 0.0), {}, from_end=True)
    with pytest.raises(RuntimeError, match="no partitions"):
        await watcher.start()
    assert fake_consumer.instances[0].events == ["start", "stop"]
