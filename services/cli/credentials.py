"""Tokens of the demo users, written by the local run to ``$YIJU_DATA_DIR/credentials.json``.

The file looks like ``{"users": {"u-1002": {"token": "..."}}}``; when it is missing, or has no entry for
the user, requests go out without a token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

CREDENTIALS_FILE = "credentials.json"


class CredentialsError(Exception):
    """The credentials file exists but cannot be read."""


def data_dir(env: Mapping[str, str]) -> Path:
    """``$YIJU_DATA_DIR``, else the platform's default data dir (``.var`` in the repository root)."""
    explicit = env.get("YIJU_DATA_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    try:
        from yiju.common.settings import get_settings

        return Path(get_settings().data_dir)
    except Exception:  # settings that fail to load must not break the CLI
        import yiju

        return Path(yiju.__file__).resolve().parents[1] / ".var"


def load_token(user: str | None, env: Mapping[str, str]) -> str | None:
    """The token of ``user`` from the credentials file, or ``None``."""
    if not user:
        return None
    path = data_dir(env) / CREDENTIALS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"cannot read {path}: {exc}") from exc
    users = data.get("users") if isinstance(data, dict) else None
    entry = users.get(user) if isinstance(users, dict) else None
    token = entry.get("token") if isinstance(entry, dict) else None
    return token if isinstance(token, str) and token else None
