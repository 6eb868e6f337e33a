"""Local-run credentials: a generated JWT secret, and a token and an API key for every demo user.

Written once under DATA_DIR (secrets/ is 0700, files 0600) and reused on the next start, so the
CLI's credentials keep working across restarts. Production never uses these: tokens come from the
identity provider (RS256 + JWKS) and API keys from the secret store.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from yiju.common.auth import hash_api_key, issue_token
from yiju.common.catalog import load_catalog
from yiju.common.settings import Settings


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def ensure_local_credentials(data_dir: Path, catalog_dir: Path | None = None) -> dict[str, str]:
    """Returns the env the services need (YIJU_JWT_SECRET, YIJU_API_KEYS_FILE); writes credentials.json."""
    secret_path = data_dir / "secrets" / "jwt-secret"
    keys_path = data_dir / "secrets" / "api-keys.json"
    creds_path = data_dir / "credentials.json"
    if not secret_path.exists():
        _write_private(secret_path, secrets.token_urlsafe(48))
    secret = secret_path.read_text().strip()
    if not creds_path.exists() or not keys_path.exists():
        settings = Settings(jwt_secret=secret, **({"catalog_dir": catalog_dir} if catalog_dir else {}))
        users = load_catalog(settings.catalog_dir).users
        creds: dict[str, dict[str, str]] = {}
        hashed: dict[str, str] = {}
        for user_id in users:
            api_key = f"yk_{secrets.token_urlsafe(24)}"
            creds[user_id] = {
                "token": issue_token(user_id, settings, ttl_s=365 * 24 * 3600),
                "api_key": api_key,
            }
            hashed[hash_api_key(api_key)] = user_id
        _write_private(keys_path, json.dumps({"keys": hashed}, indent=1))
        _write_private(creds_path, json.dumps({"users": creds}, indent=1))
    return {"YIJU_JWT_SECRET": secret, "YIJU_API_KEYS_FILE": str(keys_path)}
