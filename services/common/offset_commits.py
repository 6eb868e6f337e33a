"""Committing a batch subscriber's offsets: after effect, at most every `kafka_commit_interval_ms`.

A batch's offsets may be committed once every record of it is handled and every event it emitted is
acknowledged (yiju.common.consumer). Committing after *every* batch is correct but costly: each commit
is an OffsetCommit request, which the broker's group coordinator writes to `__consumer_offsets`, and at a
few records a batch commits were about as many broker requests as the records themselves. Here a
subscriber records what it has handled, and the highest handled offset per partition is committed at
most once per interval: at the end of a batch when the interval has passed, else by one delayed flush.

What this keeps:
- **Commit after effect.** Only offsets of handled batches are committed, always explicitly (never
  "wherever the consumer's position is", which a fetch may already have moved past unhandled records).
- **At-least-once.** A crash, a rebalance or a failed commit redelivers at most the last interval's
  handled records; handlers are idempotent (de-duplication by event id, per-order state machines).
- **Order.** Commits run one at a time, and an offset never goes backwards.
- **A stop commits everything handled** (`close`): from then on every batch commits at once.

`kafka_commit_interval_ms = 0` commits after every batch (the behaviour before this module).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from yiju.common import kafka_client
from yiju.common.metrics import OFFSET_COMMITS

log = logging.getLogger(__name__)

Offsets = dict[tuple[str, int], int]  # (topic, partition) -> the next offset to read


class OffsetCommitter:
    def __init__(self, group: str, interval_ms: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.group = group
        self.interval_s = max(interval_ms, 0) / 1000
        self._clock = clock
        self._pending: Offsets = {}
        self._consumer: Any = None
        self._lock = asyncio.Lock()
        self._last = clock()
        self._later: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0  # commit requests this committer sent (yiju_offset_commits_total counts all)

    def handled(self, records: Sequence[Any], consumer: Any) -> None:
        """Marks a batch's records handled (every effect done): their offsets may now be committed."""
        self._consumer = consumer
        pending = self._pending
        for key, offset in kafka_client.next_offsets(records).items():
            if offset > pending.get(key, -1):
                pending[key] = offset

    async def after_batch(self) -> None:
        """Commits now when the interval has passed (or on close), else makes sure a flush follows."""
        if not self._pending:
            return
        due = self._last + self.interval_s - self._clock()
        if self._closing or due <= 0:
            await self.flush()
        elif self._later is None or self._later.done():
            self._later = asyncio.create_task(self._flush_later(due), name=f"commit-{self.group}")

    async def _flush_later(self, delay_s: float) -> None:
        """Flushes after `delay_s`, and again an interval later for as long as batches handled meanwhile
        (during the sleep or while the commit was in flight) are still pending: the last batch before a
        quiet spell is always committed, whatever moment it finished in."""
        while True:
            await asyncio.sleep(delay_s)
            await self.flush()
            if not self._pending or self._closing:
                return
            delay_s = max(self._last + self.interval_s - self._clock(), 0.0)

    async def flush(self) -> None:
        """Commits every handled offset not yet committed (one request; none when nothing is new)."""
        async with self._lock:
            if not self._pending or self._consumer is None:
                return
            offsets, self._pending = self._pending, {}
            self._last = self._clock()
            try:
                await kafka_client.commit_offsets(self._consumer, offsets)
            except asyncio.CancelledError:
                # close() cancelled a delayed flush mid-commit: its own flush sends them
                self._restore(offsets, retry=True)
                raise
            except Exception as exc:
                # A blip (or a consumer being closed): kept for the next commit unless a later batch moved
                # past them. A rebalance's refusal is dropped: the partition's new owner redelivers from
                # the last commit that landed.
                self._restore(offsets, retry=not isinstance(exc, kafka_client.REBALANCE_ERRORS))
                OFFSET_COMMITS.labels(self.group, "failed").inc()
                log.warning("offset commit failed", extra={"group": self.group, "error": repr(exc)})
                return
            self.commits += 1
            OFFSET_COMMITS.labels(self.group, "ok").inc()

    def _restore(self, offsets: Offsets, *, retry: bool) -> None:
        if not retry:
            return
        for key, offset in offsets.items():
            if offset > self._pending.get(key, -1):
                self._pending[key] = offset

    async def close(self) -> None:
        """On stop: commits what is handled, and every batch handled from now on at once."""
        self._closing = True
        if self._later is not None and not self._later.done():
            self._later.cancel()
        await self.flush()
