"""``yiju confirm ORDER_ID`` and ``yiju cancel ORDER_ID``: answer an order AWAITING_CONFIRMATION."""

from __future__ import annotations

import argparse

from yiju.cli import exitcodes, options
from yiju.cli.context import CliContext
from yiju.cli.outcome import show_order, wait_and_show
from yiju.sdk import TERMINAL_STATUSES

PRIORITY = 30


def register(subparsers: argparse._SubParsersAction) -> None:
    confirm = subparsers.add_parser(
        "confirm",
        help="confirm an order waiting for confirmation",
        description="Confirm an order that is AWAITING_CONFIRMATION (exit code 3 if it is not).",
    )
    confirm.add_argument("order_id")
    options.add_user(confirm)
    options.add_wait(confirm, what="after confirming")
    options.add_json(confirm)
    confirm.set_defaults(handler=run_confirm)

    cancel = subparsers.add_parser(
        "cancel",
        help="cancel an order waiting for confirmation",
        description="Cancel an order that is AWAITING_CONFIRMATION (exit code 3 if it is not).",
    )
    cancel.add_argument("order_id")
    options.add_user(cancel)
    options.add_json(cancel)
    cancel.set_defaults(handler=run_cancel)


def run_confirm(args: argparse.Namespace, ctx: CliContext) -> int:
    with ctx.client(ctx.user(args.user)) as client:
        order = client.confirm(args.order_id)
        if args.wait and not order.is_terminal:
            # Until terminal: right after confirming, the order may still read AWAITING_CONFIRMATION.
            return wait_and_show(
                ctx,
                client,
                args.order_id,
                timeout=args.timeout,
                as_json=args.json,
                until=TERMINAL_STATUSES,
            )
    show_order(ctx, order, as_json=args.json)
    if args.wait:
        return exitcodes.ORDER_FAILED if order.is_failure else exitcodes.OK
    return exitcodes.OK


def run_cancel(args: argparse.Namespace, ctx: CliContext) -> int:
    with ctx.client(ctx.user(args.user)) as client:
        order = client.cancel(args.order_id)
    show_order(ctx, order, as_json=args.json)
    return exitcodes.OK
