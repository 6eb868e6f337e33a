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


class RepeatLimiter(logging.Filter):
    """Lets one record of each (logger, level, message template) through per `interval_s` for the
    loggers under `prefixes`, and counts the rest into the next one's `repeats_suppressed`.

    While the broker is down, aiokafka logs every reconnect attempt of every client at ERROR (about
    10,700 lines in one service during a 10-minute chaos run with three broker kills); the first line
    says what is wrong, and the count says how long it went on.
    """

    def __init__(self, prefixes: tuple[str, ...] = ("aiokafka",), interval_s: float = 10.0) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.interval_s = interval_s
        self._last: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval_s:
            self._last[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.repeats_suppressed = last[1]
        if len(self._last) > 1000:  # bounded: templates are few; forget them all rather than grow
            self._last.clear()
        self._last[key] = (now, 0)
        return True


def setup_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(RepeatLimiter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "faststream", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
