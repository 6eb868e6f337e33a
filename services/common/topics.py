"""Kafka topic names and consumer groups: the platform's published event contract."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from yiju.common.settings import Settings

log = logging.getLogger(__name__)

INTENT_SUBMITTED = "yiju.intent.submitted.v1"  # intake: clients may publish here directly
INTENT_ACCEPTED = "yiju.intent.accepted.v1"
PLAN_CREATED = "yiju.plan.created.v1"
PLAN_REJECTED = "yiju.plan.rejected.v1"
PLAN_NEEDS_CLARIFICATION = "yiju.plan.needs_clarification.v1"
PLAN_AWAITING_CONFIRMATION = "yiju.plan.awaiting_confirmation.v1"
ORDER_CONFIRMED = "yiju.order.confirmed.v1"
ORDER_CANCELLED = "yiju.order.cancelled.v1"
PAYMENT_AUTHORIZED = "yiju.payment.authorized.v1"
PAYMENT_DECLINED = "yiju.payment.declined.v1"
PAYMENT_CAPTURED = "yiju.payment.captured.v1"
PAYMENT_VOIDED = "yiju.payment.voided.v1"
FULFILMENT_COMPLETED = "yiju.fulfilment.completed.v1"
FULFILMENT_FAILED = "yiju.fulfilment.failed.v1"
# Refunds (after COMPLETED): intent publishes the request; payment returns the money, fulfilment cancels
# what it still can; planning gives the subsidy back on payment.refunded.
ORDER_REFUND_REQUESTED = "yiju.order.refund_requested.v1"
PAYMENT_REFUNDED = "yiju.payment.refunded.v1"
FULFILMENT_CANCELLED = "yiju.fulfilment.cancelled.v1"
# The model request/reply (planning <-> model gateway): planning asks and commits at once; the gateway
# answers when the model has (docs/architecture.md, "The model path"). The request is an order event (the
# projection shows the order waiting on the model); the answer is read by planning only.
PARSE_REQUESTED = "yiju.parse.requested.v1"
PARSE_COMPLETED = "yiju.parse.completed.v1"

ORDER_EVENT_TOPICS: tuple[str, ...] = (
    INTENT_ACCEPTED,
    PLAN_CREATED,
    PLAN_REJECTED,
    PLAN_NEEDS_CLARIFICATION,
    PLAN_AWAITING_CONFIRMATION,
    ORDER_CONFIRMED,
    ORDER_CANCELLED,
    PAYMENT_AUTHORIZED,
    PAYMENT_DECLINED,
    PAYMENT_CAPTURED,
    PAYMENT_VOIDED,
    FULFILMENT_COMPLETED,
    FULFILMENT_FAILED,
    ORDER_REFUND_REQUESTED,
    PAYMENT_REFUNDED,
    FULFILMENT_CANCELLED,
    PARSE_REQUESTED,
)


@dataclass(frozen=True)
class ConsumerGroup:
    name: str
    service: str
    topics: tuple[str, ...]
    # True when applying a record twice has the effect of applying it once by construction (the order
    # projection): the group keeps no de-duplication keys (no MGET before, no SET after each batch).
    idempotent: bool = False

    @property
    def dead_letter_topic(self) -> str:
        return f"yiju.dlq.{self.name}.v1"


INTENT_INTAKE = ConsumerGroup("yiju-intent-intake", "intent", (INTENT_SUBMITTED,))
INTENT_PROJECTION = ConsumerGroup("yiju-intent-projection", "intent", ORDER_EVENT_TOPICS, idempotent=True)
PLANNING = ConsumerGroup(
    "yiju-planning",
    "planning",
    (
        INTENT_ACCEPTED,
        ORDER_CONFIRMED,
        ORDER_CANCELLED,
        PAYMENT_DECLINED,
        PAYMENT_VOIDED,
        PAYMENT_REFUNDED,
        PARSE_COMPLETED,
    ),
)
PAYMENT = ConsumerGroup(
    "yiju-payment", "payment", (PLAN_CREATED, FULFILMENT_COMPLETED, FULFILMENT_FAILED, ORDER_REFUND_REQUESTED)
)
FULFILMENT = ConsumerGroup("yiju-fulfilment", "fulfilment", (PAYMENT_AUTHORIZED, ORDER_REFUND_REQUESTED))
# The gateway's model work: long-running records, consumed through an in-flight window
# (yiju.common.inflight), so one slow answer holds neither its partition nor its neighbours.
# Idempotent by the gateway's per-order claim (yiju.model_gateway.kafka_worker), which the window needs
# anyway (a rebalance redelivers a running record before any de-duplication key exists): a repeated
# request replays the stored ParseCompleted, whose event id comes from (order, type), the first one's,
# so planning drops it; a request claimed and unanswered, or past its deadline, is not sent to the model.
# De-duplication keys would cost every sentence two Redis round trips for nothing more, except after a
# crash between effect and commit: a dead-lettered request is dead-lettered again, and a call that
# failed every attempt (claim given back) is tried again; neither ever had an answer to repeat.
MODEL_GATEWAY = ConsumerGroup("yiju-model-gateway", "model_gateway", (PARSE_REQUESTED,), idempotent=True)

CONSUMER_GROUPS: tuple[ConsumerGroup, ...] = (
    INTENT_INTAKE,
    INTENT_PROJECTION,
    PLANNING,
    PAYMENT,
    FULFILMENT,
    MODEL_GATEWAY,
)
DEAD_LETTER_TOPICS: tuple[str, ...] = tuple(g.dead_letter_topic for g in CONSUMER_GROUPS)
ALL_TOPICS: tuple[str, ...] = (INTENT_SUBMITTED, *ORDER_EVENT_TOPICS, PARSE_COMPLETED, *DEAD_LETTER_TOPICS)


@dataclass(frozen=True)
class Namespace:
    """Where the platform's names meet the wire: every topic and consumer-group name is the contract's
    name above behind a prefix (settings kafka_topic_prefix / kafka_group_prefix; both empty for a
    platform that has its cluster to itself). Code speaks the contract's names; only the Kafka edge
    (publisher, subscribers, admin, readers of topics) goes through a Namespace."""

    topic_prefix: str = ""
    group_prefix: str = ""

    @classmethod
    def of(cls, settings: Settings) -> Namespace:
        return cls(settings.kafka_topic_prefix, settings.kafka_group_prefix)

    def topic(self, name: str) -> str:
        """The topic as it is named on the cluster."""
        return f"{self.topic_prefix}{name}"

    def topics(self, names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        return tuple(self.topic(n) for n in names)

    def logical(self, wire_topic: str) -> str:
        """The contract's name of a topic read from the cluster (the prefix removed)."""
        return (
            wire_topic[len(self.topic_prefix) :] if wire_topic.startswith(self.topic_prefix) else wire_topic
        )

    def group(self, name: str) -> str:
        """The consumer group id as it is named on the cluster."""
        return f"{self.group_prefix}{name}"

    def dead_letter_topic(self, group: ConsumerGroup) -> str:
        return self.topic(group.dead_letter_topic)


def topic_configs(settings: Settings, topic: str) -> dict[str, str]:
    """Per-topic-class settings: order events are kept kafka_retention_ms, dead letters longer
    (kafka_dlq_retention_ms); every topic refuses writes below kafka_min_insync_replicas. Events are an
    append-only history keyed by order, so no topic is compacted (compaction would keep only the last
    event of each order)."""
    retention = (
        settings.kafka_dlq_retention_ms if topic in DEAD_LETTER_TOPICS else settings.kafka_retention_ms
    )
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(retention),
        "min.insync.replicas": str(settings.kafka_min_insync_replicas),
    }


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str], timeout_s: float = 30.0) -> None:
    """Waits until every partition of the new `topics` has a leader (a produce before that fails with
    NotLeaderForPartition and is retried, which costs a first sentence its latency)."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = await admin.describe_topics(topics)
        led = all(
            not t["error_code"] and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
            for t in described
        )
        if led or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


async def ensure_topics(settings: Settings, admin_kwargs: dict | None = None) -> list[str]:
    """Creates every topic of the platform (in its namespace) that does not exist yet, with its class's
    settings; returns the names it created (as named on the cluster)."""
    from yiju.common.kafka_config import admin_client_kwargs

    ns = Namespace.of(settings)
    admin = AIOKafkaAdminClient(**(admin_kwargs or admin_client_kwargs(settings)))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in ALL_TOPICS if ns.topic(t) not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        ns.topic(t),
                        num_partitions=settings.kafka_partitions,
                        replication_factor=settings.kafka_replication_factor,
                        topic_configs=topic_configs(settings, t),
                    )
                    for t in missing
                ]
            )
            log.info("created topics", extra={"topics": [ns.topic(t) for t in missing]})
            await _wait_for_leaders(admin, [ns.topic(t) for t in missing])
        return [ns.topic(t) for t in missing]
    finally:
        await admin.close()
