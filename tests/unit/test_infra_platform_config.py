"""LocalPlatform configuration without starting anything: ports, environments, binaries, run options."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from yiju_infra.local import binaries
from yiju_infra.local.platform import SERVICES, LocalPlatform, PortInUseError, Ports
from yiju_infra.local.processes import ephemeral_port_range, port_is_free
from yiju_infra.local.run import parse_services


def test_ports_default_and_from_env() -> None:
    assert Ports.from_env({}) == Ports()
    assert Ports() == Ports(8080, 50051, 50052, 50053, 50054, 50055, 9092, 9093, 6379, 9101)
    ports = Ports.from_env({"YIJU_KAFKA_PORT": "19092", "YIJU_METRICS_PORT_BASE": "19101"})
    assert (
        ports.kafka == 19092 and ports.metrics("intent") == 19101 and ports.metrics("model_gateway") == 19105
    )
    with pytest.raises(ValueError, match="YIJU_HTTP_PORT"):
        Ports.from_env({"YIJU_HTTP_PORT": "eighty"})


def test_free_ports_are_distinct_and_free() -> None:
    ports = Ports.free()
    singles = [ports.http, ports.grpc, ports.gateway, ports.planning, ports.payment, ports.fulfilment]
    singles += [ports.kafka, ports.kafka_controller, ports.redis]
    metrics = [ports.metrics(s) for s in SERVICES]
    assert len(set(singles + metrics)) == len(singles) + len(SERVICES)
    assert all(port_is_free(p) for p in singles + metrics)
    low, high = ephemeral_port_range()  # outgoing connections take those: never listen there
    assert not [p for p in singles + metrics if low <= p <= high]
    assert [ports.health(s) for s in SERVICES] == [
        ports.grpc,
        ports.planning,
        ports.payment,
        ports.fulfilment,
        ports.gateway,
    ]


def test_service_env_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YIJU_KAFKA_BOOTSTRAP", "elsewhere:9092")  # the platform's own address wins
    monkeypatch.setenv("YIJU_KAFKA_HEARTBEAT_INTERVAL_MS", "1500")  # a tuning default the caller may change
    monkeypatch.setenv("YIJU_SOMETHING_ELSE", "kept")
    platform = LocalPlatform.on_free_ports(tmp_path, extra_env={"YIJU_GATEWAY_BACKENDS": "rules"})
    p = platform.ports
    envs = {name: platform.service_env(name) for name in SERVICES}
    for name, env in envs.items():
        assert env["YIJU_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{p.kafka}"
        assert env["YIJU_REDIS_URL"] == f"redis://127.0.0.1:{p.redis}/0"
        assert env["YIJU_DATA_DIR"] == str(tmp_path.resolve())
        assert env["YIJU_HTTP_PORT"] == str(p.http) and env["YIJU_GRPC_PORT"] == str(p.grpc)
        assert env["YIJU_GATEWAY_PORT"] == str(p.gateway) and env["YIJU_PLANNING_PORT"] == str(p.planning)
        assert env["YIJU_PAYMENT_PORT"] == str(p.payment) and env["YIJU_FULFILMENT_PORT"] == str(p.fulfilment)
        assert env["YIJU_METRICS_PORT"] == str(p.metrics(name))
        assert env["YIJU_KAFKA_SESSION_TIMEOUT_MS"] == "3000"
        assert env["YIJU_KAFKA_HEARTBEAT_INTERVAL_MS"] == "1500"
        assert env["YIJU_SOMETHING_ELSE"] == "kept" and env["YIJU_GATEWAY_BACKENDS"] == "rules"
        assert env["PATH"] == os.environ["PATH"]
    assert len({env["YIJU_METRICS_PORT"] for env in envs.values()}) == len(SERVICES)


def test_client_env_and_settings(tmp_path: Path) -> None:
    platform = LocalPlatform.on_free_ports(tmp_path, extra_env={"YIJU_KAFKA_PARTITIONS": "3"})
    p = platform.ports
    assert platform.env() == {
        "YIJU_HTTP_PORT": str(p.http),
        "YIJU_API_URL": f"http://127.0.0.1:{p.http}",
        "YIJU_GRPC_PORT": str(p.grpc),
        "YIJU_KAFKA_BOOTSTRAP": f"127.0.0.1:{p.kafka}",
        "YIJU_REDIS_URL": f"redis://127.0.0.1:{p.redis}/0",
        "YIJU_DATA_DIR": str(tmp_path.resolve()),
    }
    settings = platform.settings()
    assert settings.kafka_bootstrap == platform.bootstrap and settings.kafka_partitions == 3


def test_embedded_partitions_follow_the_largest_consumer_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("YIJU_KAFKA_PARTITIONS", raising=False)
    assert LocalPlatform.on_free_ports(tmp_path).partitions() == 1
    scaled = LocalPlatform.on_free_ports(tmp_path, replicas={"payment": 3, "intent": 2})
    assert scaled.partitions() == 3 and scaled.settings().kafka_partitions == 3
    assert scaled.service_env("planning")["YIJU_KAFKA_PARTITIONS"] == "3"
    monkeypatch.setenv("YIJU_KAFKA_PARTITIONS", "8")
    assert LocalPlatform.on_free_ports(tmp_path).settings().kafka_partitions == 8


def test_default_data_dir_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YIJU_DATA_DIR", str(tmp_path / "var"))
    assert LocalPlatform().data_dir == (tmp_path / "var").resolve()
    monkeypatch.delenv("YIJU_DATA_DIR")
    assert LocalPlatform().data_dir.name == ".var"


async def test_a_taken_port_names_its_variable(tmp_path: Path) -> None:
    platform = LocalPlatform.on_free_ports(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", platform.ports.planning))
        sock.listen()
        with pytest.raises(PortInUseError, match="YIJU_PLANNING_PORT"):
            await platform.start_services()
    assert platform.pids == {}  # nothing was spawned


def test_binaries_are_found_and_executable() -> None:
    for found in (binaries.tansu_bin(), binaries.redis_server_bin()):
        assert found.is_file() and os.access(found, os.X_OK)


def test_binary_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YIJU_TANSU_BIN", str(tmp_path / "missing"))
    with pytest.raises(binaries.BinaryNotFoundError, match="YIJU_TANSU_BIN"):
        binaries.tansu_bin()
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n")
    monkeypatch.setenv("YIJU_REDIS_BIN", str(fake))
    assert binaries.redis_server_bin() == fake and os.access(fake, os.X_OK)  # made executable


def test_parse_services() -> None:
    assert parse_services("all") == SERVICES and parse_services("") == SERVICES
    assert parse_services("none") == ()
    assert parse_services("intent, planning") == ("intent", "planning")
    with pytest.raises(ValueError, match="nope"):
        parse_services("intent,nope")
