"""A private copy of the demo catalog for a run that needs other mandates (e.g. short confirmations)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from yiju.common.settings import REPO_ROOT


def prepare_catalog(dest: Path, *, confirmation_ttl_s: int | None = None) -> Path:
    """Copies catalog/ to `dest` and adjusts catalog/mandates.json; returns `dest` (for YIJU_CATALOG_DIR)."""
    dest = Path(dest)
    shutil.copytree(REPO_ROOT / "catalog", dest, dirs_exist_ok=True)
    mandates_file = dest / "mandates.json"
    mandates = json.loads(mandates_file.read_text()) if mandates_file.exists() else {}
    if confirmation_ttl_s is not None:
        mandates.setdefault("defaults", {})["confirmation_ttl_s"] = confirmation_ttl_s
        for own in mandates.get("users", {}).values():
            own.pop("confirmation_ttl_s", None)
    mandates_file.write_text(json.dumps(mandates, indent=1, ensure_ascii=False))
    return dest
