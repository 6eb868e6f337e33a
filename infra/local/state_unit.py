"""The data directory is one unit: Redis state and the event log it was built from go together.

Redis holds what the events did (wallets, subsidy grants, the order projection, de-duplication keys);
the broker holds the events. Paired with a log that is not the one it came from, Redis would remember
charges that no event explains (`yiju reconcile` reports them all missing) and de-duplication keys would
drop new events that reuse an old id. So Redis carries a marker naming its log (the Kafka cluster id and
the topic namespace), and at start-up:

- the marker names this log, and the log has its topics: nothing to do;
- Redis is empty: the marker is written;
- otherwise (another log, or this log's topics are gone, or Redis has state and no marker while the log
  is new): Redis is cleared, the marker written, and the platform says so (a WARNING log line, and the
  `cleared` result for the caller to show).
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

MARKER_KEY = "yiju:platform:event-log"


async def reconcile_state_with_log(redis_url: str, *, log_id: str, log_is_new: bool) -> bool:
    """Clears the Redis database at `redis_url` when its state does not belong to the event log
    `log_id` (see the module doc); returns True when it did."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        marker = await client.get(MARKER_KEY)
        keys = await client.dbsize() - (1 if marker is not None else 0)
        stale = (marker is not None and marker != log_id) or (log_is_new and keys > 0)
        if stale:
            why = (
                f"it belongs to another event log ({marker})"
                if marker is not None and marker != log_id
                else "the event log is new (its topics did not exist)"
            )
            log.warning(
                "starting clean: Redis held %d keys of state that the event log cannot explain (%s); "
                "cleared it so that state and events agree",
                keys,
                why,
            )
            await client.flushdb()
        await client.set(MARKER_KEY, log_id)
        return stale
    finally:
        await client.aclose()
