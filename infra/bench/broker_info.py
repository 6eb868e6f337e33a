"""Which broker a benchmark ran on, and how much disk its log takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yiju_infra.bench.resources import disk_usage_bytes
from yiju_infra.local.platform import LocalPlatform


def broker_in_use(platform: LocalPlatform) -> dict[str, str]:
    """`kind` (kafka, tansu or external) and a human `description` (version, storage, log directory)."""
    broker = platform.broker
    description = broker.description if broker is not None else f"external broker at {platform.bootstrap}"
    return {"kind": platform.broker_kind, "description": description}


def broker_log_dir(platform: LocalPlatform) -> Path | None:
    """The broker's log directory on this machine (Apache Kafka's `log.dirs`); None for a broker that
    keeps its log elsewhere (tansu's memory storage, an external broker)."""
    log_dir: Any = getattr(platform.broker, "log_dir", None)
    return Path(log_dir) if log_dir is not None else None


def broker_disk_bytes(platform: LocalPlatform) -> int | None:
    """Disk space the broker's log takes now (None when it has no log directory here)."""
    log_dir = broker_log_dir(platform)
    return disk_usage_bytes(log_dir) if log_dir is not None else None
