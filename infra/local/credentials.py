"""Local-run credentials and trust: a generated JWT secret, a token and an API key for every demo user,
and two Ed25519 key pairs: the Kafka intake assertions' (a client's signing key) and the dead-letter
replay tool's.

Written once under DATA_DIR (secrets/ is 0700, private files 0600) and reused on the next start, so the
CLI's credentials keep working across restarts. The services get only what they verify with: the JWT
secret (the local edge mints and checks HS256 tokens), the API-key hashes and the two *public* keys.
The private keys stay in DATA_DIR/secrets, where the local signers (the SDK's intake publisher, the
load generator, tests, `yiju dlq replay`) find them through YIJU_DATA_DIR. The services also get
YIJU_ENV=local: every platform this module serves is a local one. Production never uses these: tokens
come from the identity provider (RS256 + JWKS), the other keys from the secret store (charts/yiju).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from yiju.common import intake_assertion, replay_assertion
from yiju.common.auth import hash_api_key, issue_token
from yiju.common.catalog import load_catalog
from yiju.common.ed25519_tokens import write_key_pair
from yiju.common.settings import Settings

LOCAL_ENV = "local"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def ensure_key_pair(secrets_dir: Path, private_name: str, public_name: str) -> Path:
    """An Ed25519 key pair in `secrets_dir` (generated once); returns the public key's path."""
    write_key_pair(secrets_dir / private_name, secrets_dir / public_name)
    return secrets_dir / public_name


def ensure_local_credentials(data_dir: Path, catalog_dir: Path | None = None) -> dict[str, str]:
    """Returns the env the services need (YIJU_ENV, YIJU_JWT_SECRET, YIJU_API_KEYS_FILE and the public
    keys of intake and replay assertions); writes credentials.json and the key pairs."""
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
    intake_public = ensure_key_pair(
        data_dir / "secrets", intake_assertion.SIGNING_KEY_NAME, intake_assertion.PUBLIC_KEY_NAME
    )
    replay_public = ensure_key_pair(
        data_dir / "secrets", replay_assertion.SIGNING_KEY_NAME, replay_assertion.PUBLIC_KEY_NAME
    )
    return {
        "YIJU_ENV": LOCAL_ENV,
        "YIJU_JWT_SECRET": secret,
        "YIJU_API_KEYS_FILE": str(keys_path),
        "YIJU_INTAKE_PUBLIC_KEYS_FILE": str(intake_public),
        "YIJU_REPLAY_PUBLIC_KEYS_FILE": str(replay_public),
    }
