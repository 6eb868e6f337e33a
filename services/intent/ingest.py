"""Ingest: validate a sentence, de-duplicate by the client's idempotency key, open the order, publish it.

The same path serves HTTP, gRPC and intents published straight to the Kafka intake topic. A Kafka
intent is admitted only with a user assertion signed by a publisher's key and bound to it
(``yiju.common.intake_assertion``); a replayed dead letter's assertion is checked as of the time it was
dead-lettered, as vouched for by the replay tool's own key (``yiju.common.replay_assertion``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from redis.asyncio.client import Redis

from yiju.common.broker import EventPublisher
from yiju.common.catalog import Catalog
from yiju.common.consumer import EventContext, EventRouter, PermanentError, RetryLater
from yiju.common.envelope import EventMeta, now_iso
from yiju.common.intake_assertion import IntakeAssertionError, IntakeVerifier
from yiju.common.kafka_client import KAFKA_ERRORS
from yiju.common.redis import load_script
from yiju.common.replay_assertion import HEADER as REPLAY_HEADER
from yiju.common.replay_assertion import ReplayAssertionError, ReplayVerifier
from yiju.common.settings import Settings
from yiju.common.telemetry import current_trace_id
from yiju.common.topics import INTENT_INTAKE
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.intent.store import OrderStore, order_key

MAX_TEXT_CHARS = 2000
MAX_KEY_CHARS = 200
STALE_CLAIM_MS = 15_000


class IngestError(Exception):
    """Why a submission is refused; `code` maps to an HTTP status and a gRPC status."""

    def __init__(self, code: str, message: str, order_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.order_id = order_id


class Outcome(StrEnum):
    CREATED = "created"
    REPLAYED = "replayed"


@dataclass(frozen=True)
class Submitted:
    order_id: str
    outcome: Outcome


def _key(user_id: str, idempotency_key: str) -> str:
    return f"idem:{{{user_id}}}:{idempotency_key}"


def new_order_id() -> str:
    return f"ord_{uuid.uuid4().hex[:20]}"


class Ingest:
    def __init__(
        self, catalog: Catalog, redis: Redis, store: OrderStore, publisher: EventPublisher, settings: Settings
    ) -> None:
        self.catalog = catalog
        self.redis = redis
        self.store = store
        self.publisher = publisher
        self.settings = settings
        self._claim = load_script(redis, Path(__file__).parent / "lua" / "claim_key.lua")
        self.assertions = IntakeVerifier.from_settings(settings)
        self.replays = ReplayVerifier.from_settings(settings)

    def validate(self, user_id: str, text: str, idempotency_key: str, locale: str) -> None:
        if not text or not text.strip():
            raise IngestError("invalid_text", "text must not be empty")
        if len(text) > MAX_TEXT_CHARS:
            raise IngestError("invalid_text", f"text must be at most {MAX_TEXT_CHARS} characters")
        if len(idempotency_key) > MAX_KEY_CHARS:
            raise IngestError(
                "invalid_idempotency_key", f"idempotency_key must be at most {MAX_KEY_CHARS} chars"
            )
        if len(locale) > 35:
            raise IngestError("invalid_locale", "locale is too long")
        if self.catalog.user(user_id) is None:
            raise IngestError("unknown_user", f"unknown user {user_id!r}")

    async def submit(
        self,
        user_id: str,
        text: str,
        idempotency_key: str = "",
        locale: str = "",
        *,
        resume_in_flight: bool = False,
    ) -> Submitted:
        """Opens the order (or finds the one this key opened). With resume_in_flight (the Kafka intake's
        redelivery of a record), a claim still in flight whose order exists is finished, not refused: the
        first attempt got as far as the order, and its IntentAccepted (same event id) is published again."""
        self.validate(user_id, text, idempotency_key, locale)
        order_id = new_order_id()
        if idempotency_key:
            fingerprint = hashlib.sha256(f"{user_id}\x00{text}\x00{locale}".encode()).hexdigest()
            outcome, order_id = await self._claim(
                keys=[_key(user_id, idempotency_key)],
                args=[
                    fingerprint,
                    order_id,
                    int(time.time() * 1000),
                    self.settings.idempotency_ttl_s,
                    STALE_CLAIM_MS,
                ],
            )
            if outcome == "conflict":
                raise IngestError(
                    "idempotency_conflict", "this idempotency key was used with a different request", order_id
                )
            if outcome == "in_flight" and not (
                resume_in_flight and await self.redis.exists(order_key(order_id))
            ):
                raise IngestError(
                    "request_in_flight", "a request with this idempotency key is in progress", order_id
                )
            if outcome == "done":
                return Submitted(order_id, Outcome.REPLAYED)
        user = self.catalog.users[user_id]
        locale = locale or user.locale
        at = now_iso()
        await self.store.create(order_id, user_id, text, locale, at, current_trace_id())
        accepted = ev.IntentAccepted(
            order_id=order_id,
            user_id=user_id,
            text=text,
            locale=locale,
            idempotency_key=idempotency_key,
            accepted_at_ms=int(time.time() * 1000),
        )
        try:
            async with asyncio.timeout(
                self.settings.edge_publish_timeout_s
            ):  # no extra task, unlike wait_for
                await self.publisher.publish(accepted, order_id)
        except (TimeoutError, *KAFKA_ERRORS) as exc:
            raise IngestError(
                "unavailable",
                "the event log did not take the intent in time; retry with the same idempotency_key",
                order_id,
            ) from exc
        if idempotency_key:
            await self.redis.hset(_key(user_id, idempotency_key), "state", "done")
        return Submitted(order_id, Outcome.CREATED)

    async def order_for_key(self, user_id: str, idempotency_key: str) -> str:
        order_id = await self.redis.hget(_key(user_id, idempotency_key), "order_id")
        if not order_id:
            raise IngestError("not_found", "no order was created with this idempotency key")
        return order_id

    def authenticate_intake(self, event: ev.IntentSubmitted, meta: EventMeta) -> None:
        """Raises PermanentError("unauthenticated: ...") unless the intent's assertion binds it and is
        valid now, or, for a replayed dead letter, was valid when it was dead-lettered."""
        try:
            at = None
            replay = meta.headers.get(REPLAY_HEADER)
            if replay:
                at = self.replays.checked_at(replay, event, meta.id)
            self.assertions.verify(
                event.user_assertion,
                user_id=event.user_id,
                idempotency_key=event.idempotency_key,
                text=event.text,
                at=at,
            )
        except (IntakeAssertionError, ReplayAssertionError) as exc:
            raise PermanentError(f"unauthenticated: {exc}") from exc

    def intake_router(self) -> EventRouter:
        router = EventRouter(INTENT_INTAKE)

        @router.on(ev.IntentSubmitted)
        async def on_submitted(event: ev.IntentSubmitted, ctx: EventContext) -> None:
            self.authenticate_intake(event, ctx.meta)
            try:
                await self.submit(
                    event.user_id, event.text, event.idempotency_key, event.locale, resume_in_flight=True
                )
            except IngestError as exc:
                if exc.code == "request_in_flight":  # claimed, its order not created yet: rewind, wait
                    raise RetryLater(exc.message) from exc
                if exc.code == "unavailable":
                    raise RetryLater(exc.message) from exc  # the broker: rewind, never dead-letter
                raise PermanentError(f"{exc.code}: {exc.message}") from exc

        return router
