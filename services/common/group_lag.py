"""How far behind consumer groups are, as the cluster sees them: every replica of every group at once.

A process's own consumer only knows the partitions assigned to it. The cluster knows each group's
committed offsets (ListConsumerGroupOffsets / OffsetFetch) and each partition's end (ListOffsets), so
their difference is the group's whole backlog, whichever replicas hold which partitions. The sweeper
asks this before it acts on idle orders: an order is not stuck while its step is still queued.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from yiju.common.kafka_config import admin_client_kwargs, security_kwargs
from yiju.common.settings import Settings
from yiju.common.topics import ConsumerGroup, Namespace


class GroupLag:
    """Backlog per consumer group, summed over its partitions (clients started lazily, kept open)."""

    def __init__(self, settings: Settings, timeout_s: float = 5.0) -> None:
        self.settings = settings
        self.namespace = Namespace.of(settings)
        self.timeout_s = timeout_s
        self._admin: AIOKafkaAdminClient | None = None
        self._ends: AIOKafkaConsumer | None = None
        self._partitions: dict[str, list[TopicPartition]] = {}

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._ends is None:
            admin = AIOKafkaAdminClient(**admin_client_kwargs(self.settings), request_timeout_ms=5000)
            ends = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap,
                client_id=f"{self.settings.kafka_client_prefix}-lag",
                enable_auto_commit=False,
                request_timeout_ms=5000,
                **security_kwargs(self.settings),
            )
            try:
                await admin.start()
                await ends.start()
            except BaseException:
                await _close(admin, ends)
                raise
            self._admin, self._ends = admin, ends
        return self._admin, self._ends

    async def _partitions_of(
        self, admin: AIOKafkaAdminClient, topics: tuple[str, ...]
    ) -> list[TopicPartition]:
        missing = [t for t in topics if t not in self._partitions]
        if missing:
            for t in await admin.describe_topics(missing):
                if not t["error_code"]:
                    self._partitions[t["topic"]] = [
                        TopicPartition(t["topic"], p["partition"]) for p in t["partitions"]
                    ]
        return [tp for topic in topics for tp in self._partitions.get(topic, [])]

    async def of(self, groups: Sequence[ConsumerGroup]) -> dict[str, int]:
        """Records each group has not committed yet, summed over its partitions. Raises when the cluster
        can't answer within the timeout (the caller treats that as "unknown", never as "no lag")."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._lag(groups)
        except BaseException:
            await self.close()  # reconnect from scratch next time (the broker may have moved or restarted)
            raise

    async def _lag(self, groups: Sequence[ConsumerGroup]) -> dict[str, int]:
        admin, ends = await self._clients()
        lags: dict[str, int] = {}
        for group in groups:
            partitions = await self._partitions_of(admin, self.namespace.topics(group.topics))
            if not partitions:
                lags[group.name] = 0
                continue
            end = await ends.end_offsets(partitions)
            committed = await admin.list_consumer_group_offsets(
                self.namespace.group(group.name), partitions=partitions
            )
            at = {tp: meta.offset for tp, meta in committed.items() if meta is not None and meta.offset >= 0}
            if len(at) < len(partitions):  # never committed there: the group starts at the log's start
                start = await ends.beginning_offsets([tp for tp in partitions if tp not in at])
                at.update(start)
            lags[group.name] = sum(max(end[tp] - at[tp], 0) for tp in partitions)
        return lags

    async def close(self) -> None:
        admin, ends, self._admin, self._ends = self._admin, self._ends, None, None
        await _close(admin, ends)


async def _close(admin: AIOKafkaAdminClient | None, ends: AIOKafkaConsumer | None) -> None:
    for close in (ends.stop if ends else None, admin.close if admin else None):
        if close is not None:
            with contextlib.suppress(Exception):  # closing a client of a broker that is gone
                await close()
