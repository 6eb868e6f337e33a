"""Builds the configured backends (YIJU_GATEWAY_BACKENDS, priority order).

`rules` needs nothing; `openai` needs YIJU_OPENAI_BASE_URL; `transformers` needs the optional extra
(`pip install -e '.[transformers]'`) and YIJU_TRANSFORMERS_MODEL_DIR. Model backends are imported
only when named, so a rules-only gateway never imports aiohttp, torch or transformers.
"""

from __future__ import annotations

from yiju.common.catalog import Catalog
from yiju.model_gateway.backends.base import Backend
from yiju.model_gateway.config import GatewaySettings
from yiju.model_gateway.toolbox import ReadOnlyTools

MODEL_BACKENDS = ("openai", "transformers")


def _toolbox(catalog: Catalog, gateway: GatewaySettings) -> ReadOnlyTools | None:
    """The read-only tools, when a sentence may take more than one turn."""
    return ReadOnlyTools(catalog) if gateway.max_turns > 1 else None


def build_backend(name: str, catalog: Catalog, gateway: GatewaySettings) -> Backend:
    if name == "rules":
        from yiju.model_gateway.backends.rules import RulesBackend

        return RulesBackend(catalog)
    if name == "openai":
        from yiju.model_gateway.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(
            gateway.openai,
            timeout_s=gateway.timeout_for("openai"),
            toolbox=_toolbox(catalog, gateway),
            budget=gateway.turn_budget,
        )
    if name == "transformers":
        from yiju.model_gateway.backends.transformers_backend import TransformersBackend

        return TransformersBackend(
            gateway.transformers, toolbox=_toolbox(catalog, gateway), budget=gateway.turn_budget
        )
    raise ValueError(f"unknown gateway backend {name!r} (known: rules, openai, transformers)")
