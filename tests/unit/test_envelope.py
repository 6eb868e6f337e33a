"""The event envelope: CloudEvents headers, deterministic ids, and what counts as malformed."""

from __future__ import annotations

import pytest

from yiju.common import topics
from yiju.common.envelope import MalformedEvent, build_headers, decode, event_id, spec_for
from yiju.gen.events.v1 import order_events_pb2 as ev


def _record(message: ev.PlanCreated, order_id: str = "ord_1") -> tuple[bytes, list[tuple[str, bytes]]]:
    headers = build_headers(spec_for(message), order_id, "yiju/test")
    return message.SerializeToString(), [(k, v.encode()) for k, v in headers.items()]


def test_round_trip_keeps_message_and_cloudevents_metadata() -> None:
    message = ev.PlanCreated(order_id="ord_1", user_id="u-1002", plan=ev.Plan(total_fen=4200))
    value, headers = _record(message)
    meta, decoded = decode(topics.PLAN_CREATED, 2, 17, value, headers)
    assert decoded == message
    assert meta.type == "yiju.plan.created"
    assert meta.subject == "ord_1"
    assert (meta.partition, meta.offset) == (2, 17)
    assert meta.headers["ce_specversion"] == "1.0"
    assert meta.headers["content-type"] == "application/protobuf"


def test_event_ids_are_deterministic_per_order_and_type() -> None:
    assert event_id("ord_1", "yiju.plan.created") == event_id("ord_1", "yiju.plan.created")
    assert event_id("ord_1", "yiju.plan.created") != event_id("ord_2", "yiju.plan.created")
    assert event_id("ord_1", "yiju.plan.created") != event_id("ord_1", "yiju.payment.authorized")


@pytest.mark.parametrize(
    ("topic", "value", "headers", "why"),
    [
        ("yiju.nope.v1", b"", [("ce_id", b"1"), ("ce_type", b"x")], "no event type"),
        (topics.PLAN_CREATED, b"\x08", [("ce_type", b"yiju.plan.created")], "missing CloudEvents"),
        (
            topics.PLAN_CREATED,
            b"",
            [("ce_id", b"1"), ("ce_type", b"yiju.payment.captured")],
            "unknown event type",
        ),
        (
            topics.PLAN_CREATED,
            b"\xff\xff\xff",
            [("ce_id", b"1"), ("ce_type", b"yiju.plan.created")],
            "protobuf",
        ),
        (topics.PLAN_CREATED, None, [("ce_id", b"1"), ("ce_type", b"yiju.plan.created")], "no value"),
        (topics.PLAN_CREATED, b"", [("ce_id", b"\xff"), ("ce_type", b"yiju.plan.created")], "UTF-8"),
    ],
)
def test_malformed_records_are_refused_with_a_reason(
    topic: str, value: bytes | None, headers: list[tuple[str, bytes]], why: str
) -> None:
    with pytest.raises(MalformedEvent, match=why):
        decode(topic, 0, 0, value, headers)
