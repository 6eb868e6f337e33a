"""``yiju dlq list [--group G] [--json]`` and ``yiju dlq replay --group G (--id EVENT_ID | --all)``.

Talks to Kafka and Redis directly (YIJU_KAFKA_* and YIJU_REDIS_URL, as the services do), not to the API.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from typing import Any

from rich.table import Table

from yiju.cli import exitcodes
from yiju.cli.context import CliContext, CliError
from yiju.common.dead_letters import (
    Replayer,
    UnknownGroup,
    read_dead_letters,
    replay_markers,
    resolve_group,
    select,
)
from yiju.common.redis import create_redis
from yiju.common.settings import Settings
from yiju.common.topics import CONSUMER_GROUPS, ConsumerGroup

PRIORITY = 60


def cli_settings(env: Mapping[str, str]) -> Settings:
    """Settings from the command's environment (YIJU_* variables), so tests can pass their own."""
    overrides: dict[str, Any] = {}
    for key, value in env.items():
        name = key[5:].lower() if key.startswith("YIJU_") else ""
        if name in Settings.model_fields:
            overrides[name] = value
    if "YIJU_KAFKA_BOOTSTRAP" not in env and env.get("YIJU_KAFKA_PORT"):
        overrides["kafka_bootstrap"] = f"127.0.0.1:{env['YIJU_KAFKA_PORT']}"
    if "YIJU_REDIS_URL" not in env and env.get("YIJU_REDIS_PORT"):
        overrides["redis_url"] = f"redis://127.0.0.1:{env['YIJU_REDIS_PORT']}/0"
    return Settings(**overrides)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dlq",
        help="list or replay dead-lettered records",
        description="Dead letters: records a consumer group could not handle, with the reason.",
    )
    sub = parser.add_subparsers(dest="dlq_command", required=True)
    listing = sub.add_parser("list", help="show the dead letters (all groups, or one)")
    listing.add_argument("--group", help="consumer group, e.g. yiju-payment (or just payment)")
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    listing.set_defaults(handler=run_list)
    replay = sub.add_parser(
        "replay",
        help="republish dead letters to their original topic (each at most once)",
        description="Republishes the original record (headers minus x-dlq-*) to its original topic and "
        "partition, after clearing the group's de-duplication key for it. A replay marker in Redis "
        "makes a second replay of the same dead letter a no-op.",
    )
    replay.add_argument("--group", required=True, help="consumer group, e.g. yiju-payment")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--id", metavar="EVENT_ID", help="the event id (or the dead letter's topic/partition/offset)"
    )
    which.add_argument("--all", action="store_true", help="every dead letter of the group not replayed yet")
    replay.add_argument(
        "--include-malformed",
        action="store_true",
        help="with --all, also replay records dead-lettered as malformed (they fail again)",
    )
    replay.add_argument("--json", action="store_true", help="print the outcome as JSON")
    replay.set_defaults(handler=run_replay)


def _groups(name: str | None) -> list[ConsumerGroup]:
    if not name:
        return list(CONSUMER_GROUPS)
    try:
        return [resolve_group(name)]
    except UnknownGroup as exc:
        raise CliError(str(exc), exitcodes.USAGE) from None


async def _list(settings: Settings, groups: list[ConsumerGroup]) -> list[dict[str, Any]]:
    letters = await read_dead_letters(settings, groups)
    redis = create_redis(settings)
    try:
        markers = await replay_markers(redis, letters)
    finally:
        await redis.aclose()
    return [d.summary(m) for d, m in zip(letters, markers, strict=True)]


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    rows = asyncio.run(_list(cli_settings(ctx.env), _groups(args.group)))
    if args.json:
        ctx.print_json(rows)
        return exitcodes.OK
    if not rows:
        ctx.out.print("no dead letters")
        return exitcodes.OK
    table = Table(title=f"{len(rows)} dead letters", show_lines=False)
    for column in ("group", "event id", "type", "order", "reason", "error", "from", "replayed"):
        table.add_column(column, overflow="fold")
    for row in rows:
        origin = f"{row['original_topic']}/{row['original_partition']}/{row['original_offset']}"
        table.add_row(
            row["group"],
            row["event_id"] or row["dlq_position"],
            row["event_type"],
            row["order_id"],
            row["reason"],
            f"{row['error_class']}: {row['error_message'][:120]}",
            origin,
            row["replayed"]["at"] if row["replayed"] else "",
        )
    ctx.out.print(table)
    return exitcodes.OK


async def _replay(settings: Settings, group: ConsumerGroup, args: argparse.Namespace) -> list[dict[str, Any]]:
    letters = select(
        await read_dead_letters(settings, [group]), event_id=args.id, include_malformed=args.include_malformed
    )
    if args.id and not letters:
        raise CliError(f"no dead letter with id {args.id} in {group.dead_letter_topic}", exitcodes.API_ERROR)
    redis = create_redis(settings)
    try:
        async with Replayer(settings, redis) as replayer:
            return [(await replayer.replay(d)).summary() for d in letters]
    finally:
        await redis.aclose()


def run_replay(args: argparse.Namespace, ctx: CliContext) -> int:
    group = _groups(args.group)[0]
    results = asyncio.run(_replay(cli_settings(ctx.env), group, args))
    if args.json:
        ctx.print_json(results)
    else:
        replayed = sum(r["outcome"] == "replayed" for r in results)
        for r in results:
            ctx.out.print(f"{r['outcome']:<16} {r['event_id'] or r['dlq_position']} -> {r['original_topic']}")
        ctx.out.print(f"{replayed} replayed, {len(results) - replayed} skipped ({group.dead_letter_topic})")
    return exitcodes.OK
