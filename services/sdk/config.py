"""Where the intent service is, and what this SDK calls itself."""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import metadata

DEFAULT_PORT = 8080


def default_base_url(env: Mapping[str, str] | None = None) -> str:
    """``$YIJU_API_URL``, else ``http://127.0.0.1:${YIJU_HTTP_PORT:-8080}``."""
    env = os.environ if env is None else env
    explicit = env.get("YIJU_API_URL", "").strip()
    if explicit:
        return explicit.rstrip("/")
    port = env.get("YIJU_HTTP_PORT", "").strip() or str(DEFAULT_PORT)
    return f"http://127.0.0.1:{port}"


def package_version() -> str:
    """The installed version of the ``yiju`` distribution (``0+unknown`` when running unpackaged)."""
    try:
        return metadata.version("yiju")
    except metadata.PackageNotFoundError:
        return "0+unknown"


USER_AGENT = f"yiju-sdk-python/{package_version()}"
