"""The head samplers the benchmarks run the platform with (YIJU_TRACE_SAMPLER / YIJU_TRACE_SAMPLE_RATIO)."""

from __future__ import annotations

# A local run's default (no chart): every sentence traced.
FULL_SAMPLER = ("parentbased_always_on", 1.0)
# The chart's production default (charts/yiju/values.yaml, otel.sampler): parent-based, 5 % of traces.
PRODUCTION_SAMPLER = "parentbased_traceidratio"
PRODUCTION_SAMPLE_RATIO = 0.05
SAMPLERS: dict[str, tuple[str, float]] = {
    "full": FULL_SAMPLER,
    "production": (PRODUCTION_SAMPLER, PRODUCTION_SAMPLE_RATIO),
}


def sampler_env(name: str) -> dict[str, str]:
    """The services' environment for the sampler called `name` (a key of SAMPLERS)."""
    sampler, ratio = SAMPLERS[name]
    return {"YIJU_TRACE_SAMPLER": sampler, "YIJU_TRACE_SAMPLE_RATIO": f"{ratio:g}"}
