"""The gateway: backends in priority order, each answer validated, falling back to the next backend.

For each backend in turn, with the sentences no earlier backend answered:
- a model backend whose circuit breaker is open is skipped (its sentences go to the next backend);
- the call has the backend's timeout; a timeout or an error counts against its breaker and hands
  every sentence of the call to the next backend;
- an answer that does not fit the tool schema (InvalidModelOutput) is asked again `invalid_retries`
  times, then handed to the next backend.
Sentences that no backend answered get a clarification question: never a crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from yiju.model_gateway import metrics
from yiju.model_gateway.backends.base import Backend, BackendAnswer
from yiju.model_gateway.breaker import CircuitBreaker
from yiju.model_gateway.tools import InvalidModelOutput, ParseRequest, ParseResult

log = logging.getLogger(__name__)

CLARIFY_EN = "Sorry, I could not tell what you would like to order. Could you name the items?"
CLARIFY_ZH = "抱歉，我没能理解您想买什么，请说出具体的商品。"
NO_BACKEND = "none"


def clarification_for(request: ParseRequest) -> str:
    has_cjk = any("\u4e00" <= ch <= "\u9fff" for ch in request.text)
    return CLARIFY_ZH if has_cjk or request.locale.startswith("zh") else CLARIFY_EN


@dataclass(slots=True)
class ChainStats:
    """Plain counters (the benchmark reads them; Prometheus has the same as metrics)."""

    sentences: int = 0  # sentences that reached the chain
    calls: int = 0  # backend.parse() calls
    fallbacks: int = 0


class Gateway:
    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        timeouts: Mapping[str, float] | None = None,
        default_timeout_s: float | None = None,
        breakers: Mapping[str, CircuitBreaker] | None = None,
        invalid_retries: int = 1,
    ) -> None:
        if not backends:
            raise ValueError("the gateway needs at least one backend")
        self.backends = list(backends)
        self.timeouts = dict(timeouts or {})
        self.default_timeout_s = default_timeout_s
        self.breakers = dict(breakers or {})
        self.invalid_retries = max(0, invalid_retries)
        self.stats = ChainStats()

    @property
    def chain(self) -> str:
        """The configured chain, as part of cache keys: "openai,rules"."""
        return ",".join(b.name for b in self.backends)

    @property
    def primary(self) -> str:
        return self.backends[0].name

    def _timeout(self, backend: Backend) -> float | None:
        return self.timeouts.get(backend.name, self.default_timeout_s)

    async def _call(self, backend: Backend, requests: list[ParseRequest]) -> list[BackendAnswer]:
        """One backend call; raises on timeout or transport failure."""
        self.stats.calls += 1
        began = time.perf_counter()
        outcome = "error"
        try:
            answers = await asyncio.wait_for(backend.parse(requests), self._timeout(backend))
            if len(answers) != len(requests):
                raise RuntimeError(
                    f"{backend.name} returned {len(answers)} answers for {len(requests)} requests"
                )
            outcome = "ok"
            return list(answers)
        except InvalidModelOutput as exc:  # a backend may refuse a whole batch at once
            outcome = "invalid"
            return [exc] * len(requests)
        except TimeoutError:
            outcome = "timeout"
            raise
        finally:
            metrics.BACKEND_SECONDS.labels(backend.name, outcome).observe(time.perf_counter() - began)

    async def _run_backend(
        self,
        backend: Backend,
        requests: list[ParseRequest],
        todo: list[int],
        results: list[ParseResult | None],
        wasted_tokens: list[int],
    ) -> tuple[list[int], str]:
        """Answers what it can of `todo`; returns the indexes left for the next backend and why."""
        breaker = self.breakers.get(backend.name)
        if breaker is not None and not breaker.allow():
            return todo, "breaker_open"
        attempts = 1 + self.invalid_retries
        reason = "invalid"
        failed: list[int] = []
        for attempt in range(attempts):
            if attempt and breaker is not None and not breaker.allow():
                return todo + failed, "breaker_open"  # opened by other calls meanwhile: no retry here
            try:
                answers = await self._call(backend, [requests[i] for i in todo])
            except asyncio.CancelledError:
                if breaker is not None:
                    breaker.abandon()
                raise
            except Exception as exc:
                if breaker is not None:
                    breaker.failure()
                kind = "timeout" if isinstance(exc, TimeoutError) else "error"
                log.warning(
                    "backend failed, falling back",
                    extra={"backend": backend.name, "error": repr(exc), "reason": kind},
                )
                return todo + failed, kind
            if breaker is not None:
                breaker.success()
            retry: list[int] = []
            for i, answer in zip(todo, answers, strict=True):
                tokens = int(getattr(answer, "tokens_used", 0) or 0)
                if tokens:
                    metrics.TOKENS.labels(backend.name).inc(tokens)
                if isinstance(answer, ParseResult):
                    answer.backend = answer.backend or backend.name
                    answer.tokens_used += wasted_tokens[i]
                    results[i] = answer
                elif isinstance(answer, InvalidModelOutput):
                    metrics.INVALID_OUTPUTS.labels(backend.name).inc()
                    wasted_tokens[i] += tokens
                    retry.append(i)
                else:
                    failed.append(i)
            if retry:
                log.info("invalid model output", extra={"backend": backend.name, "sentences": len(retry)})
            if failed:  # a per-sentence transport error: no retry, straight to the next backend
                reason = "error"
            todo = retry
            if not todo:
                return failed, reason
        return todo + failed, reason

    async def parse(self, requests: list[ParseRequest]) -> list[ParseResult]:
        results: list[ParseResult | None] = [None] * len(requests)
        wasted_tokens = [0] * len(requests)
        todo = list(range(len(requests)))
        self.stats.sentences += len(requests)
        for position, backend in enumerate(self.backends):
            if not todo:
                break
            todo, reason = await self._run_backend(backend, requests, todo, results, wasted_tokens)
            if todo:
                following = (
                    self.backends[position + 1].name if position + 1 < len(self.backends) else NO_BACKEND
                )
                metrics.FALLBACKS.labels(backend.name, following, reason).inc(len(todo))
                self.stats.fallbacks += len(todo)
        for i in todo:
            results[i] = ParseResult(
                backend=NO_BACKEND, clarification=clarification_for(requests[i]), tokens_used=wasted_tokens[i]
            )
        return [r for r in results if r is not None]
