"""``yiju topics create|list``: the platform's Kafka topics (the Helm hook Job runs ``create``)."""

from __future__ import annotations

import argparse
import asyncio

from yiju.cli import exitcodes
from yiju.cli.context import CliContext
from yiju.common.settings import get_settings
from yiju.common.topics import ALL_TOPICS, CONSUMER_GROUPS, Namespace, ensure_topics

PRIORITY = 80


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("topics", help="create or list the platform's Kafka topics")
    sub = parser.add_subparsers(dest="topics_command", required=True)
    sub.add_parser("create", help="create every missing topic (YIJU_KAFKA_* settings)").set_defaults(
        handler=create
    )
    sub.add_parser("list", help="print the topics and consumer groups").set_defaults(handler=list_topics)


def create(args: argparse.Namespace, ctx: CliContext) -> int:
    settings = get_settings()
    created = asyncio.run(ensure_topics(settings))
    print(
        f"{len(created)} topics created, {len(ALL_TOPICS) - len(created)} already there "
        f"(bootstrap {settings.kafka_bootstrap}, {settings.kafka_partitions} partitions, "
        f"replication {settings.kafka_replication_factor})"
    )
    return exitcodes.OK


def list_topics(args: argparse.Namespace, ctx: CliContext) -> int:
    ns = Namespace.of(get_settings())
    for topic in ALL_TOPICS:
        print(ns.topic(topic))
    for group in CONSUMER_GROUPS:
        topics = ", ".join(ns.topics(group.topics))
        print(f"group {ns.group(group.name)} ({group.service}): {topics} -> {ns.dead_letter_topic(group)}")
    return exitcodes.OK
