"""The chaos monkey: SIGKILL a random service every few seconds, and Redis on schedule.

The broker is never killed: the local tansu keeps its log in memory (memory://) and would come back
empty, which is data loss by construction, not a finding. The platform's watcher restarts whatever dies.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from yiju_infra.local.platform import SERVICES, LocalPlatform

log = logging.getLogger(__name__)


@dataclass
class Kill:
    at_s: float  # seconds since the run began
    target: str
    pid: int


@dataclass
class Killer:
    """Kills a random live service every `every_s` (±50%); Redis at the given fractions of `duration_s`."""

    platform: LocalPlatform
    every_s: float
    duration_s: float
    redis_at: tuple[float, ...] = (0.4,)
    seed: int = 7
    began: float = field(default_factory=time.monotonic)
    kills: list[Kill] = field(default_factory=list)

    def kill_now(self, target: str) -> bool:
        """Kills `target` now if it is running; True if it did."""
        return self._kill(target)

    def _kill(self, target: str) -> bool:
        pid = self.platform.pids.get(target)
        if pid is None:  # down already (restarting): pick another time
            return False
        self.platform.kill(target)
        self.kills.append(Kill(round(time.monotonic() - self.began, 2), target, pid))
        log.warning("chaos: killed %s (pid %s)", target, pid)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        rng = random.Random(self.seed)
        redis_due = sorted(self.began + f * self.duration_s for f in self.redis_at)
        while not stop.is_set():
            wait = self.every_s * rng.uniform(0.5, 1.5)
            try:
                await asyncio.wait_for(stop.wait(), wait)
                return
            except TimeoutError:
                pass
            if redis_due and time.monotonic() >= redis_due[0] and self._kill("redis"):
                redis_due.pop(0)
                continue
            alive = [s for s in SERVICES if s in self.platform.pids]
            if alive:
                self._kill(rng.choice(alive))

    def by_target(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for kill in self.kills:
            out[kill.target] = out.get(kill.target, 0) + 1
        return out
