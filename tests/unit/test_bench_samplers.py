"""The benchmarks' "production" sampler is the chart's default, not a copy that drifts from it."""

from __future__ import annotations

import yaml

from yiju.common.settings import REPO_ROOT
from yiju_infra.bench.samplers import SAMPLERS, sampler_env


def test_the_production_sampler_is_the_charts_default() -> None:
    otel = yaml.safe_load((REPO_ROOT / "charts" / "yiju" / "values.yaml").read_text())["otel"]
    assert SAMPLERS["production"] == (otel["sampler"], otel["sampleRatio"])
    assert sampler_env("production") == {
        "YIJU_TRACE_SAMPLER": otel["sampler"],
        "YIJU_TRACE_SAMPLE_RATIO": f"{otel['sampleRatio']:g}",
    }
