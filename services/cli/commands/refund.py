"""``yiju refund ORDER_ID --user U [--reason R] [--wait] [--json]``: refund a COMPLETED order in full."""

from __future__ import annotations

import argparse

from yiju.cli import exitcodes, options
from yiju.cli.context import CliContext
from yiju.cli.outcome import show_order, wait_and_show
from yiju.sdk import OrderStatus

PRIORITY = 35


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "refund",
        help="refund a completed order in full",
        description="Refund a COMPLETED order: the money goes back to the wallet, the subsidy to the "
        "campaign, and fulfilment cancels what it still can. The ordering user may refund within the "
        "refund window (YIJU_REFUND_WINDOW_S); a token with the operator role at any time. Asking again "
        "answers the same (exit code 3 for an order that did not complete or is past the window).",
    )
    parser.add_argument("order_id")
    parser.add_argument("--reason", default=None, help="why (kept on the order and the refund event)")
    options.add_user(parser)
    parser.add_argument("--wait", action="store_true", help="wait until the order is REFUNDED")
    options.add_timeout(parser, default=options.DEFAULT_WAIT_TIMEOUT)
    options.add_json(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    with ctx.client(ctx.user(args.user)) as client:
        order = client.refund(args.order_id, args.reason)
        if args.wait and order.status != OrderStatus.REFUNDED:
            return wait_and_show(
                ctx,
                client,
                args.order_id,
                timeout=args.timeout,
                as_json=args.json,
                until={OrderStatus.REFUNDED},
            )
    show_order(ctx, order, as_json=args.json)
    return exitcodes.OK
