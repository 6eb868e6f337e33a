"""The per-sentence budget's arithmetic (yiju_infra.bench.budget): counters read from a service's
Prometheus text, spans tallied by window and kind, the idle rate netted out, and a py-spy profile split
by what the time was spent on."""

from __future__ import annotations

import orjson
import pytest

from yiju_infra.bench.budget import per_sentence
from yiju_infra.bench.budget_counts import redis_counts, service_counts, tally_spans
from yiju_infra.bench.profile_split import shares, split_profile, stack_category

EXPOSITION = """\
# HELP yiju_events_published_total Events published
# TYPE yiju_events_published_total counter
yiju_events_published_total{topic="yiju.plan.created.v1"} 7.0
yiju_events_published_total{topic="yiju.dlq.yiju-planning.v1"} 1.0
# HELP yiju_events_consumed_total Records handled, by outcome
# TYPE yiju_events_consumed_total counter
yiju_events_consumed_total{group="yiju-planning",outcome="ok",topic="yiju.intent.accepted.v1"} 8.0
# HELP yiju_redis_round_trips_total Requests written to Redis
# TYPE yiju_redis_round_trips_total counter
yiju_redis_round_trips_total 12.0
# HELP yiju_redis_commands_total Commands sent to Redis
# TYPE yiju_redis_commands_total counter
yiju_redis_commands_total 40.0
# HELP yiju_handler_seconds Time to handle one record
# TYPE yiju_handler_seconds histogram
yiju_handler_seconds_count{group="yiju-planning",topic="yiju.intent.accepted.v1"} 8.0
"""


def test_service_counts_sum_every_label() -> None:
    assert service_counts(EXPOSITION) == {
        "produces": 8.0,
        "consumes": 8.0,
        "redis_round_trips": 12.0,
        "redis_client_commands": 40.0,
    }


def test_redis_counts_read_commandstats_and_stats() -> None:
    counts = redis_counts(
        {"cmdstat_get": {"calls": 5, "usec": 10}, "cmdstat_evalsha": {"calls": 2}},
        {"total_commands_processed": 9, "total_reads_processed": 4},
    )
    assert counts == {"calls:get": 5.0, "calls:evalsha": 2.0, "commands": 9.0, "reads": 4.0}


def _span(start_ns: int, name: str, attributes: dict[str, object], kind: str = "INTERNAL") -> bytes:
    return orjson.dumps(
        {
            "trace_id": f"t{start_ns % 2}",
            "service": "planning",
            "name": name,
            "kind": kind,
            "start_ns": start_ns,
        }
        | {"attributes": attributes}
    )


def test_spans_are_tallied_inside_the_window_by_kind() -> None:
    lines = [
        _span(
            5,
            "send p-1.yiju.plan.created.v1",
            {"messaging.system": "kafka", "messaging.operation.type": "send"},
        ),
        _span(
            6,
            "process p-1.yiju.intent.accepted.v1",
            {"messaging.system": "kafka", "messaging.operation.type": "process"},
        ),
        _span(7, "/yiju.gateway.v1.ModelGatewayService/ParseIntent", {"rpc.system": "grpc"}, "CLIENT"),
        _span(8, "parse intent batch", {}),
        _span(
            99,
            "send p-1.yiju.plan.created.v1",
            {"messaging.system": "kafka", "messaging.operation.type": "send"},
        ),
        b"",
    ]
    tally = tally_spans(lines, start_ns=0, end_ns=50)
    assert tally.total == 4
    assert dict(tally.by_kind) == {"kafka send": 1, "kafka process": 1, "grpc client": 1, "internal": 1}
    assert tally.by_name["planning: send yiju.plan.created.v1"] == 1  # the namespace prefix dropped
    assert dict(tally.grpc_calls) == {"/yiju.gateway.v1.ModelGatewayService/ParseIntent": 1}
    assert tally.traces == {"t0", "t1"}


def _window(seconds: float, produces: float, spans: float, cpu_s: dict[str, float]) -> dict[str, object]:
    return {
        "seconds": seconds,
        "produces": produces,
        "consumes": produces * 2,
        "redis_round_trips": 0.0,
        "redis_client_commands": 0.0,
        "redis_server_commands": 0.0,
        "spans": spans,
        "grpc_calls": 0.0,
        "traces": 100,
        **{
            key: {}
            for key in (
                "produces_by_service",
                "consumes_by_service",
                "redis_round_trips_by_service",
                "redis_by_command",
                "spans_by_service",
                "spans_by_kind",
                "spans_by_name",
                "grpc_by_method",
            )
        },
        "cpu_s": cpu_s,
    }


def test_the_idle_rate_is_netted_out_and_cpu_counts_the_platform_only() -> None:
    idle = _window(5.0, produces=10.0, spans=0.0, cpu_s={"broker": 1.0, "loadgen": 0.1})
    load = _window(10.0, produces=520.0, spans=1500.0, cpu_s={"broker": 0.5, "intent": 0.3, "loadgen": 0.2})
    budget = per_sentence(load, idle, sentences=100)
    assert budget["produces"] == 5.0  # (520 - 10 x 10/5) / 100
    assert budget["spans"] == 15.0
    assert budget["traces_per_sentence"] == 1.0
    assert budget["cpu_ms_by_process"] == {"broker": 5.0, "intent": 3.0, "loadgen": 2.0}
    assert budget["cpu_ms_per_sentence"] == 8.0  # without the load generator


RUNNER = "Runner.run (/usr/lib/python3.11/asyncio/runners.py:118)"
HANDLE = "BatchProcessor._handle_one (/work/main/services/common/consumer.py:216)"
HANDLER = "on_submitted (/work/main/services/intent/ingest.py:191)"
SITE = "/work/main/.venv/lib/python3.11/site-packages"


@pytest.mark.parametrize(
    ("stack", "category"),
    [
        (f"{RUNNER};{HANDLE};Tracer.start_span ({SITE}/opentelemetry/sdk/trace/__init__.py:1200)", "spans"),
        (f"{RUNNER};{HANDLE};{HANDLER};execute ({SITE}/redis/asyncio/client.py:1)", "redis"),
        (
            f"{RUNNER};send ({SITE}/aiokafka/producer/producer.py:1);send (/usr/lib/python3.11/socket.py:1)",
            "kafka client",
        ),
        (f"{RUNNER};{HANDLE};{HANDLER};SerializeToString ({SITE}/google/protobuf/message.py:1)", "protobuf"),
        (f"{RUNNER};{HANDLE};{HANDLER}", "handler code"),
        (f"{RUNNER};{HANDLE}", "consumer/publisher"),
        (f"{RUNNER};span_to_dict (/work/main/services/common/telemetry.py:58)", "spans"),
        (RUNNER, "event loop"),
        ("<module> (<frozen runpy>:88)", "other"),
    ],
)
def test_a_sample_belongs_to_the_innermost_known_library(stack: str, category: str) -> None:
    assert stack_category(stack) == category


def test_a_profile_splits_into_shares() -> None:
    lines = [
        f"{RUNNER};{HANDLE};{HANDLER} 6",
        f"{RUNNER};{HANDLE};Tracer.start_span ({SITE}/opentelemetry/sdk/trace/__init__.py:1200) 3",
        f"{RUNNER} 1",
        "not a sample line",
    ]
    assert shares(split_profile(lines)) == {"handler code": 0.6, "spans": 0.3, "event loop": 0.1}
