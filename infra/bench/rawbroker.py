"""The broker on its own: how fast aiokafka produces and consumes records shaped like the pipeline's.

The records are the six events one sentence publishes (IntentSubmitted ... PaymentCaptured), built
with realistic content and the same CloudEvents + traceparent headers, on a fresh topic with the
pipeline's partition count. One producer task and one consumer task (no group) run at once in this
process; "produce+consume" is records / (first send to last record consumed).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from google.protobuf.message import Message

from yiju.common.envelope import build_headers, spec_for
from yiju.gen.events.v1 import order_events_pb2 as ev

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def sample_events(order_id: str = "ord_0123456789abcdef0123") -> list[Message]:
    """One sentence's six published events, as the services build them."""
    user = "load-u-000042"
    line = ev.PlanLine(
        sku="tea-brown-sugar-boba",
        name="brown sugar boba milk tea",
        vertical="food",
        merchant_id="m-chayan",
        quantity=2,
        unit_price_fen=1800,
        line_total_fen=3600,
        deliver_to="office",
    )
    plan = ev.Plan(
        lines=[line],
        subtotal_fen=3600,
        subsidy_fen=1000,
        campaign_id="spring-festival",
        total_fen=2600,
        currency="CNY",
        payer_account=f"wallet:{user}",
        catalog_version="0123456789ab",
    )
    text = "order two bubble teas to my office"
    key = "load-2311427f3a-00001234"
    return [
        ev.IntentSubmitted(
            user_id=user, text=text, idempotency_key=key, locale="en-SG", user_assertion="x" * 230
        ),
        ev.IntentAccepted(
            order_id=order_id, user_id=user, text=text, locale="en-SG", idempotency_key=key, accepted_at_ms=1
        ),
        ev.PlanCreated(order_id=order_id, user_id=user, plan=plan),
        ev.PaymentAuthorized(
            order_id=order_id, user_id=user, amount_fen=2600, authorization_id=f"auth-{order_id}", plan=plan
        ),
        ev.FulfilmentCompleted(
            order_id=order_id,
            user_id=user,
            records=[
                ev.FulfilmentRecord(sku=line.sku, vertical="food", status="DISPATCHED", provider_ref="FD-1")
            ],
        ),
        ev.PaymentCaptured(
            order_id=order_id, user_id=user, amount_fen=2600, authorization_id=f"auth-{order_id}"
        ),
    ]


def sample_records() -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """(key, value, headers) of each sample event, with the headers the pipeline sends."""
    out = []
    for message in sample_events():
        headers = build_headers(spec_for(message), "ord_0123456789abcdef0123", "yiju/bench")
        headers["traceparent"] = TRACEPARENT
        out.append(
            (
                b"ord_0123456789abcdef0123",
                message.SerializeToString(),
                [(k, v.encode()) for k, v in headers.items()],
            )
        )
    return out


@dataclass
class RawBrokerResult:
    records: int
    record_bytes_avg: float
    produce_per_s: float
    consume_per_s: float
    produce_consume_per_s: float

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 1) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def reader_of(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """A consumer without a group, from the start of the topic, fetching big batches."""
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )


async def read(consumer: AIOKafkaConsumer, records: int) -> None:
    """Returns once `records` records have been fetched."""
    seen = 0
    while seen < records:
        batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
        seen += sum(len(v) for v in batch.values())


async def wait_for_leaders(admin: AIOKafkaAdminClient, topic: str, timeout_s: float = 30.0) -> None:
    """Returns once every partition of the new `topic` has a leader (Apache Kafka elects them a moment
    after CreateTopics answers; a produce or fetch before that is refused and retried, with warnings)."""
    deadline = time.monotonic() + timeout_s
    while True:
        (described,) = await admin.describe_topics([topic])
        partitions = described["partitions"]
        if not described["error_code"] and partitions and all(p["leader"] >= 0 for p in partitions):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic}: no leader for every partition within {timeout_s:g}s")
        await asyncio.sleep(0.05)


async def measure(bootstrap: str, records: int = 200_000, partitions: int = 6) -> RawBrokerResult:
    topic = f"yiju.bench.raw.{int(time.time() * 1000)}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        await wait_for_leaders(admin, topic)
    finally:
        await admin.close()
    samples = sample_records()
    sizes = [len(k) + len(v) + sum(len(h) + len(b) for h, b in hs) for k, v, hs in samples]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        enable_idempotence=False,
    )
    consumer = reader_of(bootstrap, topic)
    await producer.start()
    await consumer.start()
    try:
        started = time.perf_counter()
        produced_at = 0.0

        async def produce() -> None:
            nonlocal produced_at
            pending: list[asyncio.Future] = []
            for i in range(records):
                key, value, headers = samples[i % len(samples)]
                pending.append(
                    await producer.send(topic, value, key=key + str(i % 997).encode(), headers=headers)
                )
                if len(pending) >= 2000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
            produced_at = time.perf_counter()

        async def consume() -> float:
            await read(consumer, records)
            return time.perf_counter()

        producing = asyncio.create_task(produce())
        consumed_at = await consume()
        await producing
    finally:
        await consumer.stop()
        await producer.stop()
    # Consuming alone, from the start of the now full topic.
    reader = reader_of(bootstrap, topic)
    await reader.start()
    try:
        began = time.perf_counter()
        await read(reader, records)
        consume_s = time.perf_counter() - began
    finally:
        await reader.stop()
    return RawBrokerResult(
        records=records,
        record_bytes_avg=sum(sizes) / len(sizes),
        produce_per_s=records / (produced_at - started),
        consume_per_s=records / consume_s,
        produce_consume_per_s=records / (consumed_at - started),
    )
