"""The head sampler: chosen by YIJU_TRACE_SAMPLER / OTEL_TRACES_SAMPLER, every trace by default, and a
sampled sentence is always a whole trace (children follow the parent's flag)."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from yiju.common.sampling import SamplerChoice, SamplerConfigError, choose_sampler, sampler_from_env

LOW_TRACE_ID = 0x0000000000000000_0000000000000001  # below any ratio's bound: sampled by ratio
HIGH_TRACE_ID = 0x0000000000000000_FFFFFFFFFFFFFFFF  # above any ratio < 1: dropped by ratio


def _root_decision(sampler: Sampler, trace_id: int) -> Decision:
    return sampler.should_sample(None, trace_id, "process yiju.intent.submitted.v1").decision


def _child_decision(sampler: Sampler, parent_sampled: bool, trace_id: int) -> Decision:
    parent = SpanContext(
        trace_id=trace_id,
        span_id=0x1234,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if parent_sampled else TraceFlags.DEFAULT),
    )
    context = trace.set_span_in_context(NonRecordingSpan(parent))
    return sampler.should_sample(context, trace_id, "send yiju.order.planned.v1").decision


def test_without_settings_every_trace_is_recorded() -> None:
    assert choose_sampler({}) == SamplerChoice("parentbased_always_on", None, "default")
    sampler = sampler_from_env({})
    assert _root_decision(sampler, HIGH_TRACE_ID) is Decision.RECORD_AND_SAMPLE


def test_yiju_ratio_sampler_decides_at_the_root_and_children_follow_the_parent() -> None:
    env = {"YIJU_TRACE_SAMPLER": "parentbased_traceidratio", "YIJU_TRACE_SAMPLE_RATIO": "0.05"}
    assert choose_sampler(env) == SamplerChoice("parentbased_traceidratio", 0.05, "yiju")
    sampler = sampler_from_env(env)
    assert _root_decision(sampler, LOW_TRACE_ID) is Decision.RECORD_AND_SAMPLE
    assert _root_decision(sampler, HIGH_TRACE_ID) is Decision.DROP
    # A later hop of a sampled sentence is recorded whatever its trace id, and one of a dropped one is not.
    assert _child_decision(sampler, True, HIGH_TRACE_ID) is Decision.RECORD_AND_SAMPLE
    assert _child_decision(sampler, False, LOW_TRACE_ID) is Decision.DROP


def test_the_standard_otel_variables_are_honoured() -> None:
    env = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    assert choose_sampler(env) == SamplerChoice("parentbased_traceidratio", 0.1, "otel")
    assert choose_sampler({"OTEL_TRACES_SAMPLER": "always_off"}).name == "always_off"
    assert (
        _root_decision(sampler_from_env({"OTEL_TRACES_SAMPLER": "always_off"}), LOW_TRACE_ID) is Decision.DROP
    )


def test_the_yiju_setting_wins_over_the_otel_one() -> None:
    env = {
        "YIJU_TRACE_SAMPLER": "parentbased_always_on",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
    }
    assert choose_sampler(env) == SamplerChoice("parentbased_always_on", None, "yiju")


def test_a_ratio_sampler_without_a_ratio_keeps_every_trace() -> None:
    assert choose_sampler({"YIJU_TRACE_SAMPLER": "traceidratio"}).ratio == 1.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"YIJU_TRACE_SAMPLER": "sometimes"}, "YIJU_TRACE_SAMPLER='sometimes': not one of"),
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "OTEL_TRACES_SAMPLER='jaeger_remote': not one of"),
        (
            {"YIJU_TRACE_SAMPLER": "parentbased_traceidratio", "YIJU_TRACE_SAMPLE_RATIO": "5%"},
            "YIJU_TRACE_SAMPLE_RATIO='5%': not a number",
        ),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"},
            "OTEL_TRACES_SAMPLER_ARG='1.5': a ratio must be between 0 and 1",
        ),
    ],
)
def test_a_bad_setting_is_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(SamplerConfigError, match=message.replace("(", r"\(")):
        choose_sampler(env)


def test_a_provider_with_the_ratio_sampler_records_whole_sampled_traces_only() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        sampler=sampler_from_env(
            {"YIJU_TRACE_SAMPLER": "parentbased_traceidratio", "YIJU_TRACE_SAMPLE_RATIO": "0.5"}
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for _ in range(200):
        root = tracer.start_span("process intake")
        child = tracer.start_span("send planned", context=trace.set_span_in_context(root))
        child.end()
        root.end()
    spans = exporter.get_finished_spans()
    by_trace: dict[int, int] = {}
    for span in spans:
        by_trace[span.context.trace_id] = by_trace.get(span.context.trace_id, 0) + 1
    # Half of the sentences, give or take chance (200 draws: 60..140 is over 8 sigma wide) ...
    assert 60 <= len(by_trace) <= 140
    # ... and each recorded one whole: root and child.
    assert set(by_trace.values()) == {2}
