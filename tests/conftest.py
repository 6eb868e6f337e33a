"""Shared fixtures: the demo catalog and settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from yiju.common.catalog import Catalog, load_catalog

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(REPO / "catalog")
