"""Shared endings of commands: print an order and choose the exit code."""

from __future__ import annotations

from collections.abc import Iterable

from yiju.cli import exitcodes
from yiju.cli.context import CliContext
from yiju.cli.render import print_order
from yiju.sdk import Order, YijuClient


def show_order(ctx: CliContext, order: Order, *, as_json: bool) -> None:
    if as_json:
        ctx.print_json(order.raw)
    else:
        print_order(ctx.out, order)


def exit_code_after_wait(order: Order) -> int:
    """1 for a failure status, else 0 (COMPLETED, or waiting for confirmation)."""
    return exitcodes.ORDER_FAILED if order.is_failure else exitcodes.OK


def wait_and_show(
    ctx: CliContext,
    client: YijuClient,
    order_id: str,
    *,
    timeout: float,
    as_json: bool,
    until: Iterable[str] | None = None,
) -> int:
    """Wait for a status in ``until`` (default: terminal or waiting), showing progress on a terminal;
    print the order and return the exit code."""
    if as_json or not ctx.err.is_terminal:
        order = client.wait_for_order(order_id, timeout=timeout, until=until)
    else:
        with ctx.err.status(f"waiting for order {order_id}…") as spinner:
            order = None
            for order in client.follow_order(order_id, timeout=timeout, until=until):
                spinner.update(f"waiting for order {order_id}: {order.status}")
        assert order is not None
    show_order(ctx, order, as_json=as_json)
    return exit_code_after_wait(order)
