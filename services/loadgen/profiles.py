"""Offered-load profiles (sentences per second over time) and the open-loop arrival schedule.

A profile is only a rate as a function of time; `arrivals` turns it into intended send times, evenly
spaced at the current rate or as a Poisson process. The generator sends each sentence at its intended
time whatever happened to the previous ones (open loop).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


class Profile(Protocol):
    @property
    def duration_s(self) -> float: ...

    def rate(self, t: float) -> float:
        """Offered sentences per second at `t` seconds after the start."""
        ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Constant:
    rate_per_s: float
    duration_s: float

    def rate(self, t: float) -> float:
        return self.rate_per_s

    def describe(self) -> str:
        return f"constant {self.rate_per_s:g}/s for {self.duration_s:g}s"


@dataclass(frozen=True)
class Ramp:
    """From `start` to `end` sentences/s, linearly, over `duration_s`."""

    start: float
    end: float
    duration_s: float

    def rate(self, t: float) -> float:
        if self.duration_s <= 0:
            return self.end
        return self.start + (self.end - self.start) * min(max(t / self.duration_s, 0.0), 1.0)

    def describe(self) -> str:
        return f"ramp {self.start:g}/s -> {self.end:g}/s over {self.duration_s:g}s"


@dataclass(frozen=True)
class Spike:
    """Festival midnight: `base`/s, then up to `factor` x base within `rise_s` (at most 10 s), held for
    `hold_s`, back down over `fall_s`, then base again until `duration_s`."""

    base: float
    duration_s: float
    factor: float = 10.0
    at_s: float = 10.0
    rise_s: float = 10.0
    hold_s: float = 10.0
    fall_s: float = 5.0

    def rate(self, t: float) -> float:
        peak = self.base * self.factor
        if t < self.at_s:
            return self.base
        t -= self.at_s
        if t < self.rise_s:
            return self.base + (peak - self.base) * t / self.rise_s
        t -= self.rise_s
        if t < self.hold_s:
            return peak
        t -= self.hold_s
        if t < self.fall_s:
            return peak - (peak - self.base) * t / self.fall_s
        return self.base

    def describe(self) -> str:
        return (
            f"spike {self.base:g}/s -> {self.base * self.factor:g}/s at {self.at_s:g}s "
            f"(rise {self.rise_s:g}s, hold {self.hold_s:g}s), {self.duration_s:g}s in all"
        )


@dataclass(frozen=True)
class Steps:
    """Piecewise constant: (rate, seconds) one after another."""

    steps: tuple[tuple[float, float], ...]

    @property
    def duration_s(self) -> float:
        return sum(d for _, d in self.steps)

    def rate(self, t: float) -> float:
        for rate, seconds in self.steps:
            if t < seconds:
                return rate
            t -= seconds
        return self.steps[-1][0] if self.steps else 0.0

    def describe(self) -> str:
        return "steps " + ", ".join(f"{r:g}/s x {d:g}s" for r, d in self.steps)


def parse_steps(text: str) -> Steps:
    """'100:30,200:30' -> Steps(((100, 30), (200, 30)))."""
    pairs: list[tuple[float, float]] = []
    for part in text.split(","):
        rate, _, seconds = part.strip().partition(":")
        if not seconds:
            raise ValueError(f"step {part!r} is not RATE:SECONDS")
        pairs.append((float(rate), float(seconds)))
    if not pairs:
        raise ValueError("no steps given")
    return Steps(tuple(pairs))


def arrivals(profile: Profile, *, poisson: bool = False, seed: int = 17) -> Iterator[float]:
    """Intended send times (seconds from the start) for `profile`."""
    rng = random.Random(seed)
    t = 0.0
    end = profile.duration_s
    while t < end - 1e-9:
        rate = profile.rate(t)
        if rate <= 0:
            t += 0.01
            continue
        yield t
        t += rng.expovariate(rate) if poisson else 1.0 / rate


def expected_count(profile: Profile, dt: float = 0.01) -> int:
    """About how many sentences the profile offers (for progress bars)."""
    steps = int(profile.duration_s / dt)
    return round(sum(profile.rate(i * dt) * dt for i in range(steps)))
