"""LocalPlatform against the real Apache Kafka and valkey server, and supervision with stand-in services.

The stand-in is a tiny script (gRPC health SERVING on the service's port, GET /healthz for intent) so
start_services / wait_ready / kill / restart are tested without the real services.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.conftest import platform_on
from yiju.common.topics import ALL_TOPICS
from yiju_infra.local.broker import BrokerServer
from yiju_infra.local.platform import SERVICES, LocalPlatform, Ports, ServiceNotReadyError
from yiju_infra.local.processes import group_members, pid_running
from yiju_infra.local.state_unit import MARKER_KEY

pytestmark = pytest.mark.integration

STAND_IN = """
import json, os, signal, sys, threading
from pathlib import Path

name = sys.argv[1]
if os.environ.get("STAND_IN_CRASH") == name:
    sys.exit(f"{name}: stand-in crashing on purpose")
data_dir = Path(os.environ["YIJU_DATA_DIR"])
env = {k: v for k, v in os.environ.items() if k.startswith("YIJU_")}
(data_dir / f"{name}.env.json").write_text(json.dumps(env))

from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

port_var = {
    "intent": "YIJU_GRPC_PORT",
    "model_gateway": "YIJU_GATEWAY_PORT",
    "planning": "YIJU_PLANNING_PORT",
    "payment": "YIJU_PAYMENT_PORT",
    "fulfilment": "YIJU_FULFILMENT_PORT",
}[name]
server = grpc.server(futures.ThreadPoolExecutor(2))
servicer = health.HealthServicer()
servicer.set("", health_pb2.HealthCheckResponse.SERVING)
health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
server.add_insecure_port(f"127.0.0.1:{os.environ[port_var]}")
server.start()

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

if name == "intent":
    http = ThreadingHTTPServer(("127.0.0.1", int(os.environ["YIJU_HTTP_PORT"])), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
print(f"{name} stand-in up", flush=True)
while not stop.wait(0.5):
    pass
server.stop(0)
"""


def stand_in(tmp_path: Path) -> Callable[[str], list[str]]:
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    return lambda name: [sys.executable, str(script), name]


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


# ----- broker and Redis


async def test_start_infra_creates_topics_with_aof_redis_and_stops_clean(tmp_path: Path) -> None:
    platform = LocalPlatform.on_free_ports(tmp_path, auto_restart=False)
    try:
        created = await platform.start_infra()
        assert sorted(created) == sorted(ALL_TOPICS)
        assert {"broker", "redis", "topics"} <= set(platform.timings)

        admin = AIOKafkaAdminClient(bootstrap_servers=platform.bootstrap)
        await admin.start()
        try:
            assert set(ALL_TOPICS) <= set(await admin.list_topics())
            configs = await topic_settings(admin, ["yiju.plan.created.v1", "yiju.dlq.yiju-payment.v1"])
        finally:
            await admin.close()
        assert await platform.ensure_topics() == []  # idempotent
        event, dead = configs["yiju.plan.created.v1"], configs["yiju.dlq.yiju-payment.v1"]
        assert int(dead["retention.ms"]) > int(event["retention.ms"]) >= 24 * 3600 * 1000
        assert event["cleanup.policy"] == "delete" and event["min.insync.replicas"] == "1"
        assert (platform.data_dir / "kafka" / "data" / "meta.properties").is_file()  # formatted once

        client = aioredis.Redis.from_url(platform.redis_url, decode_responses=True)
        try:
            assert await client.ping()
            assert await client.config_get("appendonly") == {"appendonly": "yes"}
            assert await client.config_get("appendfsync") == {"appendfsync": "everysec"}
            assert await client.config_get("dir") == {"dir": str(platform.data_dir / "redis")}
        finally:
            await client.aclose()
        pids = platform.pids
        assert set(pids) == {"broker", "redis"}
    finally:
        await platform.stop_all()
    for pid in pids.values():
        assert not pid_running(pid) and group_members(pid) == []
    assert platform.pids == {}
    assert (tmp_path / "logs" / "broker.log").stat().st_size > 0
    assert (tmp_path / "logs" / "redis.log").stat().st_size > 0


async def redis_call(url: str, *command: str) -> object:
    """One command on a fresh connection (a restarted server closes the old ones)."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        return await client.execute_command(*command)
    finally:
        await client.aclose()


async def test_redis_keeps_state_across_restart_and_kill_9(
    tmp_path: Path, shared_kafka: BrokerServer
) -> None:
    platform = platform_on(shared_kafka, tmp_path, auto_restart=True)
    try:
        await platform.start_infra()
        url = platform.redis_url
        await redis_call(url, "SET", "graceful", "1")
        await platform.restart("redis")  # SIGTERM: valkey fsyncs the AOF on shutdown
        assert await redis_call(url, "GET", "graceful") == "1"

        await redis_call(url, "SET", "killed", "1")
        await asyncio.sleep(1.5)  # appendfsync everysec
        old_pid = platform.pids["redis"]
        platform.kill("redis")  # SIGKILL; the watcher brings it back
        await eventually(lambda: platform.restarts.get("redis") == 1 and platform.process("redis").is_alive)
        assert platform.pids["redis"] != old_pid
        for _ in range(100):  # until it accepts connections and has replayed the AOF
            try:
                if await redis_call(url, "GET", "killed") == "1":
                    break
            except (aioredis.ConnectionError, aioredis.ResponseError):
                pass
            await asyncio.sleep(0.05)
        assert await redis_call(url, "GET", "killed") == "1"
        assert await redis_call(url, "GET", "graceful") == "1"
    finally:
        await platform.stop_all()


async def topic_settings(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, dict[str, str]]:
    """The effective configuration of each topic (DescribeConfigs)."""
    described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
    out: dict[str, dict[str, str]] = {}
    for response in described:
        for resource in response.resources:
            out[resource[3]] = {entry[0]: entry[1] for entry in resource[4]}
    return out


async def read_all(bootstrap: str, topic: str) -> list[bytes]:
    """Every value in `topic`, read from the earliest offset with a fresh group-less consumer."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                return values
            values += [r.value for records in batch.values() for r in records if r.value is not None]
    finally:
        await consumer.stop()


async def test_kafka_keeps_its_log_across_a_restart_and_a_kill_9(tmp_path: Path) -> None:
    platform = LocalPlatform.on_free_ports(tmp_path, auto_restart=True, broker="kafka")
    topic = "yiju.plan.created.v1"
    try:
        await platform.start_infra()
        assert platform.broker is not None and platform.broker.durable
        cluster = platform.broker.cluster_id

        async def produce(value: bytes) -> None:
            producer = AIOKafkaProducer(
                bootstrap_servers=platform.bootstrap, acks="all", enable_idempotence=True
            )
            await producer.start()
            try:
                await producer.send_and_wait(topic, value, key=b"o-1")
            finally:
                await producer.stop()

        await produce(b"before-restart")
        await platform.restart("broker")  # SIGTERM: a controlled shutdown
        await produce(b"before-kill")
        old_pid = platform.pids["broker"]
        platform.kill("broker")  # SIGKILL; the watcher restarts it and Kafka recovers its log
        await eventually(lambda: platform.restarts.get("broker") == 1 and platform.process("broker").is_alive)
        assert platform.pids["broker"] != old_pid
        await platform.broker.wait_ready(60)
        await produce(b"after-kill")
        assert await read_all(platform.bootstrap, topic) == [b"before-restart", b"before-kill", b"after-kill"]
        assert platform.broker.cluster_id == cluster
    finally:
        await platform.stop_all()


async def test_redis_state_is_cleared_when_the_event_log_is_gone(tmp_path: Path) -> None:
    """The data dir is one unit: Redis state is never paired with a broker log that lacks its events."""

    async def boot() -> LocalPlatform:
        platform = LocalPlatform.on_free_ports(tmp_path, auto_restart=False, broker="kafka")
        await platform.start_infra()
        return platform

    platform = await boot()
    try:
        assert not platform.state_cleared  # a new data dir: nothing to clear
        await redis_call(platform.redis_url, "SET", "wallet:{u-1}", "remembered")
    finally:
        await platform.stop_all()
    platform = await boot()  # the same data dir: the same log, so the state stays
    try:
        assert not platform.state_cleared
        assert await redis_call(platform.redis_url, "GET", "wallet:{u-1}") == "remembered"
    finally:
        await platform.stop_all()
    shutil.rmtree(tmp_path / "kafka" / "data")  # the log is lost; Redis (AOF) still remembers
    platform = await boot()
    try:
        assert platform.state_cleared
        assert await redis_call(platform.redis_url, "GET", "wallet:{u-1}") is None
        assert await redis_call(platform.redis_url, "GET", MARKER_KEY) == platform.event_log_id()
    finally:
        await platform.stop_all()


# ----- services (stand-ins)


async def test_services_start_ready_restart_and_stop(tmp_path: Path) -> None:
    platform = LocalPlatform.on_free_ports(
        tmp_path, auto_restart=True, service_argv=stand_in(tmp_path), extra_env={"YIJU_EXTRA": "yes"}
    )
    seen: list[int] = []
    try:
        await platform.start_services()
        ready = await platform.wait_ready(timeout=60)
        assert list(ready) == list(SERVICES)
        seen += platform.pids.values()

        envs = {n: json.loads((tmp_path / f"{n}.env.json").read_text()) for n in SERVICES}
        assert len({e["YIJU_METRICS_PORT"] for e in envs.values()}) == len(SERVICES)
        for name, env in envs.items():
            assert env["YIJU_METRICS_PORT"] == str(platform.ports.metrics(name))
            assert env["YIJU_KAFKA_SESSION_TIMEOUT_MS"] == "3000"
            assert env["YIJU_KAFKA_HEARTBEAT_INTERVAL_MS"] == "1000"
            assert env["YIJU_EXTRA"] == "yes" and env["YIJU_KAFKA_BOOTSTRAP"] == platform.bootstrap
        async with httpx.AsyncClient(trust_env=False) as http:
            assert (await http.get(f"{platform.env()['YIJU_API_URL']}/healthz")).status_code == 200

        # a crash (kill -9) is noticed and restarted by the watcher
        old = platform.pids["planning"]
        platform.kill("planning")
        await eventually(
            lambda: platform.restarts.get("planning") == 1 and platform.process("planning").is_alive
        )
        await platform.wait_ready(["planning"], fail_fast=False)
        assert platform.pids["planning"] != old and not pid_running(old)

        # an explicit restart
        old = platform.pids["payment"]
        await platform.restart("payment")
        assert platform.pids["payment"] != old and not pid_running(old)
        assert "payment" not in platform.restarts  # not counted as a crash

        # a stopped service stays down
        await platform.stop("fulfilment")
        await asyncio.sleep(1.0)
        assert not platform.process("fulfilment").is_alive and "fulfilment" not in platform.restarts
        seen += platform.pids.values()
    finally:
        await platform.stop_all()
    assert platform.pids == {}
    assert not any(pid_running(pid) for pid in seen)


async def test_wait_ready_fails_fast_with_the_log_tail(tmp_path: Path) -> None:
    platform = LocalPlatform.on_free_ports(
        tmp_path,
        auto_restart=False,
        service_argv=stand_in(tmp_path),
        extra_env={"STAND_IN_CRASH": "planning"},
    )
    try:
        await platform.start_services(["planning"])
        began = time.monotonic()
        with pytest.raises(ServiceNotReadyError) as info:
            await platform.wait_ready(timeout=60)
        assert time.monotonic() - began < 10
        assert "crashing on purpose" in str(info.value) and "exited with code 1" in str(info.value)
    finally:
        await platform.stop_all()


async def test_watcher_backs_off_on_a_crash_loop(tmp_path: Path) -> None:
    platform = LocalPlatform.on_free_ports(
        tmp_path, auto_restart=True, service_argv=stand_in(tmp_path), extra_env={"STAND_IN_CRASH": "planning"}
    )
    try:
        await platform.start_services(["planning"])
        await asyncio.sleep(3.0)  # restarts after ~0.5 s and ~1.5 s more; the next only ~2 s later
        assert 1 <= platform.restarts.get("planning", 0) <= 3
        assert (tmp_path / "logs" / "planning.log").read_text().count("crashing on purpose") >= 2
    finally:
        await platform.stop_all()


# ----- python -m yiju_infra.local.run


def run_env(tmp_path: Path, ports: Ports) -> dict[str, str]:
    env = {**os.environ, "YIJU_DATA_DIR": str(tmp_path / "var"), "YIJU_LOCAL_SERVICES": "none"}
    env.update(
        YIJU_KAFKA_PORT=str(ports.kafka),
        YIJU_KAFKA_CONTROLLER_PORT=str(ports.kafka_controller),
        YIJU_REDIS_PORT=str(ports.redis),
        YIJU_HTTP_PORT=str(ports.http),
        YIJU_GRPC_PORT=str(ports.grpc),
        YIJU_METRICS_PORT_BASE=str(ports.metrics_base),
    )
    return env


def read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float = 120.0) -> str:
    assert proc.stdout is not None
    out = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in out:
        assert time.monotonic() < deadline, f"no {marker!r} in output: {out.decode()}"
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"run exited ({proc.wait()}) before {marker!r}: {out.decode()}"
            out += chunk
    return out.decode()


def infra_pids(output: str) -> list[int]:
    return [int(p) for p in re.findall(r"\bup on \S+ \(.*?pid (\d+)\)", output)]


def start_run(tmp_path: Path, ports: Ports) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "yiju_infra.local.run"],
        env=run_env(tmp_path, ports),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_stops_everything_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    ports = Ports.free()
    proc = start_run(tmp_path, ports)
    try:
        output = read_until(proc, "yiju is up")
        assert f"topics: {len(ALL_TOPICS)} created" in output
        assert f"broker up on 127.0.0.1:{ports.kafka}" in output
        pids = infra_pids(output)
        assert len(pids) == 2 and all(pid_running(p) for p in pids)
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not any(pid_running(p) for p in pids)


def test_run_killed_with_sigkill_leaves_no_process(tmp_path: Path) -> None:
    proc = start_run(tmp_path, Ports.free())
    try:
        pids = infra_pids(read_until(proc, "yiju is up"))
        assert len(pids) == 2
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(pid_running(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(pid_running(p) for p in pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_names_the_variable_of_a_taken_port(tmp_path: Path) -> None:
    ports = Ports.free()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports.kafka))
        sock.listen()
        result = subprocess.run(
            [sys.executable, "-m", "yiju_infra.local.run"],
            env=run_env(tmp_path, ports),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert "YIJU_KAFKA_PORT" in result.stderr and str(ports.kafka) in result.stderr
