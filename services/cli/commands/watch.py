"""``yiju watch ORDER_ID [--user U] [--json] [--timeout S]``: print each status change as it happens."""

from __future__ import annotations

import argparse
from contextlib import closing

from yiju.cli import exitcodes, options
from yiju.cli.context import CliContext
from yiju.cli.outcome import exit_code_after_wait
from yiju.cli.render import status_line

PRIORITY = 40


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="follow an order live",
        description=(
            "Print the order's status now and at every change, until it is completed, failed or waiting "
            "for confirmation. Exit code 1 if it ends in a failure status."
        ),
    )
    parser.add_argument("order_id")
    options.add_user(parser)
    parser.add_argument("--json", action="store_true", help="print every change as one line of JSON")
    options.add_timeout(parser, default=None)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    last = None
    with (
        ctx.client(ctx.user(args.user)) as client,
        closing(client.follow_order(args.order_id, timeout=args.timeout)) as orders,
    ):
        for order in orders:
            if args.json:
                ctx.print_json(order.raw, compact=True)
            elif last is None or order.status != last.status:
                ctx.out.print(status_line(order))
            last = order
    if last is None:
        return exitcodes.OK
    if last.is_waiting and not args.json:
        ctx.out.print(f"Waiting for confirmation: yiju confirm {last.order_id}", style="yellow", markup=False)
    return exit_code_after_wait(last)
