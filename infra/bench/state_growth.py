"""How much state one order leaves behind: ``python -m yiju_infra.bench.state_growth [--orders N]``.

Starts a platform of its own (Apache Kafka, Redis, the five services, synthetic users), submits N
sentences (every 10th refunded once it completes), waits for each to settle, then measures Redis per key
family (``MEMORY USAGE`` of every key, grouped by its name with ids taken out, and its TTL) and Kafka per
topic (the bytes of its log segments on disk). Prints JSON; docs/reliability.md ("State growth per
million orders") is written from its output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

from yiju.common.catalog import synthetic_user_id
from yiju.common.redis import create_redis
from yiju_infra.local.platform import LocalPlatform

TEXTS = ["one latte", "two americanos to the office", "order two bubble teas and a latte to my office"]
ID = re.compile(r"\{[^}]*\}|ord_[0-9a-zA-Z_-]+|[0-9a-f]{8}-[0-9a-f-]{27}|\b\d{8}\b|load-u-\d+|u-\d+")


def family(key: str) -> str:
    """The key's name with its ids taken out: ``payment:{u-1}:ord_x`` -> ``payment:*:*``."""
    return ID.sub("*", key)


def topic_bytes(data_dir: Path) -> dict[str, int]:
    """Bytes of log segments per topic, from the broker's data directory."""
    kafka_dir = next(p for p in data_dir.rglob("meta.properties")).parent
    topics: dict[str, int] = defaultdict(int)
    for segment in kafka_dir.rglob("*.log"):
        topics[segment.parent.name.rsplit("-", 1)[0]] += segment.stat().st_size
    return topics


async def run(orders: int, users: int) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="yiju-state-"))
    platform = LocalPlatform.on_free_ports(data_dir, extra_env={"YIJU_SYNTHETIC_USERS": str(users)})
    await platform.start(ready_timeout=180)
    settings = platform.settings()
    try:
        from yiju.common.auth import issue_token

        secret = platform.credentials_env()["YIJU_JWT_SECRET"]
        settings = settings.model_copy(update={"jwt_secret": secret})
        async with httpx.AsyncClient(base_url=platform.api_url, timeout=30, trust_env=False) as api:
            ids: list[tuple[str, str]] = []
            for i in range(orders):
                user = synthetic_user_id(i % users + 1)
                auth = {"Authorization": f"Bearer {issue_token(user, settings)}"}
                body = {"user_id": user, "text": TEXTS[i % len(TEXTS)]}
                reply = await api.post("/v1/intents", json=body, headers=auth)
                reply.raise_for_status()
                ids.append((reply.json()["order_id"], user))
            statuses: dict[str, str] = {}
            deadline = time.monotonic() + 300
            refunded: set[str] = set()
            while time.monotonic() < deadline:
                for n, (order_id, user) in enumerate(ids):
                    auth = {"Authorization": f"Bearer {issue_token(user, settings)}"}
                    status = (await api.get(f"/v1/orders/{order_id}", headers=auth)).json()["status"]
                    if n % 10 == 0 and status == "COMPLETED" and order_id not in refunded:
                        await api.post(f"/v1/orders/{order_id}/refund", headers=auth)
                        refunded.add(order_id)
                        status = "REFUND_PENDING"
                    statuses[order_id] = status
                if all(s in ("REFUNDED", "FAILED", "PAYMENT_DECLINED", "REJECTED") or
                       (s == "COMPLETED") for s in statuses.values()):  # fmt: skip
                    break
                await asyncio.sleep(0.5)
        redis = create_redis(url=platform.redis_url)
        keys: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # count, bytes, ttl seen
        async for key in redis.scan_iter(count=1000):
            size = await redis.memory_usage(key, samples=0) or 0
            ttl = await redis.ttl(key)
            row = keys[family(key)]
            row[0] += 1
            row[1] += size
            row[2] = max(row[2], ttl)
        await redis.aclose()
        topics = await asyncio.to_thread(topic_bytes, data_dir)
        return {
            "orders": orders,
            "statuses": {s: list(statuses.values()).count(s) for s in set(statuses.values())},
            "redis": {k: {"keys": c, "bytes": b, "max_ttl_s": t} for k, (c, b, t) in sorted(keys.items())},
            "kafka_bytes": dict(sorted(topics.items())),
        }
    finally:
        await platform.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.orders, args.users)), indent=2))


if __name__ == "__main__":
    main()
