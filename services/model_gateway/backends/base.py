"""What every model-gateway backend provides."""

from __future__ import annotations

from typing import Protocol

from yiju.model_gateway.tools import InvalidModelOutput, ParseRequest, ParseResult


class Backend(Protocol):
    name: str

    async def parse(self, requests: list[ParseRequest]) -> list[ParseResult]:
        """One result per request, in order. Raises on transport failure; may return invalid output
        only as InvalidModelOutput (the gateway then retries or falls back)."""
        ...


class InvalidAnswer(InvalidModelOutput):
    """One request's model answer did not fit the tool schema. A model backend may put an instance
    in place of that request's result (the others stay valid); `tokens_used` still counts."""

    def __init__(self, message: str, tokens_used: int = 0) -> None:
        super().__init__(message)
        self.tokens_used = tokens_used


# What a backend's parse() list may hold per request: a result, or why that one answer is unusable
# (InvalidModelOutput: retried, then the next backend; any other exception: the next backend).
BackendAnswer = ParseResult | BaseException
