"""Where every replica of every service serves ``/metrics``, for the ops summary's scrapes.

Per service, the first of these that names it:

1. ``YIJU_METRICS_DISCOVERY`` (``name=host:port,...``): ``host`` is a headless Service (Kubernetes, the
   chart's ``<release>-<service>-metrics``); every address it resolves to is one replica (IPv4 ones, or
   the IPv6 ones where it has no IPv4, so a dual-stack pod counts once). Resolved again at every summary,
   so replicas that come and go are followed.
2. ``YIJU_METRICS_TARGETS`` (``name=host:port`` or ``name=URL``, comma-separated): one item per replica;
   a name may repeat (the local platform lists every process of a service this way).
3. Derived, one replica: the host of the service's gRPC target (``YIJU_PLANNING_TARGET``, ...) and a port
   chosen as the platform does: with ``YIJU_ENV=local`` (``make run``) service *i* of
   :data:`LOCAL_ORDER` listens on ``YIJU_METRICS_PORT_BASE + i`` (without the base, this service's own
   ``YIJU_METRICS_PORT`` is the base, intent being first; without either,
   ``services.common.service.DEFAULT_METRICS_PORTS``); anywhere else every pod serves metrics on the
   same ``YIJU_METRICS_PORT``. Intent itself is then read in-process.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from yiju.common.service import DEFAULT_METRICS_PORTS
from yiju.common.settings import Settings
from yiju.intent.console.settings import ConsoleSettings

LOCAL_ORDER: tuple[str, ...] = ("intent", "planning", "payment", "fulfilment", "model_gateway")
"""The services in the local platform's order (``yiju_infra.local.platform.SERVICES``): metrics ports."""
GRPC_TARGET: dict[str, str] = {
    "planning": "planning",
    "payment": "payment",
    "fulfilment": "fulfilment",
    "model_gateway": "gateway",
}
"""Peer service -> the Settings prefix of its gRPC target, whose host also serves its metrics."""
IN_PROCESS = "in-process"
"""The one target of intent when nothing names its replicas: its own registry, read without HTTP."""

Resolver = Callable[[str], Awaitable[list[str]]]
"""A host name -> the addresses it resolves to now (one per replica behind a headless Service)."""


def _items(spec: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in spec.split(","):
        name, sep, where = item.strip().partition("=")
        if sep and name.strip() and where.strip():
            out.append((name.strip().replace("-", "_"), where.strip()))
    return out


def metrics_url(where: str) -> str:
    """``host:port`` -> ``http://host:port/metrics``; a URL stays as it is."""
    if "://" in where:
        return where
    return f"http://{where}/metrics"


def _metrics_port(service: str, settings: Settings, console: ConsoleSettings) -> int:
    if settings.env == "local" or console.metrics_port_base:
        base = console.metrics_port_base or (settings.metrics_port - LOCAL_ORDER.index("intent"))
        if base > 0:
            return base + LOCAL_ORDER.index(service)
        return DEFAULT_METRICS_PORTS[service]
    return settings.metrics_port or DEFAULT_METRICS_PORTS[service]


def metrics_targets(settings: Settings, console: ConsoleSettings) -> dict[str, list[str]]:
    """Every service's replicas' ``/metrics`` URLs from ``YIJU_METRICS_TARGETS`` or derived (rules 2 and
    3 of the module docstring; headless names are resolved by :class:`ReplicaTargets`)."""
    explicit: dict[str, list[str]] = {}
    for name, where in _items(console.metrics_targets):
        explicit.setdefault(name, []).append(metrics_url(where))
    out: dict[str, list[str]] = {"intent": explicit.get("intent", [IN_PROCESS])}
    for service, grpc_name in GRPC_TARGET.items():
        if service in explicit:
            out[service] = explicit[service]
            continue
        host = settings.target(grpc_name).rsplit(":", 1)[0] or "127.0.0.1"
        out[service] = [metrics_url(f"{host}:{_metrics_port(service, settings, console)}")]
    return out


async def resolve_addresses(host: str) -> list[str]:
    """The IPv4 addresses of ``host`` (else its IPv6 ones), each once, in a stable order."""
    loop = asyncio.get_running_loop()
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            infos = await loop.getaddrinfo(host, None, family=family, type=socket.SOCK_STREAM)
        except socket.gaierror:
            continue
        addresses = sorted({str(info[4][0]) for info in infos})
        if addresses:
            return addresses
    raise LookupError(f"{host} resolves to no address")


@dataclass(frozen=True, slots=True)
class Discovered:
    """One service's replicas now: their URLs, or why none could be found."""

    urls: list[str]
    error: str | None = None


class ReplicaTargets:
    """Every replica of every service, at the moment of asking (see the module docstring)."""

    def __init__(
        self, settings: Settings, console: ConsoleSettings, resolver: Resolver = resolve_addresses
    ) -> None:
        self.static = metrics_targets(settings, console)
        self.headless = dict(_items(console.metrics_discovery))
        self.resolver = resolver

    async def _resolve(self, where: str) -> Discovered:
        host, _, port = where.rpartition(":")
        if not host or not port.isdigit():
            return Discovered([], f"YIJU_METRICS_DISCOVERY: {where!r} is not host:port")
        try:
            addresses = await self.resolver(host)
        except (LookupError, OSError) as exc:
            return Discovered([], f"cannot resolve {host}: {exc}"[:200])
        return Discovered([metrics_url(f"[{a}]:{port}" if ":" in a else f"{a}:{port}") for a in addresses])

    async def current(self) -> dict[str, Discovered]:
        """Service -> its replicas' URLs (``in-process`` for intent read in-process)."""
        names = list(dict.fromkeys([*LOCAL_ORDER, *self.headless]))
        found = await asyncio.gather(
            *(
                self._resolve(self.headless[name])
                if name in self.headless
                else _static(self.static.get(name, []))
                for name in names
            )
        )
        return dict(zip(names, found, strict=True))


async def _static(urls: list[str]) -> Discovered:
    return Discovered(list(urls))
