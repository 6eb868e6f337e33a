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
        "YIJU_KAFKA_CONTROLLER_PORT": str(ports.kafka_controller),
        "YIJU_REDIS_PORT": str(ports.redis),
        # Where the CLI finds the broker and Redis (`yiju reconcile`, `yiju dlq`).
        "YIJU_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports.kafka}",
        "YIJU_REDIS_URL": f"redis://127.0.0.1:{ports.redis}/0",
        "YIJU_METRICS_PORT_BASE": str(ports.metrics_base),
    }


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    yiju = Path(sys.executable).with_name("yiju")
    return subprocess.run(
        [str(yiju), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def start_run(env: dict[str, str], ports: Ports) -> subprocess.Popen[str]:
    """`make run` (python -m yiju_infra.local.run) with `env`; returns once intent's /healthz is 200."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "yiju_infra.local.run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read() if proc.stdout else f"exited {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{ports.http}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise AssertionError("the platform did not become healthy in 180 s")


def stop_run(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, as Ctrl-C; returns what it printed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=90)
    return proc.stdout.read() if proc.stdout else ""


# Orders placed by the tests of the first run, checked again after the restarts.
PLACED: list[str] = []


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory):
    ports = Ports.free()
    data_dir = tmp_path_factory.mktemp("make-run")
    env = _port_env(ports, data_dir)
    proc = start_run(env, ports)
    try:
        yield env, ports, proc
    finally:
        stop_run(proc)


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
    PLACED.append(order["order_id"])
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


def processes_of(data_dir: Path, redis_port: int) -> list[int]:
    """Every process whose environment names `data_dir` (the supervisor, the broker, the services), and
    the Redis server on `redis_port` (it overwrites its environment with its process title,
    "valkey-server 127.0.0.1:PORT")."""
    wanted = f"YIJU_DATA_DIR={data_dir}".encode()
    title = f"127.0.0.1:{redis_port}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                cmdline = (entry / "cmdline").read_bytes()
                if wanted in environ or (b"-server" in cmdline and title in cmdline):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_a_second_run_on_the_same_data_dir_keeps_events_state_and_orders(running) -> None:
    """The data dir is one unit: after a stop, and after a kill -9 of every process, `make run` on it
    again shows the old orders and `yiju reconcile` finds events and Redis in agreement."""
    env, ports, first = running
    assert first.poll() is not None, "runs after test_sigterm_stops_everything_and_frees_every_port"
    assert PLACED, "runs after test_cli_order_completes_with_the_catalog_prices"
    proc = start_run(env, ports)
    try:
        status = _cli(env, "status", PLACED[0], "--user", "u-1002", "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["status"] == "COMPLETED", status.stderr
        reconciled = _cli(env, "reconcile")
        assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
        assert "events read" in reconciled.stdout and not reconciled.stdout.startswith("0 events")
        placed = _cli(env, "order", "one jasmine green tea", "--user", "u-1002", "--wait", "--json")
        assert placed.returncode == 0, placed.stderr
        PLACED.append(json.loads(placed.stdout)["order_id"])
        assert "starting clean" not in stop_run_output_so_far(proc)
        victims = processes_of(Path(env["YIJU_DATA_DIR"]), ports.redis)
        names = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:80] for pid in victims]
        assert len(victims) >= 8, names  # supervisor, Kafka, Redis, five services
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while processes_of(Path(env["YIJU_DATA_DIR"]), ports.redis) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc = start_run(env, ports)
        for order_id in PLACED:
            status = _cli(env, "status", order_id, "--user", "u-1002", "--json")
            assert json.loads(status.stdout)["status"] == "COMPLETED", status.stdout + status.stderr
        trace = _cli(env, "trace", PLACED[0], "--user", "u-1002", "--json")  # from the first run
        assert trace.returncode == 0, trace.stderr
        assert {s["service"] for s in json.loads(trace.stdout)["spans"]} >= {"intent", "payment"}
        dead = _cli(env, "dlq", "list", "--json")  # the dead-letter topics are still there to read
        assert dead.returncode == 0 and isinstance(json.loads(dead.stdout), list), dead.stderr
        reconciled = _cli(env, "reconcile")
        assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    finally:
        output = stop_run(proc)
    assert "starting clean" not in output


def stop_run_output_so_far(proc: subprocess.Popen[str]) -> str:
    """What the run printed until now, without blocking (its stdout is a pipe)."""
    import select

    assert proc.stdout is not None
    out = ""
    while select.select([proc.stdout], [], [], 0)[0]:
        chunk = os.read(proc.stdout.fileno(), 65536).decode(errors="replace")
        if not chunk:
            break
        out += chunk
    return out
