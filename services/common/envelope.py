"""The event envelope: protobuf values with CloudEvents binary-mode headers on Kafka records.

Record key = order id. Headers: ce_specversion, ce_id, ce_type, ce_source, ce_time, ce_subject,
content-type, traceparent/tracestate. Event ids are derived from (order id, event type), so a
handler that runs twice publishes the same event id twice and consumers drop the repeat.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import DecodeError, Message

from yiju.common import topics as t
from yiju.gen.events.v1 import order_events_pb2 as ev

CONTENT_TYPE = "application/protobuf"
SPEC_VERSION = "1.0"
_ID_NAMESPACE = uuid.UUID("3b1c5a9e-8f55-4f4a-9a43-5d1f0c6f2b10")
_ID_NAMESPACE_BYTES = _ID_NAMESPACE.bytes


@dataclass(frozen=True, slots=True)
class EventSpec:
    topic: str
    type: str
    message: type[Message]


_SPECS = (
    EventSpec(t.INTENT_SUBMITTED, "yiju.intent.submitted", ev.IntentSubmitted),
    EventSpec(t.INTENT_ACCEPTED, "yiju.intent.accepted", ev.IntentAccepted),
    EventSpec(t.PLAN_CREATED, "yiju.plan.created", ev.PlanCreated),
    EventSpec(t.PLAN_REJECTED, "yiju.plan.rejected", ev.PlanRejected),
    EventSpec(t.PLAN_NEEDS_CLARIFICATION, "yiju.plan.needs_clarification", ev.PlanNeedsClarification),
    EventSpec(t.PLAN_AWAITING_CONFIRMATION, "yiju.plan.awaiting_confirmation", ev.PlanAwaitingConfirmation),
    EventSpec(t.ORDER_CONFIRMED, "yiju.order.confirmed", ev.OrderConfirmed),
    EventSpec(t.ORDER_CANCELLED, "yiju.order.cancelled", ev.OrderCancelled),
    EventSpec(t.PAYMENT_AUTHORIZED, "yiju.payment.authorized", ev.PaymentAuthorized),
    EventSpec(t.PAYMENT_DECLINED, "yiju.payment.declined", ev.PaymentDeclined),
    EventSpec(t.PAYMENT_CAPTURED, "yiju.payment.captured", ev.PaymentCaptured),
    EventSpec(t.PAYMENT_VOIDED, "yiju.payment.voided", ev.PaymentVoided),
    EventSpec(t.FULFILMENT_COMPLETED, "yiju.fulfilment.completed", ev.FulfilmentCompleted),
    EventSpec(t.FULFILMENT_FAILED, "yiju.fulfilment.failed", ev.FulfilmentFailed),
    EventSpec(t.ORDER_REFUND_REQUESTED, "yiju.order.refund_requested", ev.OrderRefundRequested),
    EventSpec(t.PAYMENT_REFUNDED, "yiju.payment.refunded", ev.PaymentRefunded),
    EventSpec(t.FULFILMENT_CANCELLED, "yiju.fulfilment.cancelled", ev.FulfilmentCancelled),
    EventSpec(t.PARSE_REQUESTED, "yiju.parse.requested", ev.ParseRequested),
    EventSpec(t.PARSE_COMPLETED, "yiju.parse.completed", ev.ParseCompleted),
)
BY_TOPIC: dict[str, EventSpec] = {s.topic: s for s in _SPECS}
BY_MESSAGE: dict[type[Message], EventSpec] = {s.message: s for s in _SPECS}


class MalformedEvent(ValueError):
    """A record that can never be processed: it goes to the dead-letter topic at once."""


@dataclass(frozen=True, slots=True)
class EventMeta:
    id: str
    type: str
    source: str
    time: str
    subject: str
    topic: str
    partition: int
    offset: int
    headers: dict[str, str]


def spec_for(message: Message) -> EventSpec:
    return BY_MESSAGE[type(message)]


def event_id(order_id: str, event_type: str) -> str:
    """str(uuid.uuid5(namespace, "order/type")), computed without building UUID objects (it runs for
    every event published)."""
    raw = bytearray(hashlib.sha1(_ID_NAMESPACE_BYTES + f"{order_id}/{event_type}".encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_last_iso: tuple[int, str] = (-1, "")


def now_iso() -> str:
    """The current UTC time as 2026-01-31T12:34:56.789Z (formatted once per millisecond)."""
    global _last_iso
    ms = time.time_ns() // 1_000_000
    last = _last_iso
    if last[0] == ms:
        return last[1]
    moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    text = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    _last_iso = (ms, text)
    return text


def build_headers(spec: EventSpec, order_id: str, source: str, *, eid: str | None = None) -> dict[str, str]:
    return {
        "ce_specversion": SPEC_VERSION,
        "ce_id": eid or event_id(order_id, spec.type),
        "ce_type": spec.type,
        "ce_source": source,
        "ce_time": now_iso(),
        "ce_subject": order_id,
        "content-type": CONTENT_TYPE,
    }


def header_dict(raw: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw or ():
        try:
            out[key] = value.decode() if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError as exc:
            raise MalformedEvent(f"header {key!r} is not UTF-8") from exc
    return out


def decode(
    topic: str,
    partition: int,
    offset: int,
    value: bytes | None,
    raw_headers: Iterable[tuple[str, bytes]] | None,
) -> tuple[EventMeta, Message]:
    """Parses one record into (metadata, protobuf message), or raises MalformedEvent."""
    spec = BY_TOPIC.get(topic)
    if spec is None:
        raise MalformedEvent(f"no event type is published on topic {topic!r}")
    headers = header_dict(raw_headers)
    missing = [h for h in ("ce_id", "ce_type") if not headers.get(h)]
    if missing:
        raise MalformedEvent(f"missing CloudEvents headers {missing}")
    if headers["ce_type"] != spec.type:
        raise MalformedEvent(f"unknown event type {headers['ce_type']!r} on {topic} (expected {spec.type!r})")
    if value is None:
        raise MalformedEvent("record has no value")
    message = spec.message()
    try:
        message.ParseFromString(value)
    except DecodeError as exc:
        raise MalformedEvent(f"value is not a valid {spec.message.__name__} protobuf: {exc}") from exc
    meta = EventMeta(
        id=headers["ce_id"],
        type=headers["ce_type"],
        source=headers.get("ce_source", ""),
        time=headers.get("ce_time", ""),
        subject=headers.get("ce_subject", ""),
        topic=topic,
        partition=partition,
        offset=offset,
        headers=headers,
    )
    return meta, message
