"""What every model-gateway backend provides."""

from __future__ import annotations

from typing import Protocol

from yiju.model_gateway.tools import ParseRequest, ParseResult


class Backend(Protocol):
    name: str

    async def parse(self, requests: list[ParseRequest]) -> list[ParseResult]:
        """One result per request, in order. Raises on transport failure; may return invalid output
        only as InvalidModelOutput (the gateway then retries or falls back)."""
        ...
