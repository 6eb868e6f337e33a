"""Kafka topic names and consumer groups: the platform's published event contract."""

from __future__ import annotations

import logging
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
    (INTENT_ACCEPTED, ORDER_CONFIRMED, ORDER_CANCELLED, PAYMENT_DECLINED, PAYMENT_VOIDED),
)
PAYMENT = ConsumerGroup("yiju-payment", "payment", (PLAN_CREATED, FULFILMENT_COMPLETED, FULFILMENT_FAILED))
FULFILMENT = ConsumerGroup("yiju-fulfilment", "fulfilment", (PAYMENT_AUTHORIZED,))

CONSUMER_GROUPS: tuple[ConsumerGroup, ...] = (INTENT_INTAKE, INTENT_PROJECTION, PLANNING, PAYMENT, FULFILMENT)
DEAD_LETTER_TOPICS: tuple[str, ...] = tuple(g.dead_letter_topic for g in CONSUMER_GROUPS)
ALL_TOPICS: tuple[str, ...] = (INTENT_SUBMITTED, *ORDER_EVENT_TOPICS, *DEAD_LETTER_TOPICS)


async def ensure_topics(settings: Settings, admin_kwargs: dict | None = None) -> list[str]:
    """Creates every topic that does not exist yet; returns the names it created."""
    from yiju.common.kafka_config import admin_client_kwargs

    admin = AIOKafkaAdminClient(**(admin_kwargs or admin_client_kwargs(settings)))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in ALL_TOPICS if t not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        t,
                        num_partitions=settings.kafka_partitions,
                        replication_factor=settings.kafka_replication_factor,
                    )
                    for t in missing
                ]
            )
            log.info("created topics", extra={"topics": missing})
        return missing
    finally:
        await admin.close()
