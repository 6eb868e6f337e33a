"""``yiju health``: is the intent service up?"""

from __future__ import annotations

import argparse

from yiju.cli import exitcodes
from yiju.cli.context import CliContext

PRIORITY = 90


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("health", help="check that the intent service answers")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    with ctx.client() as client:
        ctx.print_json(client.health())
    return exitcodes.OK
