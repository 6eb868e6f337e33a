"""The load generator's configuration for a benchmark's own platform (bench and soak share it)."""

from __future__ import annotations

from yiju.loadgen.runner import LoadConfig
from yiju.loadgen.watcher import reads_from_end
from yiju_infra.local.platform import LocalPlatform


def load_config_for(platform: LocalPlatform, via: str, users: int) -> LoadConfig:
    """Sentences `via` http, grpc or kafka to `platform`, from `users` synthetic users; the completion
    watcher starts at the end of its topics where the broker's end offsets are right (Kafka)."""
    return LoadConfig(
        via=via,
        users=users,
        api_url=platform.api_url,
        grpc_target=f"127.0.0.1:{platform.ports.grpc}",
        connections=256,
        watch_from_end=reads_from_end(platform.broker_kind),
    )
