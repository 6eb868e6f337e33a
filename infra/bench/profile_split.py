"""A py-spy profile split by what the time was spent on: the Kafka client, Redis, spans, protobuf, gRPC,
faststream, the handler code and the event loop.

`py-spy record --format raw` writes one line per distinct stack: `frame;frame;...;frame COUNT`, the
outermost frame first, each frame `function (path:line)`. A sample is charged to the innermost frame
that belongs to a known library: a `socket.send` called by aiokafka is the Kafka client's, a protobuf
`SerializeToString` called by a handler is protobuf's. Samples whose frames are all the standard
library's or the interpreter's are the event loop's (asyncio, uvloop, selectors), or "other".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

# Checked in this order against a frame's path (`py-spy record --full-filenames`); the first match
# names the category. The platform's own plumbing is split off from its handlers: the span exporter and
# store count as spans, the Redis client wrapper as redis, the consumer/publisher around faststream
# as its own.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("spans", ("opentelemetry/", "services/common/telemetry.py", "services/common/trace_store.py")),
    ("kafka client", ("aiokafka/", "kafka/", "confluent_kafka/")),
    ("faststream", ("faststream/", "fast_depends/")),
    ("redis", ("redis/", "hiredis/", "services/common/redis.py")),
    ("protobuf", ("google/protobuf/", "services/gen/", "yiju/gen/")),
    ("grpc", ("grpc/", "grpc_health/", "grpc_reflection/")),
    ("http", ("fastapi/", "starlette/", "uvicorn/", "h11/", "httptools/", "pydantic/", "anyio/")),
    ("json/logs", ("orjson/", "pythonjsonlogger/", "logging/", "json/")),
    ("metrics", ("prometheus_client/",)),
    ("crypto", ("jwt/", "cryptography/", "nacl/", "hmac.py", "hashlib.py")),
    ("consumer/publisher", ("services/common/consumer.py", "services/common/broker.py")),
    ("handler code", ("services/", "yiju/")),
)
EVENT_LOOP = ("asyncio/", "uvloop/", "selectors.py", "concurrent/", "threading.py", "socket.py")
_FRAME = re.compile(r"\((?P<path>[^()]+?)(?::\d+)?\)\s*$")


def _matches(path: str, needle: str) -> bool:
    return path.startswith(needle) or f"/{needle}" in path


def frame_category(frame: str) -> str | None:
    """The category of one raw frame `function (path:line)`, None for the standard library's."""
    match = _FRAME.search(frame)
    path = match.group("path") if match else frame
    for name, needles in CATEGORIES:
        if any(_matches(path, needle) for needle in needles):
            return name
    return None


def stack_category(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        category = frame_category(frame)
        if category is not None:
            return category
    return "event loop" if any(needle in stack for needle in EVENT_LOOP) else "other"


def split_profile(lines: Iterable[str]) -> Counter[str]:
    """Samples per category of a raw py-spy profile."""
    samples: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples[stack_category(stack)] += int(count)
    return samples


def shares(samples: Counter[str]) -> dict[str, float]:
    """Each category's share of the samples, largest first (0..1)."""
    total = sum(samples.values())
    if not total:
        return {}
    return {name: count / total for name, count in samples.most_common()}
