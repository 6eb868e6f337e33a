"""Structured JSON logs on stdout, one object per line, with personal data redacted."""

from __future__ import annotations

import functools
import logging
import re
import sys
import time
from typing import Any

import orjson
from opentelemetry import trace

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SECRET_KEYS = re.compile(r"(password|secret|token|authorization|api_key|apikey|assertion)", re.I)
_PERSONAL_KEYS = re.compile(r"(^|[._])(address(es)?|deliver_to|origin|destination|phone|email)$", re.I)


@functools.lru_cache(maxsize=4096)
def _key_kind(key: str) -> int:
    """1: a secret's key, 2: a personal-data key, 0: neither (cached: keys repeat on every span)."""
    if _SECRET_KEYS.search(key):
        return 1
    if _PERSONAL_KEYS.search(key) and not key.startswith("messaging."):
        return 2
    return 0


def redact(key: str, value: Any) -> Any:
    """Secrets are dropped; addresses and other personal data are masked."""
    kind = _key_kind(key)
    if kind == 1:
        return "[secret]"
    if kind == 2 and isinstance(value, str) and value:
        return "[redacted]"
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            doc["trace_id"] = f"{span.trace_id:032x}"
            doc["span_id"] = f"{span.span_id:016x}"
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = redact(key, value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def setup_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "faststream", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
