"""`LocalPlatform`: the broker, Redis and the five services as supervised local processes.

One object knows every port and the data dir. Typical use (async, from the main thread)::

    async with LocalPlatform.on_free_ports(tmp_path) as platform:
        await platform.start()  # = start_infra(), start_services(), wait_ready()
        ...  # platform.env() is what a client (the CLI, a test) needs

With `auto_restart` a watcher task restarts any process that exits without being asked to, with
exponential backoff (0.5 s doubling to 10 s; reset after 30 s of uptime), and logs it.

`replicas={"intent": 2, "payment": 2}` runs more processes of a Kafka-consuming service: replica k is
the process "NAME#k", in the same consumer groups (so the partitions are split between them), on its
own free gRPC (and, for intent, HTTP) and metrics ports; clients keep using the first one's ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from yiju_infra.local.broker import BrokerServer, broker_kind, create_broker
from yiju_infra.local.processes import (
    ManagedProcess,
    free_port,
    port_accepts_async,
    port_is_free,
    ports_from_env,
)
from yiju_infra.local.redis_server import RedisServer

if TYPE_CHECKING:
    from yiju.common.settings import Settings

log = logging.getLogger(__name__)

SERVICES: tuple[str, ...] = ("intent", "planning", "payment", "fulfilment", "model_gateway")
INFRA: tuple[str, ...] = ("broker", "redis")
HOST = "127.0.0.1"

# Ports field -> the environment variable that sets it (and that services read, for the first six).
PORT_ENV: dict[str, str] = {
    "http": "YIJU_HTTP_PORT",
    "grpc": "YIJU_GRPC_PORT",
    "gateway": "YIJU_GATEWAY_PORT",
    "planning": "YIJU_PLANNING_PORT",
    "payment": "YIJU_PAYMENT_PORT",
    "fulfilment": "YIJU_FULFILMENT_PORT",
    "kafka": "YIJU_KAFKA_PORT",
    "kafka_controller": "YIJU_KAFKA_CONTROLLER_PORT",
    "redis": "YIJU_REDIS_PORT",
    "metrics_base": "YIJU_METRICS_PORT_BASE",
}

# The Ports field holding each service's gRPC (health) port.
HEALTH_PORT_FIELD: dict[str, str] = {
    "intent": "grpc",
    "model_gateway": "gateway",
    "planning": "planning",
    "payment": "payment",
    "fulfilment": "fulfilment",
}

# Services whose work comes from Kafka consumer groups, so that more processes share it (replicas).
REPLICABLE: tuple[str, ...] = ("intent", "planning", "payment", "fulfilment", "model_gateway")
# The port variables a replica gets its own free value for (besides YIJU_METRICS_PORT); the first
# is where its gRPC health answers.
REPLICA_PORT_ENV: dict[str, tuple[str, ...]] = {
    "intent": ("YIJU_GRPC_PORT", "YIJU_HTTP_PORT"),
    "planning": ("YIJU_PLANNING_PORT",),
    "payment": ("YIJU_PAYMENT_PORT",),
    "fulfilment": ("YIJU_FULFILMENT_PORT",),
    # The gateway's replicas share its Kafka work (ParseRequested); gRPC callers reach the first one.
    "model_gateway": ("YIJU_GATEWAY_PORT",),
}


def replica_name(service: str, index: int) -> str:
    """The process name of replica `index` (1-based) of `service`: the service itself, then NAME#2 ..."""
    return service if index <= 1 else f"{service}#{index}"


def service_of(name: str) -> str:
    """The service a process name belongs to ("intent#2" -> "intent")."""
    return name.split("#", 1)[0]


# Defaults for every service that the caller's environment may override (the platform's addresses may not).
SERVICE_ENV_DEFAULTS: dict[str, str] = {
    "YIJU_KAFKA_SESSION_TIMEOUT_MS": "3000",
    "YIJU_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
    "PYTHONUNBUFFERED": "1",
}

_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 10.0
_HEALTHY_UPTIME_S = 30.0
_WATCH_INTERVAL_S = 0.2


class PortInUseError(RuntimeError):
    """A port the platform needs is taken; the message names the variable that moves it."""


class ServiceNotReadyError(RuntimeError):
    """A service exited or did not become healthy in time; the message carries its log tail."""


@dataclass(frozen=True)
class Ports:
    """Every port of the local platform (all on 127.0.0.1)."""

    http: int = 8080
    grpc: int = 50051
    gateway: int = 50052
    planning: int = 50053
    payment: int = 50054
    fulfilment: int = 50055
    kafka: int = 9092
    kafka_controller: int = 9093
    redis: int = 6379
    metrics_base: int = 9101

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Ports:
        """Defaults overridden by YIJU_HTTP_PORT, ..., YIJU_METRICS_PORT_BASE."""
        return cls(**ports_from_env(PORT_ENV, os.environ if environ is None else environ))

    @classmethod
    def free(cls) -> Ports:
        """Ports nothing listens on now, all distinct and outside the ephemeral range (see `free_port`);
        metrics_base..+4 consecutive (for tests)."""
        values: dict[str, int] = {}
        for f in fields(cls):
            if f.name != "metrics_base":
                values[f.name] = free_port(HOST, avoid=values.values())
        taken = set(values.values())
        for _ in range(200):
            base = free_port(HOST, avoid=taken)
            block = range(base, base + len(SERVICES))
            if all(p not in taken and port_is_free(p) for p in block):
                values["metrics_base"] = base
                return cls(**values)
        raise RuntimeError("found no block of free consecutive ports for metrics")

    def metrics(self, service: str) -> int:
        """The metrics port of `service`: metrics_base + its index in SERVICES."""
        return self.metrics_base + SERVICES.index(service)

    def health(self, service: str) -> int:
        """The gRPC port of `service` (where grpc.health.v1 answers)."""
        return int(getattr(self, HEALTH_PORT_FIELD[service]))


@dataclass
class _Backoff:
    failures: int = 0
    due: float | None = None


async def grpc_serving(port: int, host: str = HOST, timeout: float = 1.0) -> bool:
    """True if grpc.health.v1 Check(service="") on host:port answers SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if not await port_accepts_async(port, host, timeout):
        return False
    options = [("grpc.enable_http_proxy", 0)]
    async with grpc.aio.insecure_channel(f"{host}:{port}", options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


async def http_healthy(url: str, timeout: float = 2.0) -> bool:
    """True if GET `url` answers 200."""
    import httpx

    try:
        async with httpx.AsyncClient(trust_env=False, timeout=timeout) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


def _default_data_dir() -> Path:
    from yiju.common.settings import REPO_ROOT

    return Path(os.environ.get("YIJU_DATA_DIR") or REPO_ROOT / ".var")


class LocalPlatform:
    """Starts, watches, restarts and stops the broker, Redis and the services on one machine."""

    def __init__(
        self,
        data_dir: Path | str | None = None,
        ports: Ports | None = None,
        *,
        extra_env: Mapping[str, str] | None = None,
        auto_restart: bool = True,
        kafka_storage: str | None = None,
        broker: str | None = None,
        kafka_bootstrap: str | None = None,
        namespace: str | None = None,
        service_argv: Callable[[str], Sequence[str]] | None = None,
        replicas: Mapping[str, int] | None = None,
    ) -> None:
        """`extra_env` goes to every service (over everything else); `service_argv(name)` replaces the
        default command `sys.executable -m yiju.<name>` (for stand-ins in tests); `replicas` runs that
        many processes of a Kafka-consuming service (see the module docstring).

        `broker` is `kafka` or `tansu` (default: $YIJU_BROKER, see `broker_kind`). With
        `kafka_bootstrap` the platform starts no broker and uses that one (e.g. one Kafka shared by a
        whole test session); `namespace` then prefixes its topics and consumer groups
        (YIJU_KAFKA_TOPIC_PREFIX / YIJU_KAFKA_GROUP_PREFIX), so platforms sharing a broker never see
        each other's events. A platform on a shared broker gets a random namespace unless one is given.
        """
        self.data_dir = Path(data_dir if data_dir is not None else _default_data_dir()).resolve()
        self.ports = ports if ports is not None else Ports.from_env()
        self.extra_env = dict(extra_env or {})
        self.auto_restart = auto_restart
        self.kafka_storage = kafka_storage
        self.broker_kind = "external" if kafka_bootstrap else (broker or broker_kind())
        self.external_bootstrap = kafka_bootstrap
        if namespace is None and kafka_bootstrap:
            namespace = f"p{uuid.uuid4().hex[:10]}."
        self.namespace = namespace or ""
        self.service_argv = service_argv or (lambda name: [sys.executable, "-m", f"yiju.{name}"])
        self.replicas: dict[str, int] = {}
        for name, count in (replicas or {}).items():
            if name not in REPLICABLE:
                raise ValueError(f"replicas: {name!r} is not one of {', '.join(REPLICABLE)}")
            if int(count) < 1:
                raise ValueError(f"replicas: {name} needs at least 1 process, got {count}")
            self.replicas[name] = int(count)
        self._replica_ports: dict[str, dict[str, int]] = {}
        self.broker: BrokerServer | None = None
        self.redis: RedisServer | None = None
        self.timings: dict[str, float] = {}
        self.restarts: dict[str, int] = {}
        self._services: dict[str, ManagedProcess] = {}
        self._wanted: set[str] = set()
        self._busy: set[str] = set()
        self._backoff: dict[str, _Backoff] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._credentials_env: dict[str, str] | None = None
        # True when start_infra found Redis state from another event log and cleared it.
        self.state_cleared = False

    @classmethod
    def on_free_ports(cls, data_dir: Path | str, **kwargs: Any) -> LocalPlatform:
        """A platform on freshly picked free ports (so two can run side by side, e.g. in tests)."""
        return cls(data_dir, Ports.free(), **kwargs)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_all()

    # ----- addresses

    @property
    def bootstrap(self) -> str:
        return self.external_bootstrap or f"{HOST}:{self.ports.kafka}"

    @property
    def infra(self) -> tuple[str, ...]:
        """The infrastructure processes this platform runs: the broker (unless shared) and Redis."""
        return ("redis",) if self.external_bootstrap else INFRA

    def topic(self, name: str) -> str:
        """A topic of the contract as it is named on this platform's broker (its namespace prefixed)."""
        from yiju.common.topics import Namespace

        return Namespace(self.namespace, self.namespace).topic(name)

    def namespace_env(self) -> dict[str, str]:
        """The topic and consumer-group prefixes of this platform (empty when it has none)."""
        if not self.namespace:
            return {}
        return {"YIJU_KAFKA_TOPIC_PREFIX": self.namespace, "YIJU_KAFKA_GROUP_PREFIX": self.namespace}

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.ports.redis}/0"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.ports.http}"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    def env(self) -> dict[str, str]:
        """What a client (the CLI, a test) needs to reach this platform."""
        return {
            "YIJU_HTTP_PORT": str(self.ports.http),
            "YIJU_API_URL": self.api_url,
            "YIJU_GRPC_PORT": str(self.ports.grpc),
            "YIJU_KAFKA_BOOTSTRAP": self.bootstrap,
            "YIJU_REDIS_URL": self.redis_url,
            "YIJU_DATA_DIR": str(self.data_dir),
            **self.namespace_env(),
        }

    def credentials_env(self) -> dict[str, str]:
        """The JWT secret and API-key file the services verify credentials with (created on first use)."""
        if self._credentials_env is None:
            from yiju_infra.local.credentials import ensure_local_credentials

            self._credentials_env = ensure_local_credentials(self.data_dir)
        return self._credentials_env

    def token(self, user_id: str) -> str:
        """The demo user's bearer token (from credentials.json)."""
        self.credentials_env()
        creds = json.loads((self.data_dir / "credentials.json").read_text())
        return creds["users"][user_id]["token"]

    def _address_env(self) -> dict[str, str]:
        env = {
            **self.credentials_env(),
            "YIJU_KAFKA_BOOTSTRAP": self.bootstrap,
            "YIJU_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
            "YIJU_REDIS_URL": self.redis_url,
            "YIJU_DATA_DIR": str(self.data_dir),
            "YIJU_HTTP_HOST": HOST,
            "YIJU_GRPC_HOST": HOST,
            **self.namespace_env(),
        }
        for field in ("http", "grpc", "gateway", "planning", "payment", "fulfilment"):
            env[PORT_ENV[field]] = str(getattr(self.ports, field))
        for service in ("gateway", "planning", "payment", "fulfilment"):
            env[f"YIJU_{service.upper()}_TARGET"] = f"{HOST}:{getattr(self.ports, service)}"
        return env

    def service_env(self, name: str) -> dict[str, str]:
        """The environment of service `name`: defaults < caller's environment < platform addresses
        (ports, bootstrap, Redis URL, data dir, YIJU_METRICS_PORT) < extra_env (< a replica's own
        ports, for "NAME#k")."""
        service = service_of(name)
        env = dict(SERVICE_ENV_DEFAULTS)
        env.update(os.environ)
        env.update(self._address_env())
        env["YIJU_KAFKA_PARTITIONS"] = str(self.partitions())
        if self.broker_kind == "tansu":  # tansu answers InitProducerId with an error
            env["YIJU_KAFKA_ENABLE_IDEMPOTENCE"] = "false"
            # tansu answers a waiting fetch only when its wait is over, not when records arrive
            env["YIJU_KAFKA_FETCH_MAX_WAIT_MS"] = "20"
        env["YIJU_METRICS_PORT"] = str(self.ports.metrics(service))
        env["YIJU_METRICS_TARGETS"] = self.metrics_targets()
        env.update(self.extra_env)
        if name != service:
            env.update({var: str(port) for var, port in self._ports_of_replica(name).items()})
        return env

    def metrics_targets(self) -> str:
        """Every process's metrics address, ``name=host:port`` repeated per replica (the ops summary
        reads them all: ``YIJU_METRICS_TARGETS``)."""
        return ",".join(
            f"{service}={HOST}:{self.metrics_port(name)}"
            for service in SERVICES
            for name in self.instances(service)
        )

    def metrics_port(self, name: str) -> int:
        """The metrics port of process `name` (a service or one of its replicas, "NAME#k")."""
        service = service_of(name)
        if name == service:
            return self.ports.metrics(service)
        return self._ports_of_replica(name)["YIJU_METRICS_PORT"]

    def instances(self, service: str) -> list[str]:
        """The process names of `service`: itself, then its replicas ("intent", "intent#2", ...)."""
        return [replica_name(service, i) for i in range(1, self.replicas.get(service, 1) + 1)]

    def _ports_of_replica(self, name: str) -> dict[str, int]:
        """A replica's own ports (picked free once, kept across restarts), by environment variable."""
        ports = self._replica_ports.get(name)
        if ports is None:
            taken = {getattr(self.ports, f.name) for f in fields(Ports)}
            taken |= {p for other in self._replica_ports.values() for p in other.values()}
            ports = {}
            for var in (*REPLICA_PORT_ENV[service_of(name)], "YIJU_METRICS_PORT"):
                port = free_port(HOST)
                while port in taken:
                    port = free_port(HOST)
                taken.add(port)
                ports[var] = port
            self._replica_ports[name] = ports
        return ports

    def health_port(self, name: str) -> int:
        """The gRPC port where process `name` (a service or a replica) answers grpc.health.v1."""
        service = service_of(name)
        if name == service:
            return self.ports.health(service)
        return self._ports_of_replica(name)[REPLICA_PORT_ENV[service][0]]

    def http_url(self, name: str) -> str:
        """The HTTP API of an intent process (the first one's is `api_url`)."""
        if name == "intent":
            return self.api_url
        return f"http://{HOST}:{self._ports_of_replica(name)['YIJU_HTTP_PORT']}"

    def partitions(self) -> int:
        """Partitions per topic in embedded mode: one per process of the largest consumer group, unless
        YIJU_KAFKA_PARTITIONS says otherwise. A process already orders and parallelises its records by
        order key; every extra partition only makes each consumer's fetches dearer for the broker
        (measured idle, all five services: 95 % of a core with 6 partitions, 42 % with 1)."""
        explicit = self.extra_env.get("YIJU_KAFKA_PARTITIONS") or os.environ.get("YIJU_KAFKA_PARTITIONS")
        return int(explicit) if explicit else max(self.replicas.values(), default=1)

    def settings(self) -> Settings:
        """A yiju Settings pointing at this platform (extra_env applied), e.g. for ensure_topics."""
        from yiju.common.settings import Settings

        overrides: dict[str, Any] = {}
        for key, value in self.extra_env.items():
            field = key[5:].lower() if key.startswith("YIJU_") else ""
            if field in Settings.model_fields:
                overrides[field] = value
        overrides.update(
            kafka_topic_prefix=self.namespace,
            kafka_group_prefix=self.namespace,
            kafka_partitions=self.partitions(),
            jwt_secret=self.credentials_env()["YIJU_JWT_SECRET"],
            api_keys_file=self.credentials_env()["YIJU_API_KEYS_FILE"],
            kafka_bootstrap=self.bootstrap,
            kafka_security_protocol="PLAINTEXT",
            redis_url=self.redis_url,
            data_dir=self.data_dir,
        )
        return Settings(**overrides)

    # ----- processes

    def process(self, name: str) -> ManagedProcess:
        """The ManagedProcess of a service, "broker" or "redis"."""
        if name == "broker" and self.broker is not None:
            return self.broker.process
        if name == "redis" and self.redis is not None:
            return self.redis.process
        if name in self._services:
            return self._services[name]
        raise KeyError(f"{name!r} has not been started (known: {', '.join(SERVICES + INFRA)})")

    @property
    def pids(self) -> dict[str, int]:
        """Pid of every running process, by name."""
        out: dict[str, int] = {}
        for name in (*INFRA, *self._services):
            with contextlib.suppress(KeyError):
                proc = self.process(name)
                if proc.is_alive and proc.pid is not None:
                    out[name] = proc.pid
        return out

    def _check_ports(self, wanted: Iterable[tuple[int, str, str]]) -> None:
        """Raises PortInUseError for the first (port, env var, what) that cannot be bound."""
        for port, var, what in wanted:
            if not port_is_free(port, HOST):
                raise PortInUseError(
                    f"port {port} on {HOST} ({what}) is already in use: stop whatever listens there, "
                    f"or set {var} to a free port"
                )

    def _service_ports(self, name: str) -> list[tuple[int, str, str]]:
        index = SERVICES.index(name)
        out = [(self.ports.health(name), PORT_ENV[HEALTH_PORT_FIELD[name]], f"gRPC of {name}")]
        if name == "intent":
            out.append((self.ports.http, PORT_ENV["http"], "HTTP API of intent"))
        out.append(
            (
                self.ports.metrics(name),
                PORT_ENV["metrics_base"],
                f"metrics of {name}: {PORT_ENV['metrics_base']}+{index}",
            )
        )
        return out

    # ----- infra

    async def start_infra(self, timeout: float = 60.0) -> list[str]:
        """Starts the broker (unless shared) and Redis concurrently, waits for both, creates the topics,
        and checks that Redis and the event log belong together (`check_state_matches_log`).

        Returns the topics it created. Timings land in `self.timings` ("broker", "redis", "topics").
        On failure it stops what it started and raises (ProcessError, PortInUseError, BinaryNotFoundError,
        KafkaUnavailableError).
        """
        started = [s for s in (self.broker, self.redis) if s is not None]
        if len(started) == len(self.infra) and all(s.process.is_alive for s in started):
            return await self.ensure_topics()  # already running
        wanted = [(self.ports.redis, PORT_ENV["redis"], "Redis")]
        if not self.external_bootstrap:
            wanted += [
                (self.ports.kafka, PORT_ENV["kafka"], "Kafka broker"),
                (self.ports.kafka_controller, PORT_ENV["kafka_controller"], "Kafka controller"),
            ]
        self._check_ports(wanted)
        if not self.external_bootstrap:
            self.broker = create_broker(
                self.broker_kind,
                self.ports.kafka,
                self.data_dir,
                controller_port=self.ports.kafka_controller,
                host=HOST,
                storage=self.kafka_storage,
            )
        self.redis = RedisServer(self.ports.redis, self.data_dir, host=HOST)
        servers = [s for s in (self.broker, self.redis) if s is not None]
        try:
            if self.broker is not None:
                await asyncio.to_thread(self.broker.prepare)  # fetch (first time) and format Kafka
            for server in servers:
                server.spawn()
            self._wanted.update(self.infra)
            waits = [self.redis.wait_ready(timeout)]
            if self.broker is not None:
                waits.append(self.broker.wait_ready(timeout))
            took = await asyncio.gather(*waits)
            self.timings["redis"] = took[0]
            if self.broker is not None:
                self.timings["broker"] = took[1]
            created = await self.ensure_topics()
            self.state_cleared = await self.check_state_matches_log(created)
        except BaseException:
            self._wanted.difference_update(self.infra)
            await asyncio.gather(*(server.stop() for server in servers))
            raise
        self._ensure_watcher()
        return created

    async def check_state_matches_log(self, created: Sequence[str]) -> bool:
        """Redis and the event log are one unit (see `yiju_infra.local.state_unit`): Redis state that
        remembers events the broker no longer has is cleared, and the platform says so. Returns True
        when it cleared anything."""
        from yiju.common.topics import ALL_TOPICS
        from yiju_infra.local.state_unit import reconcile_state_with_log

        return await reconcile_state_with_log(
            self.redis_url,
            log_id=self.event_log_id(),
            log_is_new=bool(created) and len(created) == len(ALL_TOPICS),
        )

    def event_log_id(self) -> str:
        """Names the event log this platform's Redis state belongs to: the Kafka cluster id (a fresh
        log directory gets a new one) and the topic namespace."""
        cluster = getattr(self.broker, "cluster_id", None) or self.broker_kind
        return f"{cluster}/{self.namespace}"

    async def ensure_topics(self) -> list[str]:
        """Creates the missing topics (yiju.common.topics.ensure_topics); returns those it created."""
        from yiju.common.topics import ensure_topics

        began = time.monotonic()
        created = await ensure_topics(self.settings())
        self.timings["topics"] = time.monotonic() - began
        return created

    # ----- services

    async def start(self, ready_timeout: float = 60.0) -> None:
        """The whole platform: broker and Redis (with the topics), then every service, ready."""
        await self.start_infra()
        await self.start_services()
        await self.wait_ready(timeout=ready_timeout)

    async def start_services(self, names: Iterable[str] = SERVICES) -> None:
        """Spawns the named services (those not already running) without waiting; see `wait_ready`."""
        names = list(names)
        unknown = [n for n in names if n not in SERVICES]
        if unknown:
            raise KeyError(f"unknown services {unknown} (known: {', '.join(SERVICES)})")
        to_start = [
            n
            for service in names
            for n in self.instances(service)
            if not (n in self._services and self._services[n].is_alive)
        ]
        self._check_ports([p for n in to_start if n in SERVICES for p in self._service_ports(n)])
        for name in to_start:
            self._spawn_service(name)
        self._ensure_watcher()

    def _spawn_service(self, name: str) -> None:
        proc = self._services.get(name)
        if proc is None:
            proc = ManagedProcess(
                name,
                self.service_argv(service_of(name)),
                data_dir=self.data_dir,
                port=self.health_port(name),
                host=HOST,
            )
            self._services[name] = proc
        proc.env = self.service_env(name)
        proc.start()
        self._wanted.add(name)

    async def wait_ready(
        self,
        names: Iterable[str] | None = None,
        timeout: float = 60.0,
        *,
        fail_fast: bool = True,
        on_ready: Callable[[str, float], None] | None = None,
    ) -> dict[str, float]:
        """Waits until each service's gRPC health says SERVING (and intent's GET /healthz is 200).

        `names` defaults to every started service. With `fail_fast` a service that exits (or is
        restarted) meanwhile fails the wait at once; otherwise only `timeout` does. Returns, and calls
        `on_ready` with, the seconds from each service's spawn to ready.
        """
        if names is None:
            names = [n for service in SERVICES for n in self.instances(service) if n in self._services]
        else:
            names = list(names)
        tasks = [asyncio.create_task(self._wait_one(n, timeout, fail_fast)) for n in names]
        results: dict[str, float] = {}
        try:
            for name, task in zip(names, tasks, strict=True):
                results[name] = await task
                if on_ready is not None:
                    on_ready(name, results[name])
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return results

    async def _wait_one(self, name: str, timeout: float, fail_fast: bool) -> float:
        proc = self.process(name)
        generation = proc.starts
        deadline = time.monotonic() + timeout
        port = self.health_port(name)
        checks: list[tuple[str, Callable[[], Any]]] = [
            (f"gRPC health on {HOST}:{port} not SERVING", lambda: grpc_serving(port))
        ]
        if service_of(name) == "intent":
            url = f"{self.http_url(name)}/healthz"
            checks.append((f"GET {url} not 200", lambda: http_healthy(url)))
        for problem, check in checks:
            while True:
                if fail_fast and (not proc.is_alive or proc.starts != generation):
                    raise ServiceNotReadyError(proc.describe_failure("exited before becoming ready"))
                if await check():
                    break
                if time.monotonic() > deadline:
                    raise ServiceNotReadyError(proc.describe_failure(f"{problem} within {timeout:g}s"))
                await asyncio.sleep(0.1)
        elapsed = time.monotonic() - (proc.started_at or 0.0)
        self.timings[f"ready:{name}"] = elapsed
        return elapsed

    # ----- chaos and lifecycle

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Sends `sig` (default SIGKILL) to a service, "broker" or "redis" (its whole process group).

        With auto_restart the watcher brings it back, as for any crash.
        """
        self.process(name).kill(sig)

    async def restart(self, name: str, timeout: float = 60.0) -> None:
        """Stops (SIGTERM, then SIGKILL) and starts a service, "broker" or "redis"; waits until ready.

        Restarting the broker re-creates the topics (memory storage forgets them).
        """
        self._busy.add(name)
        try:
            if name in INFRA:
                server = self.broker if name == "broker" else self.redis
                if server is None:
                    raise KeyError(f"{name} has not been started")
                await server.stop()
                server.spawn()
                self._wanted.add(name)
                await server.wait_ready(timeout)
                if name == "broker":
                    await self.ensure_topics()
            else:
                await self.process(name).stop()
                self._spawn_service(name)
                await self.wait_ready([name], timeout)
            self._backoff.pop(name, None)
        finally:
            self._busy.discard(name)

    async def stop(self, name: str, timeout: float = 10.0) -> None:
        """Stops one service (or "broker"/"redis") for good: the watcher leaves it down."""
        self._wanted.discard(name)
        self._backoff.pop(name, None)
        await self.process(name).stop(timeout)

    async def stop_all(self, timeout: float = 10.0) -> None:
        """Stops the watcher, then every service, then Redis and the broker. Safe to call twice."""
        self._wanted.clear()
        tasks = [t for t in (self._watcher, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watcher = None
        self._background.clear()
        await asyncio.gather(*(proc.stop(timeout) for proc in self._services.values()))
        await asyncio.gather(*(s.stop(timeout) for s in (self.redis, self.broker) if s is not None))

    # ----- supervision

    def _ensure_watcher(self) -> None:
        if self.auto_restart and (self._watcher is None or self._watcher.done()):
            self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="yiju-local-watcher")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(_WATCH_INTERVAL_S)
            if not self.auto_restart:
                continue
            for name in list(self._wanted):
                try:
                    self._supervise(name)
                except Exception:
                    log.exception("supervisor: restarting %s failed", name)

    def _supervise(self, name: str) -> None:
        proc = self.process(name)
        if name in self._busy or proc.is_alive:
            return
        state = self._backoff.setdefault(name, _Backoff())
        now = time.monotonic()
        if state.due is None:
            if now - (proc.started_at or now) >= _HEALTHY_UPTIME_S:
                state.failures = 0
            delay = min(_BACKOFF_FIRST_S * 2**state.failures, _BACKOFF_MAX_S)
            state.failures += 1
            state.due = now + delay
            log.warning(
                "%s exited unexpectedly (code %s, pid %s); restarting in %.1fs (see %s)",
                name, proc.returncode, proc.pid, delay, proc.log_path,
            )  # fmt: skip
            return
        if now < state.due:
            return
        state.due = None
        self.restarts[name] = self.restarts.get(name, 0) + 1
        if name in INFRA:
            server = self.broker if name == "broker" else self.redis
            assert server is not None
            server.spawn()
            task = asyncio.get_running_loop().create_task(self._after_infra_restart(name))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        else:
            self._spawn_service(name)
        log.warning("%s restarted (pid %s, restart #%d)", name, proc.pid, self.restarts[name])

    async def _after_infra_restart(self, name: str) -> None:
        server = self.broker if name == "broker" else self.redis
        assert server is not None
        try:
            # Kafka recovers every partition's log after a kill -9: ~25 s on 2 busy cores was measured.
            await server.wait_ready(120 if name == "broker" else 30)
            if name == "broker":
                await self.ensure_topics()
            log.warning("%s is back", name)
        except Exception as exc:  # logged, and the watcher tries again if it dies
            log.error("%s did not come back: %s", name, exc)
