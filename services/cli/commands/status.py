"""``yiju status ORDER_ID [--json] [--user U]``: show an order as it is now."""

from __future__ import annotations

import argparse

from yiju.cli import exitcodes, options
from yiju.cli.context import CliContext
from yiju.cli.outcome import show_order

PRIORITY = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="show an order", description="Show an order as it is now.")
    parser.add_argument("order_id")
    options.add_user(parser)
    options.add_json(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    with ctx.client(ctx.user(args.user)) as client:
        order = client.get_order(args.order_id)
    show_order(ctx, order, as_json=args.json)
    return exitcodes.OK
