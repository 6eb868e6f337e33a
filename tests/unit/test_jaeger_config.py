"""Jaeger's local config and ports (no binary needed): yiju_infra.local.jaeger."""

from __future__ import annotations

from pathlib import Path

import pytest

from yiju_infra.local.jaeger import Jaeger, JaegerPorts, render_config
from yiju_infra.local.processes import ephemeral_port_range


def test_ports_from_env_and_defaults() -> None:
    assert JaegerPorts.from_env({}) == JaegerPorts(4317, 4318, 16686, 16685)
    ports = JaegerPorts.from_env({"YIJU_JAEGER_OTLP_HTTP_PORT": "24318", "YIJU_JAEGER_QUERY_PORT": "26686"})
    assert (ports.otlp_http, ports.query, ports.otlp_grpc) == (24318, 26686, 4317)
    with pytest.raises(ValueError, match="YIJU_JAEGER_QUERY_PORT"):
        JaegerPorts.from_env({"YIJU_JAEGER_QUERY_PORT": "http"})


def test_free_ports_are_distinct_and_not_ephemeral() -> None:
    low, high = ephemeral_port_range()
    ports = JaegerPorts.free()
    values = [ports.otlp_grpc, ports.otlp_http, ports.query, ports.query_grpc]
    assert len(set(values)) == 4
    assert not any(low <= p <= high for p in values)


def test_config_binds_every_listener_to_loopback() -> None:
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load(render_config(JaegerPorts(21001, 21002, 21003, 21004)))
    otlp = config["receivers"]["otlp"]["protocols"]
    query = config["extensions"]["jaeger_query"]
    assert otlp["grpc"]["endpoint"] == "127.0.0.1:21001"
    assert otlp["http"]["endpoint"] == "127.0.0.1:21002"
    assert query["http"]["endpoint"] == "127.0.0.1:21003"
    assert query["grpc"]["endpoint"] == "127.0.0.1:21004"
    assert "memory" in config["extensions"]["jaeger_storage"]["backends"]["memstore"]
    assert config["service"]["telemetry"]["metrics"]["level"] == "none"  # no listener on :8888
    assert "ui" not in query
    with_ui = yaml.safe_load(render_config(JaegerPorts(), ui_assets="/srv/jaeger-ui"))
    assert with_ui["extensions"]["jaeger_query"]["ui"]["assets_path"] == "/srv/jaeger-ui"


def test_service_env_points_services_at_jaeger(tmp_path: Path) -> None:
    jaeger = Jaeger(tmp_path, JaegerPorts(21001, 21002, 21003, 21004), binary=Path("/bin/true"))
    assert jaeger.service_env() == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:21002",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:21002/v1/traces",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "YIJU_TRACE_QUERY_URL": "http://127.0.0.1:21003",
    }
