"""The gateway: backends in priority order, each answer validated, falling back to the next backend."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from yiju.model_gateway.backends.base import Backend
from yiju.model_gateway.tools import ParseRequest, ParseResult

log = logging.getLogger(__name__)

CLARIFY_EN = "Sorry, I could not tell what you would like to order. Could you name the items?"
CLARIFY_ZH = "抱歉，我没能理解您想买什么，请说出具体的商品。"


def clarification_for(request: ParseRequest) -> str:
    has_cjk = any("\u4e00" <= ch <= "\u9fff" for ch in request.text)
    return CLARIFY_ZH if has_cjk or request.locale.startswith("zh") else CLARIFY_EN


class Gateway:
    def __init__(self, backends: Sequence[Backend]) -> None:
        if not backends:
            raise ValueError("the gateway needs at least one backend")
        self.backends = list(backends)

    async def parse(self, requests: list[ParseRequest]) -> list[ParseResult]:
        results: list[ParseResult | None] = [None] * len(requests)
        todo = list(range(len(requests)))
        for backend in self.backends:
            if not todo:
                break
            try:
                answers = await backend.parse([requests[i] for i in todo])
            except Exception as exc:
                log.warning(
                    "backend failed, falling back", extra={"backend": backend.name, "error": repr(exc)}
                )
                continue
            for i, answer in zip(todo, answers, strict=True):
                answer.backend = answer.backend or backend.name
                results[i] = answer
            todo = []
        for i in todo:
            results[i] = ParseResult(backend="none", clarification=clarification_for(requests[i]))
        return [r for r in results if r is not None]
