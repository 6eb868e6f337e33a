"""Builds the configured backends (YIJU_GATEWAY_BACKENDS, priority order)."""

from __future__ import annotations

from yiju.common.catalog import Catalog
from yiju.common.settings import Settings
from yiju.model_gateway.backends.base import Backend


def build_backends(settings: Settings, catalog: Catalog) -> list[Backend]:
    backends: list[Backend] = []
    for name in (n.strip() for n in settings.gateway_backends.split(",") if n.strip()):
        if name == "rules":
            from yiju.model_gateway.backends.rules import RulesBackend

            backends.append(RulesBackend(catalog))
        else:
            raise ValueError(f"unknown gateway backend {name!r} (known: rules, openai, transformers)")
    return backends
