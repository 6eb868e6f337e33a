"""``yiju reconcile [--json]``: recompute every wallet and the campaign budget from the Kafka events and
the Redis ledger streams (refunds and trimmed ledgers included), check the per-day spend counters, compare
them with Redis, print any difference in fen; exit 1 if there is one."""

from __future__ import annotations

import argparse
import asyncio

from rich.table import Table

from yiju.cli import exitcodes
from yiju.cli.commands.dlq import cli_settings
from yiju.cli.context import CliContext
from yiju.common.catalog import load_catalog
from yiju.common.reconcile import Report, reconcile
from yiju.common.redis import create_redis
from yiju.common.settings import Settings

PRIORITY = 65
DIFFERENCE = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        help="check every wallet and the campaign budget against the events and the ledgers",
        description="Recomputes balances, holds, spending and the subsidy budget from the Kafka events and "
        "from the Redis ledger streams and compares them with Redis. Run it when no order is in flight. "
        "Exit code 1 when anything differs.",
    )
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    parser.set_defaults(handler=run)


async def collect(settings: Settings) -> Report:
    campaign = load_catalog(settings.catalog_dir).campaign
    redis = create_redis(settings)
    try:
        return await reconcile(settings, redis, campaign)
    finally:
        await redis.aclose()


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    report = asyncio.run(collect(cli_settings(ctx.env)))
    if args.json:
        ctx.print_json(report.to_dict())
        return exitcodes.OK if report.ok else DIFFERENCE
    table = Table(title=f"{len(report.wallets)} wallets")
    for column in ("user", "balance", "held", "spent"):
        table.add_column(column, justify="right" if column != "user" else "left")
    for user, row in report.wallets.items():
        table.add_row(user, str(row["balance"]), str(row["held"]), str(row["spent"]))
    ctx.out.print(table)
    if report.campaign:
        c = report.campaign
        ctx.out.print(
            f"campaign {c['id']}: budget left {c['budget_left']} fen of {c['budget_fen']} "
            f"({c['orders_granted']} orders subsidised, overspent {c['overspent_fen']} fen)"
        )
    ctx.out.print(
        f"{report.events_read} events read ({report.events_ignored} from other sources ignored, "
        f"{report.malformed_records} malformed), {report.orders_with_money} orders moved money, "
        f"{report.refunds} refunded"
    )
    ctx.out.print(
        f"{report.wallets_from_events} wallets recomputed from the events, {report.ledgers_trimmed} ledgers "
        f"replayed from a checkpoint (trimmed), {report.daily_counters} per-day spend counters checked, "
        f"{report.payments_expired} settled payment records expired"
    )
    if report.ok:
        ctx.out.print("[green]reconciled: no difference[/green]")
        return exitcodes.OK
    ctx.err.print(f"{len(report.differences)} differences, {report.diff_fen} fen in all:", markup=False)
    for diff in report.differences:
        ctx.err.print(f"  {diff}", markup=False, highlight=False)
    return DIFFERENCE
