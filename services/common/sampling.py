"""Which traces a service records: the head sampler, chosen by the environment.

``YIJU_TRACE_SAMPLER`` names the sampler and ``YIJU_TRACE_SAMPLE_RATIO`` its ratio; where they are not
set, the standard ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` are honoured; with neither, every
trace is recorded (``parentbased_always_on``: local runs and the tests, which assert whole traces).

Production runs ``parentbased_traceidratio`` (the chart's default, ratio 0.05): the edge decides once per
sentence, from the trace id, and every later span (Kafka hops, gRPC calls) follows the parent's sampled
flag carried in ``traceparent``, so a sampled sentence is always one whole trace and an unsampled one
costs almost nothing (non-recording spans). A head sampler cannot know at the edge whether the order will
fail or be slow; keeping those is the OpenTelemetry Collector's tail sampling (the chart's
``otel.tailSampling``, docs/performance.md), which needs every span sent to it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

DEFAULT_SAMPLER = "parentbased_always_on"
RATIO_SAMPLERS = ("traceidratio", "parentbased_traceidratio")
SAMPLERS = ("always_on", "always_off", "parentbased_always_on", "parentbased_always_off", *RATIO_SAMPLERS)


class SamplerConfigError(ValueError):
    """The sampler's environment names an unknown sampler or a ratio outside [0, 1]."""


@dataclass(frozen=True)
class SamplerChoice:
    """The sampler's name, its ratio (for the ratio samplers, else None) and where the choice came from."""

    name: str
    ratio: float | None
    source: str

    def build(self) -> Sampler:
        if self.name == "always_on":
            return ALWAYS_ON
        if self.name == "always_off":
            return ALWAYS_OFF
        if self.name == "parentbased_always_on":
            return ParentBased(ALWAYS_ON)
        if self.name == "parentbased_always_off":
            return ParentBased(ALWAYS_OFF)
        ratio = TraceIdRatioBased(1.0 if self.ratio is None else self.ratio)
        return ratio if self.name == "traceidratio" else ParentBased(ratio)


def choose_sampler(environ: Mapping[str, str] | None = None) -> SamplerChoice:
    """The sampler the environment asks for: YIJU_TRACE_SAMPLER[/_SAMPLE_RATIO], else
    OTEL_TRACES_SAMPLER[/_ARG], else every trace. Raises SamplerConfigError on a bad value."""
    env = os.environ if environ is None else environ
    for name_var, ratio_var, source in (
        ("YIJU_TRACE_SAMPLER", "YIJU_TRACE_SAMPLE_RATIO", "yiju"),
        ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "otel"),
    ):
        name = env.get(name_var, "").strip().lower()
        if not name:
            continue
        if name not in SAMPLERS:
            raise SamplerConfigError(f"{name_var}={name!r}: not one of {', '.join(SAMPLERS)}")
        ratio = _ratio(env.get(ratio_var, ""), ratio_var) if name in RATIO_SAMPLERS else None
        return SamplerChoice(name, ratio, source)
    return SamplerChoice(DEFAULT_SAMPLER, None, "default")


def _ratio(raw: str, var: str) -> float:
    """The ratio of a ratio sampler; unset means 1.0 (every trace), as in the OpenTelemetry SDK."""
    if not raw.strip():
        return 1.0
    try:
        ratio = float(raw)
    except ValueError:
        raise SamplerConfigError(f"{var}={raw!r}: not a number") from None
    if not 0.0 <= ratio <= 1.0:
        raise SamplerConfigError(f"{var}={raw!r}: a ratio must be between 0 and 1")
    return ratio


def sampler_from_env(environ: Mapping[str, str] | None = None) -> Sampler:
    """The head sampler for this process (see choose_sampler)."""
    return choose_sampler(environ).build()
