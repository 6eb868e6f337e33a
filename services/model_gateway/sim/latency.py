"""Service time of a request: lognormal, given its median (p50) and 99th percentile (p99).

ln(T) ~ Normal(mu, sigma) with mu = ln(p50) and sigma = (ln(p99) - ln(p50)) / z(0.99), z(0.99) =
2.3263. The mean is p50 * exp(sigma^2 / 2): 1200 ms / 6000 ms gives sigma = 0.692, mean 1524 ms.

`SlowShare` picks the slow sentences (SimConfig.slow_rate): a stable draw per key (the order id the
gateway sends, else the sentence), so a sentence is slow or not whichever turn or replica asks.
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist

from yiju.model_gateway.sim.answers import stable_draw

Z_99 = NormalDist().inv_cdf(0.99)


class LognormalLatency:
    def __init__(self, p50_ms: float, p99_ms: float, rng: random.Random) -> None:
        self.mu = math.log(p50_ms / 1000.0)
        self.sigma = (math.log(p99_ms) - math.log(p50_ms)) / Z_99
        self._rng = rng

    @property
    def mean_s(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)

    def quantile_s(self, q: float) -> float:
        return math.exp(self.mu + self.sigma * NormalDist().inv_cdf(q))

    def sample_s(self) -> float:
        return self._rng.lognormvariate(self.mu, self.sigma)


class SlowShare:
    def __init__(self, rate: float, slow_ms: float, seed: int) -> None:
        self.rate = rate
        self.slow_s = slow_ms / 1000.0
        self.seed = seed

    def is_slow(self, key: str) -> bool:
        return self.rate > 0 and stable_draw(self.seed, key, "slow") < self.rate
