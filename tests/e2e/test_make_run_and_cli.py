"""The platform started the way `make run` starts it, driven by the `yiju` CLI, then stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from yiju_infra.local.platform import Ports
from yiju_infra.local.processes import port_is_free

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def _port_env(ports: Ports, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "YIJU_DATA_DIR": str(data_dir),
        "YIJU_HTTP_PORT": str(ports.http),
        "YIJU_GRPC_PORT": str(ports.grpc),
        "YIJU_GATEWAY_PORT": str(ports.gateway),
        "YIJU_PLANNING_PORT": str(ports.planning),
        "YIJU_PAYMENT_PORT": str(ports.payment),
        "YIJU_FULFILMENT_PORT": str(ports.fulfilment),
        "YIJU_KAFKA_PORT": str(ports.kafka),
        "YIJU_REDIS_PORT": str(ports.redis),
        "YIJU_METRICS_PORT_BASE": str(ports.metrics_base),
    }


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    yiju = Path(sys.executable).with_name("yiju")
    return subprocess.run(
        [str(yiju), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory):
    ports = Ports.free()
    data_dir = tmp_path_factory.mktemp("make-run")
    env = _port_env(ports, data_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "yiju_infra.local.run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{ports.http}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("the platform did not become healthy in 120 s")
        yield env, ports, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def test_cli_order_completes_with_the_catalog_prices(running) -> None:
    env, _, _ = running
    result = _cli(
        env, "order", "order two bubble teas and a latte to my office", "--user", "u-1002", "--wait", "--json"
    )
    assert result.returncode == 0, result.stderr
    order = json.loads(result.stdout)
    assert order["status"] == "COMPLETED"
    assert [(ln["sku"], ln["quantity"]) for ln in order["lines"]] == [
        ("tea-brown-sugar-boba", 2),
        ("coffee-latte", 1),
    ]
    assert (order["subtotal_fen"], order["subsidy_fen"], order["total_fen"]) == (5200, 1000, 4200)
    assert order["payment"]["captured_fen"] == 4200
    assert len(order["trace_id"]) == 32
    status = _cli(env, "status", order["order_id"], "--user", "u-1002", "--json")
    assert json.loads(status.stdout)["status"] == "COMPLETED"


def test_cli_order_over_the_limit_is_rejected_and_nothing_charged(running) -> None:
    env, _, _ = running
    result = _cli(env, "order", "buy a flagship smartphone", "--user", "u-1002", "--wait", "--json")
    order = json.loads(result.stdout)
    assert order["status"] == "REJECTED"
    assert order["reason"]
    assert order["payment"]["captured_fen"] == 0
    assert result.returncode == 1  # an order that ends in a failure status


def test_readable_summary_without_json(running) -> None:
    env, _, _ = running
    result = _cli(env, "order", "来一杯美式咖啡", "--user", "u-1001", "--wait")
    assert result.returncode == 0, result.stderr
    assert "COMPLETED" in result.stdout
    assert "coffee-americano" in result.stdout or "americano" in result.stdout


def test_sigterm_stops_everything_and_frees_every_port(running) -> None:
    _, ports, proc = running
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    used = [
        p
        for p in (
            ports.http,
            ports.grpc,
            ports.gateway,
            ports.planning,
            ports.payment,
            ports.fulfilment,
            ports.kafka,
            ports.redis,
        )
        if not port_is_free(p)
    ]
    assert used == []
