"""The load test itself: send on schedule, watch completions, summarise each phase.

    async with LoadRunner(settings, catalog, LoadConfig(via="kafka", users=1000)) as runner:
        phase = await runner.run_phase(Constant(200, 60))
        await runner.drain(timeout_s=60)
        print(runner.phase_result(phase))

Every sentence gets an idempotency key `load-<run>-<n>`, so the watcher can tell this run's orders
from anything else on the platform. A phase ends when its schedule is done; `drain` waits for the
orders still in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from yiju.common.catalog import Catalog
from yiju.common.kafka_config import security_kwargs
from yiju.common.settings import Settings
from yiju.common.topics import Namespace
from yiju.loadgen.profiles import Profile, arrivals, expected_count
from yiju.loadgen.senders import Sender, SendError, Submission, make_sender
from yiju.loadgen.stats import summarize
from yiju.loadgen.users import Credentials, UserPool
from yiju.loadgen.watcher import COMPLETED, CompletionWatcher, Track, Tracker
from yiju.loadgen.workload import Workload

log = logging.getLogger(__name__)
YIELD_EVERY = 64  # sends between yields to the event loop when the schedule is behind


@dataclass
class LoadConfig:
    via: str = "kafka"  # http | grpc | kafka
    users: int = 1000  # synthetic users load-u-000001 ... (the platform needs YIJU_SYNTHETIC_USERS >= this)
    user_ids: tuple[str, ...] = ()  # or these users instead
    zipf_s: float = 1.1
    seed: int = 1
    poisson: bool = False
    http_client: str = "raw"  # raw | sdk
    connections: int = 128
    api_url: str = "http://127.0.0.1:8080"
    grpc_target: str = "127.0.0.1:50051"
    validate_sentences: bool = True
    max_total_fen: int | None = None
    # The completion watcher starts at the end of each topic (Apache Kafka) instead of reading every
    # topic from the beginning (needed on tansu, whose LATEST offsets are wrong); see
    # yiju.loadgen.watcher.reads_from_end.
    watch_from_end: bool = False


@dataclass
class Phase:
    index: int
    label: str
    profile: Profile
    started_ms: float = 0.0
    ended_ms: float = 0.0
    offered: int = 0
    send_errors: Counter[str] = field(default_factory=Counter)


def now_ms() -> float:
    return time.time() * 1000.0


class LoadRunner:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        config: LoadConfig,
        *,
        on_tick: Callable[[LoadRunner, Phase, float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.config = config
        self.on_tick = on_tick
        self.run_id = f"{time.strftime('%H%M%S')}{secrets.token_hex(2)}"
        self.tracker = Tracker(f"load-{self.run_id}-", now_ms())
        self.pool = UserPool(config.users, list(config.user_ids) or None, seed=config.seed)
        missing = [u for u in self.pool.ids[:1] + self.pool.ids[-1:] if catalog.user(u) is None]
        if missing:
            raise ValueError(
                f"user {missing[0]} is not in the catalog: start the platform with "
                f"YIJU_SYNTHETIC_USERS={config.users} (or more)"
            )
        self.workload = Workload.from_catalog(
            catalog,
            catalog.users[self.pool.ids[0]],
            zipf_s=config.zipf_s,
            seed=config.seed + 10,
            validate=config.validate_sentences,
            max_total_fen=config.max_total_fen,
        )
        self.credentials = Credentials(settings)
        kafka = {"bootstrap_servers": settings.kafka_bootstrap, **security_kwargs(settings)}
        self.sender: Sender = make_sender(
            config.via,
            self.credentials,
            api_url=config.api_url,
            grpc_target=config.grpc_target,
            producer_kwargs={**kafka, "client_id": "yiju-loadgen"},
            namespace=Namespace.of(settings),
            http_client=config.http_client,
            connections=config.connections,
        )
        self.watcher = CompletionWatcher(
            self.tracker,
            {**kafka, "client_id": "yiju-loadgen-watch"},
            Namespace.of(settings),
            from_end=config.watch_from_end,
        )
        self.phases: list[Phase] = []
        self._seq = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> LoadRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self.credentials.prime(self.pool.ids, assertions=self.config.via == "kafka")
        await self.watcher.start()  # positions established before the first sentence can be sent
        await self.sender.start()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.sender.close()
        await self.watcher.stop()

    # ----- sending

    async def run_phase(self, profile: Profile, label: str = "") -> Phase:
        """Offers `profile`'s load; returns when the schedule is done (orders may still be in flight)."""
        phase = Phase(len(self.phases), label or profile.describe(), profile)
        self.phases.append(phase)
        loop = asyncio.get_running_loop()
        ticker = asyncio.create_task(self._tick(phase, expected_count(profile)))
        t0 = loop.time()
        phase.started_ms = wall0 = now_ms()
        behind = 0
        try:
            for at in arrivals(
                profile, poisson=self.config.poisson, seed=self.config.seed + len(self.phases)
            ):
                delay = t0 + at - loop.time()
                if delay > 0.0005:
                    behind = 0
                    await asyncio.sleep(delay)
                else:
                    behind += 1
                    if behind % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                await self._dispatch(phase, wall0 + at * 1000.0)
        finally:
            phase.ended_ms = now_ms()
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        return phase

    async def _dispatch(self, phase: Phase, intended_ms: float) -> None:
        self._seq += 1
        key = f"{self.tracker.key_prefix}{self._seq:08d}"
        user = self.pool.draw()
        sentence = self.workload.draw()
        track = Track(key, user, phase.index, intended_ms)
        self.tracker.add(track)
        phase.offered += 1
        item = Submission(key, user, sentence.text, sentence.locale)
        if self.sender.inline:
            track.sent_ms = now_ms()
            try:
                await self.sender.submit(item)
            except Exception as exc:  # the producer refused at once (e.g. broker gone)
                self._failed(phase, track, SendError("send_failed", repr(exc)))
                return
            track.answered_ms = now_ms()
            return
        task = asyncio.create_task(self._submit(phase, track, item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _submit(self, phase: Phase, track: Track, item: Submission) -> None:
        track.sent_ms = now_ms()
        try:
            order_id = await self.sender.submit(item)
        except SendError as exc:
            self._failed(phase, track, exc)
            return
        except Exception as exc:
            self._failed(phase, track, SendError("send_failed", repr(exc)))
            return
        track.answered_ms = now_ms()
        if order_id:
            self.tracker.bind(track, order_id)

    def _failed(self, phase: Phase, track: Track, exc: SendError) -> None:
        phase.send_errors[exc.kind] += 1
        self.tracker.fail(track, exc.kind)

    def _collect_delivery_failures(self) -> None:
        failures = getattr(self.sender, "failures", None)
        while failures:
            key, kind = failures.pop()
            track = self.tracker.by_key.get(key)
            if track is not None:
                self.phases[track.phase].send_errors[kind] += 1
                self.tracker.fail(track, kind)

    async def _tick(self, phase: Phase, expected: int) -> None:
        while True:
            await asyncio.sleep(0.25)
            self._collect_delivery_failures()
            if self.on_tick is not None:
                self.on_tick(self, phase, expected)

    # ----- waiting

    @property
    def in_flight(self) -> int:
        return self.tracker.unsettled

    async def drain(
        self, timeout_s: float = 60.0, on_wait: Callable[[LoadRunner, float], None] | None = None
    ) -> bool:
        """Waits until every sentence sent so far has settled (or failed); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._collect_delivery_failures()
            if self.tracker.unsettled <= 0 and not self._tasks:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if on_wait is not None:
                on_wait(self, left)
            await asyncio.sleep(0.1)

    # ----- results

    def tracks(self, phase: Phase | None = None) -> list[Track]:
        if phase is None:
            return list(self.tracker.by_key.values())
        return [t for t in self.tracker.by_key.values() if t.phase == phase.index]

    def phase_result(self, phase: Phase, *, final: bool = False) -> dict[str, Any]:
        """The figures of one phase. `final`: unsettled orders count as lost (after the last drain)."""
        return summarize_tracks(
            self.tracks(phase),
            label=phase.label,
            duration_s=phase.profile.duration_s,
            window=(phase.started_ms, phase.ended_ms),
            send_errors=phase.send_errors,
            final=final,
        )

    def overall_result(self, *, final: bool = True) -> dict[str, Any]:
        start = min((p.started_ms for p in self.phases), default=0.0)
        end = max((p.ended_ms for p in self.phases), default=0.0)
        errors: Counter[str] = Counter()
        for p in self.phases:
            errors.update(p.send_errors)
        return summarize_tracks(
            self.tracks(),
            label="all",
            duration_s=sum(p.profile.duration_s for p in self.phases),
            window=(start, end),
            send_errors=errors,
            final=final,
        )


def summarize_tracks(
    tracks: list[Track],
    *,
    label: str,
    duration_s: float,
    window: tuple[float, float],
    send_errors: Counter[str],
    final: bool,
) -> dict[str, Any]:
    completed = [t for t in tracks if t.status == COMPLETED]
    statuses = Counter(t.status for t in tracks if t.status)
    unsettled = sum(1 for t in tracks if not t.settled)
    failed = sum(1 for t in tracks if t.error and not t.status)
    in_window = sum(1 for t in completed if window[0] <= t.done_ms <= window[1] + 1.0)
    duration = max(duration_s, 1e-9)
    return {
        "label": label,
        "duration_s": round(duration_s, 1),
        "offered": len(tracks),
        "offered_per_s": round(len(tracks) / duration, 1),
        "completed": len(completed),
        "completed_per_s": round(in_window / duration, 1),
        "statuses": dict(statuses),
        "send_errors": dict(send_errors),
        "failed": failed,
        "unsettled": 0 if final else unsettled,
        "lost": unsettled if final else 0,
        "duplicated": sum(t.duplicates for t in tracks),
        "latency_ms": summarize([t.done_ms - t.intended_ms for t in completed]),
        "pipeline_latency_ms": summarize([t.done_ms - t.accepted_ms for t in completed if t.accepted_ms]),
        "accept_latency_ms": summarize([t.accepted_ms - t.intended_ms for t in tracks if t.accepted_ms]),
        "send_lag_ms": summarize([t.sent_ms - t.intended_ms for t in tracks if t.sent_ms]),
        "captured_fen": sum(t.amount_fen for t in completed),
    }
