"""Exact-match answer cache in Redis, with a TTL.

Key: a hash of (normalised sentence, locale, address labels, catalog version, backend chain), so a
new catalog or a different backend chain never serves an old answer. Normalising is NFKC, lower
case and one space between words. Only answers worth repeating are stored: not the gateway's own
"no backend answered" clarification, and an answer from a fallback backend only for a short TTL
(so that answers improve soon after the primary backend recovers). Redis errors are treated as
misses: the cache never fails a request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from dataclasses import asdict
from typing import Any

from redis.asyncio.client import Redis

from yiju.common.redis import INFRA_ERRORS
from yiju.model_gateway import metrics
from yiju.model_gateway.tools import Action, ParseRequest, ParseResult

log = logging.getLogger(__name__)

PREFIX = "yiju:gw:cache:"
_SPACES = re.compile(r"\s+")


def normalize_sentence(text: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def cache_key(request: ParseRequest, catalog_version: str, chain: str) -> str:
    parts = [
        normalize_sentence(request.text),
        request.locale.strip().lower(),
        sorted({label.strip().lower() for label in request.address_labels}),
        catalog_version,
        chain,
    ]
    digest = hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:32]
    return PREFIX + digest


def dump_result(result: ParseResult) -> str:
    doc: dict[str, Any] = {
        "actions": [asdict(a) for a in result.actions],
        "confidence": result.confidence,
        "backend": result.backend,
        "clarification": result.clarification,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def load_result(raw: str) -> ParseResult:
    doc = json.loads(raw)
    return ParseResult(
        actions=[Action(**a) for a in doc["actions"]],
        confidence=float(doc["confidence"]),
        backend=doc["backend"],
        clarification=doc["clarification"],
        cached=True,
    )


class ResultCache:
    def __init__(self, redis: Redis, *, ttl_s: int, fallback_ttl_s: int = 30, primary: str = "") -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.fallback_ttl_s = fallback_ttl_s
        self.primary = primary
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    async def get(self, key: str) -> ParseResult | None:
        try:
            raw = await self.redis.get(key)
        except INFRA_ERRORS as exc:
            metrics.CACHE_ERRORS.inc()
            log.warning("cache read failed", extra={"error": repr(exc)})
            raw = None
        if raw is None:
            self.misses += 1
            metrics.CACHE_MISSES.inc()
            return None
        try:
            result = load_result(raw)
        except (ValueError, KeyError, TypeError):
            self.misses += 1
            metrics.CACHE_MISSES.inc()
            return None
        self.hits += 1
        metrics.CACHE_HITS.inc()
        return result

    def ttl_for(self, result: ParseResult) -> int:
        if result.backend in ("", "none"):
            return 0
        if self.primary and result.backend != self.primary:
            return min(self.ttl_s, self.fallback_ttl_s)
        return self.ttl_s

    async def put(self, key: str, result: ParseResult) -> None:
        ttl = self.ttl_for(result)
        if ttl <= 0:
            return
        try:
            await self.redis.set(key, dump_result(result), ex=ttl)
        except INFRA_ERRORS as exc:
            metrics.CACHE_ERRORS.inc()
            log.warning("cache write failed", extra={"error": repr(exc)})
