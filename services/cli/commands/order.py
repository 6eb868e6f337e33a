"""``yiju order "TEXT" --user U [--wait] [--json] [--timeout S] [--key K]``: submit a sentence."""

from __future__ import annotations

import argparse

from yiju.cli import exitcodes, options
from yiju.cli.context import CliContext, CliError
from yiju.cli.outcome import wait_and_show
from yiju.cli.render import print_accepted

PRIORITY = 10


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "order",
        help="turn a sentence into an order",
        description="Submit a sentence as an intent; with --wait, follow the order until it settles.",
    )
    parser.add_argument("text", help="what you want, in one sentence")
    options.add_user(parser, help="the user placing the order (default $YIJU_USER)")
    options.add_wait(parser, what="after submitting")
    options.add_json(parser)
    parser.add_argument(
        "--key",
        metavar="IDEMPOTENCY_KEY",
        help="idempotency key: resubmitting with the same key returns the same order (default: a new one)",
    )
    parser.add_argument("--locale", help="the sentence's locale, e.g. zh-CN")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    user = ctx.user(args.user)
    if not user:
        raise CliError("order needs --user (or $YIJU_USER)", exitcodes.USAGE)
    if not args.text.strip():
        raise CliError("the sentence is empty", exitcodes.USAGE)
    with ctx.client(user) as client:
        accepted = client.submit_intent(user, args.text, idempotency_key=args.key, locale=args.locale)
        if args.wait:
            return wait_and_show(ctx, client, accepted.order_id, timeout=args.timeout, as_json=args.json)
    if args.json:
        ctx.print_json(accepted.raw)
    else:
        print_accepted(ctx.out, accepted)
    return exitcodes.OK
