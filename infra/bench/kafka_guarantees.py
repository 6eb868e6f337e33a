"""What Kafka's delivery guarantees cost with aiokafka: plain, idempotent and transactional producers.

    python -m yiju_infra.bench.kafka_guarantees [--records 20000] [--bootstrap HOST:PORT]

Without --bootstrap it starts an Apache Kafka of its own (a temporary data dir) and stops it after.
Each mode produces the same records (the pipeline's event size, keyed by order) and reports records/s and
the client's CPU per record; the transactional mode wraps every `--txn-batch` records in a transaction
(what a consume-transform-produce step committing one consumer batch would do). The results are the
basis of the choices in docs/architecture.md; they are written to bench/kafka_guarantees.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from yiju_infra.local.broker import create_broker
from yiju_infra.local.processes import free_port

RECORD_BYTES = 460  # the pipeline's mean event size (see rawbroker.py)


@dataclass
class ModeResult:
    mode: str
    records: int
    seconds: float
    records_per_s: float
    client_cpu_us_per_record: float


async def _produce(bootstrap: str, topic: str, records: int, mode: str, txn_batch: int) -> ModeResult:
    kwargs: dict[str, Any] = {"acks": "all", "linger_ms": 2, "max_batch_size": 256 * 1024}
    if mode == "idempotent":
        kwargs["enable_idempotence"] = True
    elif mode == "transactional":
        kwargs["transactional_id"] = f"bench-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kwargs)
    await producer.start()
    value = os.urandom(RECORD_BYTES)
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sent = 0
        while sent < records:
            n = min(txn_batch, records - sent)
            if mode == "transactional":
                async with producer.transaction():
                    futures = [
                        await producer.send(topic, value, key=f"o-{sent + i}".encode()) for i in range(n)
                    ]
                await asyncio.gather(*futures)
            else:
                futures = [await producer.send(topic, value, key=f"o-{sent + i}".encode()) for i in range(n)]
                await asyncio.gather(*futures)
            sent += n
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        await producer.stop()
    return ModeResult(mode, records, round(wall, 3), round(records / wall, 1), round(cpu / records * 1e6, 1))


async def measure(bootstrap: str, records: int, txn_batch: int) -> list[ModeResult]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    topic = f"bench.guarantees.{uuid.uuid4().hex[:8]}"
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    results = []
    for mode in ("plain", "idempotent", "transactional"):
        await _produce(bootstrap, topic, min(records, 2000), mode, txn_batch)  # warm up
        results.append(await _produce(bootstrap, topic, records, mode, txn_batch))
        print(f"  {mode:<14} {results[-1].records_per_s:>9.0f} records/s  "
              f"{results[-1].client_cpu_us_per_record:>6.1f} µs CPU/record", flush=True)  # fmt: skip
    return results


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    broker = None
    bootstrap = args.bootstrap
    if not bootstrap:
        data_dir = Path(tempfile.mkdtemp(prefix="yiju-guarantees-"))
        port = free_port()
        broker = create_broker("kafka", port, data_dir, controller_port=free_port(avoid=[port]))
        print(f"starting Apache Kafka in {data_dir} ...", flush=True)
        await broker.start(timeout=120)
        bootstrap = broker.bootstrap
    try:
        print(f"producing {args.records} records of {RECORD_BYTES} B per mode to {bootstrap}", flush=True)
        results = await measure(bootstrap, args.records, args.txn_batch)
    finally:
        if broker is not None:
            await broker.stop()
    plain = results[0]
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "bootstrap": bootstrap,
        "txn_batch": args.txn_batch,
        "modes": [asdict(r) for r in results],
        "relative_throughput": {r.mode: round(r.records_per_s / plain.records_per_s, 3) for r in results},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument(
        "--txn-batch", type=int, default=100, help="records per transaction (a consumer batch)"
    )
    parser.add_argument("--bootstrap", default="", help="an existing Kafka (default: start one)")
    parser.add_argument("--out", default="bench/kafka_guarantees.json")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
