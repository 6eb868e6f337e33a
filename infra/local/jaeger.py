"""Jaeger v2 all-in-one as a local process: OTLP in (gRPC and HTTP), spans in memory, query API out.

The binary is built from the Go module proxy by ``infra/jaeger/get-jaeger.sh`` (``make jaeger``) into
``.tools/bin/jaeger``; ``$YIJU_JAEGER_BIN`` points elsewhere. The YAML config it runs with is written
to ``DATA_DIR/jaeger/config.yaml``: only the OTLP receiver, in-memory storage and the query extension,
every listener on 127.0.0.1, the collector's own metrics off (so nothing else takes a port)::

    jaeger = Jaeger(data_dir, JaegerPorts.from_env())
    await jaeger.start()              # readiness: GET /api/services answers 200, OTLP ports accept
    LocalPlatform(extra_env=jaeger.service_env())   # services export to it, read traces from it
    ...
    await jaeger.stop()

``JaegerPorts.free()`` picks ports below the ephemeral range (for tests and side-by-side runs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from yiju_infra.local.binaries import BinaryNotFoundError, ensure_executable
from yiju_infra.local.processes import (
    ManagedProcess,
    ProcessError,
    ephemeral_port_range,
    free_port,
    port_accepts_async,
    port_is_free,
    ports_from_env,
)

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
JAEGER_BIN_ENV = "YIJU_JAEGER_BIN"
UI_ASSETS_ENV = "YIJU_JAEGER_UI_ASSETS"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / ".tools" / "bin" / "jaeger"
BUILD_HINT = "run `make jaeger` (or infra/jaeger/get-jaeger.sh) to build it"
MAX_TRACES = 50_000
"""In-memory storage keeps this many traces, then drops the oldest."""

# JaegerPorts field -> the environment variable that sets it.
PORT_ENV: dict[str, str] = {
    "otlp_grpc": "YIJU_JAEGER_OTLP_GRPC_PORT",
    "otlp_http": "YIJU_JAEGER_OTLP_HTTP_PORT",
    "query": "YIJU_JAEGER_QUERY_PORT",
    "query_grpc": "YIJU_JAEGER_QUERY_GRPC_PORT",
}

_WHAT: dict[str, str] = {
    "otlp_grpc": "Jaeger OTLP/gRPC receiver",
    "otlp_http": "Jaeger OTLP/HTTP receiver",
    "query": "Jaeger query API and UI",
    "query_grpc": "Jaeger query gRPC API",
}


class JaegerPortInUseError(RuntimeError):
    """A port Jaeger needs is taken; the message names the variable that moves it."""


@dataclass(frozen=True)
class JaegerPorts:
    """Jaeger's listeners (all on 127.0.0.1); the defaults are Jaeger's own."""

    otlp_grpc: int = 4317
    otlp_http: int = 4318
    query: int = 16686
    query_grpc: int = 16685

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JaegerPorts:
        """Defaults overridden by YIJU_JAEGER_OTLP_GRPC_PORT, ..._OTLP_HTTP_PORT, ..._QUERY_PORT,
        ..._QUERY_GRPC_PORT. A port in the kernel's ephemeral range is allowed but warned about."""
        ports = cls(**ports_from_env(PORT_ENV, os.environ if environ is None else environ))
        low, high = ephemeral_port_range()
        for field, port in asdict(ports).items():
            if low <= port <= high:
                log.warning(
                    "%s=%d is in the ephemeral range %d-%d: an outgoing connection may take it first",
                    PORT_ENV[field],
                    port,
                    low,
                    high,
                )
        return ports

    @classmethod
    def free(cls) -> JaegerPorts:
        """Distinct ports nothing listens on now, below the ephemeral range (for tests)."""
        picked: list[int] = []
        for _ in fields(cls):
            picked.append(free_port(HOST, avoid=picked))
        return cls(*picked)


def jaeger_bin() -> Path:
    """The Jaeger v2 binary: $YIJU_JAEGER_BIN, else .tools/bin/jaeger (built by `make jaeger`)."""
    explicit = os.environ.get(JAEGER_BIN_ENV, "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise BinaryNotFoundError(f"{JAEGER_BIN_ENV}={explicit!r}: no such file")
        return ensure_executable(path)
    if DEFAULT_BIN.is_file():
        return ensure_executable(DEFAULT_BIN)
    raise BinaryNotFoundError(
        f"no Jaeger binary at {DEFAULT_BIN.relative_to(REPO_ROOT)}: {BUILD_HINT}, "
        f"or set {JAEGER_BIN_ENV} to a Jaeger v2 binary"
    )


def render_config(ports: JaegerPorts, host: str = HOST, ui_assets: str = "") -> str:
    """Jaeger v2's YAML config: OTLP receivers -> batch -> memory storage <- query extension."""
    ui = f"\n    ui:\n      assets_path: {ui_assets}" if ui_assets else ""
    return f"""\
# Written by yiju_infra.local.jaeger; rewritten on every start.
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: info
      encoding: json

extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: {MAX_TRACES}
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
    http:
      endpoint: {host}:{ports.query}
    grpc:
      endpoint: {host}:{ports.query_grpc}{ui}

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {host}:{ports.otlp_grpc}
      http:
        endpoint: {host}:{ports.otlp_http}

processors:
  batch:
    timeout: 200ms

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


async def query_api_ready(url: str, timeout: float = 1.0) -> bool:
    """True if GET `url`/api/services answers 200."""
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=timeout) as client:
            return (await client.get(f"{url}/api/services")).status_code == 200
    except httpx.HTTPError:
        return False


class Jaeger:
    """A Jaeger v2 all-in-one process with in-memory storage, logging to DATA_DIR/logs/jaeger.log."""

    def __init__(
        self,
        data_dir: Path | str,
        ports: JaegerPorts | None = None,
        *,
        host: str = HOST,
        binary: Path | None = None,
        ui_assets: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.ports = ports if ports is not None else JaegerPorts.from_env()
        self.host = host
        self.binary = binary or jaeger_bin()
        self.ui_assets = os.environ.get(UI_ASSETS_ENV, "") if ui_assets is None else ui_assets
        self.config_path = self.data_dir / "jaeger" / "config.yaml"
        # Jaeger's own OTEL_* settings would be read by its SDK: it gets none of the caller's.
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        self.process = ManagedProcess(
            "jaeger",
            [str(self.binary), "--config", f"file:{self.config_path}"],
            data_dir=self.data_dir,
            env=env,
            port=self.ports.query,
            host=host,
        )

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def query_url(self) -> str:
        """The query API and UI (``/api/services``, ``/api/traces/{id}``, ``/search``)."""
        return f"http://{self.host}:{self.ports.query}"

    @property
    def otlp_http_endpoint(self) -> str:
        """The OTLP/HTTP base URL (exporters append ``/v1/traces``)."""
        return f"http://{self.host}:{self.ports.otlp_http}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"{self.host}:{self.ports.otlp_grpc}"

    def service_env(self) -> dict[str, str]:
        """What a service needs to export its spans here and read traces back from here."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_http_endpoint,
            # Set as well, so that a traces-only endpoint in the caller's shell does not win.
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{self.otlp_http_endpoint}/v1/traces",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "YIJU_TRACE_QUERY_URL": self.query_url,
        }

    def write_config(self) -> Path:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render_config(self.ports, self.host, self.ui_assets))
        return self.config_path

    def spawn(self) -> int:
        """Checks the ports, writes the config and starts the process (without waiting)."""
        for field, port in asdict(self.ports).items():
            if not port_is_free(port, self.host):
                raise JaegerPortInUseError(
                    f"port {port} on {self.host} ({_WHAT[field]}) is already in use: stop whatever "
                    f"listens there, or set {PORT_ENV[field]} to a free port"
                )
        self.write_config()
        return self.process.start()

    async def wait_ready(self, timeout: float = 30.0) -> float:
        """Polls until the query API answers and both OTLP receivers accept connections; returns the
        seconds waited. Raises ProcessError (with the log tail) if Jaeger exits or times out."""
        began = time.monotonic()
        while True:
            if not self.process.is_alive:
                raise ProcessError(self.process.describe_failure("exited before it was ready"))
            if (
                await query_api_ready(self.query_url)
                and await port_accepts_async(self.ports.otlp_http, self.host)
                and await port_accepts_async(self.ports.otlp_grpc, self.host)
            ):
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise ProcessError(
                    self.process.describe_failure(f"query API {self.query_url} not ready in {timeout:g}s")
                )
            await asyncio.sleep(0.05)

    async def start(self, timeout: float = 30.0) -> float:
        """spawn() and wait_ready(); on failure the process is stopped. Returns the seconds to ready."""
        self.spawn()
        try:
            return await self.wait_ready(timeout)
        except BaseException:
            await self.stop()
            raise

    async def stop(self, timeout: float = 10.0) -> int | None:
        return await self.process.stop(timeout)
