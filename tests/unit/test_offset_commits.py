"""The batch consumers' committer: explicit offsets of handled batches, at most one commit an interval."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaConnectionError

from yiju.common.offset_commits import OffsetCommitter


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int


class FakeConsumer:
    """aiokafka's commit(offsets) surface; `fail` raises the next commits; `hold` keeps the next one in
    flight until it is set."""

    def __init__(self) -> None:
        self.commits: list[dict[tuple[str, int], int]] = []
        self.fail: list[BaseException] = []
        self.hold: asyncio.Event | None = None
        self.in_flight = asyncio.Event()

    async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        if self.hold is not None:
            hold, self.hold = self.hold, None
            self.in_flight.set()
            await hold.wait()
        if self.fail:
            raise self.fail.pop(0)
        self.commits.append({(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def batch(*offsets: tuple[int, int]) -> list[Rec]:
    return [Rec("t", p, o) for p, o in offsets]


async def handle(committer: OffsetCommitter, consumer: FakeConsumer, records: list[Rec]) -> None:
    committer.handled(records, consumer)
    await committer.after_batch()


async def test_batches_within_one_interval_make_one_commit_of_the_highest_offsets() -> None:
    clock, consumer = Clock(), FakeConsumer()
    committer = OffsetCommitter("g", 200, clock=clock)
    await handle(committer, consumer, batch((0, 0), (1, 0)))
    await handle(committer, consumer, batch((0, 1), (0, 2)))
    await handle(committer, consumer, batch((1, 1)))
    assert consumer.commits == []  # the interval has not passed: a delayed flush is scheduled
    clock.now += 0.2
    await handle(committer, consumer, batch((0, 3)))
    assert consumer.commits == [{("t", 0): 4, ("t", 1): 2}]
    assert committer.commits == 1


async def test_the_last_batches_are_committed_by_the_delayed_flush_when_no_batch_follows() -> None:
    consumer = FakeConsumer()
    committer = OffsetCommitter("g", 20)
    await handle(committer, consumer, batch((0, 7)))
    assert consumer.commits == []
    assert committer._later is not None  # the one delayed flush, 20 ms after the last commit
    await asyncio.wait_for(committer._later, 5)
    assert consumer.commits == [{("t", 0): 8}]


async def test_interval_zero_commits_after_every_batch() -> None:
    consumer = FakeConsumer()
    committer = OffsetCommitter("g", 0)
    await handle(committer, consumer, batch((0, 0)))
    await handle(committer, consumer, batch((0, 1)))
    assert consumer.commits == [{("t", 0): 1}, {("t", 0): 2}]


async def test_an_offset_never_goes_backwards() -> None:
    clock, consumer = Clock(), FakeConsumer()
    committer = OffsetCommitter("g", 200, clock=clock)
    await handle(committer, consumer, batch((0, 9)))
    await handle(committer, consumer, batch((0, 4)))  # a redelivery of older records after a rewind
    await committer.flush()
    assert consumer.commits == [{("t", 0): 10}]


async def test_a_failed_commit_is_retried_with_what_was_handled_since() -> None:
    clock, consumer = Clock(), FakeConsumer()
    committer = OffsetCommitter("g", 200, clock=clock)
    consumer.fail.append(KafkaConnectionError())
    await handle(committer, consumer, batch((0, 0), (1, 5)))
    await committer.flush()
    assert consumer.commits == []
    await handle(committer, consumer, batch((0, 1)))
    await committer.flush()
    assert consumer.commits == [{("t", 0): 2, ("t", 1): 6}]


async def test_a_commit_refused_after_a_rebalance_is_dropped() -> None:
    clock, consumer = Clock(), FakeConsumer()
    committer = OffsetCommitter("g", 200, clock=clock)
    consumer.fail.append(CommitFailedError())
    await handle(committer, consumer, batch((0, 0)))
    await committer.flush()
    await committer.flush()
    assert consumer.commits == []  # the partition's new owner reads on from the last commit that landed


async def test_close_commits_what_is_handled_and_every_later_batch_at_once() -> None:
    clock, consumer = Clock(), FakeConsumer()
    committer = OffsetCommitter("g", 200, clock=clock)
    await handle(committer, consumer, batch((0, 0)))
    await committer.close()
    assert consumer.commits == [{("t", 0): 1}]
    await handle(committer, consumer, batch((0, 1)))  # a batch still running when the stop began
    assert consumer.commits == [{("t", 0): 1}, {("t", 0): 2}]


async def test_nothing_handled_nothing_committed() -> None:
    consumer = FakeConsumer()
    committer = OffsetCommitter("g", 0)
    await committer.after_batch()
    await committer.flush()
    await committer.close()
    assert consumer.commits == []


@pytest.mark.parametrize("interval_ms", [-5, 0])
async def test_a_non_positive_interval_means_every_batch(interval_ms: int) -> None:
    consumer = FakeConsumer()
    committer = OffsetCommitter("g", interval_ms)
    await handle(committer, consumer, batch((2, 3)))
    assert consumer.commits == [{("t", 2): 4}]


async def test_a_batch_handled_while_the_delayed_commit_is_in_flight_is_committed_without_another_batch() -> (
    None
):
    consumer = FakeConsumer()
    committer = OffsetCommitter("g", 20)
    release = consumer.hold = asyncio.Event()
    await handle(committer, consumer, batch((0, 2)))  # schedules the delayed flush
    await asyncio.wait_for(consumer.in_flight.wait(), 5)  # its commit is on the wire ...
    await handle(committer, consumer, batch((0, 3), (0, 4)))  # ... when the next batch is handled
    release.set()
    assert committer._later is not None
    await asyncio.wait_for(committer._later, 5)  # no batch follows: the flush itself comes back for it
    assert consumer.commits == [{("t", 0): 3}, {("t", 0): 5}]


async def test_a_commit_that_raises_anything_keeps_its_offsets_for_the_next() -> None:
    consumer = FakeConsumer()
    committer = OffsetCommitter("g", 200, clock=Clock())
    consumer.fail.append(RuntimeError("consumer closing"))
    await handle(committer, consumer, batch((0, 0)))
    await committer.flush()
    await committer.flush()
    assert consumer.commits == [{("t", 0): 1}]


async def test_close_during_a_delayed_commit_still_commits_its_offsets() -> None:
    consumer = FakeConsumer()
    committer = OffsetCommitter("g", 20)
    consumer.hold = asyncio.Event()  # never released: the delayed commit hangs until close cancels it
    await handle(committer, consumer, batch((0, 6)))
    await asyncio.wait_for(consumer.in_flight.wait(), 5)
    await committer.close()
    assert consumer.commits == [{("t", 0): 7}]
