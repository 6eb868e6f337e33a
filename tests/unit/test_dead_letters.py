"""Dead letters: reading their headers, choosing which to replay, and replaying each at most once."""

from __future__ import annotations

from typing import Any

import pytest

from yiju.common.dead_letters import (
    REPLAYED_FROM_HEADER,
    DeadLetter,
    Replayer,
    UnknownGroup,
    dedup_key,
    resolve_group,
    select,
)
from yiju.common.settings import Settings


def letter(offset: int = 7, reason: str = "retries_exhausted", event_id: str = "e-1") -> DeadLetter:
    headers = {
        "ce_id": event_id,
        "ce_type": "yiju.plan.created",
        "ce_subject": "ord_1",
        "traceparent": "00-abc-def-01",
        "x-dlq-reason": reason,
        "x-dlq-error-class": "ValueError",
        "x-dlq-error-message": "boom",
        "x-dlq-attempts": "4",
        "x-dlq-group": "yiju-payment",
        "x-dlq-original-topic": "yiju.plan.created.v1",
        "x-dlq-original-partition": "3",
        "x-dlq-original-offset": "41",
        "x-dlq-at": "2026-01-01T00:00:00.000Z",
    }
    if not event_id:
        headers.pop("ce_id")
    return DeadLetter(
        topic="yiju.dlq.yiju-payment.v1",
        partition=1,
        offset=offset,
        timestamp_ms=0,
        key=b"ord_1",
        value=b"\x0a\x05ord_1",
        headers=tuple((k, v.encode()) for k, v in headers.items()),
    )


def test_a_dead_letter_knows_where_it_came_from_and_its_original_headers() -> None:
    d = letter()
    assert (d.group, d.reason, d.event_id, d.order_id) == (
        "yiju-payment",
        "retries_exhausted",
        "e-1",
        "ord_1",
    )
    assert (d.original_topic, d.original_partition, d.original_offset) == ("yiju.plan.created.v1", 3, 41)
    assert [k for k, _ in d.original_headers()] == ["ce_id", "ce_type", "ce_subject", "traceparent"]
    summary = d.summary()
    assert summary["attempts"] == 4 and summary["dlq_position"] == "yiju.dlq.yiju-payment.v1/1/7"
    assert summary["replayed"] is None


def test_groups_by_name_or_short_name() -> None:
    assert resolve_group("payment").name == resolve_group("yiju-payment").name == "yiju-payment"
    with pytest.raises(UnknownGroup):
        resolve_group("nobody")
    assert dedup_key("yiju-payment", "e-1") == "dedup:yiju-payment:e-1"


def test_select_by_id_or_position_and_skip_malformed_unless_asked() -> None:
    letters = [letter(1, event_id="a"), letter(2, reason="malformed", event_id=""), letter(3, event_id="b")]
    assert [d.offset for d in select(letters)] == [1, 3]
    assert [d.offset for d in select(letters, include_malformed=True)] == [1, 2, 3]
    assert [d.offset for d in select(letters, event_id="b")] == [3]
    assert [d.offset for d in select(letters, event_id="yiju.dlq.yiju-payment.v1/1/2")] == [2]


class FakeRedis:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def set(self, key: str, value: str, nx: bool = False, ex: int | None = None) -> bool:
        if nx and key in self.data:
            return False
        self.data[key] = value
        return True

    async def delete(self, key: str) -> int:
        return int(self.data.pop(key, None) is not None)


class FakeProducer:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail = fail

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(6))

    async def send_and_wait(self, topic: str, value: bytes, **kwargs: Any) -> None:
        if self.fail:
            raise ConnectionError("broker away")
        self.sent.append({"topic": topic, "value": value, **kwargs})


def replayer(redis: FakeRedis, producer: FakeProducer) -> Replayer:
    r = Replayer(Settings(), redis)  # type: ignore[arg-type]
    r._producer = producer  # type: ignore[assignment]
    return r


async def test_replay_republishes_the_original_once_and_clears_the_dedup_key() -> None:
    redis, producer = FakeRedis(), FakeProducer()
    redis.data[dedup_key("yiju-payment", "e-1")] = "1"
    d = letter()
    assert (await replayer(redis, producer).replay(d)).outcome == "replayed"
    assert dedup_key("yiju-payment", "e-1") not in redis.data
    [sent] = producer.sent
    assert (sent["topic"], sent["value"], sent["key"], sent["partition"]) == (
        "yiju.plan.created.v1",
        d.value,
        b"ord_1",
        3,
    )
    names = [k for k, _ in sent["headers"]]
    assert not [n for n in names if n.startswith("x-dlq-")]
    assert dict(sent["headers"])[REPLAYED_FROM_HEADER] == d.position.encode()
    assert (await replayer(redis, producer).replay(d)).outcome == "already_replayed"
    assert len(producer.sent) == 1


async def test_a_failed_replay_can_be_tried_again() -> None:
    redis = FakeRedis()
    with pytest.raises(ConnectionError):
        await replayer(redis, FakeProducer(fail=True)).replay(letter())
    assert not any(k.startswith("dlq:") for k in redis.data)
    assert (await replayer(redis, FakeProducer()).replay(letter())).outcome == "replayed"
