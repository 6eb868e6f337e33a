"""Planning's asynchronous model path: ask the gateway over Kafka, plan when it answers or at the deadline.

    IntentAccepted -> wait recorded (deadline) -> ParseRequested ... commit
    ParseCompleted ----------\\
                               > one outcome per order (SET NX) -> plan (subsidy, mandate) -> decision
    deadline (watcher) ------/

Nothing is reserved while the order waits: the subsidy is reserved when the plan is made, from the one
outcome that stands. After the deadline the order is planned by the rules backend (if configured) or
REJECTED with code `model_timeout`; an answer arriving later finds the decision and changes nothing.
An answer that says the call was lost (ParseCompleted.lost_reason: the gateway replica that made it is
gone, and the model is not called again) ends the wait the same way at once: the rules backend, or
REJECTED with code `model_call_lost`. A cancelled order (OrderCancelled remembered as its decision) is
never planned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from google.protobuf.message import Message
from prometheus_client import Counter

from yiju.common.broker import EventPublisher
from yiju.common.catalog import Catalog, User
from yiju.common.consumer import EventContext
from yiju.common.decisions import DecisionStore
from yiju.gen.events.v1 import order_events_pb2 as ev
from yiju.gen.gateway.v1 import gateway_pb2 as gw
from yiju.model_gateway.backends.base import Backend
from yiju.model_gateway.convert import result_from_pb
from yiju.model_gateway.tools import ParseRequest, ParseResult
from yiju.planning.config import PlanningSettings
from yiju.planning.model_waits import ModelWaits, Outcome, Wait
from yiju.planning.planner import Planner

log = logging.getLogger(__name__)

MODEL_OUTCOMES = Counter(
    "yiju_planning_model_outcomes_total",
    "How orders on the Kafka model path ended their wait: answered, rules (the deadline passed or the "
    "gateway lost the call: the rules backend), timed_out (deadline, rejected), lost (the gateway lost "
    "the call, rejected)",
    ["outcome"],
)


def now_ms() -> int:
    return int(time.time() * 1000)


class ModelPath:
    def __init__(
        self,
        planner: Planner,
        waits: ModelWaits,
        config: PlanningSettings,
        rules: Backend | None = None,
    ) -> None:
        self.planner = planner
        self.catalog: Catalog = planner.catalog
        self.decisions: DecisionStore = planner.decisions
        self.waits = waits
        self.config = config
        self.rules = rules if config.model_deadline_fallback == "rules" else None

    async def ask(self, event: ev.IntentAccepted, user: User, ctx: EventContext) -> None:
        """Records the wait (its first deadline stands) and asks the gateway; past the deadline already
        (a late redelivery or re-drive), decides at once instead."""
        now = now_ms()
        wait = Wait(
            order_id=event.order_id,
            user_id=user.id,
            text=event.text,
            locale=event.locale or user.locale,
            address_labels=tuple(user.addresses),
            deadline_ms=now + int(self.config.model_deadline_s * 1000),
            requested_at_ms=now,
        )
        deadline = await self.waits.open(wait)
        if now >= deadline:
            self._emit(await self.resolve(event.order_id, Outcome(None)), ctx)
            return
        request = gw.ParseIntentRequest(
            text=wait.text,
            locale=wait.locale,
            user_id=user.id,
            tenant_id=user.id,
            address_labels=list(wait.address_labels),
            request_id=event.order_id,
        )
        ctx.emit(
            ev.ParseRequested(
                order_id=event.order_id,
                user_id=user.id,
                request=request,
                deadline_ms=deadline,
                requested_at_ms=wait.requested_at_ms,
            ),
            event.order_id,
        )

    async def on_parse_completed(self, event: ev.ParseCompleted, ctx: EventContext) -> None:
        self._emit(await self.resolve(event.order_id, Outcome(event)), ctx)

    async def expire(self, order_id: str) -> Message | None:
        """The deadline passed: the decision (the answer's, if it came first); None if nothing waits."""
        return await self.resolve(order_id, Outcome(None))

    async def resolve(self, order_id: str, candidate: Outcome) -> Message | None:
        """The order's decision, made once from the outcome that stands first.

        Two round trips besides the plan's own: the decision read and the wait's settle leave together
        (neither depends on the other), and the list entry goes in the decision's write, after the SET
        NX in the same pipeline, so the watcher's entry is removed only after the decision was stored,
        as before. Only a SET that Redis refuses while the ZREM passes (out of memory: a ZREM is never
        refused) leaves an undecided order off the list; its handler fails and retries, and the sweeper
        re-drives it past the deadline (planning then decides at once), so it is not lost."""
        decision, settled = await asyncio.gather(
            self.decisions.get(order_id), self.waits.settle(order_id, candidate)
        )
        if decision is not None:
            await self.waits.close(order_id)  # a repeat (redelivery, both replicas' watchers): rare
            return decision
        if settled is None:  # never asked by this platform (or long expired): nothing to plan
            log.warning("model outcome for an order that is not waiting", extra={"order_id": order_id})
            await self.waits.close(order_id)  # nor for the deadline watcher to look at again
            return None
        wait, outcome = settled
        return await self.decisions.remember(
            order_id, await self._decide(wait, outcome), lambda pipe: self.waits.queue_close(pipe, order_id)
        )

    async def _decide(self, wait: Wait, outcome: Outcome) -> Message:
        user = self.catalog.user(wait.user_id)
        if user is None:
            return ev.PlanRejected(
                order_id=wait.order_id,
                user_id=wait.user_id,
                code="unknown_user",
                reason=f"unknown user {wait.user_id}",
            )
        lost = outcome.answer.lost_reason if outcome.answer is not None else ""
        if outcome.answer is not None and not lost:
            MODEL_OUTCOMES.labels("answered").inc()
            parsed = result_from_pb(outcome.answer.result)
        elif self.rules is not None:  # the deadline passed, or the gateway lost the call: the rules
            MODEL_OUTCOMES.labels("rules").inc()
            parsed = await self._rules(wait)
        elif lost:
            MODEL_OUTCOMES.labels("lost").inc()
            return ev.PlanRejected(
                order_id=wait.order_id, user_id=wait.user_id, code="model_call_lost", reason=lost
            )
        else:
            MODEL_OUTCOMES.labels("timed_out").inc()
            return ev.PlanRejected(
                order_id=wait.order_id,
                user_id=wait.user_id,
                code="model_timeout",
                reason=f"the model did not answer within {self.config.model_deadline_s:g} s",
            )
        return await self.planner.plan_from(wait.order_id, user, parsed)

    async def _rules(self, wait: Wait) -> ParseResult:
        assert self.rules is not None
        request = ParseRequest(
            text=wait.text,
            locale=wait.locale,
            tenant_id=wait.user_id,
            user_id=wait.user_id,
            address_labels=wait.address_labels,
        )
        [result] = await self.rules.parse([request])
        result.backend = result.backend or "rules"
        return result

    @staticmethod
    def _emit(decision: Message | None, ctx: EventContext) -> None:
        if decision is not None and not isinstance(decision, ev.OrderCancelled):
            ctx.emit(decision, decision.order_id)  # type: ignore[attr-defined]


class DeadlineWatcher:
    """Ends the waits whose deadline has passed: every replica scans (the outcome and the decision are
    set once, and a decision published twice has one event id), so one that dies loses nothing."""

    def __init__(self, path: ModelPath, publisher: EventPublisher, config: PlanningSettings) -> None:
        self.path = path
        self.publisher = publisher
        self.config = config
        self._task: asyncio.Task[None] | None = None

    async def scan_once(self, now: int | None = None) -> int:
        """Ends the due waits; returns how many it looked at."""
        due = await self.path.waits.due(now if now is not None else now_ms(), self.config.deadline_scan_batch)
        for order_id in due:
            decision = await self.path.expire(order_id)
            if decision is not None and not isinstance(decision, ev.OrderCancelled):
                await self.publisher.publish(decision, order_id)
            log.info("model deadline passed", extra={"order_id": order_id, "ended": type(decision).__name__})
        return len(due)

    async def run(self) -> None:
        while True:
            try:
                await self.scan_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or Kafka away: the waits stay listed, next scan
                log.warning("deadline scan failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.config.deadline_scan_interval_s)

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="planning-model-deadlines")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
